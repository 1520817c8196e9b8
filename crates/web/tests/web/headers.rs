//! The protective headers on every kind of response, asserted on the real router (`oneshot`, no network): pages,
//! the profile, static assets, error pages; HSTS only when the site is served over https.

use axum::body::Body;
use axum::http::{Method, Response, StatusCode, header};

use crate::support::{EMAIL, NAME, PICTURE, TestApp, body_text, header, request, sign_in_inspecting};

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
    assert_eq!(header(headers, header::REFERRER_POLICY), "same-origin", "{what}");
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

/// Signs in through the fake provider, checking the headers of each step; returns the signed-in session cookie.
async fn sign_in(app: &TestApp) -> String {
    sign_in_inspecting(app, assert_protective_headers).await
}

#[tokio::test]
async fn the_login_page_carries_every_protective_header_and_is_not_stored() {
    let app = TestApp::new();
    let response = app.get("/", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_html(&response);
    assert_protective_headers(&response);
    assert_no_store(&response);
    assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none(), "no HSTS over plain http");
    let html = body_text(response).await;
    assert!(html.contains("<html lang=\"en\">") && html.contains("<main"), "{html}");
    assert!(
        html.contains("Login to continue")
            && html.contains("Login with Example ID")
            && html.contains("href=\"/login\""),
        "{html}"
    );
}

#[tokio::test]
async fn the_profile_page_carries_every_protective_header_and_is_not_stored() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let response = app.get("/", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_html(&response);
    assert_protective_headers(&response);
    assert_no_store(&response);
    let html = body_text(response).await;
    assert!(html.contains(NAME) && html.contains(EMAIL), "{html}");
    // The picture comes from the provider's host: no referrer, a placeholder when it fails, alt text.
    let img = html.split("<img").find(|tag| tag.contains(PICTURE)).expect("the profile picture");
    assert!(img.contains("referrerpolicy=\"no-referrer\""), "{img}");
    assert!(img.contains("data-fallback=\"/static/avatar.svg\""), "{img}");
    assert!(img.contains(&format!("alt=\"Profile picture of {NAME}\"")), "{img}");
    assert!(html.contains("action=\"/logout\"") && html.contains("name=\"csrf\" value=\""), "{html}");
}

#[tokio::test]
async fn static_assets_carry_the_protective_headers_and_may_be_cached() {
    let app = TestApp::new();
    for (path, content_type) in [
        ("/static/app.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/google-g.svg", "image/svg+xml"),
        ("/static/avatar.svg", "image/svg+xml"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(header(response.headers(), header::CONTENT_TYPE).starts_with(content_type), "{path}");
        assert_protective_headers(&response);
        let cache = header(response.headers(), header::CACHE_CONTROL);
        assert!(cache.starts_with("public") && !cache.contains("no-store"), "{path}: {cache}");
    }
}

#[tokio::test]
async fn health_answers_carry_the_protective_headers_too() {
    let app = TestApp::new();
    for path in ["/health/live", "/health/ready"] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_protective_headers(&response);
        assert_no_store(&response);
    }
}

#[tokio::test]
async fn api_answers_carry_the_protective_headers_and_are_not_stored() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    for (cookie, status) in [(Some(cookie.as_str()), StatusCode::OK), (None, StatusCode::UNAUTHORIZED)] {
        let response = app.get("/api/me", cookie).await;
        assert_eq!(response.status(), status);
        assert!(header(response.headers(), header::CONTENT_TYPE).contains("json"), "{status}");
        assert_protective_headers(&response);
        assert_no_store(&response);
    }
}

#[tokio::test]
async fn pages_and_assets_reference_nothing_on_another_origin() {
    let app = TestApp::new();
    let mut texts = vec![
        ("/", body_text(app.get("/", None).await).await),
        ("/nowhere", body_text(app.get("/nowhere", None).await).await),
        ("/login/callback", body_text(app.get("/login/callback?state=x&code=y", None).await).await),
    ];
    for asset in ["app.css", "app.js"] {
        let path = format!("/static/{asset}");
        texts.push(("asset", body_text(app.get(&path, None).await).await));
    }
    for (path, text) in &texts {
        assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//fonts"), "{path}: {text}");
        assert!(!text.contains("@import"), "{path}");
    }
}

