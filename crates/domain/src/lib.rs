#![doc = include_str!("../README.md")]

mod database;
pub mod duration;
mod identity;
mod redirect;
mod repository;
mod tally;
mod user;

pub use database::DatabaseSettings;
pub use identity::{DisplayName, Email, Identity, IdentityError, Issuer, PictureUrl, ProfileClaims, Subject};
pub use redirect::LocalPath;
pub use repository::{BoxError, RepositoryError, UserRepository};
pub use tally::Tally;
pub use user::{User, UserId};

/// A value that failed to parse into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The value is empty (after trimming, where trimming applies).
    #[error("{0} is empty")]
    Empty(&'static str),
    /// The value is longer than the type allows.
    #[error("{what} is longer than {max} characters")]
    TooLong {
        /// Which value.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The value is not in the expected form.
    #[error("{0} is malformed")]
    Malformed(&'static str),
}
