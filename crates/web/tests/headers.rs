//! The protective headers on every kind of response, asserted on the real router (`oneshot`, no network): pages,
//! the profile, static assets, error pages; HSTS only when the site is served over https.
//!
//! The provider and the user store are fakes behind their traits; sessions live in tower-sessions' memory store.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, header};
use chrono::{DateTime, Utc};
use signin_auth::{AuthError, Callback, IdentityProvider, LoginStart, PendingLogin};
use signin_domain::{Identity, ProfileClaims, RepositoryError, User, UserId, UserRepository};
use signin_web::{App, AppState, Templates, WebSettings};
use tower::ServiceExt as _;
use tower_sessions::{MemoryStore, SessionManagerLayer};

const PICTURE: &str = "https://pictures.example.com/alice.png";

/// A provider that signs everyone in as Alice.
struct FakeProvider;

#[async_trait]
impl IdentityProvider for FakeProvider {
    fn begin(&self) -> LoginStart {
        // `PendingLogin` keeps its fields to the auth crate; it is serialisable (it lives in sessions), so a fake
        // builds one the way a session store would.
        let pending: PendingLogin = serde_json::from_value(serde_json::json!({
            "state": "fake-state",
            "nonce": "fake-nonce",
            "pkce_verifier": "fake-verifier",
            "created_at": Utc::now().timestamp(),
        }))
        .expect("a pending login from its serialised form");
        LoginStart {
            authorize_url: "https://idp.example.com/authorize?state=fake-state".parse().expect("url"),
            pending,
        }
    }

    async fn complete(&self, _pending: PendingLogin, _callback: Callback) -> Result<ProfileClaims, AuthError> {
        Ok(ProfileClaims {
            issuer: "https://idp.example.com".into(),
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: Some(true),
            name: Some("Alice Example".into()),
            given_name: Some("Alice".into()),
            picture: Some(PICTURE.into()),
        })
    }
}

/// A user store that stores nothing and gives every identity id 1.
struct FakeUsers;

#[async_trait]
impl UserRepository for FakeUsers {
    async fn record_login(&self, identity: &Identity, at: DateTime<Utc>) -> Result<User, RepositoryError> {
        Ok(User {
            id: UserId::new(1),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            picture: identity.picture.clone(),
            created_at: at,
            last_login_at: at,
        })
    }

    async fn find(&self, _id: UserId) -> Result<Option<User>, RepositoryError> {
        Ok(None)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(())
    }
}

/// The whole router for a site at `public_url`.
fn app(public_url: &str) -> Router {
    let app = App {
        users: Arc::new(FakeUsers),
        identity: Arc::new(FakeProvider),
        templates: Templates::new().expect("templates"),
        settings: WebSettings::new(public_url.parse().expect("public url")),
        health: Vec::new(),
    };
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(public_url.starts_with("https:"));
    signin_web::router(AppState::new(app), sessions)
}

async fn send(app: &Router, method: Method, path: &str, cookie: Option<&str>) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    app.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible")
}

