//! Outages: the database stops (a private MariaDB, so the shared one is never touched) or the provider hangs or
//! fails. Pages answer 503/504/502 within a bounded time, readiness says so, and everything recovers by itself.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, Fault, HostileIdp, Scenario};
use signin_testkit::{PrivateMariaDb, TestDb};

use crate::helpers::{Browser, LOGIN_BUTTON, RegisteredClient, TestApp, location};

/// The longest a page may take to answer while the database is down (connect timeout 1 s in these tests).
const OUTAGE_BOUND: Duration = Duration::from_secs(5);
/// The longest the app may take to notice that the database is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// The longest a callback may take while the provider hangs (`oidc.http_timeout` = 1 s in these tests).
const PROVIDER_BOUND: Duration = Duration::from_secs(3);

fn assert_plain_page(html: &str, words: &str) {
    assert!(html.contains(words), "expected {words:?} in {html}");
    for internal in ["sqlx", "mysql", "diesel", "Connection refused", "panicked", "127.0.0.1:"] {
        assert!(!html.contains(internal), "the page shows internals ({internal}): {html}");
    }
}

async fn get_timed(browser: &Browser, url: &str) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let response = browser.get(url).await;
    let status = response.status();
    let body = response.text().await.expect("body");
    (status, body, started.elapsed())
}

