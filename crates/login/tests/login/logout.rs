//! Sign-out, and its CSRF checks.

use axum::http::StatusCode;

use crate::support::{Reply, SESSION_COOKIE, Site};

/// A signed-in site, the session cookie and the session's CSRF token (as a page would put it in its form).
async fn signed_in() -> (Site, String, String) {
    let site = Site::new();
    let session = site.sign_in().await;
    let form = site.get("/form", Some(&session)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    (site, session, form.body)
}

#[track_caller]
fn assert_refused(reply: &Reply) {
    let page = reply.assert_page(StatusCode::FORBIDDEN, "Request refused");
    assert!(!page.show_login);
    assert!(reply.set_cookie(SESSION_COOKIE).is_none(), "the session stays: {:?}", reply.set_cookies());
}

async fn assert_still_signed_in(site: &Site, session: &str) {
    let me = site.get("/me", Some(session)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(site.store.records().await.len(), 1);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let (site, session, token) = signed_in().await;
    assert_eq!(site.store.records().await.len(), 1);
    let reply = site.logout(Some(&session), Some(&token), &[("origin", "https://example.com")]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/");
    let removal = reply.set_cookie(SESSION_COOKIE).expect("the session cookie is removed");
    assert!(removal.is_removal(), "{removal:?}");
    assert_eq!(removal.attribute("path"), Some("/"));
    // A browser ignores a `__Host-` cookie set without these, removal or not (RFC 6265bis §4.1.3.2).
    assert!(removal.has("secure") && !removal.has("domain"), "{removal:?}");
    assert_eq!(reply.set_cookies().iter().filter(|c| c.name == SESSION_COOKIE).count(), 1, "one removal");
    assert!(site.store.records().await.is_empty(), "the record is deleted");

    // A copy of the old cookie is dead, and the browser is told to drop it again.
    let me = site.get_with("/me", Some(&session), &[("sec-fetch-mode", "navigate")]).await;
    assert!(me.set_cookie(SESSION_COOKIE).is_some_and(|c| c.is_removal() && c.has("secure")), "{:?}", me.headers);
    assert_eq!(me.status, StatusCode::SEE_OTHER);
    // Not in the answer to a fetch, which may arrive after the answer of a sign-in that replaced the session.
    let fetched = site.get_with("/maybe", Some(&session), &[("sec-fetch-mode", "cors")]).await;
    assert!(fetched.set_cookie(SESSION_COOKIE).is_none(), "{:?}", fetched.headers);
    assert_eq!(me.location(), "/login?next=%2Fme");
    let maybe = site.get("/maybe", Some(&session)).await;
    assert_eq!(maybe.body, "signed out");
}

#[tokio::test]
async fn logout_with_a_wrong_or_missing_token_is_refused() {
    let (site, session, token) = signed_in().await;
    let wrong = format!("{}x", &token[..token.len() - 1]);
    assert_refused(&site.logout(Some(&session), Some(&wrong), &[]).await);
    assert_refused(&site.logout(Some(&session), Some(""), &[]).await);
    assert_refused(&site.logout(Some(&session), None, &[]).await);
    // A token of another session does not do either.
    let other = site.sign_in().await;
    let other_token = site.get("/form", Some(&other)).await.body;
    assert_ne!(other_token, token);
    assert_refused(&site.logout(Some(&session), Some(&other_token), &[]).await);
    let me = site.get("/me", Some(&session)).await;
    assert_eq!(me.status, StatusCode::OK, "still signed in");
}

#[tokio::test]
async fn logout_from_another_site_is_refused_even_with_the_token() {
    let (site, session, token) = signed_in().await;
    assert_refused(&site.logout(Some(&session), Some(&token), &[("origin", "https://evil.example")]).await);
    assert_refused(&site.logout(Some(&session), Some(&token), &[("origin", "http://example.com")]).await);
    assert_refused(&site.logout(Some(&session), Some(&token), &[("sec-fetch-site", "cross-site")]).await);
    assert_still_signed_in(&site, &session).await;
}

#[tokio::test]
async fn logout_with_a_null_origin_is_refused_even_with_the_token() {
    // Sandboxed frames, data: pages and cross-origin redirects send `Origin: null`; our own pages name the origin.
    let (site, session, token) = signed_in().await;
    assert_refused(&site.logout(Some(&session), Some(&token), &[("origin", "null")]).await);
    let same_origin = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    assert_refused(&site.logout(Some(&session), Some(&token), &same_origin).await);
    assert_still_signed_in(&site, &session).await;
    let reply = site.logout(Some(&session), Some(&token), &[("origin", "https://example.com")]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert!(site.store.records().await.is_empty());
}

#[tokio::test]
async fn a_signed_out_logout_just_goes_home() {
    let site = Site::new();
    let reply = site.logout(None, None, &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/");
    assert!(reply.set_cookies().is_empty());
    let reply = site.logout(Some("__Host-signin_session=AAAAAAAAAAAAAAAAAAAAAA"), Some("whatever"), &[]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/");
    assert!(site.store.is_untouched().await);
}

/// The `prompt` of a `/login` reply's redirect to the provider.
fn prompt_of(reply: &Reply) -> Option<String> {
    let url = url::Url::parse(reply.location()).expect("the provider's URL");
    url.query_pairs().find(|(key, _)| key == "prompt").map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn after_a_sign_out_the_next_sign_in_asks_the_provider_to_let_the_person_choose() {
    let site = Site::new();
    let first = site.get("/login", None).await;
    assert_eq!(prompt_of(&first), None, "a first sign-in asks nothing extra");
    let session = site.sign_in().await;
    let csrf = site.get("/form", Some(&session)).await.body;

    let out = site.logout(Some(&session), Some(&csrf), &[]).await;
    let marker = out
        .set_cookies()
        .into_iter()
        .find(|c| c.name.ends_with("_signed_out") && !c.is_removal())
        .expect("the sign-out is remembered in this browser");
    assert_eq!(marker.attribute("path"), Some("/login"), "only the sign-in paths see it");
    assert!(marker.has("httponly") && marker.has("secure"), "{marker:?}");

    let again = site.get("/login", Some(&marker.pair())).await;
    assert_eq!(prompt_of(&again).as_deref(), Some("login"), "the provider is asked to let the person choose");
    let started = crate::support::Started::from(again);
    let back = site
        .get(&started.callback(&site.idp.good_code()), Some(&format!("{}; {}", started.cookies(), marker.pair())))
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert!(
        back.set_cookies().iter().any(|c| c.name == marker.name && c.is_removal()),
        "a sign-in forgets the sign-out: {:?}",
        back.set_cookies()
    );
}
