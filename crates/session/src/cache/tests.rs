use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use tower_sessions::MemoryStore;

use super::*;

/// A feed in memory, shared by the "instances" of a test; reading it can be made to fail.
#[derive(Default)]
struct MemoryFeed {
    changes: Mutex<Vec<Change>>,
    /// How far each reader has read, by reader.
    read: Mutex<HashMap<usize, usize>>,
    down: AtomicBool,
}

/// One instance's view of a [`MemoryFeed`].
struct Reader {
    feed: Arc<MemoryFeed>,
    me: usize,
}

#[async_trait]
impl ChangeFeed for Reader {
    async fn publish(&self, id: &Id) -> Result<(), BoxError> {
        if self.feed.down.load(Ordering::SeqCst) {
            return Err("feed down".into());
        }
        self.feed.changes.lock().expect("lock").push(Change::Session(*id));
        Ok(())
    }

    async fn changes(&self) -> Result<Vec<Change>, BoxError> {
        if self.feed.down.load(Ordering::SeqCst) {
            return Err("feed down".into());
        }
        let all = self.feed.changes.lock().expect("lock").clone();
        let mut read = self.feed.read.lock().expect("lock");
        let from = *read.entry(self.me).or_insert(all.len());
        read.insert(self.me, all.len());
        Ok(all[from..].to_vec())
    }
}

/// A memory store that counts loads, to tell cache hits from store reads.
#[derive(Clone, Debug, Default)]
struct Counting {
    memory: MemoryStore,
    loads: Arc<AtomicUsize>,
}

impl Counting {
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl SessionStore for Counting {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.memory.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.memory.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.memory.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.memory.delete(id).await
    }
}

fn settings() -> CacheSettings {
    CacheSettings { coherence: Duration::from_millis(300), ..CacheSettings::default() }
}

/// Two instances over one store and one feed, each having read the feed once.
async fn instances(
    settings: CacheSettings,
) -> (Counting, Arc<MemoryFeed>, CachedStore<Counting>, CachedStore<Counting>) {
    let store = Counting::default();
    let feed = Arc::new(MemoryFeed::default());
    let a = CachedStore::new(store.clone(), Arc::new(Reader { feed: feed.clone(), me: 0 }), settings.clone());
    let b = CachedStore::new(store.clone(), Arc::new(Reader { feed: feed.clone(), me: 1 }), settings);
    a.read_feed().await;
    b.read_feed().await;
    (store, feed, a, b)
}

fn record(value: &str, ttl: time::Duration) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("k".to_owned(), serde_json::Value::from(value))]),
        expiry_date: OffsetDateTime::now_utc() + ttl,
    }
}

async fn value(store: &CachedStore<Counting>, id: &Id) -> Option<String> {
    store.load(id).await.expect("load").map(|r| r.data["k"].as_str().expect("a string").to_owned())
}

#[tokio::test]
async fn a_cached_session_is_served_without_reading_the_store() {
    let (store, _, a, _) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");

    for _ in 0..5 {
        assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    }

    assert_eq!(store.loads(), 0, "a session just created is served from the cache");
}

#[tokio::test]
async fn a_sign_out_on_one_instance_is_honoured_by_the_other_after_it_reads_the_feed() {
    let (store, _, a, b) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v1"), "B loads it once and caches it");
    let loads = store.loads();
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(store.loads(), loads, "the second read is a hit");

    a.delete(&rec.id).await.expect("deleted");
    assert_eq!(value(&a, &rec.id).await, None, "A forgets it at once");
    b.read_feed().await;

    assert_eq!(value(&b, &rec.id).await, None, "B refuses it after reading the feed");
}

#[tokio::test]
async fn a_change_on_one_instance_is_seen_on_the_other() {
    let (_, _, a, b) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v1"));

    let changed = Record { data: HashMap::from([("k".to_owned(), "v2".into())]), ..rec.clone() };
    a.save(&changed).await.expect("saved");
    b.read_feed().await;

    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v2"));
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn an_unreadable_feed_stops_the_cache_after_the_bound_and_it_recovers() {
    let (store, feed, a, _) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    let hits_only = store.loads();

    feed.down.store(true, Ordering::SeqCst);
    a.read_feed().await;
    tokio::time::sleep(Duration::from_millis(350)).await;

    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"), "still answered, from the store");
    assert_eq!(store.loads(), hits_only + 1, "past the bound every read goes to the store");
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(store.loads(), hits_only + 2, "and nothing read meanwhile is cached");

    feed.down.store(false, Ordering::SeqCst);
    a.read_feed().await;
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    let after = store.loads();
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(store.loads(), after, "cached again once the feed is read");
}

#[tokio::test]
async fn changes_missed_while_the_feed_was_unreadable_are_not_served() {
    let (store, feed, a, b) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v1"));

    // B cannot read the feed for longer than the bound; meanwhile the session is deleted behind its back (by a
    // store that does not publish, as a change lost with the feed would be).
    feed.down.store(true, Ordering::SeqCst);
    b.read_feed().await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    store.memory.delete(&rec.id).await.expect("deleted");
    feed.down.store(false, Ordering::SeqCst);
    b.read_feed().await;

    assert_eq!(value(&b, &rec.id).await, None, "the cache was dropped when the feed came back");
}

#[tokio::test]
async fn an_expired_session_is_not_served_from_the_cache() {
    let (_, _, a, _) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::milliseconds(200));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));

    tokio::time::sleep(Duration::from_millis(250)).await;
    a.read_feed().await;

    assert_eq!(value(&a, &rec.id).await, None);
}

#[tokio::test]
async fn turned_off_every_read_goes_to_the_store() {
    let (store, _, a, _) = instances(CacheSettings { enabled: false, ..settings() }).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");

    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));

    assert_eq!(store.loads(), 2);
    assert_eq!(a.cached_sessions(), 0);
}

