//! Browser tests' driver: starts Debian's `chromedriver` and opens headless Chromium sessions on it, driven with
//! [`fantoccini`] (a well-kept W3C WebDriver client). What this module adds is what fantoccini leaves to its user:
//! the driver process, Chromium's quiet command line, and closing a browser that a failed test left open.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
pub use fantoccini::{Client, Locator, elements::Element};
use serde_json::{Value, json};

/// Where Debian's `chromium-driver` package puts the driver.
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// A running `chromedriver`, killed when dropped (after closing any browser a failed test left open).
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    url: String,
    open: OpenSessions,
}

/// The ids of the sessions opened (closed ones included: closing twice is harmless).
type OpenSessions = Arc<Mutex<Vec<String>>>;

impl ChromeDriver {
    /// Starts `chromedriver` (`SIGNIN_CHROMEDRIVER`, else `/usr/bin/chromedriver`) on a free local port and waits
    /// until it answers. Fails with a clear message when the driver is not installed.
    pub async fn start() -> anyhow::Result<Self> {
        let path =
            std::env::var_os("SIGNIN_CHROMEDRIVER").map_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER), PathBuf::from);
        if !path.exists() {
            bail!(
                "{} is missing: the browser test needs Debian's `chromium` and `chromium-driver` packages \
                 (scripts/test installs them)",
                path.display()
            );
        }
        let port = free_port()?;
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("http client")?;
        let driver = Self { child, port, url: format!("http://127.0.0.1:{port}"), open: OpenSessions::default() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == Value::Bool(true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a browser: a new WebDriver session. It closes when [`Client::close`] is called, when the last handle
    /// to it is dropped, or at the latest when the driver is dropped.
    pub async fn open(&self, options: &BrowserOptions) -> anyhow::Result<Client> {
        let mut capabilities = fantoccini::wd::Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("pageLoadStrategy".into(), json!("normal"));
        capabilities.insert("goog:chromeOptions".into(), json!({ "binary": options.binary, "args": options.args() }));
        // The driver is on loopback: plain HTTP, no TLS stack.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .context("opening a Chromium session")?;
        if let Some(id) = client.session_id().await.context("the new session's id")? {
            lock(&self.open).push(id);
        }
        Ok(client)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // A test that failed half-way may leave its browser open (its client's own clean-up needs the runtime, which
        // a panicking test is tearing down); killing only the driver would orphan Chromium. Drop cannot await, so
        // these last requests are written by hand over a blocking socket; a session closed already answers 404.
        for id in lock(&self.open).drain(..) {
            let _ = delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start Chromium.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The browser binary (`SIGNIN_CHROMIUM`, else `/usr/bin/chromium`).
    pub binary: PathBuf,
    /// The profile directory: cookies and history live here, so a browser opened again on it is the same browser.
    pub user_data_dir: PathBuf,
    /// Window size in CSS pixels.
    pub window: (u32, u32),
    /// Whether to run without a display (always, in tests).
    pub headless: bool,
}

impl BrowserOptions {
    /// A headless 1280×900 browser with its profile in `user_data_dir`.
    pub fn headless(user_data_dir: &Path) -> Self {
        let binary = std::env::var_os("SIGNIN_CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
        Self { binary, user_data_dir: user_data_dir.to_owned(), window: (1280, 900), headless: true }
    }

    /// The command line: quiet (no background networking, updates, sync or first-run pages, so the only requests
    /// are the ones the pages make), sandbox off (containers run as root), a profile of its own.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--password-store=basic",
            "--use-mock-keychain",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        if self.headless {
            args.push("--headless".to_owned());
        }
        args.push(format!("--user-data-dir={}", self.user_data_dir.display()));
        args.push(format!("--window-size={},{}", self.window.0, self.window.1));
        args
    }
}

fn lock(open: &OpenSessions) -> std::sync::MutexGuard<'_, Vec<String>> {
    open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `DELETE /session/{id}` without a runtime, for `Drop`.
fn delete_session_blocking(port: u16, id: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map(drop)
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}
