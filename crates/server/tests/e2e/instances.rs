//! Many instances behind a load balancer: everything a sign-in needs lives in MySQL, so any instance can serve any
//! step, and a sign-out on one ends the session on all.

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

    // Sign out on A with the token B's page carries: B no longer knows the session either.
    let old_cookie = browser.session_cookie(&a.base).expect("cookie");
    let html = browser.get(&b.url("/")).await.text().await.expect("profile");
    let csrf = csrf_from(&html);
    assert_eq!(browser.post_form(&a.url("/logout"), &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);
    let replay = Browser::with_session_cookie(&b.base, &old_cookie);
    let html = replay.get(&b.url("/")).await.text().await.expect("page");
    assert!(html.contains(LOGIN_BUTTON) && !html.contains("nina@example.com"));
    assert_eq!(a.user_count().await, 1);
    assert_eq!(a.session_count().await, 0);
}
