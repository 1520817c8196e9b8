//! The grants people made to the site at their provider: one sealed record per (issuer, subject, client), shared
//! by every session of the person and every instance. The store keeps opaque sealed bytes; what they hold, and
//! the keys that open them, are the caller's.
//!
//! Every write is a compare-and-swap on the record's version, and a refresh is a lease on the record: of any
//! number of instances that find a token expiring, one takes the lease (on the version it read, while no lease is
//! live) and refreshes; the others wait for the version to move. Writes leave the lease alone, so a sign-in that
//! writes meanwhile does not let a second refresh start; the lease ends when its holder releases it, or runs out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::MySqlPool;

use crate::BoxError;

/// The longest owner kept (an issuer and a subject); the table's column.
pub const MAX_GRANT_OWNER: usize = 512;

/// One stored grant: its version and the sealed bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredGrant {
    /// Grows with every write.
    pub version: u64,
    /// The sealed record.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for StoredGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredGrant").field("version", &self.version).field("sealed", &self.sealed.len()).finish()
    }
}

/// Where grants are kept. Every instance must use the same one.
#[async_trait]
pub trait GrantStore: Send + Sync + 'static {
    /// The grant `id`, if there is one.
    async fn get(&self, id: &str) -> Result<Option<StoredGrant>, BoxError>;
    /// Writes grant `id` of `owner`: a new one when `expected` is `None` (refused if one exists), else only if it
    /// is still at version `expected`. A lease stays as it is. Whether it was written.
    async fn put(&self, id: &str, owner: &str, sealed: &[u8], expected: Option<u64>) -> Result<bool, BoxError>;
    /// Takes the refresh lease of grant `id` at `version` for `lease`, as `holder` (a random id of the caller's):
    /// whether this caller has it (no one holds a live lease, and the grant has not moved on).
    async fn lease(&self, id: &str, version: u64, lease: Duration, holder: &str) -> Result<bool, BoxError>;
    /// Gives up the lease of grant `id`, if `holder` still holds it.
    async fn release(&self, id: &str, holder: &str) -> Result<(), BoxError>;
    /// Deletes grant `id`: only if it is still at `version` when given. Whether it was deleted.
    async fn delete(&self, id: &str, version: Option<u64>) -> Result<bool, BoxError>;
    /// Every grant of `owner`, by id.
    async fn owned_by(&self, owner: &str) -> Result<Vec<(String, StoredGrant)>, BoxError>;
}

/// Grants in MySQL: the `provider_grants` table (created by the workspace migrations).
#[derive(Debug, Clone)]
pub struct MySqlGrants {
    pool: MySqlPool,
}

impl MySqlGrants {
    /// The grants in the database of `pool`.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }
}

fn owner_column(owner: &str) -> String {
    owner.chars().take(MAX_GRANT_OWNER).collect()
}

