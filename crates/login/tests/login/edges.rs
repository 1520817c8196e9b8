//! Edges: the session store failing, a stored user of another shape, deployments sharing a key, cookies that come
//! twice, long or non-ASCII `next`, nested routers.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use signin_login::{CurrentUser, Login, Provider, SignIn, SignInError, SignedIn};
use tower::ServiceExt as _;

use crate::support::{Options, SESSION_COOKIE, Site, request, routes};

#[tokio::test]
async fn a_session_store_that_fails_to_save_the_sign_in_gives_503() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    site.store.set_down(true);

    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;

    reply.assert_page(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable");
    assert!(reply.session_cookie().is_none_or(|c| c.is_removal()), "no session for the browser");
}

#[tokio::test]
async fn a_bare_500_of_the_service_itself_is_left_as_it_is() {
    let site = Site::new();
    let app = Router::new()
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(site.sessions.layer(site.store.clone()));

    let response = app.oneshot(request(Method::GET, "/boom", None, &[], Body::empty())).await.expect("infallible");

    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "only a failed session save becomes 503");
    assert!(response.extensions().get::<signin_login::ErrorPage>().is_none());
}

#[tokio::test]
async fn the_extractors_answer_503_while_the_store_is_down() {
    let site = Site::new();
    let cookie = site.sign_in().await;
    site.store.set_down(true);

    for uri in ["/me", "/maybe", "/form", "/api/me"] {
        site.get(uri, Some(&cookie)).await.assert_page(StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable");
    }
    site.store.set_down(false);
    assert_eq!(site.get("/me", Some(&cookie)).await.status, StatusCode::OK, "back once the store is");
}

/// Another service's user, of another shape than the test service's `Claims`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Numbered {
    number: u64,
}

struct NumberEveryone;

impl SignIn for NumberEveryone {
    type User = Numbered;

    async fn sign_in(&self, _: &SignedIn, _: &dyn Provider) -> Result<Numbered, SignInError> {
        Ok(Numbered { number: 7 })
    }
}

#[tokio::test]
async fn a_stored_user_of_another_shape_does_not_lock_the_person_out() {
    // Two services on one store and cookie; the other one signed this browser in with a user of its own shape.
    let site = Site::new();
    let other = Login::builder(site.same_site(), NumberEveryone)
        .providers(vec![site.idp.clone()])
        .per_instance()
        .build()
        .expect("login");
    let other_app = Router::new().merge(other.routes()).layer(other.sessions().layer(site.store.clone()));
    let started = site.start("/login", None).await;
    let callback = started.callback(&site.idp.good_code());
    let response = other_app
        .oneshot(request(Method::GET, &callback, Some(&started.cookies()), &[], Body::empty()))
        .await
        .expect("infallible");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|set| set.starts_with(&format!("{SESSION_COOKIE}=")) && !set.contains("Max-Age=0"))
        .and_then(|set| set.split(';').next())
        .expect("the other service's session cookie")
        .to_owned();
    assert!(site.store.records().await.len() == 1, "the other service's session is stored");

    // Here that user does not read as ours: this service's page says so (no redirect back and forth), and its
    // /login starts a sign-in instead of bouncing back.
    site.get("/me", Some(&cookie)).await.assert_page(StatusCode::UNAUTHORIZED, "Sign in again");
    let again = site.start("/login?next=/me", Some(&cookie)).await;
    let reply = site.get(&again.callback(&site.idp.good_code()), Some(&format!("{cookie}; {}", again.cookies()))).await;
    assert_eq!((reply.status, reply.location()), (StatusCode::SEE_OTHER, "/me"));
    let signed_in = reply.session_cookie().expect("a new session").pair();
    assert_eq!(site.get("/me", Some(&signed_in)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_attempt_of_another_deployment_with_the_same_key_does_not_open() {
    let key = signin_login::generate_cookie_key();
    let staging =
        Options { public_url: "https://staging.example.com", keys: vec![key.clone()], ..Options::default() }.build();
    let production = Options { public_url: "https://example.com", keys: vec![key], ..Options::default() }.build();
    let started = staging.start("/login", None).await;

    let reply = production.get(&started.callback(&production.idp.good_code()), Some(&started.cookies())).await;

    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    assert!(production.idp.redeemed().is_empty(), "the code never reaches the provider");
}

#[tokio::test]
async fn a_next_too_long_for_a_cookie_falls_back_to_the_root() {
    let site = Site::new();
    // Each `"` is escaped in the sealed JSON: this `next` is a valid local path that does not fit in a cookie.
    let next = format!("/{}", "%22".repeat(1500));

    let started = site.start(&format!("/login?next={next}"), None).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;

    assert_eq!((reply.status, reply.location()), (StatusCode::SEE_OTHER, "/"));
}

#[tokio::test]
async fn a_junk_copy_of_an_attempt_cookie_does_not_hide_the_real_one() {
    let site = Site::new();
    let started = site.start("/login?next=/notes", None).await;
    let junk = format!("{}=planted-junk", started.cookie.name);

    for cookies in [format!("{junk}; {}", started.cookies()), format!("{}; {junk}", started.cookies())] {
        let again = site.start("/login?next=/notes", Some(&cookies)).await;
        assert!(
            !again.reply.set_cookies().iter().any(|c| c.name == started.cookie.name && c.is_removal()),
            "the attempt that opens is kept: {:?}",
            again.reply.set_cookies()
        );
    }
    let cookies = format!("{junk}; {}", started.cookies());
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&cookies)).await;
    assert_eq!((reply.status, reply.location()), (StatusCode::SEE_OTHER, "/notes"));
}