/// Polls `GET /` until the profile shows `email` again; returns how long that took.
async fn wait_for_profile(browser: &Browser, app: &TestApp, email: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, html, _) = get_timed(browser, &app.url("/")).await;
        if status == StatusCode::OK && html.contains(email) {
            return started.elapsed();
        }
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::OK,
            "while recovering, got {status}: {html}"
        );
        assert!(started.elapsed() < RECOVERY_BOUND, "no recovery within {RECOVERY_BOUND:?}: {status} {html}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// During an outage: the signed-in page is a plain 503 in bounded time, readiness is 503, liveness 200.
///
/// The signed-in session is cached: it may still be served until the change feed has been unreadable for the
/// coherence bound (1 s), never longer. Then every request goes to the store, which is down: 503.
async fn assert_outage_is_reported(browser: &Browser, app: &TestApp, what: &str) {
    let outage = Instant::now();
    let (status, html) = loop {
        let (status, html, took) = get_timed(browser, &app.url("/")).await;
        assert!(took < OUTAGE_BOUND, "{what}: GET / took {took:?}");
        if status != StatusCode::OK {
            break (status, html);
        }
        assert!(html.contains("olivia@example.com"), "{what}: a cached page is the person's own: {html}");
        assert!(outage.elapsed() < OUTAGE_BOUND, "{what}: the cached session was still served after {OUTAGE_BOUND:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {html}");
    assert_plain_page(&html, "temporarily unavailable");
    eprintln!("{what}: GET / answered 503 {:?} into the outage", outage.elapsed());

    // Starting a sign-in needs no database (the attempt lives in an encrypted cookie): it still goes to the
    // provider, and promptly.
    let (status, _, took) = get_timed(&Browser::new(), &app.url("/login")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{what}: /login");
    assert!(took < OUTAGE_BOUND, "{what}: /login took {took:?}");

    let started = Instant::now();
    let ready = browser.get(&app.url("/health/ready")).await;
    let took = started.elapsed();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}: readiness");
    let report: serde_json::Value = ready.json().await.expect("readiness JSON");
    assert_eq!(report["ready"], false, "{report}");
    assert!(took < OUTAGE_BOUND, "{what}: readiness took {took:?}");
    eprintln!("{what}: /health/ready answered 503 in {took:?}");

    assert_eq!(browser.get(&app.url("/health/live")).await.status(), StatusCode::OK, "{what}: liveness");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_or_crashed_database_gives_a_quick_503_and_the_app_recovers_without_a_restart() {
    // Arrange: a MariaDB of this test's own, the app on it, and someone signed in.
    let started = Instant::now();
    let mut mariadb = PrivateMariaDb::start().await.expect("private MariaDB");
    eprintln!("the private MariaDB was installed and started in {:?}", started.elapsed());
    let db = TestDb::create_on(&mariadb.url()).await.expect("test database on the private server");
    let app = TestApp::spawn_tweaked(&db.url(), |s| s.database.connect_timeout = Duration::from_secs(1)).await;
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&app, "olivia").await.status(), StatusCode::SEE_OTHER);
    let cookie = browser.session_cookie(&app.base).expect("session cookie");
    assert!(browser.get(&app.url("/")).await.text().await.expect("profile").contains("olivia@example.com"));

    // A clean stop, then a crash: both are reported plainly and recovered from with the same cookie.
    for (what, crash) in [("stopped", false), ("killed", true)] {
        if crash {
            mariadb.kill();
        } else {
            mariadb.stop().await.expect("stop MariaDB");
        }
        assert_outage_is_reported(&browser, &app, what).await;

        mariadb.restart().await.expect("start MariaDB again");
        let recovered = wait_for_profile(&browser, &app, "olivia@example.com").await;
        eprintln!("{what}: the profile was back {recovered:?} after MariaDB accepted connections again");
        assert_eq!(browser.session_cookie(&app.base).as_deref(), Some(cookie.as_str()), "the same session");
        let ready = browser.get(&app.url("/health/ready")).await;
        assert_eq!(ready.status(), StatusCode::OK, "{what}: ready again");
        assert_eq!(ready.json::<serde_json::Value>().await.expect("JSON")["ready"], true);
    }

    // Both pools work again: a new sign-in writes its user and session rows.
    let other = Browser::new();
    assert_eq!(other.sign_in(&app, "oscar").await.status(), StatusCode::SEE_OTHER);
    assert!(other.get(&app.url("/")).await.text().await.expect("profile").contains("oscar@example.com"));
    assert_eq!(app.user_count().await, 2);
    assert_eq!(app.session_count().await, 2);
}

/// The app, configured for the hostile provider with a 1 s timeout per provider call.
async fn app_on_hostile_provider(db: &TestDb, idp: &HostileIdp) -> TestApp {
    let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    TestApp::try_spawn_with_provider(db, &idp.issuer(), client, |s| s.oidc.http_timeout = Duration::from_secs(1))
        .await
        .expect("app builds against the hostile provider")
}

/// `/login` (its provider check passes: the keys endpoint answers) and the provider's `/authorize`, which sends the
/// browser straight back. Returns the callback URL.
async fn to_callback(browser: &Browser, app: &TestApp, idp: &HostileIdp) -> String {
    let login = browser.get(&app.url("/login")).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "/login with a provider that answers");
    let authorize = location(&login);
    assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer())), "{authorize}");
    let callback = location(&browser.get(&authorize).await);
    assert!(callback.starts_with(&app.url("/login/callback?")), "{callback}");
    callback
}

