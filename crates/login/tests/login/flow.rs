//! The sign-in from `/login` to the session.

use axum::http::StatusCode;
use signin_login::Claims;
use tower_sessions::session::Id;

use signin_auth::AuthErrorKind;

use crate::support::{ATTEMPT_PREFIX, BINDING_COOKIE, FakeIdp, Hook, Options, SESSION_COOKIE, Site};

#[tokio::test]
async fn a_full_sign_in_sets_the_session_and_clears_the_attempt() {
    let site = Site::new();

    // `/login` sends the browser to the provider and keeps the attempt in a cookie of its own, nothing else.
    let started = site.start("/login?next=%2Fnotes", None).await;
    assert_eq!(started.url.origin().ascii_serialization(), "https://idp.example");
    for param in ["state", "nonce", "code_challenge"] {
        assert!(!started.param(param).is_empty(), "{param}");
    }
    assert_ne!(started.state(), started.param("nonce"));
    let set = started.reply.set_cookies();
    assert_eq!(set.len(), 2, "only the attempt cookie and the browser's binding: {set:?}");
    // The binding: `__Host-` (no sibling subdomain can set it), so `Path=/` and `Secure`, and no `Domain`.
    let binding = &started.binding;
    assert_eq!(binding.name, BINDING_COOKIE);
    assert_eq!(binding.attribute("path"), Some("/"));
    assert!(binding.has("secure") && binding.has("httponly") && !binding.has("domain"), "{binding:?}");
    assert_eq!(binding.attribute("samesite"), Some("Lax"));
    assert_eq!(binding.value.len(), 43, "32 random bytes");
    let attempt = &started.cookie;
    let suffix = attempt.name.strip_prefix(ATTEMPT_PREFIX).expect("named <session cookie>_login_<...>");
    assert!(!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(attempt.has("httponly"), "{attempt:?}");
    assert_eq!(attempt.attribute("samesite"), Some("Lax"));
    assert_eq!(attempt.attribute("path"), Some("/login"));
    assert_eq!(attempt.max_age(), Some(600));
    assert!(attempt.has("secure"), "the site is https: {attempt:?}");
    assert!(!attempt.value.is_empty());
    for secret in [started.state(), started.param("nonce")] {
        assert!(!attempt.value.contains(secret), "the attempt cookie is sealed");
    }
    assert!(started.reply.session_cookie().is_none());
    assert!(site.store.is_untouched().await, "an anonymous /login writes nothing on the server");
    assert!(site.idp.redeemed().is_empty());

    // The provider sends the browser back with a code and the state.
    let code = site.idp.good_code();
    let back = site.get(&started.callback(&code), Some(&started.cookies())).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), "/notes");
    let session = back.session_cookie().expect("a session cookie");
    assert!(session.has("httponly") && session.has("secure"), "{session:?}");
    assert_eq!(session.attribute("samesite"), Some("Lax"));
    assert_eq!(session.attribute("path"), Some("/"));
    session.value.parse::<Id>().expect("a session id");
    let cleared = back.set_cookie(&attempt.name).expect("the attempt cookie is cleared");
    assert!(cleared.is_removal(), "{cleared:?}");
    assert_eq!(cleared.attribute("path"), Some("/login"), "a removal needs the cookie's own path");
    assert!(cleared.value.is_empty());

    // The provider redeemed the code with this attempt's verifier and nonce.
    let redeemed = site.idp.redeemed();
    assert_eq!(redeemed.len(), 1);
    assert_eq!(redeemed[0].code, code);
    assert!(started.redeemed_by(&redeemed[0]), "{redeemed:?}");
    assert_eq!(site.store.records().await.len(), 1);

    let me = site.get("/me", Some(&session.pair())).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let claims: Claims = serde_json::from_str(&me.body).expect("claims as JSON");
    assert_eq!(claims, FakeIdp::claims());
}

#[tokio::test]
async fn a_plain_http_site_sets_no_secure_cookies() {
    let site = Site::with(Options { public_url: "http://localhost:8080", ..Options::default() });
    let started = site.start("/login", None).await;
    assert!(!started.cookie.has("secure"), "{:?}", started.cookie);
    assert_eq!(started.cookie.attribute("path"), Some("/login"));
    let back = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    assert_eq!(back.location(), "/", "no next: home");
    let session = back.session_cookie().expect("a session cookie");
    assert!(!session.has("secure"), "{session:?}");
}

