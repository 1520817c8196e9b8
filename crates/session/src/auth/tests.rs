use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use signin_domain::{Identity, ProfileClaims, User, UserId};
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, Session, SessionStore as _};

use super::{AuthSession, SignInDetails};

fn user() -> User {
    let identity = Identity::from_claims(ProfileClaims {
        issuer: "https://accounts.google.com".into(),
        subject: "1234".into(),
        email: Some("ada@example.com".into()),
        email_verified: Some(true),
        name: Some("Ada 😀".into()),
        given_name: None,
        picture: None,
    })
    .expect("valid identity");
    User {
        id: UserId::new(7),
        issuer: identity.issuer,
        subject: identity.subject,
        email: identity.email,
        name: identity.name,
        picture: identity.picture,
        created_at: Utc::now(),
        last_login_at: Utc::now(),
    }
}

/// A session as the middleware would hand it to a request that carried `id` in its cookie.
/// The absolute lifetime of the sessions these tests sign in.
const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

fn session(store: &Arc<MemoryStore>, id: Option<Id>) -> (Session, AuthSession) {
    let session = Session::new(id, store.clone(), None);
    (session.clone(), AuthSession::new(session))
}

/// Saves a session as the middleware does at the end of a request and returns its id.
async fn end_request(session: &Session) -> Id {
    session.save().await.expect("saved");
    session.id().expect("saved sessions have an id")
}

#[tokio::test]
async fn sign_in_gives_the_session_a_new_id_and_deletes_the_old_one() {
    // Arrange: a stored session, as a fixation attacker could have planted it.
    let store = Arc::new(MemoryStore::default());
    let (raw, _) = session(&store, None);
    raw.insert("planted", true).await.expect("stored");
    let before = end_request(&raw).await;

    // Act
    let ada = user();
    let (raw, auth) = session(&store, Some(before));
    auth.sign_in(&ada, SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    let after = end_request(&raw).await;

    // Assert
    assert_ne!(before, after);
    let (_, old) = session(&store, Some(before));
    assert_eq!(old.user::<User>().await.expect("read"), None, "the old id names no session any more");
    let (_, new) = session(&store, Some(after));
    assert_eq!(new.user::<User>().await.expect("read"), Some(ada));
    assert_eq!(new.csrf_token().await.expect("read").map(|t| t.len()), Some(43));
}

#[tokio::test]
async fn each_sign_in_gets_a_fresh_csrf_token() {
    let store = Arc::new(MemoryStore::default());
    let (_, first) = session(&store, None);
    let (_, second) = session(&store, None);

    first.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    second.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");

    assert_ne!(first.csrf_token().await.expect("read"), second.csrf_token().await.expect("read"));
}

#[tokio::test]
async fn csrf_verification_accepts_only_the_session_token() {
    let store = Arc::new(MemoryStore::default());
    let (_, auth) = session(&store, None);
    assert!(!auth.verify_csrf("anything").await.expect("checked"), "no token before sign-in");
    assert!(!auth.verify_csrf("").await.expect("checked"));

    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    let token = auth.csrf_token().await.expect("read").expect("a token");

    assert!(auth.verify_csrf(&token).await.expect("checked"));
    assert!(!auth.verify_csrf("").await.expect("checked"));
    assert!(!auth.verify_csrf(&token[..token.len() - 1]).await.expect("checked"));
    assert!(!auth.verify_csrf(&format!("{token}x")).await.expect("checked"));
    assert!(!auth.verify_csrf(&token.to_uppercase()).await.expect("checked"));
}

#[tokio::test]
async fn touch_writes_only_when_last_seen_is_stale() {
    // Arrange: a signed-in session, saved.
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    let id = end_request(&raw).await;

    // Act + Assert: fresh, so a touch changes nothing.
    let (raw, auth) = session(&store, Some(id));
    auth.touch(Duration::from_secs(3600)).await.expect("touched");
    assert!(!raw.is_modified(), "a fresh session is not written");

    // Act + Assert: last seen two hours ago, so a touch records now.
    let (raw, _) = session(&store, Some(id));
    let two_hours_ago = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 7_200_000;
    raw.insert("auth.seen", two_hours_ago).await.expect("stored");
    end_request(&raw).await;
    let (raw, auth) = session(&store, Some(id));
    auth.touch(Duration::from_secs(3600)).await.expect("touched");
    assert!(raw.is_modified(), "a stale session is written, which extends its expiry");
    let seen: i64 = raw.get("auth.seen").await.expect("read").expect("present");
    assert!(seen > two_hours_ago + 7_000_000);
}

#[tokio::test]
async fn current_user_reads_the_user_and_touches_a_stale_session() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    let ada = user();
    auth.sign_in(&ada, SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    let id = end_request(&raw).await;

    let (raw, auth) = session(&store, Some(id));
    let fresh: Option<User> = auth.current_user(Duration::from_secs(3600)).await.expect("read").into_user();
    assert_eq!(fresh.as_ref(), Some(&ada));
    assert!(!raw.is_modified(), "a fresh session is not written");

    let (raw, _) = session(&store, Some(id));
    raw.insert("auth.seen", time::OffsetDateTime::now_utc().unix_timestamp() * 1000 - 7_200_000).await.expect("set");
    end_request(&raw).await;
    let (raw, auth) = session(&store, Some(id));
    let stale: Option<User> = auth.current_user(Duration::from_secs(3600)).await.expect("read").into_user();
    assert_eq!(stale.as_ref(), Some(&ada));
    assert!(raw.is_modified(), "a stale session is touched");
}

#[tokio::test]
async fn current_user_of_an_anonymous_session_is_none_and_writes_nothing() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);

    let nobody: Option<User> = auth.current_user(Duration::ZERO).await.expect("read").into_user();

    assert_eq!(nobody, None);
    assert!(!raw.is_modified());
}

