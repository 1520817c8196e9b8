//! Serving on a listening socket the process is handed (systemd's socket activation), and a restart on one socket
//! held by several processes: the new instance takes connections from the same queue while the old one drains,
//! so no client is refused and none goes unanswered.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use signin_testkit::TestDb;

use crate::helpers::{TestApp, cookie_key, issuer, register_client, settings};

/// The `signin` binary, ended when the test is.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_on_the_socket_it_is_handed_instead_of_binding_its_own() {
    let db = TestDb::create().await.expect("test database");
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let client = register_client(&format!("{base}/login/callback")).await;
    // server.host:server.port name a port held here: were the binary to bind its own socket, it would fail.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let log = std::env::temp_dir().join(format!("signin-socket-{}-{}.log", std::process::id(), addr.port()));
    let output = std::fs::File::create(&log).expect("log file");

    // The socket goes as the child's standard input, descriptor 0: LISTEN_FDS_FIRST_FD says so (systemd's own
    // first descriptor is 3, which std cannot hand over without unsafe code; the soak's socket mode does that).
    let child = Command::new(env!("CARGO_BIN_EXE_signin"))
        .arg("serve")
        .stdin(Stdio::from(OwnedFd::from(socket)))
        .stdout(output.try_clone().expect("log file"))
        .stderr(output)
        .env_remove("LISTEN_PID")
        .env_remove("RUST_LOG")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDS_FIRST_FD", "0")
        .env("APP__SERVER__HOST", "127.0.0.1")
        .env("APP__SERVER__PORT", taken_port.to_string())
        .env("APP__SERVER__PUBLIC_URL", &base)
        .env("APP__SERVER__METRICS_ADDRESS", "127.0.0.1:0")
        .env("APP__SERVER__DRAIN", "0s")
        .env("APP__DATABASE__URL", db.url())
        .env("APP__OIDC__ISSUER", issuer())
        .env("APP__OIDC__CLIENT_ID", &client.id)
        .env("APP__OIDC__CLIENT_SECRET", &client.secret)
        .env("APP__LOGIN__COOKIE_KEYS", cookie_key())
        .env("APP__SESSION__SECURE", "false")
        .env("APP__LOG__FILTER", "info")
        .spawn()
        .expect("the binary starts");
    let mut process = Process { child, log };

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(response) = reqwest::get(format!("{base}/health/live")).await {
            break response.status();
        }
        let exited = process.child.try_wait().expect("child status");
        assert!(exited.is_none() && Instant::now() < deadline, "not served on the handed socket: {}", process.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = process.log();
    drop(taken);

    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(log.contains("serving on the socket the parent handed over"), "{log}");
    assert!(!log.contains("LISTEN_FDS=") && !log.contains("ERROR"), "{log}");
    let stopped = Command::new("kill").args(["-TERM", &process.child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = process.child.try_wait().expect("child status") {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM: {}", process.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}: {}", process.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_on_a_shared_socket_refuses_nothing_and_answers_everything() {
    let db = TestDb::create().await.expect("test database");
    // One socket, as systemd holds it; each instance gets a copy of it.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let client = register_client(&format!("{base}/login/callback")).await;
    let instance = |drain: Duration| {
        let mut settings = settings(&db.url(), &base, &client);
        settings.server.drain = drain;
        let copy = socket.try_clone().expect("a copy of the socket");
        TestApp::launch_inherited(copy, base.clone(), client.clone(), db.url(), settings)
    };
    let mut old = instance(Duration::from_millis(1000)).await.expect("the old instance");

    // Clients straight at the one address, no balancer: keep-alive connections, reused while the server allows.
    let running = Arc::new(AtomicBool::new(true));
    let (sent, answered, refused, unanswered) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (running, sent, answered, refused, unanswered) =
            (running.clone(), sent.clone(), answered.clone(), refused.clone(), unanswered.clone());
        let url = format!("{base}/health/live");
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
            while running.load(Ordering::SeqCst) {
                sent.fetch_add(1, Ordering::SeqCst);
                match http.get(&url).send().await {
                    Ok(response) if response.status() == StatusCode::OK => answered.fetch_add(1, Ordering::SeqCst),
                    Err(err) if err.is_connect() => refused.fetch_add(1, Ordering::SeqCst),
                    _ => unanswered.fetch_add(1, Ordering::SeqCst),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let new = instance(Duration::ZERO).await.expect("the new instance");
    drop(socket); // only the instances hold it now, as when systemd's copy is the only other one
    let before = answered.load(Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), old.shutdown()).await.expect("the old instance stops");
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client");
    }

    let (sent, answered, refused, unanswered) = (
        sent.load(Ordering::SeqCst),
        answered.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
        unanswered.load(Ordering::SeqCst),
    );
    assert!(answered > before + 100, "the load ran through the restart: {answered} answered, {before} before it");
    assert_eq!((refused, unanswered), (0, 0), "of {sent} sent: {refused} refused, {unanswered} unanswered");
    drop(new);
}
