//! The app end to end over the fakes: starting a sign-in, the callback and each way it fails, logout and its CSRF
//! checks, `/api/me`, the provider's name and branding on the pages, and the health endpoints. No MySQL, no
//! provider: what the web crate (and the login library it is built on) decides is tested here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};
use signin_auth::AuthErrorKind;
use signin_web::HealthCheck;

use crate::support::{
    ATTEMPT_PREFIX, AUTHORIZE_URL, Attempt, EMAIL, GOOD_CODE, ISSUER, NAME, ORIGIN, OUTAGE_CODE, Options, PICTURE,
    SESSION_COOKIE, TestApp, UNVERIFIED_CODE, begin, body_text, callback, cookies, csrf_token, header, provider_query,
    request, session_cookie, set_attempt_cookies, set_cookie_named, set_cookies, set_session_cookie, sign_in,
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

/// The response deletes the cookie `cookie` (`name=value`): same name, empty value, expired.
#[track_caller]
fn assert_cookie_cleared(response: &Response<Body>, cookie: &str) {
    let name = cookie.split('=').next().expect("a cookie name");
    let set = set_cookie_named(response, name).unwrap_or_else(|| panic!("a Set-Cookie for {name}"));
    assert!(set.starts_with(&format!("{name}=;")), "the cookie is emptied: {set:?}");
    assert!(set.contains("Max-Age=0"), "and expired: {set:?}");
}

/// The response sets no session cookie (neither a new one nor a removal).
#[track_caller]
fn assert_no_session_cookie(response: &Response<Body>) {
    assert_eq!(set_cookie_named(response, SESSION_COOKIE), None, "no session cookie: {:?}", set_cookies(response));
}

/// Starts a sign-in in a fresh browser (`/login` plus `query`) and checks that it went to the provider.
async fn start_login(app: &TestApp, query: &str) -> Attempt {
    let login = app.get(&format!("/login{query}"), None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert!(header(login.headers(), header::LOCATION).starts_with(AUTHORIZE_URL), "{:?}", login.headers());
    assert_no_session_cookie(&login);
    Attempt::from_login(&login)
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

async fn json_body(response: Response<Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(response).await).expect("a JSON body")
}

// ---- starting a sign-in ----

#[tokio::test]
async fn login_sends_the_browser_to_the_provider_with_an_attempt_cookie_and_no_session() {
    let app = TestApp::new();

    let response = app.get("/login", None).await;

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = header(response.headers(), header::LOCATION);
    assert!(location.starts_with(&format!("{AUTHORIZE_URL}?")), "{location}");
    let state = provider_query(&response, "state").expect("state");
    assert_eq!(state.len(), 43, "32 random bytes: {state}");
    assert!(provider_query(&response, "nonce").is_some_and(|nonce| nonce.len() == 43 && nonce != state));
    assert!(provider_query(&response, "code_challenge").is_some());
    // The attempt lives in the browser: one sealed cookie for the sign-in paths, short-lived; no session.
    assert_no_session_cookie(&response);
    assert_eq!(set_cookies(&response).len(), 2, "the attempt and the binding: {:?}", set_cookies(&response));
    let attempt = Attempt::from_login(&response);
    assert!(attempt.name().starts_with(ATTEMPT_PREFIX) && attempt.name().len() > ATTEMPT_PREFIX.len());
    let (_, sealed) = attempt.cookie.split_once("; ").and_then(|(a, _)| a.split_once('=')).expect("name=value");
    assert!(!sealed.is_empty() && !sealed.contains(&state), "the attempt is sealed: {sealed}");
    let set = &attempt.set_cookie;
    for attribute in ["Path=/login", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(set.split(';').any(|a| a.trim() == attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert_eq!(app.store.count().await, 0, "an anonymous /login writes nothing on the server");
    assert!(app.users.logins().is_empty(), "nothing is written before the provider answers");

    // A second attempt has a state of its own.
    let other = begin(&app, "").await;
    assert_ne!(other.state, attempt.state);
    assert_ne!(other.name(), attempt.name());

    // The cookie carries the attempt: the provider's answer completes it.
    assert_redirect(&app.get(&attempt.callback(GOOD_CODE), Some(&attempt.cookie)).await, "/");
}

#[tokio::test]
async fn a_plausible_login_hint_is_passed_to_the_provider() {
    let app = TestApp::new();
    let hinted = app.get("/login?login_hint=ada%40example.com", None).await;
    assert_eq!(provider_query(&hinted, "login_hint").as_deref(), Some(EMAIL));
    let odd = app.get("/login?login_hint=a%20b", None).await;
    assert_eq!(odd.status(), StatusCode::SEE_OTHER);
    assert_eq!(provider_query(&odd, "login_hint"), None, "a hint with white space is dropped");
}

#[tokio::test]
async fn attempt_cookies_are_secure_when_the_site_is_served_over_https() {
    let app = TestApp::at("https://login.example.com");
    let attempt = begin(&app, "").await;
    assert!(attempt.set_cookie.split(';').any(|a| a.trim() == "Secure"), "{}", attempt.set_cookie);
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
        let attempt = start_login(&app, &format!("?next={next}")).await;

        let response = app.get(&attempt.callback(GOOD_CODE), Some(&attempt.cookie)).await;

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
    let attempt = start_login(&app, "").await;
    app.provider.set_outage(Some(AuthErrorKind::ProviderUnavailable));
    let failed = app.get(&attempt.callback(OUTAGE_CODE), Some(&attempt.cookie)).await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let refused = app.get("/login", None).await;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(app.provider.pings(), 2);
    assert!(set_cookies(&refused).is_empty(), "a refused /login starts no attempt: {:?}", set_cookies(&refused));
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
    assert!(set_cookies(&refused).is_empty());
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
async fn login_when_already_signed_in_goes_to_next_without_starting_a_new_attempt() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;

    let response = app.get("/login?next=/x", Some(&cookie)).await;

    assert_redirect(&response, "/x");
    assert!(set_cookies(&response).is_empty(), "no attempt, and the session is left as it was");
    // No attempt was started: a callback in this browser finds none, and the user stays signed in.
    let again = app.get(&callback(GOOD_CODE, "any-state"), Some(&cookie)).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(again).await.contains("Sign-in expired"));
    assert!(is_profile(&home(&app, &cookie).await), "still signed in");
    assert_eq!(app.users.logins().len(), 1, "only the first sign-in wrote a row");
}

// ---- the callback ----

#[tokio::test]
async fn a_good_callback_signs_in_under_a_new_session_cookie_and_records_one_login() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;
    // A session id planted in the browser beforehand (a fixation attempt) is not the one signed in.
    let planted = format!("{SESSION_COOKIE}=AAAAAAAAAAAAAAAAAAAAAA");

    let response = app.get(&attempt.callback(GOOD_CODE), Some(&cookies(&[&planted, &attempt.cookie]))).await;

    assert_redirect(&response, "/");
    assert_cookie_cleared(&response, &attempt.cookie);
    let session = session_cookie(&response);
    assert_ne!(session, planted, "a new session id at sign-in");
    let set = set_cookie_named(&response, SESSION_COOKIE).expect("the session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.split(';').any(|a| a.trim() == attribute), "{attribute} in {set}");
    }
    assert_eq!(app.store.count().await, 1, "one signed-in session");
    let html = home(&app, &session).await;
    assert!(is_profile(&html), "{html}");
    assert!(html.contains(&format!("src=\"{PICTURE}\"")), "{html}");
    let csrf = csrf_token(&app, &session).await;
    assert!(csrf.len() >= 32, "a real CSRF token in the form: {csrf:?}");
    let logins = app.users.logins();
    assert_eq!(logins.len(), 1, "exactly one record_login: {logins:?}");
    assert_eq!(logins[0].subject.as_ref(), "ada");
    assert_eq!(logins[0].email.as_ref(), EMAIL);
    assert_eq!(logins[0].issuer.as_ref(), ISSUER);
    assert!(is_login_page(&home(&app, &planted).await), "the planted id signs no one in");
}

#[tokio::test]
async fn an_unverified_email_is_refused_and_leaves_nothing_behind() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;

    let response = app.get(&attempt.callback(UNVERIFIED_CODE), Some(&attempt.cookie)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_no_session_cookie(&response);
    assert_cookie_cleared(&response, &attempt.cookie);
    let html = body_text(response).await;
    assert!(html.contains("Email not verified") && html.contains("not verified by Example ID"), "{html}");
    assert!(html.contains("Error 400"), "our error page: {html}");
    assert!(app.users.logins().is_empty(), "no row for an unverified email");
    assert_eq!(app.store.count().await, 0, "no session");
}

#[tokio::test]
async fn cancelling_at_the_provider_shows_the_login_page_with_a_message() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;

    let response =
        app.get(&format!("/login/callback?error=access_denied&state={}", attempt.state), Some(&attempt.cookie)).await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_no_session_cookie(&response);
    assert_cookie_cleared(&response, &attempt.cookie);
    let html = body_text(response).await;
    assert!(is_login_page(&html), "{html}");
    assert!(html.contains("Sign-in was cancelled"), "{html}");
    assert!(app.users.logins().is_empty());
    // The cancelled attempt is over: the browser dropped its cookie, so a late code for it finds nothing.
    let late = app.get(&attempt.callback(GOOD_CODE), None).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(late).await.contains("Sign-in expired"));
    assert!(app.users.logins().is_empty());
}

#[tokio::test]
async fn a_callback_without_an_attempt_under_way_has_expired() {
    let app = TestApp::new();

    let response = app.get(&callback(GOOD_CODE, "some-state"), None).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookies(&response).is_empty(), "{:?}", set_cookies(&response));
    let html = body_text(response).await;
    assert!(html.contains("Sign-in expired") && html.contains("sign in again"), "{html}");
    assert!(app.users.logins().is_empty());
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;

    // The browser has an attempt under way, and the callback names another one (or none).
    for state in ["forged", "", &attempt.state[..attempt.state.len() - 1]] {
        let response = app.get(&callback(GOOD_CODE, state), Some(&attempt.cookie)).await;

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "state {state:?}");
        assert_no_session_cookie(&response);
        assert!(set_attempt_cookies(&response).is_empty(), "the attempt it did not name is kept: {state:?}");
        let html = body_text(response).await;
        assert!(html.contains("Sign-in failed"), "state {state:?}: {html}");
    }
    // The attempt's cookie under the name of another attempt (another state) does not open, and is cleared.
    let other = start_login(&app, "").await;
    let (_, sealed) = attempt.cookie.split_once("; ").and_then(|(a, _)| a.split_once('=')).expect("name=value");
    let moved = format!("{}={sealed}", other.name());
    let response = app.get(&other.callback(GOOD_CODE), Some(&moved)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_no_session_cookie(&response);
    assert_cookie_cleared(&response, &other.cookie);
    assert!(body_text(response).await.contains("Sign-in expired"));

    assert!(app.users.logins().is_empty());
    assert_eq!(app.store.count().await, 0);
    // None of this used up the real attempt: its own callback still signs in.
    assert_redirect(&app.get(&attempt.callback(GOOD_CODE), Some(&attempt.cookie)).await, "/");
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_the_first_browser_stays_signed_in() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;
    let url = attempt.callback(GOOD_CODE);
    let first = app.get(&url, Some(&attempt.cookie)).await;
    assert_redirect(&first, "/");
    assert_cookie_cleared(&first, &attempt.cookie);
    let signed_in = session_cookie(&first);

    // The same URL again: from the signed-in browser (reload), and from elsewhere; neither has an attempt.
    for cookie in [Some(signed_in.as_str()), None] {
        let replay = app.get(&url, cookie).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "replay with {cookie:?}");
        assert_no_session_cookie(&replay);
        assert!(body_text(replay).await.contains("Sign-in expired"), "replay with {cookie:?}");
    }
    // With a copy of the attempt cookie (kept before the browser dropped it), alone or beside the session: the
    // provider refuses a code it already redeemed.
    for cookie in [attempt.cookie.clone(), cookies(&[&signed_in, &attempt.cookie])] {
        let replay = app.get(&url, Some(&cookie)).await;
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "replay with {cookie}");
        assert_no_session_cookie(&replay);
        assert!(body_text(replay).await.contains("Sign-in failed"), "replay with {cookie}");
    }

    assert!(is_profile(&home(&app, &signed_in).await), "the first browser is still signed in");
    assert_eq!(app.users.logins().len(), 1, "the replays wrote nothing");
    assert_eq!(app.store.count().await, 1, "and made no session");
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
        assert!(set_cookies(&response).is_empty(), "{what}: the session is kept");
        assert!(body_text(response).await.contains("Request refused"), "{what}");
        assert!(is_profile(&home(&app, &cookie).await), "{what}: still signed in");
    }
    assert_eq!(app.store.count().await, 1);
}

