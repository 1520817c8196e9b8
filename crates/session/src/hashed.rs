//! A store wrapper under which the table never holds a working session token.

use std::fmt;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

/// How often `create` tries a fresh id before giving up on an inner store that never keeps the one it is given.
const CREATE_TRIES: usize = 3;

/// Keeps each session under a hash of its id: the cookie carries the id, the store sees only
/// `SHA-256(id)` (its first 128 bits, the size of tower-sessions' ids), so a row read from the table — a backup, a
/// replica, an SQL injection elsewhere — does not work as a cookie. Loaded records get the cookie's id back, so
/// everything above the store (tower-sessions, `cycle_id`, the layer) works as before.
///
/// Ids are 128 random bits; a hash of the same size keeps collisions as unlikely as before.
#[derive(Clone)]
pub struct HashedIds<S> {
    inner: S,
}

impl<S> HashedIds<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The id under which the session with cookie id `id` is stored.
    pub fn stored_id(id: &Id) -> Id {
        let digest = Sha256::digest(id.0.to_le_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Id(i128::from_le_bytes(first))
    }
}

impl<S: fmt::Debug> fmt::Debug for HashedIds<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HashedIds").field(&self.inner).finish()
    }
}

fn hashed(record: &Record) -> Record {
    Record { id: HashedIds::<()>::stored_id(&record.id), data: record.data.clone(), expiry_date: record.expiry_date }
}

#[async_trait]
impl<S: SessionStore> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_TRIES {
            let mut stored = hashed(record);
            let wanted = stored.id;
            self.inner.create(&mut stored).await?;
            if stored.id == wanted {
                return Ok(());
            }
            // The inner store found the hash taken and stored the record under an id of its own choosing, which no
            // cookie id maps to: remove it and try again with a fresh id. (With 128-bit ids this does not happen.)
            self.inner.delete(&stored.id).await?;
            record.id = Id::default();
        }
        Err(session_store::Error::Backend("the session store does not keep the ids it is given".to_owned()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(&hashed(record)).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let loaded = self.inner.load(&Self::stored_id(session_id)).await?;
        Ok(loaded.map(|record| Record { id: *session_id, ..record }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.inner.delete(&Self::stored_id(session_id)).await
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for HashedIds<S> {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.inner.delete_expired().await
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use tower_sessions::MemoryStore;

    use super::*;

    fn record() -> Record {
        let mut data = std::collections::HashMap::new();
        data.insert("k".to_owned(), serde_json::json!("v"));
        Record { id: Id::default(), data, expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1) }
    }

    #[tokio::test]
    async fn the_inner_store_sees_only_hashes() {
        let inner = MemoryStore::default();
        let store = HashedIds::new(inner.clone());
        let mut record = record();
        store.create(&mut record).await.expect("created");
        let id = record.id;
        assert!(inner.load(&id).await.expect("load").is_none(), "nothing is stored under the cookie's id");
        let stored = inner.load(&HashedIds::<()>::stored_id(&id)).await.expect("load").expect("stored under the hash");
        assert_ne!(stored.id, id);
        // Using the stored id as if it were a cookie finds nothing: it is hashed again.
        assert!(store.load(&stored.id).await.expect("load").is_none());
        let loaded = store.load(&id).await.expect("load").expect("found by the cookie id");
        assert_eq!(loaded.id, id, "the record comes back under the cookie's id");
        assert_eq!(loaded.data, record.data);
        store.delete(&id).await.expect("deleted");
        assert!(inner.load(&HashedIds::<()>::stored_id(&id)).await.expect("load").is_none());
    }

    /// A store that always stores under an id of its own choosing, as tower-sessions allows.
    #[derive(Debug, Clone, Default)]
    struct Renaming(MemoryStore);

    #[async_trait]
    impl SessionStore for Renaming {
        async fn create(&self, record: &mut Record) -> session_store::Result<()> {
            record.id = Id::default();
            self.0.create(record).await
        }
        async fn save(&self, record: &Record) -> session_store::Result<()> {
            self.0.save(record).await
        }
        async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
            self.0.load(id).await
        }
        async fn delete(&self, id: &Id) -> session_store::Result<()> {
            self.0.delete(id).await
        }
    }

    #[tokio::test]
    async fn an_inner_store_that_renames_records_is_an_error_not_a_loop() {
        let store = HashedIds::new(Renaming::default());
        let err = store.create(&mut record()).await.expect_err("gives up");
        assert!(err.to_string().contains("does not keep the ids"), "{err}");
    }

    #[test]
    fn the_hash_is_stable_and_differs_from_the_id() {
        let id = Id(42);
        assert_eq!(HashedIds::<()>::stored_id(&id), HashedIds::<()>::stored_id(&Id(42)));
        assert_ne!(HashedIds::<()>::stored_id(&id), id);
        assert_ne!(HashedIds::<()>::stored_id(&id), HashedIds::<()>::stored_id(&Id(43)));
    }
}
