//! Accounts on hold: identities (owner keys, [`crate::owner_key`]) that must not sign in until released, e.g.
//! after the provider reported the account disabled (a RISC `account-disabled` event) and until it reports it
//! enabled again.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::MySqlPool;

use crate::BoxError;

/// Where holds live. Every instance must use the same one.
#[async_trait]
pub trait AccountHolds: Send + Sync + 'static {
    /// Puts `owner` on hold, saying why.
    async fn hold(&self, owner: &str, reason: &str) -> Result<(), BoxError>;
    /// Releases `owner`.
    async fn release(&self, owner: &str) -> Result<(), BoxError>;
    /// Whether `owner` is on hold.
    async fn is_held(&self, owner: &str) -> Result<bool, BoxError>;
}

/// Holds in MySQL: the `account_holds` table (created by the workspace migrations).
#[derive(Debug)]
pub struct MySqlAccountHolds {
    pool: MySqlPool,
}

impl MySqlAccountHolds {
    /// The holds in the database of `pool`.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AccountHolds for MySqlAccountHolds {
    async fn hold(&self, owner: &str, reason: &str) -> Result<(), BoxError> {
        let reason: String = reason.chars().take(64).collect();
        sqlx::query("REPLACE INTO account_holds (owner, reason, since) VALUES (?, ?, UTC_TIMESTAMP(6))")
            .bind(owner)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<(), BoxError> {
        sqlx::query("DELETE FROM account_holds WHERE owner = ?").bind(owner).execute(&self.pool).await?;
        Ok(())
    }

    async fn is_held(&self, owner: &str) -> Result<bool, BoxError> {
        let held: Option<i32> = sqlx::query_scalar("SELECT 1 FROM account_holds WHERE owner = ?")
            .bind(owner)
            .fetch_optional(&self.pool)
            .await?;
        Ok(held.is_some())
    }
}

/// Holds in memory, for tests and single-process services.
#[derive(Debug, Default)]
pub struct MemoryAccountHolds {
    held: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl AccountHolds for MemoryAccountHolds {
    async fn hold(&self, owner: &str, reason: &str) -> Result<(), BoxError> {
        self.held.lock().map_err(|_| "poisoned")?.insert(owner.to_owned(), reason.to_owned());
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<(), BoxError> {
        self.held.lock().map_err(|_| "poisoned")?.remove(owner);
        Ok(())
    }

    async fn is_held(&self, owner: &str) -> Result<bool, BoxError> {
        Ok(self.held.lock().map_err(|_| "poisoned")?.contains_key(owner))
    }
}
