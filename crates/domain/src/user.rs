//! A stored user.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{DisplayName, Email, Issuer, PictureUrl, Subject};

/// Our own id of a user row. It never changes, whatever the provider later says about the person.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(u64);

impl UserId {
    /// Wraps a stored id.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// A user as stored: the identity from the last sign-in, plus our bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Our id.
    pub id: UserId,
    /// The provider.
    pub issuer: Issuer,
    /// The provider's id of the person; unique per issuer.
    pub subject: Subject,
    /// The verified email address from the last sign-in.
    pub email: Email,
    /// The display name from the last sign-in.
    pub name: DisplayName,
    /// The picture from the last sign-in.
    pub picture: Option<PictureUrl>,
    /// When the row was first written.
    pub created_at: DateTime<Utc>,
    /// When the person last signed in.
    pub last_login_at: DateTime<Utc>,
}
