//! A MariaDB server of a test's own, for tests that stop and start the database (outages), so the shared test
//! server is never touched.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection, MySqlConnection};

/// Where Debian's `mariadb-server` package puts the server.
pub const DEFAULT_MARIADBD: &str = "/usr/sbin/mariadbd";
/// How long a start may take before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A private `mariadbd` on `127.0.0.1` with its own port and data directory (in the system temp directory), root
/// without a password over TCP. [`stop`](Self::stop) and [`start`](Self::start) it at will; the port and the data
/// stay. Dropping it kills the server and removes the directory.
///
/// Start-up takes well under a few seconds: a small buffer pool and redo log, no binary log, no test database.
#[derive(Debug)]
pub struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    mariadbd: PathBuf,
    child: Option<Child>,
}

impl PrivateMariaDb {
    /// Initialises a data directory and starts the server on a free port; returns once it accepts connections.
    ///
    /// Uses `SIGNIN_MARIADBD` (default `/usr/sbin/mariadbd`) and `mariadb-install-db` from the `PATH`.
    pub async fn start() -> anyhow::Result<Self> {
        let mariadbd =
            std::env::var_os("SIGNIN_MARIADBD").map_or_else(|| PathBuf::from(DEFAULT_MARIADBD), PathBuf::from);
        if !mariadbd.exists() {
            bail!("{} is missing: outage tests need Debian's `mariadb-server` package", mariadbd.display());
        }
        let dir = std::env::temp_dir().join(format!("signin-mariadb-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // From here on, Drop removes the directory whatever fails.
        let mut server = Self { port: free_port()?, dir, mariadbd, child: None };
        server.install().await?;
        server.restart().await?;
        Ok(server)
    }

    /// `mysql://root@127.0.0.1:PORT`: the server URL, for [`TestDb::create_on`](crate::TestDb::create_on).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The TCP port, the same across stops and starts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server the way an operator does (SIGTERM, then waits for the shutdown to finish); kills it if it
    /// takes longer than 20 s. Does nothing when it is already stopped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let term = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        if !term.is_ok_and(|status| status.success()) {
            child.kill().ok();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if child.try_wait().context("waiting for mariadbd")?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server (SIGKILL), as a crash or a power cut would. Does nothing when it is already stopped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the server again on the same port and data directory; returns once it accepts connections.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .context("opening the server log")?;
        let mut command = Command::new(&self.mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.dir.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", self.dir.join("mariadbd.pid").display()))
            .args(SMALL_SERVER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if runs_as_root(&self.dir) {
            command.arg("--user=root");
        }
        self.child = Some(command.spawn().with_context(|| format!("starting {}", self.mariadbd.display()))?);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(conn) = MySqlConnection::connect(&self.url()).await {
                conn.close().await.ok();
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().context("checking mariadbd")?.is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                self.kill();
                bail!("the private MariaDB did not start; its log:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    async fn install(&self) -> anyhow::Result<()> {
        let mut command = Command::new("mariadb-install-db");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args(SMALL_SERVER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(self.dir.join("install.log")).context("creating the install log")?);
        if runs_as_root(&self.dir) {
            command.arg("--user=root");
        }
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .context("running mariadb-install-db")?
            .context("starting mariadb-install-db (Debian's `mariadb-server` package)")?;
        if !status.success() {
            let log = std::fs::read_to_string(self.dir.join("install.log")).unwrap_or_default();
            bail!("mariadb-install-db failed ({status}):\n{log}");
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.kill();
        if std::fs::remove_dir_all(&self.dir).is_err() {
            eprintln!("note: could not remove {}", self.dir.display());
        }
    }
}

/// Options that keep the server small and quick to start: these tests hold a few rows.
const SMALL_SERVER: &[&str] = &[
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--performance-schema=OFF",
];

/// `mariadbd` refuses to run as root without `--user=root`; the owner of a directory we just made is who we are.
fn runs_as_root(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|meta| meta.uid() == 0)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}
