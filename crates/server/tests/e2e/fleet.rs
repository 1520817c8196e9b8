//! Three instances behind a real nginx (Debian's, started here with the repository's deploy/nginx/proxy.conf):
//! round robin across every step of a sign-in, a sign-out honoured by all, an instance killed under load with
//! nginx retrying on the others, and forwarded headers that cannot move the public URL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use signin_testkit::TestDb;
use tokio::net::TcpListener;

use crate::helpers::{Browser, LOGIN_BUTTON, TestApp, csrf_from, register_client, settings};

/// nginx, running until dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop` signals the master, which stops its workers too (a killed master would leave them running).
        let stopped = Command::new(nginx_binary())
            .arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !stopped.is_ok_and(|status| status.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("nginx is installed (scripts/test installs it)")
}

/// Starts nginx on `port` in front of the instances at `upstreams`, with the repository's proxy settings.
fn start_nginx(port: u16, upstreams: &[std::net::SocketAddr]) -> Nginx {
    let dir = std::env::temp_dir().join(format!("signin-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("nginx dir");
    let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/proxy.conf");
    let servers: String =
        upstreams.iter().map(|addr| format!("    server {addr} max_fails=1 fail_timeout=10s;\n")).collect();
    let user = if nix_root() { "user root;\n" } else { "" };
    let d = dir.display();
    let config = format!(
        "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\ndaemon off;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream signin {{\n{servers}    keepalive 16;\n    keepalive_timeout 5s;\n  }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    add_header X-Upstream $upstream_addr always;\n\
         location / {{\n      include {proxy};\n    }}\n  }}\n}}\n",
        proxy = proxy.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("nginx.conf");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    Nginx { child, dir }
}

fn nix_root() -> bool {
    std::env::var("USER").is_ok_and(|user| user == "root") || std::env::var("HOME").is_ok_and(|home| home == "/root")
}

fn upstream(response: &reqwest::Response) -> String {
    response.headers().get("x-upstream").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_behind_nginx_serve_one_sign_in_and_survive_losing_one() {
    let db = TestDb::create().await.expect("test database");
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let public = format!("http://127.0.0.1:{port}");
    let client = register_client(&format!("{public}/login/callback")).await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // Requests go through nginx; `addr` stays the instance's own, for nginx's upstream list.
        let base = public.clone();
        let mut settings = settings(&db.url(), &public, &client);
        settings.login.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
        instances.push(TestApp::launch(listener, base, client.clone(), db.url(), settings).await.expect("instance"));
    }
    let _nginx = start_nginx(port, &instances.iter().map(|app| app.addr).collect::<Vec<_>>());
    let started = Instant::now();
    while reqwest::get(format!("{public}/health/live")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "nginx did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let front = &instances[0]; // `url()` and the browser helpers of any instance go through nginx

    // One sign-in, its steps on different instances.
    let browser = Browser::new();
    let login = browser.get(&format!("{public}/login")).await;
    let login_upstream = upstream(&login);
    let callback = browser.through_provider(&format!("{public}/login"), "yara").await;
    let back = browser.get(&callback).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "the sign-in finishes");
    let first = browser.get(&format!("{public}/")).await;
    let served: HashSet<_> = [login_upstream, upstream(&back), upstream(&first)].into_iter().collect();
    assert!(served.len() >= 2, "round robin spread the sign-in's steps: {served:?}");
    assert!(first.text().await.expect("page").contains("yara@example.com"));

    // The profile from all three.
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let page = browser.get(&format!("{public}/")).await;
        seen.insert(upstream(&page));
        assert!(page.text().await.expect("page").contains("yara@example.com"));
    }
    assert_eq!(seen.len(), 3, "every instance served the profile: {seen:?}");

    // A client's X-Forwarded-Host moves nothing: the provider is sent to the configured public URL.
    let forged = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let to_provider = forged
        .get(format!("{public}/login"))
        .header("x-forwarded-host", "evil.example")
        .header("host", "evil.example")
        .send()
        .await
        .expect("answered");
    let location = to_provider.headers()["location"].to_str().expect("ascii").to_owned();
    let redirect_uri = reqwest::Url::parse(&location)
        .expect("the provider's URL")
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned());
    assert_eq!(redirect_uri.as_deref(), Some(format!("{public}/login/callback").as_str()));

    // One instance dies under load: nginx retries the page on another, nobody sees a failure.
    let other = Browser::new();
    assert_eq!(other.sign_in(front, "zed").await.status(), StatusCode::SEE_OTHER);
    let load = {
        let cookie = other.session_cookie(&public).expect("cookie");
        let public = public.clone();
        tokio::spawn(async move {
            let reader = Browser::with_session_cookie(&public, &cookie);
            let mut failures = Vec::new();
            for _ in 0..300 {
                let page = reader.get(&format!("{public}/")).await;
                let status = page.status();
                let body = page.text().await.unwrap_or_default();
                if status != StatusCode::OK || !body.contains("zed@example.com") {
                    failures.push(status);
                }
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    instances[2].kill();
    let failures = load.await.expect("load");
    assert!(failures.is_empty(), "pages failed while an instance died: {failures:?}");

    // A sign-out through nginx ends the session on the instances left.
    let old = browser.session_cookie(&public).expect("cookie");
    let html = browser.get(&format!("{public}/")).await.text().await.expect("page");
    let out = browser.post_form(&format!("{public}/logout"), &[("csrf", &csrf_from(&html))]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let replay = Browser::with_session_cookie(&public, &old);
    for _ in 0..4 {
        let started = Instant::now();
        loop {
            let page = replay.get(&format!("{public}/")).await.text().await.expect("page");
            if page.contains(LOGIN_BUTTON) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "an instance still serves the ended session");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
