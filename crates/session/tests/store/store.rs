use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use signin_session::{AuthSession, MySqlSessionStore, SessionError};
use tower_sessions::Session;
use tower_sessions::session_store::{ExpiredDeletion, SessionStore};

use crate::{Fixture, record};

#[tokio::test(flavor = "multi_thread")]
async fn create_load_delete_round_trip() {
    // Arrange
    let fx = Fixture::new().await;
    let mut rec = record("v", time::Duration::hours(1));

    // Act + Assert
    fx.store.create(&mut rec).await.expect("created");
    let loaded = fx.store.load(&rec.id).await.expect("loaded").expect("present");
    assert_eq!(loaded.data, rec.data);
    assert_eq!(loaded.id, rec.id);

    fx.store.delete(&rec.id).await.expect("deleted");
    assert!(fx.store.load(&rec.id).await.expect("loaded").is_none());
    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn save_updates_a_live_session() {
    let fx = Fixture::new().await;
    let mut rec = record("before", time::Duration::hours(1));
    fx.store.create(&mut rec).await.expect("created");

    let changed = tower_sessions::session::Record {
        expiry_date: rec.expiry_date + time::Duration::hours(1),
        ..record("after", time::Duration::ZERO)
    };
    let changed = tower_sessions::session::Record { id: rec.id, ..changed };
    fx.store.save(&changed).await.expect("saved");

    let loaded = fx.store.load(&rec.id).await.expect("loaded").expect("present");
    assert_eq!(loaded.data["k"], "after");
    assert_eq!(loaded.expiry_date.unix_timestamp(), changed.expiry_date.unix_timestamp());
    assert_eq!(fx.rows().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_save_after_delete_does_not_bring_the_session_back() {
    // Arrange: a live session.
    let fx = Fixture::new().await;
    let mut rec = record("signed in", time::Duration::hours(1));
    fx.store.create(&mut rec).await.expect("created");

    // Act: another request deletes it (sign-out), then a request that loaded it earlier saves it.
    fx.store.delete(&rec.id).await.expect("deleted");
    let result = fx.store.save(&rec).await;

    // Assert
    assert!(result.is_ok(), "{result:?}");
    assert!(fx.store.load(&rec.id).await.expect("loaded").is_none());
    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_logout_race_through_sessions_leaves_the_user_signed_out() {
    // Arrange: a signed-in session, and two requests carrying its cookie.
    let fx = Fixture::new().await;
    let store = Arc::new(fx.store.clone());
    let login = Session::new(None, store.clone(), None);
    login.insert("auth.user", "someone").await.expect("stored");
    login.insert("auth.until", i64::MAX).await.expect("stored");
    login.save().await.expect("saved");
    let id = login.id().expect("an id");
    let slow = Session::new(Some(id), store.clone(), None);
    let slow_auth = AuthSession::new(slow.clone());
    assert!(slow.get_value("auth.user").await.expect("loaded").is_some(), "the slow request has loaded it");

    // Act: the sign-out finishes first, then the slow request modifies its copy and is saved.
    let logout = AuthSession::new(Session::new(Some(id), store.clone(), None));
    logout.sign_out().await.expect("signed out");
    slow_auth.touch(Duration::ZERO).await.expect("touched");
    assert!(slow.is_modified());
    slow.save().await.expect("saved without error");

    // Assert
    let later = Session::new(Some(id), store, None);
    assert_eq!(later.get_value("auth.user").await.expect("loaded"), None);
    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_sessions_are_not_loaded_and_are_swept() {
    // Arrange
    let fx = Fixture::new().await;
    let mut expired = record("old", -time::Duration::minutes(1));
    let mut live = record("new", time::Duration::hours(1));
    fx.store.create(&mut expired).await.expect("created");
    fx.store.create(&mut live).await.expect("created");

    // Act + Assert
    assert!(fx.store.load(&expired.id).await.expect("loaded").is_none());
    let mut touched = expired.clone();
    touched.expiry_date = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    fx.store.save(&touched).await.expect("saved");
    assert!(fx.store.load(&expired.id).await.expect("loaded").is_none(), "saving does not revive an expired session");

    fx.store.delete_expired().await.expect("swept");
    assert_eq!(fx.rows().await, 1);
    assert!(fx.store.load(&live.id).await.expect("loaded").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cleanup_task_sweeps_in_the_background() {
    let fx = Fixture::new().await;
    let mut expired = record("old", -time::Duration::minutes(1));
    fx.store.create(&mut expired).await.expect("created");

    let task = signin_session::spawn_expired_cleanup(fx.store.clone(), Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.rows().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();

    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_get_distinct_ids() {
    let fx = Fixture::new().await;

    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = fx.store.clone();
            tokio::spawn(async move {
                let mut rec = record(&i.to_string(), time::Duration::hours(1));
                store.create(&mut rec).await.map(|()| rec.id)
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.expect("joined").expect("created"));
    }

    assert_eq!(ids.len(), 32);
    assert_eq!(fx.rows().await, 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_never_overwrites_an_existing_id() {
    let fx = Fixture::new().await;
    let mut first = record("first", time::Duration::hours(1));
    fx.store.create(&mut first).await.expect("created");

    let mut colliding = record("second", time::Duration::hours(1));
    colliding.id = first.id;
    fx.store.create(&mut colliding).await.expect("created");

    assert_ne!(colliding.id, first.id, "the store picked a new id");
    assert_eq!(fx.store.load(&first.id).await.expect("loaded").expect("present").data["k"], "first");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_record_loads_as_no_session() {
    let fx = Fixture::new().await;
    let mut rec = record("v", time::Duration::hours(1));
    fx.store.create(&mut rec).await.expect("created");
    sqlx::query("UPDATE sessions SET data = X'C1C1C1' WHERE id = ?")
        .bind(rec.id.to_string())
        .execute(&fx.pool)
        .await
        .expect("corrupted");

    assert!(fx.store.load(&rec.id).await.expect("no error").is_none());
    let auth = AuthSession::new(Session::new(Some(rec.id), Arc::new(fx.store.clone()), None));
    assert_eq!(auth.user::<serde_json::Value>().await.expect("no error"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_database_is_reported_unavailable_quickly() {
    // Arrange: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = SecretString::from(format!("mysql://root@127.0.0.1:{port}/app"));
    let pool = signin_session::sqlx_pool(&url, 2, Duration::from_secs(1)).expect("a lazy pool needs no server");
    let store = MySqlSessionStore::new(pool).expect("a store");
    let started = Instant::now();

    // Act
    let ping = store.ping().await;
    let auth = AuthSession::new(Session::new(Some(Default::default()), Arc::new(store), None));
    let user = auth.user::<serde_json::Value>().await;

    // Assert
    assert!(matches!(ping, Err(SessionError::Unavailable(_))), "{ping:?}");
    assert!(matches!(user, Err(SessionError::Unavailable(_))), "{user:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_url_without_a_database_is_refused() {
    let pool = signin_session::sqlx_pool(&SecretString::from("mysql://root@127.0.0.1:3306"), 1, Duration::from_secs(1))
        .expect("a lazy pool");
    assert!(matches!(MySqlSessionStore::new(pool), Err(SessionError::Config(_))));
    assert!(matches!(
        signin_session::sqlx_pool(&SecretString::from("postgres://x"), 1, Duration::from_secs(1)),
        Err(SessionError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_token_is_claimed_once_across_stores_and_again_once_its_record_has_expired() {
    use signin_session::{MemoryUsedTokens, MySqlUsedTokens, UsedTokens};
    let fx = Fixture::new().await;
    // Two instances: two stores over one database.
    let a = Arc::new(MySqlUsedTokens::new(fx.pool.clone()));
    let b = Arc::new(MySqlUsedTokens::new(fx.pool.clone()));
    let until = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    assert!(a.first_use("attempt x", until).await.expect("claimed"));
    assert!(!b.first_use("attempt x", until).await.expect("asked"), "the other instance sees the claim");
    assert!(!a.first_use("attempt x", until).await.expect("asked"));

    // Eight at once, on both: exactly one wins.
    let mut racing = Vec::new();
    for n in 0..8 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        racing.push(tokio::spawn(async move { store.first_use("attempt y", until).await.expect("asked") }));
    }
    let mut won = 0;
    for race in racing {
        won += usize::from(race.await.expect("joined"));
    }
    assert_eq!(won, 1);

    // A record whose time has passed no longer counts, swept or not.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    assert!(a.first_use("attempt z", soon).await.expect("claimed"));
    assert!(!b.first_use("attempt z", until).await.expect("asked"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(b.first_use("attempt z", until).await.expect("claimed again"), "the claim expired");
    assert!(!a.first_use("attempt z", until).await.expect("asked"), "and the new claim holds");

    let memory = MemoryUsedTokens::default();
    let soon = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    assert!(memory.first_use("attempt z", soon).await.expect("claimed"));
    assert!(!memory.first_use("attempt z", until).await.expect("asked"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(memory.first_use("attempt z", until).await.expect("claimed again"));
}