#[tokio::test]
async fn next_must_be_a_local_path() {
    let site = Site::new();
    for (next, expected) in [
        ("%2F%2Fevil.example", "/"),
        ("https%3A%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("evil.example", "/"),
        ("", "/"),
        ("%2Fnotes%3Fpage%3D2", "/notes?page=2"),
    ] {
        let started = site.start(&format!("/login?next={next}"), None).await;
        let back = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{next}: {}", back.body);
        assert_eq!(back.location(), expected, "{next}");
    }
}

#[tokio::test]
async fn a_signed_in_login_goes_straight_to_next() {
    let site = Site::new();
    let session = site.sign_in().await;
    let pings = site.idp.pings();
    let reply = site.get("/login?next=%2Fnotes", Some(&session)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/notes");
    assert!(reply.attempt_cookies().is_empty());
    assert_eq!(site.idp.pings(), pings, "the provider is not needed");
}

#[tokio::test]
async fn under_a_path_prefix_every_path_carries_it() {
    let site = Site::with(Options { public_url: "https://example.com/auth/", ..Options::default() });
    assert_eq!(site.sessions.redirect_url().as_str(), "https://example.com/auth/login/callback");
    assert_eq!(site.sessions.login_url(None), "/auth/login");
    assert_eq!(site.sessions.logout_url(), "/auth/logout");

    // The proxy strips the prefix: the router sees `/login`, every path it hands out carries `/auth`.
    let started = site.start("/login?next=%2Fnotes", None).await;
    assert_eq!(started.cookie.attribute("path"), Some("/auth/login"));
    let back = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    assert_eq!(back.location(), "/auth/notes");
    let cleared = back.set_cookie(&started.cookie.name).expect("cleared");
    assert!(cleared.is_removal());
    assert_eq!(cleared.attribute("path"), Some("/auth/login"));
    let session = back.session_cookie().expect("a session cookie").pair();

    let signed_out = site.get("/me", None).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_out.location(), "/auth/login?next=%2Fme");
    let again = site.get("/login?next=%2Fnotes", Some(&session)).await;
    assert_eq!(again.location(), "/auth/notes");
}

/// Signs in with a site whose hook is `hook`.
async fn sign_in_with(hook: Hook) -> (Site, crate::support::Reply) {
    let site = Site::with(Options { hook, ..Options::default() });
    let started = site.start("/login", None).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    let cleared = reply.set_cookie(&started.cookie.name).expect("the attempt cookie is cleared");
    assert!(cleared.is_removal());
    (site, reply)
}

#[tokio::test]
async fn a_refusing_hook_gives_403_with_its_message_and_no_session() {
    let message = "This site accepts accounts from example.com";
    let (site, reply) = sign_in_with(Hook::Refuse(message)).await;
    let page = reply.assert_page(StatusCode::FORBIDDEN, "Sign-in refused");
    assert_eq!(page.message, message);
    assert!(!page.show_login);
    assert!(reply.body.contains(message), "{}", reply.body);
    assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_hook_that_finds_the_claims_unusable_gives_400() {
    let hook = Hook::Invalid { title: "Email not verified", message: "Verify your email address first." };
    let (site, reply) = sign_in_with(hook).await;
    let page = reply.assert_page(StatusCode::BAD_REQUEST, "Email not verified");
    assert_eq!(page.message, "Verify your email address first.");
    assert!(reply.body.contains("Verify your email address first."));
    assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_hook_whose_store_is_down_gives_503() {
    let (site, reply) = sign_in_with(Hook::Unavailable).await;
    reply.assert_page(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable");
    assert!(!reply.body.contains("user database"), "no internals on the page");
    assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_cancelled_sign_in_shows_the_login_page() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let uri = format!("/login/callback?error=access_denied&error_description=%3Cb%3Enope&state={}", started.state());
    let reply = site.get(&uri, Some(&started.cookies())).await;
    let page = reply.assert_page(StatusCode::FORBIDDEN, "Sign-in cancelled");
    assert!(page.show_login);
    assert!(!reply.body.contains("nope"), "error_description is never shown");
    let cleared = reply.set_cookie(&started.cookie.name).expect("the attempt cookie is cleared");
    assert!(cleared.is_removal());
    assert!(reply.session_cookie().is_none());
    assert!(site.idp.redeemed().is_empty());
}

#[tokio::test]
async fn a_valid_login_hint_reaches_the_provider_and_an_invalid_one_does_not() {
    let site = Site::new();
    let started = site.start("/login?login_hint=ada%40example.com", None).await;
    assert_eq!(started.param("login_hint"), "ada@example.com");
    let started = site.start("/login?login_hint=ada%20lovelace", None).await;
    assert!(!started.query.contains_key("login_hint"), "{}", started.url);
    let started = site.start("/login", None).await;
    assert!(!started.query.contains_key("login_hint"));
}

#[tokio::test]
async fn login_refuses_to_send_anyone_to_a_provider_that_times_out() {
    let site = Site::new();
    site.idp.set_outage(Some(AuthErrorKind::ProviderTimeout));
    let reply = site.get("/login", None).await;
    reply.assert_page(StatusCode::GATEWAY_TIMEOUT, "Sign-in provider timeout");
    assert!(reply.header("location").is_none());
    assert!(reply.set_cookies().is_empty(), "no attempt cookie: {:?}", reply.set_cookies());
    assert_eq!(site.idp.pings(), 1);
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn login_refuses_to_send_anyone_to_a_provider_that_is_down() {
    let site = Site::new();
    site.idp.set_outage(Some(AuthErrorKind::ProviderUnavailable));
    let reply = site.get("/login", None).await;
    reply.assert_page(StatusCode::BAD_GATEWAY, "Sign-in provider error");
    assert!(reply.set_cookies().is_empty());
}

#[tokio::test]
async fn a_provider_outage_at_the_callback_gives_502_and_the_next_login_checks_again() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    assert_eq!(site.idp.pings(), 1);
    let reply = site.get(&started.callback("outage"), Some(&started.cookies())).await;
    reply.assert_page(StatusCode::BAD_GATEWAY, "Sign-in provider error");
    assert!(reply.set_cookie(&started.cookie.name).expect("cleared").is_removal());
    assert!(reply.session_cookie().is_none());

    // Within the check interval a good answer would stand; the outage made it forget it.
    site.start("/login", None).await;
    assert_eq!(site.idp.pings(), 2);
    site.start("/login", None).await;
    assert_eq!(site.idp.pings(), 2, "a good answer stands for the interval");
}

#[tokio::test]
async fn session_ids_are_stored_hashed() {
    use signin_login::SessionStore as _;
    use signin_session::HashedIds;

    let site = Site::new();
    let session = site.sign_in().await;
    let (name, value) = session.split_once('=').expect("name=value");
    assert_eq!(name, SESSION_COOKIE);
    let id: Id = value.parse().expect("a session id");

    assert!(site.store.memory.load(&id).await.expect("load").is_none(), "nothing is stored under the cookie's id");
    let record = site.store.memory.load(&HashedIds::<()>::stored_id(&id)).await.expect("load").expect("stored hashed");
    assert_ne!(record.id, id);
    let claims = serde_json::to_value(FakeIdp::claims()).expect("claims as JSON");
    assert!(record.data.values().any(|value| *value == claims), "the record holds the user: {:?}", record.data);
    let records = site.store.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, HashedIds::<()>::stored_id(&id));

    let me = site.get("/me", Some(&session)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
}

#[tokio::test]
async fn an_account_outside_the_hosted_domains_gets_403_naming_them_and_no_session() {
    let site = Site::with(Options { hosted_domains: vec!["example.com".into()], ..Options::default() });

    let started = site.start("/login", None).await;
    let refused = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;

    let page = refused.assert_page(StatusCode::FORBIDDEN, "Sign-in refused");
    assert!(page.message.contains("accepts accounts from example.com"), "{}", page.message);
    assert!(refused.session_cookie().is_none(), "no session");
    assert!(site.store.is_untouched().await, "nothing stored");

    site.idp.set_hd(Some("example.com"));
    let started = site.start("/login", None).await;
    let accepted = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "a Workspace account of the domain signs in");
}

#[tokio::test]
async fn an_email_outside_the_email_domains_gets_403() {
    let site = Site::with(Options { email_domains: vec!["example.org".into()], ..Options::default() });

    let started = site.start("/login", None).await;
    let refused = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;

    let page = refused.assert_page(StatusCode::FORBIDDEN, "Sign-in refused");
    assert!(page.message.contains("example.org"), "{}", page.message);
    assert!(site.store.is_untouched().await);
    let allowed = Site::with(Options { email_domains: vec!["example.com".into()], ..Options::default() });
    allowed.sign_in().await;
}
