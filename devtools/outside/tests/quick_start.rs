//! The quick start, from outside the workspace: a signed-out `/me` is sent to sign in, and `/login` to the
//! provider.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use signin_auth::fake::FakeProvider;
use signin_login::{Claims, LoginSettings, SessionSettings, Sessions};
use tower::ServiceExt as _;

#[tokio::test]
async fn a_signed_out_visitor_is_sent_to_sign_in_and_on_to_the_provider() {
    let login = LoginSettings { cookie_keys: vec![signin_login::generate_cookie_key().into()], ..Default::default() };
    let sessions = Sessions::new("https://notes.example.com".parse().expect("a URL"), SessionSettings::default(), login)
        .expect("usable settings");
    let provider = Arc::new(FakeProvider::new("oidc", "https://idp.example", "Example", Claims::new("", "ada")));
    let app = outside_service::app(sessions, provider, tower_sessions::MemoryStore::default()).expect("a login");

    let me = app.clone().oneshot(Request::get("/me").body(Body::empty()).expect("a request")).await.expect("answered");
    assert_eq!(me.status(), StatusCode::SEE_OTHER);
    assert_eq!(me.headers()[header::LOCATION], "/login?next=%2Fme");

    let login = app.oneshot(Request::get("/login?next=%2Fme").body(Body::empty()).expect("a request"));
    let login = login.await.expect("answered");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let location = login.headers()[header::LOCATION].to_str().expect("ASCII");
    assert!(location.starts_with("https://idp.example/authorize?"), "{location}");
}
