//! The handlers end to end over the fakes: starting a sign-in, the callback and each way it fails, logout and its
//! CSRF checks, and the health endpoints. No MySQL, no provider: what this crate decides is tested here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};
use signin_auth::AuthErrorKind;
use signin_web::HealthCheck;

use crate::support::{
    AUTHORIZE_URL, EMAIL, GOOD_CODE, NAME, ORIGIN, OUTAGE_CODE, Options, PICTURE, STATE, TestApp, UNVERIFIED_CODE,
    body_text, callback, csrf_token, header, request, session_cookie, set_cookie, sign_in,
};

// ---- helpers ----

#[track_caller]
fn assert_redirect(response: &Response<Body>, to: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(response.headers(), header::LOCATION), to);
}

/// What a browser with `cookie` sees at `/`.
async fn home(app: &TestApp, cookie: &str) -> String {
    let response = app.get("/", Some(cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    body_text(response).await
}

fn is_profile(html: &str) -> bool {
    html.contains(NAME) && html.contains(EMAIL) && html.contains("action=\"/logout\"")
}

fn is_login_page(html: &str) -> bool {
    html.contains("Login to continue") && html.contains("href=\"/login\"") && !html.contains(EMAIL)
}

/// The response deletes the session cookie `cookie` (`name=value`): same name, empty value, expired.
#[track_caller]
fn assert_cookie_cleared(response: &Response<Body>, cookie: &str) {
    let name = cookie.split('=').next().expect("a cookie name");
    let set = header(response.headers(), header::SET_COOKIE);
    assert!(set.starts_with(&format!("{name}=;")), "the session cookie is emptied: {set:?}");
    assert!(set.contains("Max-Age=0"), "and expired: {set:?}");
}

/// Starts a sign-in in a fresh browser (`/login` plus `query`); the pre-login session cookie.
async fn start_login(app: &TestApp, query: &str) -> String {
    let login = app.get(&format!("/login{query}"), None).await;
    assert_redirect(&login, AUTHORIZE_URL);
    session_cookie(&login)
}

/// POSTs the logout form: `csrf` is the field's value (no field when `None`); `origin`, the `Origin` header.
async fn logout(app: &TestApp, cookie: Option<&str>, csrf: Option<&str>, origin: Option<&str>) -> Response<Body> {
    let mut request =
        request(Method::POST, "/logout", cookie).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    let form = csrf.map(|csrf| format!("csrf={csrf}")).unwrap_or_default();
    app.send(request.body(Body::from(form)).expect("request")).await
}

// ---- starting a sign-in ----

#[tokio::test]
async fn login_sets_a_session_cookie_and_sends_the_browser_to_the_provider() {
    let app = TestApp::new();

    let response = app.get("/login", None).await;

    assert_redirect(&response, AUTHORIZE_URL);
    let cookie = session_cookie(&response);
    let (_, id) = cookie.split_once('=').expect("name=value");
    assert!(!id.is_empty(), "{cookie}");
    let set = header(response.headers(), header::SET_COOKIE);
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
    assert!(app.users.logins().is_empty(), "nothing is written before the provider answers");
    // The cookie carries the login under way: the provider's answer completes it.
    assert_redirect(&app.get(&callback(GOOD_CODE), Some(&cookie)).await, "/");
}

#[tokio::test]
async fn next_is_kept_through_the_sign_in_only_when_it_is_a_local_path() {
    for (next, lands_on) in [
        ("/x", "/x"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/%5Cevil.example", "/"),
        ("javascript:alert(1)", "/"),
    ] {
        let app = TestApp::new();
        let cookie = start_login(&app, &format!("?next={next}")).await;

        let response = app.get(&callback(GOOD_CODE), Some(&cookie)).await;

        assert_eq!(response.status(), StatusCode::SEE_OTHER, "next={next}");
        assert_eq!(header(response.headers(), header::LOCATION), lands_on, "next={next}");
    }
}

#[tokio::test]
async fn login_checks_the_provider_once_per_interval_and_refuses_a_dead_one() {
    let app = TestApp::new();
    start_login(&app, "").await;
    start_login(&app, "").await;
    assert_eq!(app.provider.pings(), 1, "a good answer stands for the interval");

    // A provider failure during a callback makes the next /login check again.
    let cookie = start_login(&app, "").await;
    app.provider.set_outage(Some(AuthErrorKind::ProviderUnavailable));
    let failed = app.get(&callback(OUTAGE_CODE), Some(&cookie)).await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let refused = app.get("/login", None).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(app.provider.pings(), 2);
    assert!(header(refused.headers(), header::SET_COOKIE).is_empty(), "a refused /login starts no session");
    assert!(body_text(refused).await.contains("cannot be reached"));
    // A failure stands for a short pause only, and is not asked again within it.
    assert_eq!(app.get("/login", None).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(app.provider.pings(), 2);
}

#[tokio::test]
async fn login_answers_504_when_the_provider_check_times_out_and_recovers() {
    let app = TestApp::with(Options { provider_check_interval: Duration::from_millis(50), ..Options::default() });
    app.provider.set_outage(Some(AuthErrorKind::ProviderTimeout));
    let refused = app.get("/login", None).await;
    assert_eq!(refused.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(body_text(refused).await.contains("not answering"));
    app.provider.set_outage(None);
    tokio::time::sleep(Duration::from_millis(60)).await;
    start_login(&app, "").await;
}

#[tokio::test]
async fn a_zero_interval_turns_the_provider_check_off() {
    let app = TestApp::with(Options { provider_check_interval: Duration::ZERO, ..Options::default() });
    app.provider.set_outage(Some(AuthErrorKind::ProviderUnavailable));
    start_login(&app, "").await;
    assert_eq!(app.provider.pings(), 0);
}

#[tokio::test]
async fn login_when_already_signed_in_goes_to_next_without_starting_a_new_login() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;

    let response = app.get("/login?next=/x", Some(&cookie)).await;

    assert_redirect(&response, "/x");
    assert_eq!(set_cookie(&response), None, "the session is left as it was");
    // No login was started: a callback in this browser finds none, and the user stays signed in.
    let again = app.get(&callback(GOOD_CODE), Some(&cookie)).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(again).await.contains("Sign-in expired"));
    assert!(is_profile(&home(&app, &cookie).await), "still signed in");
    assert_eq!(app.users.logins().len(), 1, "only the first sign-in wrote a row");
}

// ---- the callback ----

#[tokio::test]
async fn a_good_callback_signs_in_under_a_new_session_id_and_records_one_login() {
    let app = TestApp::new();
    let before = start_login(&app, "").await;

    let response = app.get(&callback(GOOD_CODE), Some(&before)).await;

    assert_redirect(&response, "/");
    let after = session_cookie(&response);
    assert_ne!(after, before, "the session id is rotated at sign-in");
    let html = home(&app, &after).await;
    assert!(is_profile(&html), "{html}");
    assert!(html.contains(&format!("src=\"{PICTURE}\"")), "{html}");
    let csrf = csrf_token(&app, &after).await;
    assert!(csrf.len() >= 32, "a real CSRF token in the form: {csrf:?}");
    let logins = app.users.logins();
    assert_eq!(logins.len(), 1, "exactly one record_login: {logins:?}");
    assert_eq!(logins[0].subject.as_ref(), "ada");
    assert_eq!(logins[0].email.as_ref(), EMAIL);
    // The pre-login id is gone: whoever planted or copied it has nothing.
    assert!(is_login_page(&home(&app, &before).await));
}

#[tokio::test]
async fn an_unverified_email_is_refused_and_leaves_nothing_behind() {
    let app = TestApp::new();
    let cookie = start_login(&app, "").await;

    let response = app.get(&callback(UNVERIFIED_CODE), Some(&cookie)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_cookie_cleared(&response, &cookie);
    let html = body_text(response).await;
    assert!(html.contains("Email not verified") && html.contains("not verified by Google"), "{html}");
    assert!(app.users.logins().is_empty(), "no row for an unverified email");
    assert!(is_login_page(&home(&app, &cookie).await), "signed out");
}

#[tokio::test]
async fn cancelling_at_the_provider_shows_the_login_page_with_a_message() {
    let app = TestApp::new();
    let cookie = start_login(&app, "").await;

    let response = app.get(&format!("/login/callback?error=access_denied&state={STATE}"), Some(&cookie)).await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_cookie_cleared(&response, &cookie);
    let html = body_text(response).await;
    assert!(is_login_page(&html), "{html}");
    assert!(html.contains("Sign-in was cancelled"), "{html}");
    assert!(app.users.logins().is_empty());
    // The cancelled login is over: the provider's code for it no longer works.
    let late = app.get(&callback(GOOD_CODE), Some(&cookie)).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert!(app.users.logins().is_empty());
}

#[tokio::test]
async fn a_callback_without_a_login_under_way_has_expired() {
    let app = TestApp::new();

    let response = app.get(&callback(GOOD_CODE), None).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = body_text(response).await;
    assert!(html.contains("Sign-in expired") && html.contains("sign in again"), "{html}");
    assert!(app.users.logins().is_empty());
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let app = TestApp::new();
    let cookie = start_login(&app, "").await;

    let response = app.get(&format!("/login/callback?code={GOOD_CODE}&state=forged"), Some(&cookie)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_cookie_cleared(&response, &cookie);
    assert!(body_text(response).await.contains("Sign-in failed"));
    assert!(app.users.logins().is_empty());
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_the_first_browser_stays_signed_in() {
    let app = TestApp::new();
    let pre_login = start_login(&app, "").await;
    let first = app.get(&callback(GOOD_CODE), Some(&pre_login)).await;
    assert_redirect(&first, "/");
    let signed_in = session_cookie(&first);

    // The same URL again: from the signed-in browser (reload), with the pre-login cookie, and from elsewhere.
    for cookie in [Some(signed_in.as_str()), Some(pre_login.as_str()), None] {
        let replay = app.get(&callback(GOOD_CODE), cookie).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "replay with {cookie:?}");
        assert!(body_text(replay).await.contains("Sign-in expired"), "replay with {cookie:?}");
    }

    assert!(is_profile(&home(&app, &signed_in).await), "the first browser is still signed in");
    assert_eq!(app.users.logins().len(), 1, "the replays wrote nothing");
}

// ---- logout ----

#[tokio::test]
async fn logout_is_refused_without_the_right_token_or_from_another_site() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let csrf = csrf_token(&app, &cookie).await;
    let wrong = format!("{}x", &csrf[..csrf.len() - 1]);

    for (what, token, origin) in [
        ("no token", None, None),
        ("an empty token", Some(""), None),
        ("a wrong token", Some(wrong.as_str()), None),
        ("another site's origin", Some(csrf.as_str()), Some("https://evil.example")),
    ] {
        let response = logout(&app, Some(&cookie), token, origin).await;

        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(set_cookie(&response), None, "{what}: the session is kept");
        assert!(body_text(response).await.contains("Request refused"), "{what}");
        assert!(is_profile(&home(&app, &cookie).await), "{what}: still signed in");
    }
}

#[tokio::test]
async fn logout_with_the_right_token_ends_the_session() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let csrf = csrf_token(&app, &cookie).await;

    let response = logout(&app, Some(&cookie), Some(&csrf), Some(ORIGIN)).await;

    assert_redirect(&response, "/");
    assert_cookie_cleared(&response, &cookie);
    // A copy of the old cookie is worthless: the session is gone from the store.
    let html = home(&app, &cookie).await;
    assert!(is_login_page(&html), "{html}");
    assert_redirect(&logout(&app, Some(&cookie), Some(&csrf), None).await, "/");
}

#[tokio::test]
async fn logout_when_signed_out_goes_home() {
    let app = TestApp::new();
    let pending = start_login(&app, "").await;

    for cookie in [None, Some(pending.as_str()), Some("signin_session=forged")] {
        let response = logout(&app, cookie, Some("anything"), None).await;
        assert_redirect(&response, "/");
    }
}

// ---- health ----

/// A readiness check that passes or fails as told.
struct Check {
    name: &'static str,
    ok: bool,
}

#[async_trait]
impl HealthCheck for Check {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Result<(), String> {
        if self.ok { Ok(()) } else { Err("unreachable".into()) }
    }
}

fn app_with_checks(checks: [(&'static str, bool); 2]) -> TestApp {
    let health = checks.map(|(name, ok)| Arc::new(Check { name, ok }) as Arc<dyn HealthCheck>).into();
    TestApp::with(Options { health, ..Options::default() })
}

async fn json(response: Response<Body>) -> serde_json::Value {
    let content_type = header(response.headers(), header::CONTENT_TYPE).to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    serde_json::from_str(&body_text(response).await).expect("a JSON report")
}

#[tokio::test]
async fn liveness_answers_ok_whatever_the_dependencies_say() {
    let app = app_with_checks([("database", false), ("sessions", false)]);

    let response = app.get("/health/live", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "ok");
}

#[tokio::test]
async fn readiness_is_503_when_a_check_fails() {
    let app = app_with_checks([("database", false), ("sessions", true)]);

    let response = app.get("/health/ready", None).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let report = json(response).await;
    assert_eq!(report["ready"], false, "{report}");
    assert_eq!(
        report["checks"],
        serde_json::json!([{ "name": "database", "ok": false }, { "name": "sessions", "ok": true }]),
        "{report}"
    );
}

#[tokio::test]
async fn readiness_is_200_when_every_check_passes() {
    let app = app_with_checks([("database", true), ("sessions", true)]);

    let response = app.get("/health/ready", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let report = json(response).await;
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["checks"].as_array().map(Vec::len), Some(2), "{report}");
}
