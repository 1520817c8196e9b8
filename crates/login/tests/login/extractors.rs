//! What the extractors answer for signed-out requests, and without the session layer.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use tower::ServiceExt as _;

use crate::support::{FakeIdp, Options, Reply, Site, request, routes};

/// A 401 problem+json answer.
#[track_caller]
fn assert_unauthorized(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("a JSON body");
    assert_eq!(body["status"], 401);
    assert_eq!(body["title"], "Unauthorized");
    assert!(reply.header("location").is_none());
}

#[tokio::test]
async fn a_signed_out_page_request_is_sent_to_sign_in_and_back() {
    let site = Site::new();
    let reply = site.get("/me", None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=%2Fme");
    let reply = site.get_with("/me?tab=2", None, &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=%2Fme%3Ftab%3D2");
    assert!(reply.set_cookies().is_empty());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_signed_out_json_request_gets_401_problem_json() {
    let site = Site::new();
    assert_unauthorized(&site.get_with("/me", None, &[("accept", "application/json")]).await);
    assert_unauthorized(&site.get_with("/me", None, &[("accept", "application/problem+json")]).await);
}

#[tokio::test]
async fn an_api_route_gets_401_whatever_it_accepts() {
    let site = Site::new();
    assert_unauthorized(&site.get_with("/api/me", None, &[("accept", "text/html")]).await);
    assert_unauthorized(&site.get("/api/me", None).await);
    let session = site.sign_in().await;
    let reply = site.get_with("/api/me", Some(&session), &[("accept", "text/html")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let claims: signin_login::Claims = serde_json::from_str(&reply.body).expect("claims");
    assert_eq!(claims, FakeIdp::claims());
}

#[tokio::test]
async fn maybe_user_sees_none_when_signed_out() {
    let site = Site::new();
    let reply = site.get("/maybe", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "signed out");
    let reply = site.get_with("/maybe", None, &[("accept", "application/json")]).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "signed out"));
    let session = site.sign_in().await;
    let reply = site.get("/maybe", Some(&session)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "signed in as ada"));
}

#[tokio::test]
async fn csrf_token_is_refused_when_signed_out() {
    let site = Site::new();
    let reply = site.get("/form", None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=%2Fform");
    assert_unauthorized(&site.get_with("/form", None, &[("accept", "application/json")]).await);

    let session = site.sign_in().await;
    let reply = site.get("/form", Some(&session)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), 43, "a 32-byte token, base64url: {}", reply.body);
    assert_eq!(site.get("/form", Some(&session)).await.body, reply.body, "one token per session");
}

#[tokio::test]
async fn an_unknown_session_cookie_counts_as_signed_out() {
    let site = Site::new();
    let reply = site.get("/me", Some("__Host-signin_session=AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=%2Fme");
    let reply = site.get("/me", Some("__Host-signin_session=not-an-id")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn without_the_session_layer_the_extractors_and_routes_give_500() {
    let options = Options::default();
    let sessions = options.sessions();
    let login = signin_login::Login::builder(sessions, options.hook)
        .providers(vec![FakeIdp::new()])
        .per_instance()
        .build()
        .expect("login");
    let app = routes(&login);
    for (method, uri) in [
        (Method::GET, "/me"),
        (Method::GET, "/maybe"),
        (Method::GET, "/form"),
        (Method::GET, "/api/me"),
        (Method::GET, "/login"),
        (Method::GET, "/login/callback?code=x&state=y"),
        (Method::POST, "/logout"),
    ] {
        let response =
            app.clone().oneshot(request(method.clone(), uri, None, &[], Body::empty())).await.expect("infallible");
        let page = response.extensions().get::<signin_login::ErrorPage>().cloned();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}");
        assert_eq!(page.expect("an ErrorPage").status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}");
    }
}