#[async_trait]
impl GrantStore for MySqlGrants {
    async fn get(&self, id: &str) -> Result<Option<StoredGrant>, BoxError> {
        let row: Option<(u64, Vec<u8>)> = sqlx::query_as("SELECT version, sealed FROM provider_grants WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(version, sealed)| StoredGrant { version, sealed }))
    }

    async fn put(&self, id: &str, owner: &str, sealed: &[u8], expected: Option<u64>) -> Result<bool, BoxError> {
        let written = match expected {
            // A plain insert, so that only a grant already there counts as "not written" (INSERT IGNORE would
            // also swallow a value cut short).
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO provider_grants (id, owner, version, sealed, lease_until, lease, updated_at) \
                     VALUES (?, ?, 1, ?, NULL, NULL, UTC_TIMESTAMP(6))",
                )
                .bind(id)
                .bind(owner_column(owner))
                .bind(sealed)
                .execute(&self.pool)
                .await;
                match inserted {
                    Ok(done) => done.rows_affected(),
                    Err(sqlx::Error::Database(err)) if err.is_unique_violation() => 0,
                    Err(err) => return Err(err.into()),
                }
            }
            Some(version) => sqlx::query(
                "UPDATE provider_grants SET version = version + 1, sealed = ?, updated_at = UTC_TIMESTAMP(6) \
                 WHERE id = ? AND version = ?",
            )
            .bind(sealed)
            .bind(id)
            .bind(version)
            .execute(&self.pool)
            .await?
            .rows_affected(),
        };
        Ok(written == 1)
    }

    async fn lease(&self, id: &str, version: u64, lease: Duration, holder: &str) -> Result<bool, BoxError> {
        // The database's clock decides, so that instances whose clocks differ agree on when a lease has run out.
        let micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let taken = sqlx::query(
            "UPDATE provider_grants SET lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, lease = ? \
             WHERE id = ? AND version = ? AND (lease_until IS NULL OR lease_until < UTC_TIMESTAMP(6))",
        )
        .bind(micros)
        .bind(holder)
        .bind(id)
        .bind(version)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn release(&self, id: &str, holder: &str) -> Result<(), BoxError> {
        sqlx::query("UPDATE provider_grants SET lease_until = NULL, lease = NULL WHERE id = ? AND lease = ?")
            .bind(id)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete(&self, id: &str, version: Option<u64>) -> Result<bool, BoxError> {
        let deleted = match version {
            None => sqlx::query("DELETE FROM provider_grants WHERE id = ?").bind(id).execute(&self.pool).await?,
            Some(version) => {
                sqlx::query("DELETE FROM provider_grants WHERE id = ? AND version = ?")
                    .bind(id)
                    .bind(version)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(deleted.rows_affected() == 1)
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<(String, StoredGrant)>, BoxError> {
        // An `ascii_bin` column reads as bytes.
        let rows: Vec<(Vec<u8>, u64, Vec<u8>)> =
            sqlx::query_as("SELECT id, version, sealed FROM provider_grants WHERE owner = ?")
                .bind(owner_column(owner))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, version, sealed)| Some((String::from_utf8(id).ok()?, StoredGrant { version, sealed })))
            .collect())
    }
}

/// One grant in memory.
#[derive(Debug, Clone)]
struct Held {
    owner: String,
    grant: StoredGrant,
    lease: Option<(Instant, String)>,
}

/// Grants in memory, for tests and single-process services.
#[derive(Debug, Default)]
pub struct MemoryGrants {
    grants: Mutex<HashMap<String, Held>>,
}

impl MemoryGrants {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Held>>, BoxError> {
        self.grants.lock().map_err(|_| "poisoned".into())
    }
}

#[async_trait]
impl GrantStore for MemoryGrants {
    async fn get(&self, id: &str) -> Result<Option<StoredGrant>, BoxError> {
        Ok(self.lock()?.get(id).map(|held| held.grant.clone()))
    }

    async fn put(&self, id: &str, owner: &str, sealed: &[u8], expected: Option<u64>) -> Result<bool, BoxError> {
        let mut grants = self.lock()?;
        let (version, lease) = match (grants.get(id), expected) {
            (None, None) => (1, None),
            (Some(held), Some(expected)) if held.grant.version == expected => (expected + 1, held.lease.clone()),
            _ => return Ok(false),
        };
        let grant = StoredGrant { version, sealed: sealed.to_vec() };
        grants.insert(id.to_owned(), Held { owner: owner_column(owner), grant, lease });
        Ok(true)
    }

    async fn lease(&self, id: &str, version: u64, lease: Duration, holder: &str) -> Result<bool, BoxError> {
        let mut grants = self.lock()?;
        let now = Instant::now();
        match grants.get_mut(id) {
            Some(held)
                if held.grant.version == version && held.lease.as_ref().is_none_or(|(until, _)| *until < now) =>
            {
                held.lease = Some((now + lease, holder.to_owned()));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, id: &str, holder: &str) -> Result<(), BoxError> {
        if let Some(held) =
            self.lock()?.get_mut(id).filter(|held| held.lease.as_ref().is_some_and(|(_, h)| h == holder))
        {
            held.lease = None;
        }
        Ok(())
    }

    async fn delete(&self, id: &str, version: Option<u64>) -> Result<bool, BoxError> {
        let mut grants = self.lock()?;
        match grants.get(id) {
            Some(held) if version.is_none_or(|version| held.grant.version == version) => {
                grants.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<(String, StoredGrant)>, BoxError> {
        let owner = owner_column(owner);
        Ok(self
            .lock()?
            .iter()
            .filter(|(_, held)| held.owner == owner)
            .map(|(id, held)| (id.clone(), held.grant.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_compare_and_swap_and_one_lease_at_a_time() {
        let store = MemoryGrants::default();
        assert!(store.put("g", "iss ada", b"one", None).await.expect("put"));
        assert!(!store.put("g", "iss ada", b"again", None).await.expect("put"), "a new grant does not overwrite");
        let first = store.get("g").await.expect("get").expect("stored");
        assert_eq!(first.version, 1);

        assert!(store.lease("g", 1, Duration::from_secs(30), "r1").await.expect("lease"));
        assert!(!store.lease("g", 1, Duration::from_secs(30), "r2").await.expect("lease"), "one lease at a time");
        assert!(store.put("g", "iss ada", b"two", Some(1)).await.expect("put"));
        assert!(!store.put("g", "iss ada", b"stale", Some(1)).await.expect("put"), "a stale version is refused");
        assert!(!store.lease("g", 2, Duration::from_secs(30), "r2").await.expect("lease"), "a write keeps the lease");
        store.release("g", "r2").await.expect("release");
        assert!(!store.lease("g", 2, Duration::from_secs(30), "r2").await.expect("lease"), "only its holder ends it");
        store.release("g", "r1").await.expect("release");
        assert!(!store.lease("g", 1, Duration::from_secs(30), "r2").await.expect("lease"), "the grant moved on");
        assert!(store.lease("g", 2, Duration::ZERO, "r2").await.expect("lease"), "released");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            store.lease("g", 2, Duration::from_secs(30), "r3").await.expect("lease"),
            "an expired lease is taken over"
        );

        assert_eq!(store.owned_by("iss ada").await.expect("owned").len(), 1);
        assert!(!store.delete("g", Some(1)).await.expect("delete"), "a stale version is not deleted");
        assert!(store.delete("g", Some(2)).await.expect("delete"));
        assert!(store.get("g").await.expect("get").is_none());
    }
}
