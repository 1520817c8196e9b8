//! The crate's error type.

use tower_sessions::{session, session_store};

/// Any error, boxed.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session store cannot be reached (database down, pool timed out): worth a 503.
    #[error("the session store is unavailable")]
    Unavailable(#[source] BoxError),
    /// A value could not be encoded into, or decoded from, the session.
    #[error("the session data is invalid")]
    Corrupt(#[source] BoxError),
    /// The store cannot work with the given settings (no database name in the URL, an unusable name).
    #[error("the session store is misconfigured: {0}")]
    Config(String),
}

impl From<session::Error> for SessionError {
    fn from(err: session::Error) -> Self {
        match err {
            session::Error::SerdeJson(err) => Self::Corrupt(Box::new(err)),
            session::Error::Store(err) => err.into(),
        }
    }
}

impl From<session_store::Error> for SessionError {
    fn from(err: session_store::Error) -> Self {
        match err {
            session_store::Error::Encode(_) | session_store::Error::Decode(_) => Self::Corrupt(Box::new(err)),
            session_store::Error::Backend(_) => Self::Unavailable(Box::new(err)),
        }
    }
}

impl From<sqlx::Error> for SessionError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unavailable(Box::new(err))
    }
}
