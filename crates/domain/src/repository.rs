//! The port through which the rest of the system stores users.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Identity, User, UserId};

/// Any error, boxed, as the source of a [`RepositoryError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The store cannot be reached right now (connection refused, pool timed out): worth a 503 and a retry later.
    #[error("the user store is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else.
    #[error("the user store failed")]
    Unexpected(#[source] BoxError),
}

/// Stores users.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Records a sign-in: inserts the user, or updates the stored email, name, picture and last-login time of the
    /// user with the same issuer and subject. The row's id never changes. Returns the row as stored.
    async fn record_login(&self, identity: &Identity, at: DateTime<Utc>) -> Result<User, RepositoryError>;

    /// Finds a user by id.
    async fn find(&self, id: UserId) -> Result<Option<User>, RepositoryError>;

    /// The users with this email address: one per provider account that asserted it (never merged by email).
    async fn find_by_email(&self, email: &str) -> Result<Vec<User>, RepositoryError>;

    /// Removes the user with this issuer and subject (the provider deleted the account); whether there was one.
    async fn forget(&self, issuer: &str, subject: &str) -> Result<bool, RepositoryError>;

    /// Whether the store answers; used by the readiness check.
    async fn ping(&self) -> Result<(), RepositoryError>;
}