async fn get(app: &Router, path: &str) -> Response<Body> {
    send(app, Method::GET, path, None).await
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn header(headers: &HeaderMap, name: impl header::AsHeaderName) -> &str {
    headers.get(name).map(|v| v.to_str().expect("ascii header")).unwrap_or_default()
}

/// The `name=value` of the session cookie a response sets.
fn session_cookie(response: &Response<Body>) -> String {
    let set = header(response.headers(), header::SET_COOKIE);
    set.split(';').next().filter(|pair| !pair.is_empty()).expect("a session cookie").to_owned()
}

/// What every response carries, whatever it is.
#[track_caller]
fn assert_protective_headers(response: &Response<Body>) {
    let headers = response.headers();
    let what = format!("{} response", response.status());
    let csp = header(headers, header::CONTENT_SECURITY_POLICY);
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for expected in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(directives.contains(&expected), "{what}: CSP lacks `{expected}`: {csp}");
    }
    let img =
        directives.iter().find(|d| d.starts_with("img-src ")).unwrap_or_else(|| panic!("{what}: no img-src: {csp}"));
    let sources: Vec<&str> = img.split_whitespace().skip(1).collect();
    assert!(sources.contains(&"'self'") && sources.contains(&"https:"), "{what}: images from us and https: {img}");
    for source in &sources {
        assert!(["'self'", "https:", "data:"].contains(source) || source.starts_with("http://"), "{what}: {img}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*'), "{what}: {csp}");
    assert_eq!(header(headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{what}");
    assert_eq!(header(headers, header::REFERRER_POLICY), "no-referrer", "{what}");
    assert_eq!(header(headers, header::X_FRAME_OPTIONS), "DENY", "{what}");
    assert_eq!(header(headers, "cross-origin-opener-policy"), "same-origin", "{what}");
}

#[track_caller]
fn assert_no_store(response: &Response<Body>) {
    assert_eq!(header(response.headers(), header::CACHE_CONTROL), "no-store", "{} response", response.status());
}

#[track_caller]
fn assert_html(response: &Response<Body>) {
    let content_type = header(response.headers(), header::CONTENT_TYPE);
    assert!(content_type.starts_with("text/html"), "{content_type}");
}

/// Signs in through the fake provider; returns the session cookie of the signed-in browser.
async fn sign_in(app: &Router) -> String {
    let login = get(app, "/login").await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_protective_headers(&login);
    let cookie = session_cookie(&login);
    let callback = send(app, Method::GET, "/login/callback?state=fake-state&code=fake-code", Some(&cookie)).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER, "the fake sign-in completes");
    assert_protective_headers(&callback);
    // The session id changes at sign-in.
    session_cookie(&callback)
}

#[tokio::test]
async fn the_login_page_carries_every_protective_header_and_is_not_stored() {
    let app = app("http://127.0.0.1:3000");
    let response = get(&app, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_html(&response);
    assert_protective_headers(&response);
    assert_no_store(&response);
    assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS over plain http");
    let html = body(response).await;
    assert!(html.contains("<html lang=\"en\">") && html.contains("<main"), "{html}");
    assert!(
        html.contains("Login to continue") && html.contains("Login with Google") && html.contains("href=\"/login\"")
    );
}

#[tokio::test]
async fn the_profile_page_carries_every_protective_header_and_is_not_stored() {
    let app = app("http://127.0.0.1:3000");
    let cookie = sign_in(&app).await;
    let response = send(&app, Method::GET, "/", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_html(&response);
    assert_protective_headers(&response);
    assert_no_store(&response);
    let html = body(response).await;
    assert!(html.contains("Alice Example") && html.contains("alice@example.com"), "{html}");
    // The picture comes from the provider's host: no referrer, a placeholder when it fails, alt text.
    let img = html.split("<img").find(|tag| tag.contains(PICTURE)).expect("the profile picture");
    assert!(img.contains("referrerpolicy=\"no-referrer\""), "{img}");
    assert!(img.contains("data-fallback=\"/static/avatar.svg\""), "{img}");
    assert!(img.contains("alt=\"Profile picture of Alice Example\""), "{img}");
    assert!(html.contains("action=\"/logout\"") && html.contains("name=\"csrf\" value=\""), "{html}");
}

#[tokio::test]
async fn static_assets_carry_the_protective_headers_and_may_be_cached() {
    let app = app("http://127.0.0.1:3000");
    for (path, content_type) in [
        ("/static/app.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/google-g.svg", "image/svg+xml"),
        ("/static/avatar.svg", "image/svg+xml"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(response.headers(), header::CONTENT_TYPE).starts_with(content_type), "{path}");
        assert_protective_headers(&response);
        let cache = header(response.headers(), header::CACHE_CONTROL);
        assert!(cache.starts_with("public") && !cache.contains("no-store"), "{path}: {cache}");
    }
}

#[tokio::test]
async fn health_answers_carry_the_protective_headers_too() {
    let app = app("http://127.0.0.1:3000");
    for path in ["/health/live", "/health/ready"] {
        let response = get(&app, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_protective_headers(&response);
        assert_no_store(&response);
    }
}

#[tokio::test]
async fn pages_and_assets_reference_nothing_on_another_origin() {
    let app = app("http://127.0.0.1:3000");
    let mut texts = vec![
        ("/", body(get(&app, "/").await).await),
        ("/nowhere", body(get(&app, "/nowhere").await).await),
        ("/login/callback", body(get(&app, "/login/callback?state=x&code=y").await).await),
    ];
    for asset in ["app.css", "app.js"] {
        let path = format!("/static/{asset}");
        texts.push(("asset", body(get(&app, &path).await).await));
    }
    for (path, text) in &texts {
        assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//fonts"), "{path}: {text}");
        assert!(!text.contains("@import"), "{path}");
    }
}

#[tokio::test]
async fn error_pages_carry_every_protective_header_and_are_not_stored() {
    let app = app("http://127.0.0.1:3000");
    let cases = [
        (Method::GET, "/no/such/page", StatusCode::NOT_FOUND, "Page not found"),
        (Method::GET, "/static/missing.css", StatusCode::NOT_FOUND, "Page not found"),
        (Method::POST, "/", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        (Method::GET, "/login/callback?state=x&code=y", StatusCode::BAD_REQUEST, "sign in again"),
    ];
    for (method, path, status, text) in cases {
        let response = send(&app, method.clone(), path, None).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_html(&response);
        assert_protective_headers(&response);
        assert_no_store(&response);
        let html = body(response).await;
        assert!(html.contains(text) && html.contains("href=\"/\""), "{method} {path}: {html}");
        assert!(html.contains(&format!("Error {}", status.as_u16())), "{method} {path}: {html}");
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_the_site_is_served_over_https() {
    let plain = app("http://127.0.0.1:3000");
    let secure = app("https://login.example.com");
    for path in ["/", "/static/app.css", "/no/such/page"] {
        let response = get(&plain, path).await;
        assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none(), "http {path}");

        let response = get(&secure, path).await;
        assert_protective_headers(&response);
        let hsts = header(response.headers(), header::STRICT_TRANSPORT_SECURITY);
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("https {path}: HSTS with a max-age, got `{hsts}`"));
        assert!(max_age >= 31_536_000, "https {path}: at least a year: {hsts}");
    }
    // The profile too.
    let cookie = sign_in(&secure).await;
    let response = send(&secure, Method::GET, "/", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_some());
    assert_no_store(&response);
}
