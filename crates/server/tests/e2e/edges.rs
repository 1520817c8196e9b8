//! The server's edges: slow and idle connections, the connection cap, the shutdown deadline and the graceful drain.
//! Bounds asserted here are generous (several times the configured value); the soak (`scripts/soak`) prints the
//! real figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use signin_testkit::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;
use crate::helpers::series;

/// Waits until the server closes `stream` (a read returns end-of-file or an error), up to `within`; returns how
/// long it took, or `None` if the connection was still open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let deadline = started + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // a response (e.g. 408); keep reading until it closes
            Err(_) => return None,
        }
    }
}

async fn app_with(db: &TestDb, tweak: impl FnOnce(&mut signin::Settings)) -> TestApp {
    TestApp::spawn_tweaked(&db.url(), tweak).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_header_is_closed_after_the_header_read_timeout() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| s.server.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("half a header");

    let closed = closed_within(&mut stream, Duration::from_secs(10)).await;

    assert!(closed.is_some(), "a stalled header keeps its connection open");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_sent_a_byte_at_a_time_is_closed_after_the_header_read_timeout() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| s.server.header_read_timeout = Duration::from_millis(600)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

    let mut cut_off = false;
    for byte in header {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            cut_off = true;
            break;
        }
    }

    assert!(cut_off, "a header trickled over {} ms was read to the end", header.len() * 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| s.server.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.expect("request");
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "the request is served");

    let closed = closed_within(&mut stream, Duration::from_secs(10)).await;

    assert!(closed.is_some(), "an idle keep-alive connection stays open");
}

/// A connection to `addr` from the loopback address `from` (any of 127.0.0.0/8 works on Linux).
async fn connect_from(from: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{from}:0").parse().expect("address")).expect("bind the client's address");
    socket.connect(addr).await.expect("connect")
}

/// Sends a GET for `path` on a kept-alive connection and returns the status line's code, or `None` when the
/// connection was closed instead.
async fn get_on(stream: &mut TcpStream, path: &str) -> Option<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.ok()?.ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `raw` on a new connection and reads until the server closes it (10 s at most).
async fn exchange(addr: std::net::SocketAddr, raw: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("request");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection stayed open: {}", String::from_utf8_lossy(&answer));
    String::from_utf8_lossy(&answer).into_owned()
}

