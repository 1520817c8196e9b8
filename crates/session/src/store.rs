//! The MySQL session store: tower-sessions-sqlx-store's `MySqlStore`, except that `save` never inserts.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, MySqlPool};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::MySqlStore;

use crate::SessionError;

/// The table the `sessions` migration creates in the app's database.
const TABLE: &str = "sessions";

/// Builds the sqlx pool the session store uses. The pool connects lazily, so start-up does not need the database;
/// getting a connection (including connecting) is bounded by `acquire_timeout`.
pub fn sqlx_pool(
    url: &SecretString,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<MySqlPool, SessionError> {
    // sqlx's parse error can quote the URL, and the URL holds the password: keep only a fixed message.
    // sqlx does not check the scheme itself.
    if !url.expose_secret().starts_with("mysql://") {
        return Err(SessionError::Config("the session database URL is not a mysql:// URL".to_owned()));
    }
    let options: MySqlConnectOptions = url
        .expose_secret()
        .parse()
        .map_err(|_| SessionError::Config("the session database URL is not a valid mysql:// URL".to_owned()))?;
    // sqlx logs every statement at INFO by default: one line per request is noise, and the log is ours to shape.
    let options = options.disable_statement_logging();
    Ok(MySqlPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options))
}

/// Sessions in the `sessions` table of the app's database.
///
/// `create`, `load`, `delete` and expired-row deletion are `MySqlStore`'s. `save` differs: `MySqlStore` upserts,
/// so a request that loaded a session before another request deleted it (sign-out, id cycling) would write the
/// session back when it finishes. Here `save` only updates a row that still exists and has not expired; a session
/// deleted meanwhile stays deleted. Records are encoded exactly as `MySqlStore` encodes them (MessagePack).
#[derive(Clone, Debug)]
pub struct MySqlSessionStore {
    inner: MySqlStore,
    pool: MySqlPool,
    /// `` `database`.`sessions` ``, checked to be a plain identifier, so safe to put in SQL.
    qualified_table: String,
}

impl MySqlSessionStore {
    /// A store over the pool, using the `sessions` table of the database named in the pool's URL.
    ///
    /// Fails when the URL names no database, or one `MySqlStore` will not quote (letters, digits, `_` and `$`
    /// only, not starting with a digit).
    pub fn new(pool: MySqlPool) -> Result<Self, SessionError> {
        let database = pool
            .connect_options()
            .get_database()
            .map(ToOwned::to_owned)
            .ok_or_else(|| SessionError::Config("the session database URL names no database".to_owned()))?;
        // MySqlStore defaults to a database of its own (`tower_sessions`); point it at the app's instead.
        let inner = MySqlStore::new(pool.clone())
            .with_schema_name(&database)
            .and_then(|store| store.with_table_name(TABLE))
            .map_err(SessionError::Config)?;
        Ok(Self { inner, pool, qualified_table: format!("`{database}`.`{TABLE}`") })
    }

    /// Whether the database answers; used by the readiness check.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<(), SessionError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn backend(err: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

#[async_trait]
impl SessionStore for MySqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.inner.create(record).await
    }

    #[tracing::instrument(skip_all)]
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = rmp_serde::to_vec(record).map_err(|err| session_store::Error::Encode(err.to_string()))?;
        // FORCE INDEX (PRIMARY): with the `expiry_date > ?` condition the optimizer sometimes walks the
        // expiry-date index instead, locking index entries of other sessions before the row itself. A concurrent
        // `DELETE … WHERE id = ?` (sign-out) locks the row first and then its index entry: the opposite order, so
        // the two deadlocked and the request failed with a 500 (seen with requests in flight during a sign-out).
        // Through the primary key every writer locks the row first.
        let query = format!(
            "UPDATE {table} FORCE INDEX (PRIMARY) SET data = ?, expiry_date = ? WHERE id = ? AND expiry_date > ?",
            table = self.qualified_table
        );
        let updated = sqlx::query(&query)
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .bind(OffsetDateTime::now_utc())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if updated.rows_affected() == 0 {
            // Deleted (signed out, id cycled, swept) while this request ran. Not an error: the caller's cookie now
            // names no session, which reads as an empty one on the next request.
            tracing::debug!("session was deleted while in use; not writing it back");
        }
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        match self.inner.load(session_id).await {
            Err(session_store::Error::Decode(err)) => {
                // A record this version cannot read (corrupted, or written by an incompatible version) is treated
                // as no session at all: the visitor starts afresh instead of being stuck with failing requests.
                tracing::warn!(error = %err, "undecodable session record; treating it as absent");
                Ok(None)
            }
            other => other,
        }
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.inner.delete(session_id).await
    }
}

#[async_trait]
impl ExpiredDeletion for MySqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.inner.delete_expired().await
    }
}
