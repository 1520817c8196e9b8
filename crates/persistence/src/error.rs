//! The crate's error type and its mapping onto the domain's [`RepositoryError`].

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::{BuildError, PoolError};
use signin_domain::RepositoryError;

/// Any error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to MySQL.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The database URL is not a `mysql://` URL.
    #[error("the database URL is invalid: {0}")]
    InvalidUrl(String),
    /// The pool could not be built from the settings.
    #[error("the connection pool could not be built")]
    PoolBuild(#[source] BuildError),
    /// No connection could be had from the pool in time (server down, pool exhausted).
    #[error("no database connection is available")]
    Pool(#[source] PoolError),
    /// A direct connection could not be opened.
    #[error("could not connect to the database")]
    Connect(#[source] ConnectionError),
    /// A direct connection did not open within the connect timeout.
    #[error("connecting to the database timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// A query failed.
    #[error("a database query failed")]
    Query(#[source] DieselError),
    /// Running the embedded migrations failed.
    #[error("running the database migrations failed")]
    Migration(#[source] BoxError),
    /// A stored row does not satisfy the domain's rules any more.
    #[error("a stored row is invalid: {0}")]
    CorruptRow(String),
}

impl From<DieselError> for PersistenceError {
    fn from(err: DieselError) -> Self {
        Self::Query(err)
    }
}

impl From<PoolError> for PersistenceError {
    fn from(err: PoolError) -> Self {
        Self::Pool(err)
    }
}

impl PersistenceError {
    /// Whether the database could not be reached, as opposed to having answered with an error.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Connect(_) | Self::ConnectTimeout(_) => true,
            Self::Query(err) => is_connection_failure(err),
            Self::InvalidUrl(_) | Self::PoolBuild(_) | Self::Migration(_) | Self::CorruptRow(_) => false,
        }
    }

    /// Whether InnoDB gave up on the statement because of lock contention; retrying it is the documented remedy.
    pub(crate) fn is_retryable(&self) -> bool {
        // diesel-async keeps only the server's message, not its code (1213 ER_LOCK_DEADLOCK, 1205
        // ER_LOCK_WAIT_TIMEOUT), so match the message. MySQL and MariaDB word both the same way.
        match self {
            Self::Query(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                let message = info.message();
                message.contains("Deadlock found") || message.contains("Lock wait timeout exceeded")
            }
            _ => false,
        }
    }
}

/// A query that failed because the connection broke, not because the server refused the statement.
fn is_connection_failure(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) | DieselError::BrokenTransactionManager => {
            true
        }
        // mysql_async's I/O and driver errors reach us as `Unknown` with the driver's text.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            ["Input/output error", "Connection to the server is closed", "Pool was disconnected"]
                .iter()
                .any(|needle| message.contains(needle))
        }
        _ => false,
    }
}

impl From<PersistenceError> for RepositoryError {
    fn from(err: PersistenceError) -> Self {
        if err.is_unavailable() { Self::Unavailable(Box::new(err)) } else { Self::Unexpected(Box::new(err)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(message: &str) -> PersistenceError {
        PersistenceError::Query(DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned())))
    }

    #[test]
    fn lock_conflicts_are_retried_and_nothing_else() {
        assert!(server_error("Deadlock found when trying to get lock; try restarting transaction").is_retryable());
        assert!(server_error("Lock wait timeout exceeded; try restarting transaction").is_retryable());
        assert!(!server_error("Data too long for column 'name' at row 1").is_retryable());
        assert!(!PersistenceError::CorruptRow("x".into()).is_retryable());
    }

    #[test]
    fn broken_connections_are_unavailable_and_server_refusals_unexpected() {
        let broken = server_error("Input/output error: Connection reset by peer (os error 104)");
        assert!(matches!(RepositoryError::from(broken), RepositoryError::Unavailable(_)));
        let refused = server_error("Data too long for column 'name' at row 1");
        assert!(matches!(RepositoryError::from(refused), RepositoryError::Unexpected(_)));
        let timeout = PersistenceError::ConnectTimeout(std::time::Duration::from_secs(1));
        assert!(matches!(RepositoryError::from(timeout), RepositoryError::Unavailable(_)));
    }
}
