//! The person's own sessions: listed across browsers, ended one at a time or all at once.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use signin_login::ActiveSession;

use crate::support::{Options, Site, request};

fn site() -> Site {
    Site::with(Options { directory: true, ..Options::default() })
}

async fn listed(site: &Site, cookie: &str) -> Vec<ActiveSession> {
    let reply = site.get("/mine", Some(cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let list: Option<Vec<ActiveSession>> = serde_json::from_str(&reply.body).expect("JSON");
    list.expect("signed in, with a directory")
}

async fn post(site: &Site, path: &str, cookie: &str, form: &str) -> crate::support::Reply {
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("user-agent", "test")];
    site.send(request(Method::POST, path, Some(cookie), &headers, Body::from(form.to_owned()))).await
}

#[tokio::test]
async fn every_browser_of_the_person_is_listed_and_this_one_is_marked() {
    let site = site();
    let laptop = site.sign_in().await;
    let phone = site.sign_in().await;

    let list = listed(&site, &laptop).await;

    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().filter(|s| s.current).count(), 1, "{list:?}");
    assert!(list.iter().all(|s| !s.signed_in_at.is_empty() && s.last_seen.is_some()), "{list:?}");
    let from_phone = listed(&site, &phone).await;
    assert_ne!(
        list.iter().find(|s| s.current).map(|s| &s.handle),
        from_phone.iter().find(|s| s.current).map(|s| &s.handle),
        "each browser is its own current one"
    );
}

#[tokio::test]
async fn ending_another_session_signs_that_browser_out_only() {
    let site = site();
    let laptop = site.sign_in().await;
    let phone = site.sign_in().await;
    let csrf = site.get("/form", Some(&laptop)).await.body;
    let other = listed(&site, &laptop).await.into_iter().find(|s| !s.current).expect("the phone's session");

    let reply = post(&site, "/sessions/end", &laptop, &format!("csrf={csrf}&session={}", other.handle)).await;

    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(site.get("/maybe", Some(&phone)).await.body, "signed out", "the phone is signed out");
    assert_eq!(site.get("/maybe", Some(&laptop)).await.body, "signed in as ada", "the laptop is not");
    assert_eq!(listed(&site, &laptop).await.len(), 1);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_this_one_included() {
    let site = site();
    let laptop = site.sign_in().await;
    let phone = site.sign_in().await;
    let csrf = site.get("/form", Some(&laptop)).await.body;

    let reply = post(&site, "/sessions/end-all", &laptop, &format!("csrf={csrf}")).await;

    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    for cookie in [&laptop, &phone] {
        assert_eq!(site.get("/maybe", Some(cookie)).await.body, "signed out");
    }
    assert!(site.store.records().await.is_empty(), "nothing left in the store");
}

#[tokio::test]
async fn sessions_are_ended_only_with_the_csrf_token_and_only_the_persons_own() {
    let site = site();
    let laptop = site.sign_in().await;
    let phone = site.sign_in().await;
    let csrf = site.get("/form", Some(&laptop)).await.body;
    let other = listed(&site, &laptop).await.into_iter().find(|s| !s.current).expect("the phone's session");

    let forged = post(&site, "/sessions/end", &laptop, &format!("csrf=forged&session={}", other.handle)).await;
    forged.assert_page(StatusCode::FORBIDDEN, "Request refused");
    let everywhere = post(&site, "/sessions/end-all", &laptop, "csrf=").await;
    everywhere.assert_page(StatusCode::FORBIDDEN, "Request refused");
    let unknown = post(&site, "/sessions/end", &laptop, &format!("csrf={csrf}&session=AAAAAAAAAAAAAAAAAAAAAA")).await;
    unknown.assert_page(StatusCode::BAD_REQUEST, "Bad request");

    assert_eq!(site.get("/maybe", Some(&phone)).await.body, "signed in as ada", "nothing was ended");
}

#[tokio::test]
async fn without_a_directory_nothing_is_listed() {
    let site = Site::new();
    let cookie = site.sign_in().await;
    assert_eq!(site.get("/mine", Some(&cookie)).await.body, "null");
}

#[tokio::test]
async fn signed_in_without_a_directory_the_sessions_extractor_answers_404_not_a_sign_in_loop() {
    let site = Site::new();
    let cookie = site.sign_in().await;
    let app = axum::Router::new()
        .route("/sessions", axum::routing::get(|_: signin_login::MySessions| async { "listed" }))
        .layer(site.sessions.layer(site.store.clone()));
    let request = request(Method::GET, "/sessions", Some(&cookie), &[], Body::empty());

    let response = tower::ServiceExt::oneshot(app, request).await.expect("infallible");

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
