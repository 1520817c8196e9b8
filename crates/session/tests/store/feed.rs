//! The MySQL change feed and the cache over the MySQL store, against a real MariaDB.

use std::sync::Arc;
use std::time::Duration;

use signin_session::{CacheSettings, CachedStore, Change, ChangeFeed, MySqlChangeFeed};
use tower_sessions::SessionStore;
use tower_sessions::session::Id;

use crate::{Fixture, record};

#[tokio::test(flavor = "multi_thread")]
async fn a_change_published_by_one_instance_is_read_once_by_another() {
    let fx = Fixture::new().await;
    let publisher = MySqlChangeFeed::new(fx.pool.clone());
    let reader = MySqlChangeFeed::new(fx.pool.clone());
    assert!(reader.changes().await.expect("first read").is_empty(), "the first read only marks the start");
    let (one, two) = (Id::default(), Id::default());

    publisher.publish(&one).await.expect("published");
    publisher.publish(&two).await.expect("published");
    let first = reader.changes().await.expect("read");
    let again = reader.changes().await.expect("read");

    assert_eq!(first, [Change::Session(one), Change::Session(two)]);
    assert!(again.is_empty(), "rows already read are not reported twice, though each read looks back a little");
    let mut before_start = MySqlChangeFeed::new(fx.pool.clone()).changes().await.expect("first read");
    before_start.retain(|change| *change == Change::Session(one));
    assert!(before_start.is_empty(), "a new reader starts now, not at the beginning of the feed");
}

#[tokio::test(flavor = "multi_thread")]
async fn pruning_keeps_recent_changes() {
    let fx = Fixture::new().await;
    let feed = MySqlChangeFeed::new(fx.pool.clone());
    feed.publish(&Id::default()).await.expect("published");
    sqlx::query(
        "INSERT INTO session_changes (id, changed_at) VALUES ('AAAAAAAAAAAAAAAAAAAAAA', NOW(6) - INTERVAL 1 HOUR)",
    )
    .execute(&fx.pool)
    .await
    .expect("an old change");

    feed.prune().await.expect("pruned");

    let left: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM session_changes").fetch_one(&fx.pool).await.expect("count");
    assert_eq!(left, 1, "the hour-old change is gone, the new one stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_through_one_cached_store_reaches_the_other() {
    let fx = Fixture::new().await;
    let settings = CacheSettings { coherence: Duration::from_secs(5), ..CacheSettings::default() };
    let a = CachedStore::new(fx.store.clone(), Arc::new(MySqlChangeFeed::new(fx.pool.clone())), settings.clone());
    let b = CachedStore::new(fx.store.clone(), Arc::new(MySqlChangeFeed::new(fx.pool.clone())), settings);
    a.read_feed().await;
    b.read_feed().await;
    let mut rec = record("v", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert!(b.load(&rec.id).await.expect("load").is_some());

    a.delete(&rec.id).await.expect("deleted");
    assert!(b.load(&rec.id).await.expect("load").is_some(), "B still has it cached until it reads the feed");
    b.read_feed().await;

    assert!(b.load(&rec.id).await.expect("load").is_none(), "after reading the feed B refuses it");
    assert_eq!(fx.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_entry_for_all_sessions_reads_as_all() {
    let fx = Fixture::new().await;
    let reader = MySqlChangeFeed::new(fx.pool.clone());
    reader.changes().await.expect("first read");

    sqlx::query("INSERT INTO session_changes (id) VALUES ('*')").execute(&fx.pool).await.expect("inserted");

    assert_eq!(reader.changes().await.expect("read"), [Change::All]);
}