#[tokio::test]
async fn logout_with_the_right_token_ends_the_session() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let csrf = csrf_token(&app, &cookie).await;
    assert_eq!(app.store.count().await, 1);

    let response = logout(&app, Some(&cookie), Some(&csrf), Some(ORIGIN)).await;

    assert_redirect(&response, "/");
    assert_cookie_cleared(&response, &cookie);
    assert_eq!(app.store.count().await, 0, "the session is deleted from the store");
    // A copy of the old cookie is worthless: the session is gone from the store.
    let html = home(&app, &cookie).await;
    assert!(is_login_page(&html), "{html}");
    assert_redirect(&logout(&app, Some(&cookie), Some(&csrf), None).await, "/");
}

#[tokio::test]
async fn logout_when_signed_out_goes_home() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;
    let forged = format!("{SESSION_COOKIE}=forged");

    for cookie in [None, Some(attempt.cookie.as_str()), Some(forged.as_str())] {
        let response = logout(&app, cookie, Some("anything"), None).await;
        assert_redirect(&response, "/");
        assert_eq!(set_session_cookie(&response), None, "no session is made");
        assert!(set_attempt_cookies(&response).is_empty());
    }
    assert_eq!(app.store.count().await, 0);
}

// ---- /api/me ----

#[tokio::test]
async fn api_me_answers_the_signed_in_user_as_json() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;

    let response = app.get("/api/me", Some(&cookie)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let content_type = header(response.headers(), header::CONTENT_TYPE);
    assert!(content_type.starts_with("application/json"), "{content_type}");
    assert_eq!(
        json_body(response).await,
        serde_json::json!({ "id": 1, "issuer": ISSUER, "email": EMAIL, "name": NAME, "picture": PICTURE })
    );
}

