//! Signed-in sessions at memory speed: an in-process cache in front of a session store, kept coherent across
//! instances by a change feed.
//!
//! Every change to a stored session through this store (a sign-out, an id rotation, a touch) drops it from the local
//! cache at once and is published to the feed; every instance reads the feed several times per coherence bound and
//! drops what changed elsewhere. A read is answered from the cache only while the last successful read of the feed
//! started less than the bound ago: when the feed cannot be read (the database is down), cached sessions stop being
//! served after the bound and every request goes to the store. Fail closed, never stale.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quick_cache::sync::Cache;
use quick_cache::{UnitWeighter, Weighter};
use serde::Deserialize;
use sqlx::MySqlPool;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How long changes stay in the MySQL feed: far longer than any instance takes between two reads of it.
const FEED_RETENTION_SECS: u32 = 300;
/// How far back each read of the MySQL feed looks beyond the previous one, for changes committed late.
const FEED_OVERLAP: Duration = Duration::from_secs(2);
/// How often the feed is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long a cached session is served before it is read from the store again, whatever the feed says: a change
/// made outside this store (an operator's `DELETE FROM sessions`) is honoured at the latest after this.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(5 * 60);
/// The id a feed row carries to mean "every session": `INSERT INTO session_changes (id) VALUES ('*')` empties every
/// instance's cache within the coherence bound (after changing sessions in SQL, for instance).
pub const ALL_SESSIONS: &str = "*";

/// One entry of the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This stored session changed or is gone.
    Session(Id),
    /// Anything may have changed: drop every cached session.
    All,
}

/// The `[session.cache]` settings. Durations are seconds or forms such as `"1s"`, `"500ms"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether signed-in sessions are cached (default `true`). Off, every request reads the store.
    pub enabled: bool,
    /// Most sessions kept (default 100,000).
    pub max_entries: u64,
    /// Most bytes of cached sessions kept: each weighs its record as encoded for the store plus about 100 bytes of
    /// bookkeeping (default 48 MiB: 100,000 sessions of up to about 400 bytes).
    pub max_bytes: u64,
    /// How soon a change on one instance is honoured by every other (default 1 s); also how long cached sessions
    /// are still served after the feed could last be read.
    #[serde(with = "signin_domain::duration")]
    pub coherence: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { enabled: true, max_entries: 100_000, max_bytes: 48 * 1024 * 1024, coherence: Duration::from_secs(1) }
    }
}

impl CacheSettings {
    /// Whether sessions are cached: enabled, with room, and a coherence bound.
    pub fn active(&self) -> bool {
        self.enabled && self.max_entries > 0 && self.max_bytes > 0 && !self.coherence.is_zero()
    }
}

/// Where instances tell each other which stored sessions changed.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// Records that the stored session `id` changed or is gone.
    async fn publish(&self, id: &Id) -> Result<(), BoxError>;

    /// What changed since the previous call; the first call only marks where reading starts.
    async fn changes(&self) -> Result<Vec<Change>, BoxError>;

    /// Forgets changes too old to matter; called about once a minute.
    async fn prune(&self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// The change feed in MySQL: the `session_changes` table (created by the workspace migrations).
///
/// Each read asks for the rows changed since a little before the previous read (auto-increment values are handed
/// out before commit, so a row can become visible after a later one) and skips the rows it has already seen.
pub struct MySqlChangeFeed {
    pool: MySqlPool,
    cursor: tokio::sync::Mutex<Option<FeedCursor>>,
}

struct FeedCursor {
    /// The database's time at the previous read.
    read_at: OffsetDateTime,
    /// Rows already reported that a later read may see again: sequence number and time.
    seen: Vec<(u64, OffsetDateTime)>,
}

impl MySqlChangeFeed {
    /// The feed in the database of `pool`.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool, cursor: tokio::sync::Mutex::new(None) }
    }
}

impl fmt::Debug for MySqlChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MySqlChangeFeed")
    }
}

#[async_trait]
impl ChangeFeed for MySqlChangeFeed {
    async fn publish(&self, id: &Id) -> Result<(), BoxError> {
        sqlx::query("INSERT INTO session_changes (id) VALUES (?)").bind(id.to_string()).execute(&self.pool).await?;
        Ok(())
    }