/// How many of `streams` the server has closed, each given `within` to show it.
async fn count_closed(streams: &mut [TcpStream], within: Duration) -> usize {
    let mut closed = 0;
    for stream in streams {
        if closed_within(stream, within).await.is_some() {
            closed += 1;
        }
    }
    closed
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_holds_at_most_its_share_of_the_connections_and_others_are_still_served() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.server.max_connections = 4;
        s.server.max_connections_per_client = 2;
        s.server.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    // A flood of idle connections from one address: more than all the slots.
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(connect_from("127.0.0.1", app.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let closed = count_closed(&mut flood, Duration::from_millis(300)).await;
    let mut other = connect_from("127.0.0.2", app.addr).await;
    let served_elsewhere = get_on(&mut other, "/health/live").await;
    let mut again = connect_from("127.0.0.1", app.addr).await;
    let served_again = get_on(&mut again, "/health/live").await;

    assert_eq!(closed, 8, "of 10 idle connections from one address, all but its share of 2 are closed");
    assert_eq!(served_elsewhere, Some(200), "a client from another address is served");
    assert_eq!(served_again, Some(200), "a new connection of the flooding address replaces one of its idle ones");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_slot_is_taken_the_longest_idle_connection_makes_room() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.server.max_connections = 3;
        s.server.max_connections_per_client = 3;
        s.server.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.1", app.addr).await;
        assert_eq!(get_on(&mut stream, "/health/live").await, Some(200));
        held.push(stream); // kept alive, idle
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut newcomer = connect_from("127.0.0.2", app.addr).await;
    let served = get_on(&mut newcomer, "/health/live").await;

    assert_eq!(served, Some(200), "a new connection is served rather than refused");
    assert!(closed_within(&mut held[0], Duration::from_secs(2)).await.is_some(), "the longest idle one is closed");
    for stream in &mut held[1..] {
        assert_eq!(get_on(stream, "/health/live").await, Some(200), "the others stay");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_is_not_held_to_the_per_client_share() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.server.max_connections = 8;
        s.server.max_connections_per_client = 2;
        s.server.header_read_timeout = Duration::from_secs(60);
        s.login.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    })
    .await;
    let mut proxy = Vec::new();
    for _ in 0..5 {
        proxy.push(connect_from("127.0.0.1", app.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut served = Vec::new();
    for stream in &mut proxy {
        served.push(get_on(stream, "/health/live").await);
    }

    assert_eq!(served, vec![Some(200); 5], "every connection of the proxy is kept and served");
}

/// Starts a POST whose body never arrives in full: the request stays in progress on the connection.
async fn busy_connection(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /logout HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 1000\r\n\r\ncsrf=",
        )
        .await
        .expect("a head and a little of the body");
    stream
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_connection_is_busy_new_ones_are_closed_and_served_again_once_below_the_cap() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.server.max_connections = 3;
        s.server.header_read_timeout = Duration::from_secs(60);
        s.server.body_read_timeout = Duration::from_secs(20);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(busy_connection(app.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut fourth = connect_from("127.0.0.2", app.addr).await;
    let answer = get_on(&mut fourth, "/health/live").await;
    assert_eq!(answer, None, "a connection beyond a cap of busy ones was served");

    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = loop {
        let mut stream = connect_from("127.0.0.2", app.addr).await;
        match get_on(&mut stream, "/health/live").await {
            Some(status) => break status,
            None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            None => panic!("never served again below the cap"),
        }
    };
    assert_eq!(served, 200);
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_after_the_body_read_timeout_and_summed_up_in_the_log() {
    let (logs, _guard) = signin_testkit::logs::Logs::capture("info");
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| s.server.body_read_timeout = Duration::from_millis(500)).await;
    logs.take();
    let started = Instant::now();

    let answer = exchange(
        app.addr,
        "POST /logout HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 1000\r\n\r\ncsrf=abc",
    )
    .await;
    let took = started.elapsed();

    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("Request timeout"), "the error page: {answer}");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(5), "answered after {took:?}");
    let lines = logs.take();
    assert!(!lines.iter().any(|line| line.contains("ERROR")), "{lines:#?}");
    assert!(lines.iter().any(|line| line.contains("server.body_read_timeout, answered 408")), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_1_1_request_needs_exactly_one_host_header() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |_| {}).await;

    let none = exchange(app.addr, "GET /health/live HTTP/1.1\r\n\r\n").await;
    let two = exchange(app.addr, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: example.com\r\n\r\n").await;
    let empty = exchange(app.addr, "GET /health/live HTTP/1.1\r\nHost:\r\n\r\n").await;
    let one = exchange(app.addr, "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    let old = exchange(app.addr, "GET /health/live HTTP/1.0\r\n\r\n").await;

    for answer in [&none, &two, &empty] {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("Bad request"), "the error page: {answer}");
    }
    assert!(one.starts_with("HTTP/1.1 200"), "{one}");
    assert!(old.starts_with("HTTP/1.0 200") || old.starts_with("HTTP/1.1 200"), "HTTP/1.0 needs no Host: {old}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_connection_does_not_keep_the_server_past_the_shutdown_deadline() {
    let db = TestDb::create().await.expect("test database");
    let mut app = app_with(&db, |s| {
        s.server.header_read_timeout = Duration::from_secs(120);
        s.server.shutdown_timeout = Duration::from_millis(500);
    })
    .await;
    let mut stalled = TcpStream::connect(app.addr).await.expect("connect");
    stalled.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("half a header");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    app.shutdown().await;

    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_under_load_answers_every_request_it_read_and_readiness_fails_first() {
    let db = TestDb::create().await.expect("test database");
    let mut app = app_with(&db, |s| s.server.drain = Duration::from_millis(2000)).await;
    let ready_url = app.url("/health/ready");
    // A load balancer: it polls readiness and takes the instance out of rotation when it fails. Until then it
    // sends the clients' requests on.
    let in_rotation = Arc::new(AtomicBool::new(true));
    let balancer = {
        let (in_rotation, ready_url) = (in_rotation.clone(), ready_url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                match http.get(&ready_url).send().await {
                    Ok(response) if response.status() == StatusCode::OK => {}
                    _ => {
                        in_rotation.store(false, Ordering::SeqCst);
                        return;
                    }
                }
                // Slower than the end of shutdown would be without a drain.
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (in_rotation, sent, answered, unanswered) =
            (in_rotation.clone(), sent.clone(), answered.clone(), unanswered.clone());
        let url = app.url("/health/live");
        clients.push(tokio::spawn(async move {
            // Keep-alive clients: one connection each, reused.
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
            while in_rotation.load(Ordering::SeqCst) {
                sent.fetch_add(1, Ordering::SeqCst);
                match http.get(&url).send().await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        unanswered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(in_rotation.load(Ordering::SeqCst), "ready before the shutdown");

    let shutdown_began = Instant::now();
    let stopping = tokio::spawn(async move { app.shutdown().await });
    tokio::time::timeout(Duration::from_secs(30), balancer).await.expect("readiness fails").expect("joined");
    let noticed = shutdown_began.elapsed();
    for client in clients {
        client.await.expect("client");
    }
    tokio::time::timeout(Duration::from_secs(30), stopping).await.expect("stops").expect("joined");

    let (sent, answered, unanswered) =
        (sent.load(Ordering::SeqCst), answered.load(Ordering::SeqCst), unanswered.load(Ordering::SeqCst));
    assert!(noticed < Duration::from_millis(2000), "readiness failed only after {noticed:?}, past the drain");
    assert!(answered > 100, "the load ran: {answered} answered");
    assert_eq!(unanswered, 0, "{unanswered} of {sent} requests were sent and not answered ({answered} answered)");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sign_in_routes_answer_429_with_retry_after_beyond_the_per_client_limit() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.login.rate_limit.burst = 5;
        s.login.rate_limit.per_minute = 6;
    })
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut statuses = Vec::new();
    for n in 0..12 {
        // A forged X-Forwarded-For from an untrusted peer changes nothing.
        let response = http.get(app.url("/login")).header("x-forwarded-for", format!("198.51.100.{n}")).send().await;
        statuses.push(response.expect("answered"));
    }
    let limited: Vec<_> = statuses.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(limited.len() >= 6, "{} of 12 limited", limited.len());
    let retry_after: u64 = limited[0].headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    let page = http.get(app.url("/login/callback?code=x&state=y")).send().await.expect("answered");
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS, "the callback shares the limit");
    assert!(page.text().await.expect("body").contains("Too many requests"), "our page");
    assert_eq!(
        http.get(app.url("/health/live")).send().await.expect("answered").status(),
        StatusCode::OK,
        "only sign-in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| {
        s.login.rate_limit.burst = 3;
        s.login.rate_limit.per_minute = 1;
        s.login.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    })
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let status = |client: &'static str| {
        let (http, url) = (http.clone(), app.url("/login"));
        async move { http.get(url).header("x-forwarded-for", client).send().await.expect("answered").status() }
    };
    for _ in 0..3 {
        assert_ne!(status("198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(status("198.51.100.1").await, StatusCode::TOO_MANY_REQUESTS, "this client is over its limit");
    assert_ne!(status("198.51.100.2").await, StatusCode::TOO_MANY_REQUESTS, "another client behind the proxy is not");
    assert_eq!(
        status("198.51.100.2, 198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the rightmost address is the client: a forged left entry does not escape"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_request_id_is_kept_only_from_a_trusted_proxy() {
    let db = TestDb::create().await.expect("test database");
    let direct = app_with(&db, |_| {}).await;
    let proxied =
        app_with(&db, |s| s.login.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")]).await;
    let id_of = |app: &TestApp, sent: &'static str| {
        let url = app.url("/health/live");
        async move {
            let response = reqwest::Client::new().get(url).header("x-request-id", sent).send().await.expect("answered");
            response.headers()["x-request-id"].to_str().expect("ascii").to_owned()
        }
    };

    assert_ne!(id_of(&direct, "from-a-client").await, "from-a-client", "a client cannot choose its id");
    assert_eq!(id_of(&proxied, "from-the-proxy").await, "from-the-proxy", "the trusted proxy's id is kept");
    assert_ne!(id_of(&proxied, "bad id;x").await, "bad id;x", "only plain tokens");
}

/// The value of one series in a Prometheus text page (0 when absent).

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_apart_from_the_site_and_count_sign_ins_by_outcome() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |_| {}).await;
    let metrics = format!("http://{}/metrics", app.metrics.expect("metrics are served"));
    let scrape = || async { reqwest::get(&metrics).await.expect("scraped").text().await.expect("text") };
    let before = scrape().await;

    crate::helpers::Browser::new().sign_in(&app, "xena").await;
    let refused = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let refused = refused.get(app.url("/login/callback?code=c&state=s")).send().await.expect("answered");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    // Routes no hand-kept list names: a provider's back-channel logout, and a page that does not exist.
    let backchannel = reqwest::Client::new().post(app.url("/login/oidc/backchannel-logout"));
    let backchannel = backchannel.form(&[("logout_token", "not-a-jwt")]).send().await.expect("answered");
    assert_eq!(backchannel.status(), StatusCode::BAD_REQUEST);
    assert_eq!(reqwest::get(app.url("/nowhere")).await.expect("answered").status(), StatusCode::NOT_FOUND);
    let after = scrape().await;

    let moved = |series_name: &str| series(&after, series_name) - series(&before, series_name);
    assert!(moved("signin_sign_ins_total{outcome=\"success\"}") >= 1.0, "{after}");
    assert!(moved("signin_sign_ins_total{outcome=\"no_attempt\"}") >= 1.0, "{after}");
    assert!(
        moved("signin_http_request_duration_seconds_count{route=\"/login/callback\",status=\"3xx\"}") >= 1.0,
        "{after}"
    );
    let route = |route: &str| format!("signin_http_request_duration_seconds_count{{route=\"{route}\",status=\"4xx\"}}");
    assert!(moved(&route("/login/oidc/backchannel-logout")) >= 1.0, "the router's own route: {after}");
    assert!(moved(&route("other")) >= 1.0, "no route matched: {after}");
    assert!(after.contains("signin_provider_request_seconds_bucket"), "provider calls are timed: {after}");
    let site = reqwest::get(app.url("/metrics")).await.expect("answered");
    assert_eq!(site.status(), StatusCode::NOT_FOUND, "not on the site's own address");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_token_is_required_when_configured() {
    let db = TestDb::create().await.expect("test database");
    let app = app_with(&db, |s| s.server.metrics_token = Some("s3cret-token".to_owned().into())).await;
    let metrics = format!("http://{}/metrics", app.metrics.expect("metrics are served"));
    let http = reqwest::Client::new();

    assert_eq!(http.get(&metrics).send().await.expect("answered").status(), StatusCode::UNAUTHORIZED);
    let wrong = http.get(&metrics).bearer_auth("guess").send().await.expect("answered");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = http.get(&metrics).bearer_auth("s3cret-token").send().await.expect("answered");
    assert_eq!(right.status(), StatusCode::OK);
}