#[tokio::test]
async fn api_me_answers_401_problem_json_when_signed_out() {
    let app = TestApp::new();
    let attempt = start_login(&app, "").await;
    let forged = format!("{SESSION_COOKIE}=forged");

    for (cookie, accept) in [
        (None, None),
        (None, Some("text/html,application/xhtml+xml")),
        (Some(forged.as_str()), Some("application/json")),
        (Some(attempt.cookie.as_str()), None),
    ] {
        let mut request = request(Method::GET, "/api/me", cookie);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let response = app.send(request.body(Body::empty()).expect("request")).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie:?} {accept:?}");
        assert_eq!(header(response.headers(), header::LOCATION), "", "an API route does not redirect");
        assert_eq!(header(response.headers(), header::CONTENT_TYPE), "application/problem+json", "{accept:?}");
        let problem = json_body(response).await;
        assert_eq!(problem["status"], 401, "{problem}");
        assert_eq!(problem["title"], "Unauthorized", "{problem}");
    }
}

#[tokio::test]
async fn api_me_after_logout_is_401() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let csrf = csrf_token(&app, &cookie).await;
    assert_redirect(&logout(&app, Some(&cookie), Some(&csrf), None).await, "/");

    assert_eq!(app.get("/api/me", Some(&cookie)).await.status(), StatusCode::UNAUTHORIZED);
}

