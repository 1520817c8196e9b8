//! The product path a person takes, and the ways it must refuse.

use reqwest::{StatusCode, Url, header};
use signin_testkit::TestDb;

use crate::helpers::{Browser, LOGIN_BUTTON, TestApp, csrf_from, issuer, location};

async fn app() -> (TestDb, TestApp) {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    (db, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_out_visitors_see_the_login_page() {
    let (_db, app) = app().await;
    let response = Browser::new().get(&app.url("/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("body");
    assert!(html.contains(LOGIN_BUTTON));
    assert!(html.contains("href=\"/login\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn login_redirects_to_the_provider_with_pkce_state_and_nonce() {
    let (_db, app) = app().await;
    let response = Browser::new().get(&app.url("/login")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = Url::parse(&location(&response)).expect("url");
    assert!(to.as_str().starts_with(&issuer()), "{to}");
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert_eq!(q.get("code_challenge").map(String::len), Some(43));
    assert!(q.get("state").is_some_and(|s| s.len() >= 16), "state {q:?}");
    assert!(q.get("nonce").is_some_and(|s| s.len() >= 16), "nonce {q:?}");
    let scopes: Vec<_> = q.get("scope").expect("scope").split(' ').collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }
    assert_eq!(q.get("redirect_uri").map(String::as_str), Some(app.url("/login/callback").as_str()));
    // The attempt lives in its own cookie: HttpOnly, SameSite=Lax, only for the sign-in paths, expiring with the
    // pending-login lifetime. No session cookie, no session row.
    let cookies: Vec<_> =
        response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ascii")).collect();
    assert_eq!(cookies.len(), 2, "the attempt and the browser's binding: {cookies:?}");
    let binding = cookies.iter().find(|c| c.starts_with("signin_session_browser=")).expect("the binding cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(binding.contains(attribute), "{attribute} missing: {binding}");
    }
    let cookie = cookies.iter().find(|c| c.starts_with("signin_session_login_")).expect("the attempt cookie");
    assert!(cookie.starts_with("signin_session_login_"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/login", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert_eq!(app.session_count().await, 0, "an anonymous /login writes nothing to MySQL");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sign_in_shows_the_profile_and_stores_the_user() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    let callback = browser.sign_in(&app, "alice").await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&callback), app.url("/"));

    let profile = browser.get(&app.url("/")).await;
    assert_eq!(profile.status(), StatusCode::OK);
    assert_eq!(profile.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().expect("ascii")), Some("no-store"));
    let html = profile.text().await.expect("body");
    assert!(html.contains("Alice Example"), "name");
    assert!(html.contains("alice@example.com"), "email");
    assert!(html.contains(&format!("src=\"{}/avatars/alice.svg\"", issuer())), "picture");
    assert!(html.contains("Logout"));

    let mut db = app.db().await;
    let row: (u64, String, String, String, String, Option<String>) = sqlx::query_as(
        "SELECT id, CONVERT(issuer USING utf8mb4), CONVERT(subject USING utf8mb4), CONVERT(email USING utf8mb4), \
             CONVERT(name USING utf8mb4), CONVERT(picture_url USING utf8mb4) FROM users",
    )
    .fetch_one(&mut db)
    .await
    .expect("one users row");
    assert_eq!(row.1, issuer());
    assert_eq!(row.2, "alice");
    assert_eq!(row.3, "alice@example.com");
    assert_eq!(row.4, "Alice Example");
    assert_eq!(row.5.as_deref(), Some(format!("{}/avatars/alice.svg", issuer()).as_str()));

    // Signing in again updates the same row.
    let again = Browser::new();
    assert_eq!(again.sign_in(&app, "alice").await.status(), StatusCode::SEE_OTHER);
    let ids: Vec<u64> = sqlx::query_scalar("SELECT id FROM users").fetch_all(&mut db).await.expect("ids");
    assert_eq!(ids, vec![row.0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_survives_closing_the_browser_and_restarting_the_app() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&app, "bob").await.status(), StatusCode::SEE_OTHER);
    let cookie = browser.session_cookie(&app.base).expect("session cookie");

    // A new browser process with only the persisted cookie.
    let reopened = Browser::with_session_cookie(&app.base, &cookie);
    let html = reopened.get(&app.url("/")).await.text().await.expect("body");
    assert!(html.contains("bob@example.com"), "still signed in after reopening");

    let app = app.restart().await;
    let html = reopened.get(&app.url("/")).await.text().await.expect("body");
    assert!(html.contains("bob@example.com"), "still signed in after an app restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_logout_the_provider_is_asked_to_let_the_next_person_sign_in_afresh() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    let browser = Browser::new();
    let prompt = |response: &reqwest::Response| {
        let url = reqwest::Url::parse(&location(response)).expect("the provider's URL");
        url.query_pairs().find(|(k, _)| k == "prompt").map(|(_, v)| v.into_owned())
    };
    // The provider's first page for a sign-in started at /login: its login form, or (when it knows the browser
    // already) straight on.
    let provider_asks_to_log_in = |to_provider: String| {
        let browser = &browser;
        async move {
            let interaction = browser.get(&to_provider).await;
            let page = browser.get(&location(&interaction)).await;
            page.status() == StatusCode::OK && page.text().await.expect("page").contains("name=\"login\"")
        }
    };
    assert_eq!(prompt(&browser.get(&app.url("/login")).await), None, "a first sign-in asks nothing extra");
    browser.sign_in(&app, "paula").await;
    let home = browser.get(&app.url("/")).await.text().await.expect("body");

    let out = browser.post_form(&app.url("/logout"), &[("csrf", &csrf_from(&home))]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The sign-out revoked the token at the provider, in the background (which ends the grant there); a sign-in
    // racing it could lose its code, so this one waits for it.
    app.wait_for_metric("signin_token_revocations_total{outcome=\"success\"}", 1.0).await;

    let again = browser.get(&app.url("/login")).await;
    assert_eq!(prompt(&again).as_deref(), Some("login"), "the provider is asked to authenticate afresh");
    assert!(provider_asks_to_log_in(location(&again)).await, "the real provider shows its login form again");
    let marker = |browser: &Browser| {
        use reqwest::cookie::CookieStore as _;
        let url = Url::parse(&app.url("/login")).expect("url");
        browser.jar.cookies(&url).is_some_and(|c| c.to_str().unwrap_or_default().contains("_signed_out="))
    };
    assert!(marker(&browser), "the browser remembers the sign-out");
    assert_eq!(browser.sign_in(&app, "paula").await.status(), StatusCode::SEE_OTHER);
    assert!(!marker(&browser), "a sign-in forgets the sign-out");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_needs_the_csrf_token_and_kills_the_session_everywhere() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    browser.sign_in(&app, "carol").await;
    let old_cookie = browser.session_cookie(&app.base).expect("cookie");
    let html = browser.get(&app.url("/")).await.text().await.expect("profile");
    let csrf = csrf_from(&html);

    // A plain GET does not log out.
    assert_eq!(browser.get(&app.url("/logout")).await.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Without the token, or with a wrong one: refused.
    assert_eq!(browser.post_form(&app.url("/logout"), &[]).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(browser.post_form(&app.url("/logout"), &[("csrf", "forged")]).await.status(), StatusCode::FORBIDDEN);
    // From another site's page: refused even with the token.
    let cross = browser
        .http
        .post(app.url("/logout"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(browser.get(&app.url("/")).await.text().await.expect("body").contains("carol@example.com"));

    let out = browser.post_form(&app.url("/logout"), &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), app.url("/"));
    let set: Vec<&str> = out.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let cleared = set.iter().find(|c| c.starts_with("signin_session=")).expect("the session cookie is cleared");
    assert!(cleared.starts_with("signin_session=;") || cleared.contains("Max-Age=0"), "{cleared}");
    assert!(set.iter().any(|c| c.starts_with("signin_session_signed_out=1")), "the sign-out is remembered: {set:?}");
    assert!(browser.get(&app.url("/")).await.text().await.expect("body").contains(LOGIN_BUTTON));

    // A copy of the old cookie is worthless: the session is gone from the server.
    let replay = Browser::with_session_cookie(&app.base, &old_cookie);
    let html = replay.get(&app.url("/")).await.text().await.expect("body");
    assert!(html.contains(LOGIN_BUTTON) && !html.contains("carol@example.com"));
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_email_gets_a_400_and_leaves_nothing_behind() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    let response = browser.sign_in(&app, "unverified-dan").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("body");
    assert!(html.contains("not verified"), "{html}");
    assert_eq!(app.user_count().await, 0);
    assert_eq!(app.session_count().await, 0);
    assert!(browser.get(&app.url("/")).await.text().await.expect("body").contains(LOGIN_BUTTON));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_picture_or_names_signs_in_with_a_placeholder() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&app, "minimal-erin").await.status(), StatusCode::SEE_OTHER);
    let html = browser.get(&app.url("/")).await.text().await.expect("body");
    assert!(html.contains("minimal-erin@example.com"));
    assert!(html.contains("src=\"/static/avatar.svg\""), "placeholder picture");
    let picture: Option<String> =
        sqlx::query_scalar("SELECT picture_url FROM users").fetch_one(&mut app.db().await).await.expect("row");
    assert_eq!(picture, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_at_the_provider_returns_to_the_login_page_with_a_message() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    let to_provider = location(&browser.get(&app.url("/login")).await);
    let interaction = location(&browser.get(&to_provider).await);
    let page = browser.get(&interaction).await.text().await.expect("login page");
    let abort =
        page.split("href=\"").find_map(|s| s.split('"').next().filter(|h| h.ends_with("/abort"))).expect("cancel link");
    let mut next = location(&browser.get(abort).await);
    while next.starts_with(&issuer()) {
        next = location(&browser.get(&next).await);
    }
    assert!(next.contains("error=access_denied"), "{next}");
    let response = browser.get(&next).await;
    assert!(response.status().is_client_error(), "{}", response.status());
    let html = response.text().await.expect("body");
    assert!(html.contains(LOGIN_BUTTON) && html.contains("cancelled"), "{html}");
    assert_eq!(app.user_count().await, 0);
    assert_eq!(app.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_callback_is_refused_without_a_server_error() {
    let (_db, app) = app().await;
    let browser = Browser::new();
    let callback = browser.through_provider(&app.url("/login"), "frank").await;
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    // The same browser, and another one, replay the URL.
    assert_eq!(browser.get(&callback).await.status(), StatusCode::BAD_REQUEST);
    let other = Browser::new();
    let response = other.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("body").contains("sign in again"));
    // The first browser is still signed in.
    assert!(browser.get(&app.url("/")).await.text().await.expect("body").contains("frank@example.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn next_is_kept_only_when_it_is_a_local_path() {
    let (_db, app) = app().await;
    for (next, expected) in [
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/%5Cevil.example", "/%5Cevil.example"),
        ("/somewhere?x=1", "/somewhere?x=1"),
    ] {
        let browser = Browser::new();
        let login = format!("{}?next={}", app.url("/login"), urlencode(next));
        let callback = browser.through_provider(&login, "grace").await;
        let response = browser.get(&callback).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), app.url(expected), "next={next}");
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_fails_clearly_when_the_provider_cannot_be_discovered() {
    let db = TestDb::create().await.expect("test database");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_issuer = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let client = crate::helpers::RegisteredClient { id: "id".into(), secret: "a-secret-value".into() };
    let mut settings = crate::helpers::settings(&db.url(), "http://127.0.0.1:1", &client);
    settings.oidc.issuer = dead_issuer.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = match signin::Application::build_with_listener(settings, listener).await {
        Ok(_) => panic!("the app started without its provider"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("discovery") && err.contains(&dead_issuer), "{err}");
    assert!(!err.contains("a-secret-value"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_outside_the_allowed_domains_is_refused_with_403_and_nothing_is_stored() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn_tweaked(&db.url(), |s| s.login.email_domains = vec!["example.org".into()]).await;
    let browser = Browser::new();

    let refused = browser.sign_in(&app, "rita").await; // rita@example.com at the development provider

    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.expect("body");
    assert!(page.contains("This site accepts accounts from example.org"), "{page}");
    assert!(page.contains("</html>"), "the site's own page");
    assert_eq!((app.user_count().await, app.session_count().await), (0, 0), "no row, no session");
}