#[tokio::test]
async fn before_the_feed_was_ever_read_nothing_is_served_from_the_cache() {
    let store = Counting::default();
    let feed = Arc::new(MemoryFeed::default());
    let a = CachedStore::new(store.clone(), Arc::new(Reader { feed, me: 0 }), settings());
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");

    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(store.loads(), 1);
}

#[tokio::test]
async fn a_load_that_began_before_a_drop_does_not_cache_what_it_read() {
    let (_, _, a, _) = instances(settings()).await;
    let rec = record("v1", time::Duration::hours(1));
    let epoch = a.shared.epoch.load(Ordering::SeqCst);

    a.drop_session(&rec.id);
    a.remember(&rec, epoch);

    assert!(a.shared.cache.get(&rec.id).is_none());
    a.remember(&rec, a.shared.epoch.load(Ordering::SeqCst));
    assert!(a.shared.cache.get(&rec.id).is_some(), "a load after the drop may cache");
}

#[tokio::test]
async fn the_cache_keeps_no_more_sessions_than_allowed() {
    let (_, _, a, _) = instances(CacheSettings { max_entries: 10, ..settings() }).await;
    for _ in 0..100 {
        a.create(&mut record("v", time::Duration::hours(1))).await.expect("created");
    }

    assert!(a.cached_sessions() <= 10, "{} cached", a.cached_sessions());
}

#[tokio::test]
async fn a_feed_entry_for_all_sessions_empties_every_cache() {
    let (store, feed, a, b) = instances(settings()).await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&b, &rec.id).await.as_deref(), Some("v1"));

    // An operator deletes every session in SQL and says so in the feed.
    store.memory.delete(&rec.id).await.expect("deleted behind the caches' backs");
    feed.changes.lock().expect("lock").push(Change::All);
    a.read_feed().await;
    b.read_feed().await;

    assert_eq!(value(&a, &rec.id).await, None);
    assert_eq!(value(&b, &rec.id).await, None);
}

#[tokio::test]
async fn a_cached_session_is_read_from_the_store_again_after_the_revalidation_period() {
    let store = Counting::default();
    let feed = Arc::new(MemoryFeed::default());
    let reader = Arc::new(Reader { feed, me: 0 });
    let a = CachedStore::revalidating_after(store.clone(), reader, settings(), Duration::from_millis(50));
    a.read_feed().await;
    let mut rec = record("v1", time::Duration::hours(1));
    a.create(&mut rec).await.expect("created");
    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v1"));
    assert_eq!(store.loads(), 0, "a hit while young");
    // Changed behind the cache's back (as an operator's SQL would), with no feed entry.
    let mut changed = rec.clone();
    changed.data.insert("k".to_owned(), serde_json::Value::from("v2"));
    store.memory.save(&changed).await.expect("saved");

    tokio::time::sleep(Duration::from_millis(80)).await;
    a.read_feed().await; // still fresh as far as the feed goes

    assert_eq!(value(&a, &rec.id).await.as_deref(), Some("v2"), "an old entry is read again");
    assert_eq!(store.loads(), 1);
}

#[tokio::test]
async fn the_cache_keeps_no_more_bytes_than_allowed() {
    let budget = 64 * 1024;
    let (_, _, a, _) = instances(CacheSettings { max_bytes: budget, ..settings() }).await;
    let big = "x".repeat(4000);
    for _ in 0..100 {
        a.create(&mut record(&big, time::Duration::hours(1))).await.expect("created");
    }

    assert!(a.shared.cache.weight() <= budget, "{} bytes cached", a.shared.cache.weight());
    assert!(a.cached_sessions() <= 16, "{} cached", a.cached_sessions());
    assert!(a.cached_sessions() >= 1, "it still caches what fits");
}

#[tokio::test]
async fn an_id_the_store_does_not_have_is_asked_for_once_per_coherence_bound() {
    let (store, _, a, _) = instances(settings()).await;
    let dead = Id::default();
    for _ in 0..100 {
        assert_eq!(value(&a, &dead).await, None);
    }
    assert_eq!(store.loads(), 1, "a dead cookie costs one read, not one per request");

    tokio::time::sleep(settings().coherence + Duration::from_millis(50)).await;
    a.read_feed().await;
    assert_eq!(value(&a, &dead).await, None);
    assert_eq!(store.loads(), 2, "asked again once the bound has passed");

    // Should the id come into being here, it is served at once.
    let mut rec = Record { id: dead, ..record("v1", time::Duration::hours(1)) };
    a.create(&mut rec).await.expect("created");
    assert_eq!(rec.id, dead);
    assert_eq!(value(&a, &dead).await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_change_elsewhere_ends_what_an_instance_knew_to_be_absent() {
    let (store, _, a, b) = instances(settings()).await;
    let id = Id::default();
    assert_eq!(value(&b, &id).await, None);
    let mut rec = Record { id, ..record("v1", time::Duration::hours(1)) };
    a.create(&mut rec).await.expect("created");
    a.save(&rec).await.expect("saved, and published");
    b.read_feed().await;
    let loads = store.loads();
    assert_eq!(value(&b, &id).await.as_deref(), Some("v1"), "B asks the store again");
    assert_eq!(store.loads(), loads + 1);
}

#[tokio::test]
async fn absence_is_not_remembered_while_the_feed_cannot_be_read() {
    let (store, feed, a, _) = instances(settings()).await;
    feed.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(settings().coherence + Duration::from_millis(50)).await;
    a.read_feed().await;
    let dead = Id::default();
    for _ in 0..3 {
        assert_eq!(value(&a, &dead).await, None);
    }
    assert_eq!(store.loads(), 3, "without the feed, every request asks the store");
}
