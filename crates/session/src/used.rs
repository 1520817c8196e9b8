//! Tokens acted on once: the `jti`s of back-channel logout tokens and security event tokens, shared by every
//! instance, so that a token replayed to another instance is refused there too.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::MySqlPool;
use time::OffsetDateTime;

use crate::BoxError;

/// The longest key kept (an issuer and a `jti`).
pub const MAX_USED_TOKEN_KEY: usize = 512;

/// Where used tokens are recorded. Every instance must use the same one.
#[async_trait]
pub trait UsedTokens: Send + Sync + 'static {
    /// Records `key` as used until `until`; whether this was its first use. A token whose own lifetime has passed
    /// is refused before it gets here, so a record can go once `until` has passed.
    async fn first_use(&self, key: &str, until: OffsetDateTime) -> Result<bool, BoxError>;
    /// Forgets `key` again, for a token that could not be acted on (its sender retries it).
    async fn release(&self, key: &str) -> Result<(), BoxError>;
}

/// Used tokens in MySQL: the `used_tokens` table (created by the workspace migrations).
#[derive(Debug)]
pub struct MySqlUsedTokens {
    pool: MySqlPool,
    /// Claims made, for sweeping on some of them.
    claims: std::sync::atomic::AtomicU64,
}

impl MySqlUsedTokens {
    /// The used tokens in the database of `pool`.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool, claims: std::sync::atomic::AtomicU64::new(0) }
    }
}

#[async_trait]
impl UsedTokens for MySqlUsedTokens {
    async fn first_use(&self, key: &str, until: OffsetDateTime) -> Result<bool, BoxError> {
        let key: String = key.chars().take(MAX_USED_TOKEN_KEY).collect();
        let until = until.to_offset(time::UtcOffset::UTC);
        // A record past its time no longer counts, swept or not: it goes first, then the claim is an insert that
        // exactly one of any number of concurrent claims wins.
        sqlx::query("DELETE FROM used_tokens WHERE id = ? AND until < UTC_TIMESTAMP(6)")
            .bind(&key)
            .execute(&self.pool)
            .await?;
        let inserted = sqlx::query("INSERT IGNORE INTO used_tokens (id, until) VALUES (?, ?)")
            .bind(&key)
            .bind(time::PrimitiveDateTime::new(until.date(), until.time()))
            .execute(&self.pool)
            .await?
            .rows_affected();
        // Records past their time go a few at a time, on every 16th claim (not on each sign-in's way); best effort:
        // the answer stands whatever it does.
        if !self.claims.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(16) {
            return Ok(inserted == 1);
        }
        let swept =
            sqlx::query("DELETE FROM used_tokens WHERE until < UTC_TIMESTAMP(6) LIMIT 100").execute(&self.pool).await;
        if let Err(err) = swept {
            tracing::debug!(error = %err, "sweeping used tokens failed; the next use tries again");
        }
        Ok(inserted == 1)
    }

    async fn release(&self, key: &str) -> Result<(), BoxError> {
        let key: String = key.chars().take(MAX_USED_TOKEN_KEY).collect();
        sqlx::query("DELETE FROM used_tokens WHERE id = ?").bind(key).execute(&self.pool).await?;
        Ok(())
    }
}

/// Used tokens in memory, for tests and single-process services.
#[derive(Debug, Default)]
pub struct MemoryUsedTokens {
    used: Mutex<HashMap<String, OffsetDateTime>>,
}

#[async_trait]
impl UsedTokens for MemoryUsedTokens {
    async fn first_use(&self, key: &str, until: OffsetDateTime) -> Result<bool, BoxError> {
        let mut used = self.used.lock().map_err(|_| "poisoned")?;
        let now = OffsetDateTime::now_utc();
        used.retain(|_, until| *until >= now);
        // A refused claim leaves the record as it was: it does not extend it.
        match used.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(until);
                Ok(true)
            }
        }
    }

    async fn release(&self, key: &str) -> Result<(), BoxError> {
        self.used.lock().map_err(|_| "poisoned")?.remove(key);
        Ok(())
    }
}
