//! Many people at once: concurrent sign-ins of the same accounts, and requests in flight while a session ends.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use signin::Settings;
use signin_testkit::TestDb;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::helpers::{Browser, LOGIN_BUTTON, TestApp, csrf_from, location};

const LOGINS: usize = 200;
const ACCOUNTS: usize = 50;
/// Sign-ins on the development provider's pages at one time (its in-memory store holds 1000 objects).
const PROVIDER_WALKS: usize = 100;

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_logins_of_fifty_accounts_leave_fifty_users_and_two_hundred_sessions() {
    // 16 + 16 connections, well under MariaDB's default 151; the test runs alone (see .config/nextest.toml).
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn_tweaked(&db.url(), |s| {
        s.database.pool_size = 16;
        s.session.pool_size = 16;
    })
    .await;
    let started = Instant::now();

    // All 200 start together: /login, the provider's login and consent pages, then our callback (50 accounts
    // upserted four times each, 200 sessions cycled). The development provider keeps at most 1000 objects in
    // memory (about 8 per sign-in), so at most 100 walk its pages at a time and each callback follows its walk at
    // once; codes held back for one simultaneous burst would be evicted before they are redeemed. Our side is
    // not limited: the callbacks pile up as fast as the provider lets them through.
    let at_provider = Arc::new(Semaphore::new(PROVIDER_WALKS));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let mut logins = JoinSet::new();
    for i in 0..LOGINS {
        let login = format!("crowd{:02}", i % ACCOUNTS);
        let login_url = app.url("/login");
        let (in_flight, most_in_flight) = (in_flight.clone(), most_in_flight.clone());
        let at_provider = at_provider.clone();
        logins.spawn(async move {
            let browser = Browser::new();
            let walk = at_provider.acquire().await.expect("semaphore");
            let callback = browser.through_provider(&login_url, &login).await;
            drop(walk);
            most_in_flight.fetch_max(in_flight.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let response = browser.get(&callback).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let (status, to) = (response.status(), response.status().is_redirection().then(|| location(&response)));
            let body = response.text().await.unwrap_or_default();
            (browser, login, status, to, body)
        });
    }
    let finished: Vec<_> = logins.join_all().await;
    let logins_took = started.elapsed();

    let mut profiles = JoinSet::new();
    for (browser, login, status, to, body) in finished {
        assert_eq!(status, StatusCode::SEE_OTHER, "{login}'s callback: {body}");
        assert_eq!(to.as_deref(), Some(app.url("/").as_str()), "{login}'s callback");
        let home = app.url("/");
        let base = app.base.clone();
        profiles.spawn(async move {
            let html = browser.get(&home).await.text().await.expect("profile");
            (login, html, browser.session_cookie(&base))
        });
    }
    let mut cookies = HashSet::new();
    for (login, html, cookie) in profiles.join_all().await {
        assert!(html.contains(&format!("{login}@example.com")), "{login} sees someone else's page:\n{html}");
        assert!(cookies.insert(cookie.expect("a session cookie")), "two browsers share a session");
    }
    eprintln!(
        "{LOGINS} logins of {ACCOUNTS} accounts: all done in {logins_took:?}, at most {} callbacks in flight at \
         once; profiles checked after {:?}",
        most_in_flight.load(Ordering::SeqCst),
        started.elapsed()
    );

    assert_eq!(app.user_count().await, ACCOUNTS as i64);
    assert_eq!(app.session_count().await, LOGINS as i64);
    let logins: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT subject) FROM users")
        .fetch_one(&mut app.db().await)
        .await
        .expect("subjects");
    assert_eq!(logins, ACCOUNTS as i64);
}

/// Every `GET /` writes the session (touch interval 0), which is what could write a deleted session back.
fn touch_every_request(s: &mut Settings) {
    s.session.touch_interval = Duration::ZERO;
    s.session.pool_size = 8;
}

const IN_FLIGHT: usize = 50;
const ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_during_logout_never_bring_the_session_back_even_across_a_restart() {
    let db = TestDb::create().await.expect("test database");
    let mut app = TestApp::spawn_tweaked(&db.url(), touch_every_request).await;

    for round in 0..ROUNDS {
        let login = format!("racer{round}");
        let email = format!("{login}@example.com");
        let browser = Browser::new();
        assert_eq!(browser.sign_in(&app, &login).await.status(), StatusCode::SEE_OTHER);
        let cookie = browser.session_cookie(&app.base).expect("session cookie");
        if round == 0 {
            // Sessions live in MySQL: a restart keeps them.
            app = app.restart_tweaked(touch_every_request).await;
        }
        let html = browser.get(&app.url("/")).await.text().await.expect("profile");
        assert!(html.contains(&email), "round {round}: signed in");
        let csrf = csrf_from(&html);

        // Half the requests start before the logout, half after; each holds its own copy of the cookie, so none
        // learns of the logout from its cookie jar.
        let mut gets = JoinSet::new();
        let spawn_get = |gets: &mut JoinSet<StatusCode>| {
            let copy = Browser::with_session_cookie(&app.base, &cookie);
            let home = app.url("/");
            gets.spawn(async move { copy.get(&home).await.status() });
        };
        for _ in 0..IN_FLIGHT / 2 {
            spawn_get(&mut gets);
        }
        let logout_url = app.url("/logout");
        let logout = tokio::spawn(async move { browser.post_form(&logout_url, &[("csrf", &csrf)]).await.status() });
        tokio::time::sleep(Duration::from_millis(2)).await;
        for _ in 0..IN_FLIGHT / 2 {
            spawn_get(&mut gets);
        }
        assert_eq!(logout.await.expect("logout task"), StatusCode::SEE_OTHER, "round {round}: logout");
        for status in gets.join_all().await {
            assert_eq!(status, StatusCode::OK, "round {round}: a request in flight");
        }

        assert_eq!(app.session_count().await, 0, "round {round}: a request in flight wrote the session back");
        let html =
            Browser::with_session_cookie(&app.base, &cookie).get(&app.url("/")).await.text().await.expect("page");
        assert!(html.contains(LOGIN_BUTTON) && !html.contains(&email), "round {round}: the old cookie works");
    }
}