/// A signed-in browser: keeps its profile while the provider misbehaves.
async fn signed_in(app: &TestApp, idp: &HostileIdp) -> Browser {
    let browser = Browser::new();
    let callback = to_callback(&browser, app, idp).await;
    let response = browser.get(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), app.url("/"));
    browser
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_provider_gives_a_504_within_the_timeout_while_signed_in_people_keep_working() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let app = app_on_hostile_provider(&db, &idp).await;
    let ada = signed_in(&app, &idp).await;

    idp.set_scenario(Scenario::fault(Fault::TokenHangs(Duration::from_secs(30))));
    let late = Browser::new();
    let callback = to_callback(&late, &app, &idp).await;
    let started = Instant::now();
    let hanging = tokio::spawn(async move {
        let response = late.get(&callback).await;
        let status = response.status();
        (status, response.text().await.expect("body"), started.elapsed())
    });
    // While that callback waits on the provider, the signed-in person is served at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, html, took) = get_timed(&ada, &app.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ada@example.com"));
    assert!(took < Duration::from_millis(500), "the profile took {took:?} during a provider hang");

    let (status, html, took) = hanging.await.expect("callback task");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{html}");
    assert_plain_page(&html, "took too long");
    assert!(took < PROVIDER_BOUND, "the callback took {took:?}");
    eprintln!("hanging provider: the callback answered 504 in {took:?}");

    // Nothing was left behind by the failed sign-in; the signed-in person still is.
    assert_eq!(app.user_count().await, 1);
    assert_eq!(app.session_count().await, 1);
    assert!(ada.get(&app.url("/")).await.text().await.expect("profile").contains("ada@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provider_gives_a_502_while_signed_in_people_keep_working() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let app = app_on_hostile_provider(&db, &idp).await;
    let ada = signed_in(&app, &idp).await;

    // The token endpoint answers 503: the provider is down behind its front door.
    idp.set_scenario(Scenario::fault(Fault::TokenServerError));
    let late = Browser::new();
    let callback = to_callback(&late, &app, &idp).await;
    let (status, html, took) = get_timed(&late, &callback).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{html}");
    assert_plain_page(&html, "Sign-in provider");
    assert!(took < PROVIDER_BOUND, "the callback took {took:?}");
    assert!(late.get(&app.url("/")).await.text().await.expect("page").contains(LOGIN_BUTTON));

    let profile = ada.get(&app.url("/")).await;
    assert_eq!(profile.status(), StatusCode::OK);
    assert_eq!(profile.headers().get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    assert!(profile.text().await.expect("profile").contains("ada@example.com"));
    assert_eq!(app.user_count().await, 1);
    assert_eq!(app.session_count().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_provider_gives_a_502_while_signed_in_people_keep_working() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let app = app_on_hostile_provider(&db, &idp).await;
    let ada = signed_in(&app, &idp).await;
    let late = Browser::new();
    let callback = to_callback(&late, &app, &idp).await;
    let issuer = idp.issuer();

    // The provider goes away: nothing listens on its port any more.
    drop(idp);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(std::net::TcpStream::connect(issuer.trim_start_matches("http://")).is_err(), "the provider is down");
    let (status, html, took) = get_timed(&late, &callback).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{html}");
    assert_plain_page(&html, "Sign-in provider");
    assert!(took < PROVIDER_BOUND, "the callback took {took:?}");
    eprintln!("unreachable provider: the callback answered 502 in {took:?}");

    // The failed sign-in made the app check the provider again: /login shows our page instead of sending the next
    // person to a dead provider.
    let (status, html, took) = get_timed(&Browser::new(), &app.url("/login")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{html}");
    assert_plain_page(&html, "cannot be reached");
    assert!(took < PROVIDER_BOUND, "/login took {took:?}");
    assert_eq!(app.session_count().await, 1, "a refused /login leaves no session");

    let (status, html, _) = get_timed(&ada, &app.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ada@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn login_answers_504_within_the_timeout_when_the_provider_hangs_and_redirects_again_once_it_is_back() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    let app = TestApp::try_spawn_with_provider(&db, &idp.issuer(), client, |s| {
        s.oidc.http_timeout = Duration::from_secs(1);
        s.login.provider_check_interval = Duration::from_secs(1);
    })
    .await
    .expect("app builds against the hostile provider");
    let ada = signed_in(&app, &idp).await;

    // The whole provider hangs; once the last good check is older than the interval, /login asks again.
    idp.set_scenario(Scenario::fault(Fault::KeysHang(Duration::from_secs(30))));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, html, took) = get_timed(&Browser::new(), &app.url("/login")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{html}");
    assert_plain_page(&html, "not answering");
    assert!(took < PROVIDER_BOUND, "/login took {took:?}");
    eprintln!("hanging provider: /login answered 504 in {took:?}");
    // Signed-in people are not affected.
    let (status, html, took) = get_timed(&ada, &app.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("ada@example.com"));
    assert!(took < Duration::from_millis(500), "the profile took {took:?}");

    // The provider is back: after the short retry pause, /login sends people there again.
    idp.set_scenario(Scenario::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let login = Browser::new().get(&app.url("/login")).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert!(location(&login).starts_with(&format!("{}/authorize?", idp.issuer())));
}