#[tokio::test]
async fn a_non_ascii_next_comes_back_percent_encoded() {
    let site = Site::new();
    let started = site.start("/login?next=/caf%C3%A9", None).await;

    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;

    assert_eq!((reply.status, reply.location()), (StatusCode::SEE_OTHER, "/caf%C3%A9"));
}

#[tokio::test]
async fn inside_a_nested_router_next_keeps_the_nest_prefix() {
    let site = Site::new();
    let login = Login::builder(site.same_site(), crate::support::Hook::Keep)
        .providers(vec![site.idp.clone()])
        .per_instance()
        .build()
        .expect("login");
    let nested = Router::new().route("/me", get(|CurrentUser(_): CurrentUser<signin_login::Claims>| async { "hi" }));
    let app = Router::new().nest("/app", nested).merge(routes(&login)).layer(site.sessions.layer(site.store.clone()));

    let response = app.oneshot(request(Method::GET, "/app/me", None, &[], Body::empty())).await.expect("infallible");

    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login?next=%2Fapp%2Fme");
}

#[tokio::test]
async fn oversized_callback_parameters_get_400_and_never_reach_the_provider() {
    let site = Site::new();
    for (code, state) in [("c".repeat(60_000), "s".to_owned()), ("good".to_owned(), "s".repeat(2_000))] {
        let started = site.start("/login", None).await;
        let uri = format!("/login/callback?code={code}&state={state}");

        let reply = site.get(&uri, Some(&started.cookies())).await;

        reply.assert_page(StatusCode::BAD_REQUEST, "Bad request");
    }
    assert!(site.idp.redeemed().is_empty(), "nothing is sent to the token endpoint");
}

/// What a handler of this service may ask for that the hook does not store: another service's shape.
async fn numbered(signin_login::CurrentUser(user): signin_login::CurrentUser<Numbered>) -> String {
    user.number.to_string()
}

#[tokio::test]
async fn a_handler_asking_for_a_type_the_session_does_not_hold_never_loops_and_signing_in_again_starts() {
    // The hook stores `Claims`; a page asks for `Numbered`.
    let site = Site::new();
    let app = Router::new()
        .route("/numbered", axum::routing::get(numbered))
        .merge(site.app.clone())
        .layer(site.sessions.layer(site.store.clone()));
    let cookie = site.sign_in().await;
    let get = |uri: String, cookies: String, accept: &'static str| {
        let app = app.clone();
        async move {
            let request = request(Method::GET, &uri, Some(&cookies), &[("accept", accept)], Body::empty());
            app.oneshot(request).await.expect("infallible")
        }
    };

    // Followed as a browser would: no hop leads back where it came from.
    let mut uri = "/numbered".to_owned();
    let mut seen = vec![uri.clone()];
    let answer = loop {
        let response = get(uri.clone(), cookie.clone(), "text/html").await;
        if response.status() != StatusCode::SEE_OTHER {
            break response;
        }
        let next = response.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(!next.starts_with("https://idp.example"), "no sign-in is begun unasked");
        assert!(!seen.contains(&next), "a redirect loop: {seen:?} → {next}");
        seen.push(next.clone());
        uri = next;
    };
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let page = answer.extensions().get::<signin_login::ErrorPage>().cloned().expect("a page");
    assert_eq!(page.title, "Sign in again");
    let link = page.link.expect("a way to sign in again");
    assert_eq!(link.url, "/login?next=%2Fnumbered&again=1");

    // An API client gets problem JSON with the same link, not a redirect.
    let response = get("/numbered".to_owned(), cookie.clone(), "application/json").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("a body");
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(problem["sign_in"], "/login?next=%2Fnumbered&again=1");

    // The link begins a sign-in although the person is signed in...
    let started = site.start(&link.url, Some(&cookie)).await;
    let (uri, cookies) = (started.callback(&site.idp.good_code()), format!("{cookie}; {}", started.cookies()));
    let back = site.get(&uri, Some(&cookies)).await;
    assert_eq!((back.status, back.location()), (StatusCode::SEE_OTHER, "/numbered"));
    // ... and when the page still cannot read the fresh session's user, it asks for a type the hook never stores:
    // a configuration error, with no link that would lead here once more.
    let fresh = back.session_cookie().expect("a new session").pair();
    let answer = get("/numbered".to_owned(), fresh, "text/html").await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let page = answer.extensions().get::<signin_login::ErrorPage>().cloned().expect("a page");
    assert!(page.link.is_none());
}