#[tokio::test]
async fn touch_leaves_anonymous_sessions_alone() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);

    auth.touch(Duration::ZERO).await.expect("touched");

    assert!(!raw.is_modified());
    assert!(raw.is_empty().await);
}

#[tokio::test]
async fn sign_out_deletes_the_session() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    let id = end_request(&raw).await;

    let (raw, auth) = session(&store, Some(id));
    auth.sign_out().await.expect("signed out");

    assert!(raw.is_empty().await, "an empty session makes the middleware remove the cookie");
    let (_, later) = session(&store, Some(id));
    assert_eq!(later.user::<User>().await.expect("read"), None);
}

#[tokio::test]
async fn an_unreadable_user_counts_as_signed_out() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    raw.insert("auth.user", "not a user").await.expect("stored");

    assert_eq!(auth.user::<User>().await.expect("read"), None);
    assert!(auth.is_signed_in().await.expect("read"), "kept for a service that reads it with its own type");
}

#[tokio::test]
async fn a_service_reads_the_fields_it_knows() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Slim {
        email: String,
    }
    let store = Arc::new(MemoryStore::default());
    let (_, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    assert_eq!(auth.user::<Slim>().await.expect("read"), Some(Slim { email: "ada@example.com".into() }));
}

#[tokio::test]
async fn a_new_sign_in_keeps_nothing_of_the_session_before_it() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    raw.insert("another.service", "the first person's data").await.expect("stored");
    let id = end_request(&raw).await;

    let (raw, auth) = session(&store, Some(id));
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in again");

    assert_eq!(raw.get::<String>("another.service").await.expect("read"), None);
    assert!(auth.is_signed_in().await.expect("read"));
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_is_signed_out_and_deleted() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(Duration::from_millis(50))).await.expect("signed in");
    let id = end_request(&raw).await;
    let (_, auth) = session(&store, Some(id));
    assert!(auth.is_signed_in().await.expect("read"), "signed in within the lifetime");

    tokio::time::sleep(Duration::from_millis(80)).await;
    let (_, auth) = session(&store, Some(id));
    let after: Option<User> = auth.current_user(Duration::from_secs(3600)).await.expect("read").into_user();

    assert_eq!(after, None, "used or not, a session ends with its lifetime");
    assert!(store.load(&id).await.expect("load").is_none(), "and it is deleted");
}

#[tokio::test]
async fn a_session_with_no_recorded_lifetime_is_not_signed_in() {
    let store = Arc::new(MemoryStore::default());
    let (raw, auth) = session(&store, None);
    auth.sign_in(&user(), SignInDetails::lasting(LIFETIME)).await.expect("signed in");
    raw.remove_value("auth.until").await.expect("removed");
    let id = end_request(&raw).await;

    let (_, auth) = session(&store, Some(id));

    assert!(!auth.is_signed_in().await.expect("read"));
}
