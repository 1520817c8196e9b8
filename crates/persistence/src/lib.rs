#![doc = include_str!("../README.md")]

mod error;
mod repository;
mod schema;

use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

pub use error::PersistenceError;
pub use repository::MySqlUserRepository;

/// The migrations in the workspace's `migrations/` directory, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// A pool of diesel-async MySQL connections.
pub type DbPool = diesel_async::pooled_connection::deadpool::Pool<AsyncMysqlConnection>;

pub use signin_domain::DatabaseSettings;

/// Checks that the URL is a `mysql://` URL naming a database, so a typo fails at start-up.
fn checked_url(settings: &DatabaseSettings) -> Result<&str, PersistenceError> {
    let raw = settings.url.expose_secret();
    // The URL holds the password: never put it in the error.
    let url = url::Url::parse(raw).map_err(|err| PersistenceError::InvalidUrl(err.to_string()))?;
    if url.scheme() != "mysql" {
        return Err(PersistenceError::InvalidUrl(format!("scheme `{}` is not `mysql`", url.scheme())));
    }
    if url.path().trim_start_matches('/').is_empty() {
        return Err(PersistenceError::InvalidUrl("no database name in the path".to_owned()));
    }
    Ok(raw)
}

/// Builds the connection pool. No connection is opened until one is needed, so this works while the database
/// is down; every wait for a connection (a free slot, a new connection, a health check of an idle one) is bounded
/// by `connect_timeout`, so a dead database turns into an error instead of a hang.
pub fn pool(settings: &DatabaseSettings) -> Result<DbPool, PersistenceError> {
    let url = checked_url(settings)?;
    let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
    let timeout = Some(settings.connect_timeout);
    DbPool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .build()
        .map_err(PersistenceError::PoolBuild)
}

/// Applies the embedded migrations that have not been applied yet; running it again changes nothing.
///
/// Opens one connection of its own (within `connect_timeout`) and runs diesel's synchronous migration harness on
/// a blocking thread, so it works on any tokio runtime flavour.
#[tracing::instrument(skip_all)]
pub async fn run_migrations(settings: &DatabaseSettings) -> Result<(), PersistenceError> {
    let url = checked_url(settings)?;
    let conn = tokio::time::timeout(settings.connect_timeout, AsyncMysqlConnection::establish(url))
        .await
        .map_err(|_| PersistenceError::ConnectTimeout(settings.connect_timeout))?
        .map_err(PersistenceError::Connect)?;
    let applied = tokio::task::spawn_blocking(move || {
        // The wrapper drives the async connection with `Handle::block_on`, which is allowed on a blocking thread.
        let mut conn =
            diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<AsyncMysqlConnection>::from(conn);
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(PersistenceError::Migration)
    })
    .await
    .map_err(|err| PersistenceError::Migration(Box::new(err)))??;
    if applied.is_empty() {
        tracing::info!("database schema is up to date");
    } else {
        tracing::info!(migrations = ?applied, "applied database migrations");
    }
    Ok(())
}