    async fn changes(&self) -> Result<Vec<Change>, BoxError> {
        let mut cursor = self.cursor.lock().await;
        let now: OffsetDateTime = sqlx::query_scalar("SELECT CAST(NOW(6) AS DATETIME(6))")
            .fetch_one(&self.pool)
            .await
            .map(|now: time::PrimitiveDateTime| now.assume_utc())?;
        let Some(previous) = cursor.as_mut() else {
            *cursor = Some(FeedCursor { read_at: now, seen: Vec::new() });
            return Ok(Vec::new());
        };
        let since = previous.read_at - FEED_OVERLAP;
        let rows: Vec<(u64, String, time::PrimitiveDateTime)> = sqlx::query_as(
            "SELECT seq, CAST(id AS CHAR), CAST(changed_at AS DATETIME(6)) FROM session_changes WHERE changed_at > ? \
             ORDER BY seq",
        )
        .bind(time::PrimitiveDateTime::new(since.date(), since.time()))
        .fetch_all(&self.pool)
        .await?;
        let mut changed = Vec::new();
        for (seq, id, at) in rows {
            if previous.seen.iter().any(|(seen, _)| *seen == seq) {
                continue;
            }
            previous.seen.push((seq, at.assume_utc()));
            if id == ALL_SESSIONS {
                changed.push(Change::All);
            } else if let Ok(id) = id.parse::<Id>() {
                changed.push(Change::Session(id));
            }
            // Any other id names no session this store can hold: nothing to drop.
        }
        let horizon = now - FEED_OVERLAP;
        previous.seen.retain(|(_, at)| *at > horizon);
        previous.read_at = now;
        Ok(changed)
    }

    async fn prune(&self) -> Result<(), BoxError> {
        sqlx::query("DELETE FROM session_changes WHERE changed_at < NOW(6) - INTERVAL ? SECOND")
            .bind(FEED_RETENTION_SECS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A cached session: its expiry, when it was cached, and the record as the store encodes it (MessagePack).
#[derive(Clone)]
struct Cached {
    expiry_date: OffsetDateTime,
    /// When it was read from the store, in nanoseconds after [`Shared::started`]: it is read again after
    /// [`REVALIDATE_AFTER`].
    cached_at: u64,
    encoded: Arc<[u8]>,
}

/// What an entry costs besides its encoded record: the key, the expiry, the `Arc` and the cache's own bookkeeping
/// (an estimate), so that `max_bytes` bounds the memory the cache really takes.
const CACHED_OVERHEAD: usize = 96;

/// A session weighs its encoded size, and at least its share of the byte budget (`floor`), so that the cache holds
/// at most `max_entries` sessions and at most `max_bytes` bytes.
#[derive(Clone)]
struct SessionWeight {
    floor: u64,
}

impl Weighter<Id, Cached> for SessionWeight {
    fn weight(&self, _: &Id, cached: &Cached) -> u64 {
        u64::try_from(cached.encoded.len() + CACHED_OVERHEAD).unwrap_or(u64::MAX).max(self.floor)
    }
}

/// A recent drop: the drop counter's value then, and when it happened (nanoseconds after [`Shared::started`]).
#[derive(Clone, Copy)]
struct Dropped {
    epoch: u64,
    at: u64,
}

/// A session store with an in-process cache of the sessions it loads, kept coherent by a [`ChangeFeed`]. Cheap to
/// clone; run [`CachedStore::spawn_feed_reader`] once, or nothing is ever served from the cache.
#[derive(Clone)]
pub struct CachedStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    settings: CacheSettings,
    feed: Arc<dyn ChangeFeed>,
    cache: Cache<Id, Cached, SessionWeight>,
    /// When each recently dropped session was dropped, by [`Shared::epoch`]: a load that began before that must not
    /// put what it read into the cache. Entries older than [`Shared::drop_window`] no longer count.
    dropped: Cache<Id, Dropped, UnitWeighter>,
    /// Ids the store was recently asked for and did not have (a dead or made-up cookie), with when that was found
    /// (nanoseconds after [`Shared::started`]): asked again only after the coherence bound, so that a browser that
    /// keeps sending a dead cookie does not cost a database read per request. Session ids are random and made by
    /// the store, so an absent id does not come into being later; a create or a change of it drops it here anyway.
    absent: Cache<Id, u64, UnitWeighter>,
    /// Long enough to outlast any load that began before a drop (a request is cut off after 30 s by default).
    drop_window: Duration,
    /// [`REVALIDATE_AFTER`], in nanoseconds (shorter in tests).
    revalidate_after: u64,
    /// Counts drops.
    epoch: AtomicU64,
    /// The epoch of the last drop of everything.
    dropped_all: AtomicU64,
    /// What `fresh_until` counts from.
    started: Instant,
    /// Until when the cache may answer, in nanoseconds after `started`: the start of the last successful read of
    /// the feed, plus the bound; zero before the first. Read on every request, so an atomic rather than a lock.
    fresh_until: AtomicU64,
    /// Whether the last read of the feed failed (so a failure is logged once, not on every read).
    failing: Mutex<bool>,
    /// `signin_session_cache_hits_total` and `_misses_total`, registered once.
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl<S: fmt::Debug> fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("settings", &self.shared.settings)
            .field("entries", &self.shared.cache.len())
            .finish()
    }
}

impl<S> CachedStore<S> {
    /// Caches what `inner` loads, per `settings`, coherent through `feed`.
    pub fn new(inner: S, feed: Arc<dyn ChangeFeed>, settings: CacheSettings) -> Self {
        Self::revalidating_after(inner, feed, settings, REVALIDATE_AFTER)
    }

