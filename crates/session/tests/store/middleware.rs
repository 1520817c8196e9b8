use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use signin_domain::{Identity, ProfileClaims, User, UserId};
use signin_session::{AuthSession, HashedIds, SessionSettings};
use tokio::sync::Notify;
use tower::{Layer, Service, ServiceExt};
use tower_sessions::Session;
use tower_sessions::session::Id;

use crate::Fixture;

fn user() -> User {
    let identity = Identity::from_claims(ProfileClaims {
        issuer: "https://accounts.google.com".into(),
        subject: "1234".into(),
        email: Some("ada@example.com".into()),
        email_verified: Some(true),
        name: Some("Ada".into()),
        given_name: None,
        picture: None,
    })
    .expect("valid identity");
    User {
        id: UserId::new(1),
        issuer: identity.issuer,
        subject: identity.subject,
        email: identity.email,
        name: identity.name,
        picture: identity.picture,
        created_at: Utc::now(),
        last_login_at: Utc::now(),
    }
}

/// A tiny app standing in for the web crate: one action per path.
async fn app(req: Request<()>, slow_gate: Arc<Notify>) -> Result<Response<String>, Infallible> {
    let session = req.extensions().get::<Session>().cloned().expect("the layer adds a session");
    let auth = AuthSession::new(session);
    let body = match req.uri().path() {
        "/signin" => {
            auth.sign_in(&user(), signin_session::SignInDetails::lasting(std::time::Duration::from_secs(3600)))
                .await
                .expect("signed in");
            "signed in".to_owned()
        }
        "/me" => auth.user::<User>().await.expect("read").map_or("anonymous".to_owned(), |u| u.email.to_string()),
        "/logout" => {
            auth.sign_out().await.expect("signed out");
            "bye".to_owned()
        }
        "/slow" => {
            // Loads the session, then waits while another request signs out, then modifies it.
            let who = auth.user::<User>().await.expect("read").map_or("anonymous".to_owned(), |u| u.email.to_string());
            slow_gate.notified().await;
            auth.touch(Duration::ZERO).await.expect("touched");
            who
        }
        other => panic!("unexpected path {other}"),
    };
    Ok(Response::new(body))
}

struct Client<S> {
    service: S,
}

impl<S> Client<S>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone + Send + Sync,
{
    /// Sends a request with the given cookie header; returns the body and any Set-Cookie header.
    async fn get(&self, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
        let mut req = Request::builder().uri(path);
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        let res = self.service.clone().oneshot(req.body(()).expect("request")).await.expect("infallible");
        let set_cookie = res.headers().get(SET_COOKIE).map(|v| v.to_str().expect("ascii").to_owned());
        (res.into_body(), set_cookie)
    }
}

/// `name=value` from a Set-Cookie header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().expect("a pair").to_owned()
}

fn client(
    fx: &Fixture,
    gate: Arc<Notify>,
) -> Client<
    impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone + Send + Sync + use<>,
> {
    let layer = signin_session::session_layer(HashedIds::new(fx.store.clone()), &SessionSettings::default());
    let service = layer.layer(tower::service_fn(move |req| app(req, gate.clone())));
    Client { service }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cookie_has_the_configured_attributes() {
    let fx = Fixture::new().await;
    let client = client(&fx, Arc::new(Notify::new()));

    let (_, set_cookie) = client.get("/signin", None).await;

    let set_cookie = set_cookie.expect("a cookie is set once the session holds something");
    assert!(set_cookie.starts_with("__Host-signin_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing from {set_cookie}");
    }
    assert_eq!(fx.rows().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_create_no_session() {
    let fx = Fixture::new().await;
    let client = client(&fx, Arc::new(Notify::new()));

    let (body, set_cookie) = client.get("/me", None).await;
    let (forged, _) = client.get("/me", Some("__Host-signin_session=AAAAAAAAAAAAAAAAAAAAAA")).await;

    assert_eq!(body, "anonymous");
    assert_eq!(set_cookie, None);
    assert_eq!(forged, "anonymous");
    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_cycles_the_id_and_the_old_id_is_dead() {
    // Arrange: a session that holds something before the sign-in, as a fixation attacker could plant it.
    let fx = Fixture::new().await;
    let client = client(&fx, Arc::new(Notify::new()));
    let (_, first) = client.get("/signin", None).await;
    let first = pair(&first.expect("cookie"));

    // Act
    let (_, second) = client.get("/signin", Some(&first)).await;
    let second = pair(&second.expect("a new cookie"));

    // Assert
    assert_ne!(second, first, "session id changed at sign-in");
    assert_eq!(client.get("/me", Some(&second)).await.0, "ada@example.com");
    assert_eq!(client.get("/me", Some(&first)).await.0, "anonymous", "the earlier id is dead");
    assert_eq!(fx.rows().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_table_holds_a_hash_that_does_not_work_as_a_cookie() {
    // Arrange
    let fx = Fixture::new().await;
    let client = client(&fx, Arc::new(Notify::new()));
    let (_, set) = client.get("/signin", None).await;
    let cookie = pair(&set.expect("cookie"));
    let value = cookie.strip_prefix("__Host-signin_session=").expect("our cookie").to_owned();

    // Act: read the row as someone with a copy of the table would.
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT CAST(id AS CHAR) FROM sessions").fetch_all(&fx.pool).await.expect("ids");

    // Assert
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], value, "the cookie's value is not stored");
    let id: Id = value.parse().expect("a session id");
    assert_eq!(ids[0], HashedIds::<()>::stored_id(&id).to_string(), "its hash is");
    assert_eq!(client.get("/me", Some(&cookie)).await.0, "ada@example.com");
    let from_table = format!("__Host-signin_session={}", ids[0]);
    assert_eq!(client.get("/me", Some(&from_table)).await.0, "anonymous", "the stored id is no cookie");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_during_sign_out_does_not_sign_the_user_back_in() {
    // Arrange: a signed-in cookie.
    let fx = Fixture::new().await;
    let gate = Arc::new(Notify::new());
    let client = Arc::new(client(&fx, gate.clone()));
    let (_, signed_in) = client.get("/signin", None).await;
    let cookie = pair(&signed_in.expect("cookie"));

    // Act: a slow request loads the session; sign-out completes; the slow request then modifies and saves it.
    let slow = tokio::spawn({
        let (client, cookie) = (client.clone(), cookie.clone());
        async move { client.get("/slow", Some(&cookie)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await; // let it load the session and park at the gate
    let (_, removal) = client.get("/logout", Some(&cookie)).await;
    gate.notify_one();
    let (slow_body, _) = slow.await.expect("joined");

    // Assert
    assert_eq!(slow_body, "ada@example.com", "the slow request did see the signed-in session");
    let removal = removal.expect("the logout response removes the cookie");
    assert!(removal.contains("Max-Age=0") || removal.contains("Expires="), "{removal}");
    assert_eq!(client.get("/me", Some(&cookie)).await.0, "anonymous");
    assert_eq!(fx.rows().await, 0);
}