#[tokio::test]
async fn error_pages_carry_every_protective_header_and_are_not_stored() {
    let app = TestApp::new();
    let cases = [
        (Method::GET, "/no/such/page", StatusCode::NOT_FOUND, "Page not found"),
        (Method::GET, "/static/missing.css", StatusCode::NOT_FOUND, "Page not found"),
        (Method::POST, "/", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        (Method::GET, "/login/callback?state=x&code=y", StatusCode::BAD_REQUEST, "sign in again"),
    ];
    for (method, path, status, text) in cases {
        let response = app.send(request(method.clone(), path, None).body(Body::empty()).expect("request")).await;
        assert_eq!(response.status(), status, "{method} {path}");
        assert_html(&response);
        assert_protective_headers(&response);
        assert_no_store(&response);
        let html = body_text(response).await;
        assert!(html.contains(text) && html.contains("href=\"/\""), "{method} {path}: {html}");
        assert!(html.contains(&format!("Error {}", status.as_u16())), "{method} {path}: {html}");
    }
}

#[tokio::test]
async fn hsts_is_sent_only_when_the_site_is_served_over_https() {
    let plain = TestApp::new();
    let secure = TestApp::at("https://login.example.com");
    for path in ["/", "/static/app.css", "/no/such/page"] {
        let response = plain.get(path, None).await;
        assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none(), "http {path}");

        let response = secure.get(path, None).await;
        assert_protective_headers(&response);
        let hsts = header(response.headers(), header::STRICT_TRANSPORT_SECURITY);
        let max_age: u64 = hsts
            .split(';')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("https {path}: HSTS with a max-age, got `{hsts}`"));
        assert!(max_age >= 31_536_000, "https {path}: at least a year: {hsts}");
    }
    // The sign-in steps and the profile too.
    let cookie = sign_in_inspecting(&secure, |response| {
        assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_some(), "{}", response.status());
    })
    .await;
    let response = secure.get("/", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::STRICT_TRANSPORT_SECURITY).is_some());
    assert_no_store(&response);
}

#[tokio::test]
async fn the_sessions_page_lists_this_browser_and_carries_every_protective_header() {
    let app = TestApp::new();
    let cookie = sign_in(&app).await;
    let profile = body_text(app.get("/", Some(&cookie)).await).await;
    assert!(profile.contains("href=\"/sessions\""), "the profile links to it: {profile}");

    let response = app.get("/sessions", Some(&cookie)).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_html(&response);
    assert_protective_headers(&response);
    assert_no_store(&response);
    let html = body_text(response).await;
    assert!(html.contains("This browser"), "{html}");
    assert!(html.contains("action=\"/sessions/end-all\""), "{html}");
    assert!(html.contains(EMAIL), "{html}");
    let signed_out = app.get("/sessions", None).await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER, "signed out: to the sign-in page");
}

fn request_id(response: &axum::http::Response<axum::body::Body>) -> String {
    let id = response.headers().get("x-request-id").expect("a request id").to_str().expect("ascii").to_owned();
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    id
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_error_pages_show_it() {
    let app = TestApp::new();

    let home = app.get("/", None).await;
    let missing = app.get("/no/such/page", None).await;

    assert_ne!(request_id(&home), request_id(&missing), "one per request");
    let id = request_id(&missing);
    let html = body_text(missing).await;
    assert!(html.contains(&format!("Reference: <code>{id}</code>")), "{html}");
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_not_taken_from_anyone_but_a_trusted_proxy() {
    let app = TestApp::new();
    let mut request = axum::http::Request::get("/").body(axum::body::Body::empty()).expect("request");
    request.headers_mut().insert("x-request-id", axum::http::HeaderValue::from_static("forged-id"));

    let response = app.send(request).await;

    assert_ne!(request_id(&response), "forged-id");
}

#[tokio::test(flavor = "current_thread")]
async fn the_log_lines_of_a_request_carry_its_id() {
    let (logs, _guard) = signin_testkit::logs::Logs::capture("info");
    let app = TestApp::new();
    let ids = std::sync::Mutex::new(Vec::new());

    sign_in_inspecting(&app, |response| ids.lock().expect("lock").push(request_id(response))).await;

    let written = logs.take().join("\n");
    let callback_id = ids.lock().expect("lock").last().cloned().expect("the callback's id");
    let signed_in = written.lines().find(|line| line.contains("signed in")).expect("the sign-in is logged");
    assert!(signed_in.contains(&format!("id={callback_id}")), "{signed_in}");
    assert!(!written.contains("code="), "no query strings in the log: {written}");
    // The attempt's id ties /login to its callback (on any instance).
    let attempt = |line: &str| {
        line.split("attempt=").nth(1).and_then(|rest| rest.split(['}', ' ', ':']).next()).map(str::to_owned)
    };
    let started = written.lines().find(|line| line.contains("sign-in started")).expect("the start is logged");
    assert!(attempt(started).is_some_and(|id| id.len() == 12), "{started}");
    assert_eq!(attempt(started), attempt(signed_in), "{written}");
}