    fn revalidating_after(inner: S, feed: Arc<dyn ChangeFeed>, settings: CacheSettings, after: Duration) -> Self {
        // quick_cache rather than moka: its bookkeeping per entry is a few dozen bytes rather than a few hundred, which
        // is most of what a cached session costs besides its record. It has no time-to-live; entries carry when they
        // were cached instead.
        let floor = (settings.max_bytes / settings.max_entries.max(1)).max(1);
        let expected = usize::try_from(settings.max_entries.clamp(1, 1 << 20)).unwrap_or(1 << 20);
        let cache = Cache::with_weighter(expected, settings.max_bytes.max(1), SessionWeight { floor });
        let dropped_cap = settings.max_entries.clamp(1024, 1 << 20);
        let dropped = Cache::with_weighter(usize::try_from(dropped_cap).unwrap_or(1024), dropped_cap, UnitWeighter);
        let absent_cap = settings.max_entries.clamp(1024, 1 << 16);
        let absent = Cache::with_weighter(usize::try_from(absent_cap).unwrap_or(1024), absent_cap, UnitWeighter);
        let drop_window = settings.coherence.saturating_mul(4).max(Duration::from_secs(60));
        let shared = Shared {
            settings,
            feed,
            cache,
            dropped,
            absent,
            drop_window,
            revalidate_after: u64::try_from(after.as_nanos()).unwrap_or(u64::MAX),
            epoch: AtomicU64::new(0),
            dropped_all: AtomicU64::new(0),
            started: Instant::now(),
            fresh_until: AtomicU64::new(0),
            failing: Mutex::new(false),
            hits: metrics::counter!("signin_session_cache_hits_total"),
            misses: metrics::counter!("signin_session_cache_misses_total"),
        };
        Self { inner, shared: Arc::new(shared) }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many sessions are cached (approximately: the cache applies evictions in the background).
    pub fn cached_sessions(&self) -> u64 {
        u64::try_from(self.shared.cache.len()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds from the store's start to `at`.
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.shared.started).as_nanos()).unwrap_or(u64::MAX)
    }

    fn fresh(&self) -> bool {
        self.shared.settings.active() && self.nanos(Instant::now()) < self.shared.fresh_until.load(Ordering::Acquire)
    }

    /// Drops a session from the cache, and keeps loads that began before from putting it back.
    fn drop_session(&self, id: &Id) {
        let epoch = self.shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.dropped.insert(*id, Dropped { epoch, at: self.nanos(Instant::now()) });
        self.shared.cache.remove(id);
        self.shared.absent.remove(id);
    }

    /// Drops every cached session, and keeps loads that began before from putting any back.
    fn drop_all(&self) {
        let epoch = self.shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.dropped_all.store(epoch, Ordering::SeqCst);
        self.shared.cache.clear();
        self.shared.absent.clear();
    }

    /// Whether `id` was found absent from the store less than the coherence bound ago.
    fn known_absent(&self, id: &Id) -> bool {
        let bound = u64::try_from(self.shared.settings.coherence.as_nanos()).unwrap_or(u64::MAX);
        match self.shared.absent.get(id) {
            Some(at) if self.nanos(Instant::now()).saturating_sub(at) < bound => true,
            Some(_) => {
                self.shared.absent.remove(id);
                false
            }
            None => false,
        }
    }

    /// Caches a record read (or written) while the drop counter stood at `epoch`, unless it was dropped since.
    fn remember(&self, record: &Record, epoch: u64) {
        let window = u64::try_from(self.shared.drop_window.as_nanos()).unwrap_or(u64::MAX);
        let dropped_since = || {
            self.shared.dropped_all.load(Ordering::SeqCst) > epoch
                || self.shared.dropped.get(&record.id).is_some_and(|dropped| {
                    dropped.epoch > epoch && self.nanos(Instant::now()).saturating_sub(dropped.at) < window
                })
        };
        if dropped_since() {
            return;
        }
        // Kept encoded: a decoded record (a map of JSON values) takes several times the memory.
        let Ok(encoded) = rmp_serde::to_vec(record) else {
            return;
        };
        let cached_at = self.nanos(Instant::now());
        let cached = Cached { expiry_date: record.expiry_date, cached_at, encoded: encoded.into() };
        self.shared.cache.insert(record.id, cached);
        // A drop between the check and the insert would otherwise be undone.
        if dropped_since() {
            self.shared.cache.remove(&record.id);
        }
    }

