//! The login library from the outside: another service sharing the app's sessions, `/api/me`, and what an
//! anonymous `/login` costs the server (nothing).

use std::sync::Arc;

use reqwest::{StatusCode, header};
use signin_testkit::TestDb;

use crate::helpers::{Browser, TestApp, csrf_from, location, spawn_notes_api};

async fn json(response: reqwest::Response) -> (StatusCode, String, serde_json::Value) {
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, response.json().await.expect("a JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn another_service_on_the_library_shares_the_apps_sessions() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    let api = spawn_notes_api(&db.url(), None).await;
    let browser = Browser::new();

    let (status, content_type, body) = json(browser.get(&format!("{api}/notes")).await).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::UNAUTHORIZED, "application/problem+json"));
    assert_eq!(body["status"], 401);

    // Signed in through the app: the same cookie works at the API (cookies are not separated by port).
    let callback = browser.sign_in(&app, "nina").await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let (status, _, body) = json(browser.get(&format!("{api}/notes")).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["owner"], "nina@example.com");

    // Signed out in the app: the API refuses the same cookie.
    let old_cookie = browser.session_cookie(&app.base).expect("session cookie");
    let html = browser.get(&app.url("/")).await.text().await.expect("profile");
    let logout = browser.post_form(&app.url("/logout"), &[("csrf", &csrf_from(&html))]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let replay = Browser::with_session_cookie(&api, &old_cookie);
    let (status, _, _) = json(replay.get(&format!("{api}/notes")).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a sign-out in the app ends the session at the API too");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_me_is_the_signed_in_user_as_json() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    let browser = Browser::new();

    let (status, content_type, body) = json(browser.get(&app.url("/api/me")).await).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::UNAUTHORIZED, "application/problem+json"));
    assert_eq!(body["title"], "Unauthorized");

    browser.sign_in(&app, "zoe").await;
    let (status, content_type, me) = json(browser.get(&app.url("/api/me")).await).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"), "{me}");
    assert!(me["id"].as_u64().is_some_and(|id| id > 0), "{me}");
    assert_eq!(me["issuer"], crate::helpers::issuer());
    assert_eq!(me["email"], "zoe@example.com");
    assert_eq!(me["name"], "Zoe Example");
    assert!(me["picture"].as_str().is_some_and(|p| p.starts_with("http")), "{me}");
    assert_eq!(me.as_object().map(|o| o.len()), Some(5), "id, issuer, email, name, picture: {me}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_anonymous_logins_write_no_row() {
    const LOGINS: usize = 10_000;
    const CLIENTS: usize = 16;
    let db = TestDb::create().await.expect("test database");
    let app = Arc::new(TestApp::spawn(&db).await);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (app, http) = (app.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut redirected = 0;
            for i in (client..LOGINS).step_by(CLIENTS) {
                let url = app.url(&format!("/login?next=/page/{i}/{}", "x".repeat(1000)));
                let response = http.get(&url).send().await.expect("GET /login");
                redirected += usize::from(response.status() == StatusCode::SEE_OTHER);
            }
            redirected
        }));
    }
    let mut redirected = 0;
    for task in tasks {
        redirected += task.await.expect("joined");
    }

    assert_eq!(redirected, LOGINS, "every /login goes to the provider");
    assert_eq!(app.session_count().await, 0, "and not one of them wrote a session row");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_started_in_two_tabs_both_finish() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    let browser = Browser::new();

    // Two tabs start a sign-in each before either comes back from the provider.
    let first = browser.through_provider(&app.url("/login?next=/first"), "tabby").await;
    let second = browser.through_provider(&app.url("/login?next=/second"), "tabby").await;
    assert_ne!(first, second);

    // The earlier tab finishes last: each finds its own attempt.
    let response = browser.get(&second).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), app.url("/second"));
    let response = browser.get(&first).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the first tab's sign-in was not broken by the second");
    assert_eq!(location(&response), app.url("/first"));
    let html = browser.get(&app.url("/")).await.text().await.expect("profile");
    assert!(html.contains("tabby@example.com"), "{html}");
    assert_eq!(app.session_count().await, 1, "the second sign-in replaced the first one's session");
}