// ---- the provider on the pages ----

#[tokio::test]
async fn pages_name_a_provider_other_than_google_with_a_neutral_button() {
    let app = TestApp::new();

    let html = body_text(app.get("/", None).await).await;

    assert!(html.contains("Login with Example ID") && html.contains("btn-provider"), "{html}");
    assert!(html.contains("Use your Example ID account"), "{html}");
    assert!(!html.contains("google-g.svg") && !html.contains("btn-google") && !html.contains("Google"), "{html}");

    let cookie = sign_in(&app).await;
    let profile = home(&app, &cookie).await;
    assert!(profile.contains("Signed in with Example ID"), "{profile}");
    assert!(!profile.contains("google-g.svg"), "{profile}");
}

#[tokio::test]
async fn a_session_begun_with_another_provider_is_named_after_it_never_after_google() {
    let other = TestApp::new();
    let cookie = sign_in(&other).await;
    let google = TestApp::with(Options { google: true, store: Some(other.store.clone()), ..Options::default() });

    let profile = home(&google, &cookie).await;

    assert!(profile.contains("Signed in with idp.example.com"), "{profile}");
    assert!(!profile.contains("google-g.svg") && !profile.contains("Signed in with Google"), "{profile}");
}

#[tokio::test]
async fn pages_carry_google_branding_only_for_googles_issuer() {
    let app = TestApp::with(Options { google: true, ..Options::default() });

    let html = body_text(app.get("/", None).await).await;

    assert!(html.contains("Login with Google") && html.contains("btn-google"), "{html}");
    assert!(html.contains("/static/google-g.svg") && html.contains("Use your Google Account"), "{html}");
    assert!(!html.contains("btn-provider"), "{html}");

    let cookie = sign_in(&app).await;
    let profile = home(&app, &cookie).await;
    assert!(profile.contains("Signed in with Google") && profile.contains("google-g.svg"), "{profile}");
    let me = json_body(app.get("/api/me", Some(&cookie)).await).await;
    assert_eq!(me["issuer"], signin_login::GOOGLE_ISSUER, "{me}");
}

#[tokio::test]
async fn the_unverified_email_page_names_google_when_google_signed_in() {
    let app = TestApp::with(Options { google: true, ..Options::default() });
    let attempt = start_login(&app, "").await;

    let response = app.get(&attempt.callback(UNVERIFIED_CODE), Some(&attempt.cookie)).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.contains("not verified by Google"));
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