    async fn publish(&self, id: &Id) -> session_store::Result<()> {
        if !self.shared.settings.active() {
            return Ok(());
        }
        self.shared.feed.publish(id).await.map_err(|err| session_store::Error::Backend(err.to_string()))
    }

    /// One read of the feed: drops what changed elsewhere and, on success, lets the cache answer for another
    /// coherence bound. After a read that failed (or took longer than the bound), the whole cache is dropped, since
    /// changes may have been missed.
    pub async fn read_feed(&self) {
        let started = Instant::now();
        let changes = self.shared.feed.changes().await;
        let mut failing = self.shared.failing.lock().unwrap_or_else(PoisonError::into_inner);
        match changes {
            Ok(changed) => {
                for change in &changed {
                    match change {
                        Change::Session(id) => self.drop_session(id),
                        Change::All => self.drop_all(),
                    }
                }
                if self.shared.fresh_until.load(Ordering::Acquire) <= self.nanos(started) {
                    self.drop_all();
                }
                let until = self.nanos(started + self.shared.settings.coherence);
                self.shared.fresh_until.store(until.max(1), Ordering::Release);
                if *failing {
                    tracing::info!("the session change feed is readable again; cached sessions are served again");
                    *failing = false;
                }
            }
            Err(err) => {
                if !*failing {
                    tracing::warn!(
                        error = %err,
                        "the session change feed cannot be read; cached sessions stop being served within {:?}",
                        self.shared.settings.coherence
                    );
                    *failing = true;
                }
            }
        }
    }

    /// Reads the feed several times per coherence bound, and prunes it now and then, until the handle is aborted.
    /// Does nothing when the cache is off.
    pub fn spawn_feed_reader(&self) -> tokio::task::JoinHandle<()>
    where
        S: Clone + Send + Sync + 'static,
    {
        let store = self.clone();
        tokio::spawn(async move {
            if !store.shared.settings.active() {
                return;
            }
            let every = (store.shared.settings.coherence / 4).max(Duration::from_millis(20));
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut pruned = Instant::now();
            loop {
                interval.tick().await;
                store.read_feed().await;
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = Instant::now();
                    if let Err(err) = store.shared.feed.prune().await {
                        tracing::debug!(error = %err, "pruning the session change feed failed; will retry");
                    }
                }
            }
        })
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for CachedStore<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        self.inner.create(record).await?;
        self.shared.absent.remove(&record.id);
        if self.fresh() {
            self.remember(record, epoch);
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(record).await?;
        // Dropped rather than replaced: the store may have refused to write a session deleted meanwhile.
        self.drop_session(&record.id);
        self.publish(&record.id).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        if self.fresh()
            && let Some(cached) = self.shared.cache.get(session_id)
        {
            if cached.expiry_date > OffsetDateTime::now_utc()
                && self.nanos(Instant::now()).saturating_sub(cached.cached_at) < self.shared.revalidate_after
                && let Ok(record) = rmp_serde::from_slice::<Record>(&cached.encoded)
            {
                self.shared.hits.increment(1);
                return Ok(Some(record));
            }
            self.shared.cache.remove(session_id);
        }
        if self.fresh() && self.known_absent(session_id) {
            self.shared.hits.increment(1);
            return Ok(None);
        }
        let epoch = self.shared.epoch.load(Ordering::SeqCst);
        if self.shared.settings.active() {
            self.shared.misses.increment(1);
        }
        let loaded = self.inner.load(session_id).await?;
        match &loaded {
            Some(record) if self.fresh() => self.remember(record, epoch),
            // Unless a change of it arrived meanwhile (the epoch moved): then the store is asked next time.
            None if self.fresh() && self.shared.epoch.load(Ordering::SeqCst) == epoch => {
                self.shared.absent.insert(*session_id, self.nanos(Instant::now()));
            }
            _ => {}
        }
        Ok(loaded)
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.inner.delete(session_id).await?;
        self.drop_session(session_id);
        self.publish(session_id).await
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for CachedStore<S> {
    async fn delete_expired(&self) -> session_store::Result<()> {
        // Expired records are never served from the cache (each hit checks the expiry), so nothing to drop here.
        self.inner.delete_expired().await
    }
}

#[cfg(test)]
mod tests;
