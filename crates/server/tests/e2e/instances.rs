//! Many instances behind a load balancer: a sign-in under way lives in its attempt cookie and the session in MySQL,
//! so any instance can serve any step; each instance caches signed-in sessions, and a sign-out on one ends the
//! session on all within the coherence bound.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use signin_testkit::TestDb;

use crate::helpers::{Browser, LOGIN_BUTTON, TestApp, csrf_from, location};

#[tokio::test(flavor = "multi_thread")]
async fn any_instance_serves_any_step_and_a_sign_out_on_one_ends_the_session_on_all() {
    let db = TestDb::create().await.expect("test database");
    let a = TestApp::spawn(&db).await;
    let b = a.another_instance().await;
    let browser = Browser::new();

    // /login on A; the provider sends the browser back to the public URL; B gets the callback.
    let callback = browser.through_provider(&a.url("/login"), "nina").await;
    let on_b = callback.replacen(&a.base, &b.base, 1);
    assert_ne!(on_b, callback, "the callback is redirected to the other instance");
    let response = browser.get(&on_b).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "B finishes the sign-in A started");
    assert_eq!(location(&response), b.url("/"));

    // Both instances see the signed-in session.
    for app in [&a, &b] {
        let html = browser.get(&app.url("/")).await.text().await.expect("profile");
        assert!(html.contains("nina@example.com"), "signed in on {}", app.base);
    }

    // Sign out on A with the token B's page carries: B, which has the session cached, refuses it too within the
    // coherence bound (1 s; the wait allows for a loaded machine).
    let old_cookie = browser.session_cookie(&a.base).expect("cookie");
    let html = browser.get(&b.url("/")).await.text().await.expect("profile");
    let csrf = csrf_from(&html);
    assert_eq!(browser.post_form(&a.url("/logout"), &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);
    let replay = Browser::with_session_cookie(&b.base, &old_cookie);
    let took = until_signed_out(&replay, &b).await;
    eprintln!("B refused the session {took:?} after the sign-out on A");
    assert_eq!(a.user_count().await, 1);
    assert_eq!(a.session_count().await, 0);
}

/// How long B took to show the login page to `browser`; fails past a few seconds.
async fn until_signed_out(browser: &Browser, b: &TestApp) -> Duration {
    let started = Instant::now();
    loop {
        let html = browser.get(&b.url("/")).await.text().await.expect("page");
        if html.contains(LOGIN_BUTTON) {
            assert!(!html.contains("@example.com"), "{html}");
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "B still serves the ended session: {html}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_cache_off_a_sign_out_is_refused_everywhere_at_once() {
    let db = TestDb::create().await.expect("test database");
    let a = TestApp::spawn(&db).await;
    let b = a.another_instance_tweaked(|s| s.session.cache.enabled = false).await;
    let browser = Browser::new();
    browser.sign_in(&a, "uma").await;
    let cookie = browser.session_cookie(&a.base).expect("cookie");
    let on_b = Browser::with_session_cookie(&b.base, &cookie);
    assert!(on_b.get(&b.url("/")).await.text().await.expect("profile").contains("uma@example.com"));

    let html = browser.get(&a.url("/")).await.text().await.expect("profile");
    assert_eq!(
        browser.post_form(&a.url("/logout"), &[("csrf", &csrf_from(&html))]).await.status(),
        StatusCode::SEE_OTHER
    );

    let html = on_b.get(&b.url("/")).await.text().await.expect("page");
    assert!(html.contains(LOGIN_BUTTON) && !html.contains("uma@example.com"), "B reads the store every time: {html}");
}

/// The handles of the sessions page's "Sign out" forms (the other browsers' sessions).
fn other_sessions(html: &str) -> Vec<String> {
    html.split("name=\"session\" value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_sees_every_browser_and_ends_one_or_all_from_any_instance() {
    let db = TestDb::create().await.expect("test database");
    let a = TestApp::spawn(&db).await;
    let b = a.another_instance().await;
    let (laptop, phone, tablet) = (Browser::new(), Browser::new(), Browser::new());
    for browser in [&laptop, &phone, &tablet] {
        assert_eq!(browser.sign_in(&a, "vera").await.status(), StatusCode::SEE_OTHER);
    }
    let on_b =
        |browser: &Browser| Browser::with_session_cookie(&b.base, &browser.session_cookie(&a.base).expect("cookie"));
    let (laptop_b, phone_b, tablet_b) = (on_b(&laptop), on_b(&phone), on_b(&tablet));
    for browser in [&phone_b, &tablet_b] {
        assert!(browser.get(&b.url("/")).await.text().await.expect("page").contains("vera@example.com"), "cached on B");
    }

    // The laptop, on B, sees three sessions and ends the phone's.
    let page = laptop_b.get(&b.url("/sessions")).await.text().await.expect("sessions page");
    assert_eq!(page.matches("<li class=\"session").count(), 3, "{page}");
    assert_eq!(page.matches("This browser").count(), 1, "{page}");
    let phone_handle = {
        let phone_page = phone.get(&a.url("/sessions")).await.text().await.expect("sessions page");
        let others = other_sessions(&phone_page);
        other_sessions(&page).into_iter().find(|h| !others.contains(h)).expect("the phone's own handle")
    };
    let csrf = csrf_from(&page);
    let ended = laptop_b.post_form(&b.url("/sessions/end"), &[("csrf", &csrf), ("session", &phone_handle)]).await;
    assert_eq!(ended.status(), StatusCode::SEE_OTHER);
    until_signed_out(&phone_b, &b).await; // B had it cached
    let phone_on_a = Browser::with_session_cookie(&a.base, &phone.session_cookie(&a.base).expect("cookie"));
    until_signed_out(&phone_on_a, &a).await;
    assert!(laptop_b.get(&b.url("/")).await.text().await.expect("page").contains("vera@example.com"), "not the laptop");

    // Then everywhere, from A.
    let page = laptop.get(&a.url("/sessions")).await.text().await.expect("sessions page");
    assert_eq!(page.matches("<li class=\"session").count(), 2, "{page}");
    let all = laptop.post_form(&a.url("/sessions/end-all"), &[("csrf", &csrf_from(&page))]).await;
    assert_eq!(all.status(), StatusCode::SEE_OTHER);
    for browser in [&laptop_b, &tablet_b] {
        until_signed_out(browser, &b).await;
    }
    assert_eq!(a.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_ends_every_session_of_a_user() {
    let db = TestDb::create().await.expect("test database");
    let a = TestApp::spawn(&db).await;
    let b = a.another_instance().await;
    let browser = Browser::new();
    browser.sign_in(&a, "wanda").await;
    let on_b = Browser::with_session_cookie(&b.base, &browser.session_cookie(&a.base).expect("cookie"));
    assert!(on_b.get(&b.url("/")).await.text().await.expect("page").contains("wanda@example.com"));

    let settings = crate::helpers::settings(&a.db_url, &a.base, &a.client);
    let ended = signin::revoke_sessions(&settings, "wanda@example.com").await.expect("revoked");

    assert_eq!(ended, 1);
    until_signed_out(&on_b, &b).await;
    until_signed_out(&browser, &a).await;
}
