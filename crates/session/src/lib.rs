#![doc = include_str!("../README.md")]

mod auth;
mod cache;
mod directory;
mod error;
mod grants;
mod hashed;
mod holds;
mod store;
mod used;

use std::time::Duration;

use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

pub use auth::{AuthSession, SignInDetails, StoredUser};
pub use cache::{
    ALL_SESSIONS, BoxError, CacheSettings, CachedStore, Change, ChangeFeed, MySqlChangeFeed, REVALIDATE_AFTER,
};
pub use directory::{
    DirectoryEntry, LiveSession, MAX_USER_AGENT, MemoryDirectory, MySqlSessionDirectory, SessionDirectory,
    end_all_sessions, end_provider_session, end_session, live_sessions, owner_key, provider_session_key,
};
pub use error::SessionError;
pub use grants::{GrantStore, MAX_GRANT_OWNER, MemoryGrants, MySqlGrants, StoredGrant};
pub use hashed::HashedIds;
pub use holds::{AccountHolds, MemoryAccountHolds, MySqlAccountHolds};
pub use store::{MySqlSessionStore, sqlx_pool};
pub use used::{MAX_USED_TOKEN_KEY, MemoryUsedTokens, MySqlUsedTokens, UsedTokens};

/// How the session cookie and the session lifetime behave; deserialises from the `[session]` configuration
/// section. Durations are seconds (`604800`) or forms such as `"7days"`, `"1h"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// The cookie's base name (default `signin_session`). Make it distinctive: cookies are not separated by port.
    /// A `Secure` cookie goes as `__Host-<name>` (see [`SessionSettings::cookie`]).
    pub cookie_name: String,
    /// Whether the cookie is `Secure` (default `true`; only plain-http development turns it off).
    pub secure: bool,
    /// How long a session lives without activity (default 7 days).
    #[serde(with = "signin_domain::duration")]
    pub inactivity: Duration,
    /// How long a session lives at most, however much it is used (default 30 days); after it, the person signs in
    /// again.
    #[serde(with = "signin_domain::duration")]
    pub absolute_lifetime: Duration,
    /// How stale the recorded last activity may get before a request refreshes it, which also pushes the expiry
    /// forward (default 1 hour). Larger means fewer writes, at the cost of expiry being that much less exact.
    #[serde(with = "signin_domain::duration")]
    pub touch_interval: Duration,
    /// How often expired sessions are deleted (default 1 hour).
    #[serde(with = "signin_domain::duration")]
    pub cleanup_interval: Duration,
    /// Connections of the session store's pool (default 8).
    pub pool_size: u32,
    /// The in-process cache of signed-in sessions (`[session.cache]`).
    pub cache: CacheSettings,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            cookie_name: "signin_session".to_owned(),
            secure: true,
            inactivity: Duration::from_secs(7 * 24 * 60 * 60),
            absolute_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            touch_interval: Duration::from_secs(60 * 60),
            cleanup_interval: Duration::from_secs(60 * 60),
            pool_size: 8,
            cache: CacheSettings::default(),
        }
    }
}

impl SessionSettings {
    /// Fails on settings that cannot work, naming the key.
    pub fn check(&self) -> Result<(), SessionError> {
        let name = &self.cookie_name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(SessionError::Config("session.cookie_name must be letters, digits, '-' or '_'".into()));
        }
        if self.inactivity.is_zero() {
            return Err(SessionError::Config("session.inactivity must be positive".into()));
        }
        if self.absolute_lifetime.is_zero() {
            return Err(SessionError::Config("session.absolute_lifetime must be positive".into()));
        }
        Ok(())
    }

    /// The session cookie's name as sent: `__Host-<cookie_name>` when the cookie is `Secure`, so that the browser
    /// takes it only from this very host, over https, for path `/` and no `Domain` (a sibling subdomain cannot
    /// plant one), else `cookie_name`.
    pub fn cookie(&self) -> String {
        if self.secure { format!("__Host-{}", self.cookie_name) } else { self.cookie_name.clone() }
    }
}

/// A `std` duration as the cookie library's, clamped to 10 years (nobody means longer).
fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::weeks(520)).min(time::Duration::weeks(520))
}

/// The session middleware: cookie named per settings, `HttpOnly`, `SameSite=Lax` (the provider's redirect back to
/// the callback is a cross-site navigation, which a `Strict` cookie would miss), `Secure` per settings, path `/`,
/// and expiry after `inactivity` without a change to the session (see [`AuthSession::touch`]).
pub fn session_layer<S: SessionStore + Clone>(store: S, settings: &SessionSettings) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name(settings.cookie())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(to_time(settings.inactivity)))
}

/// Deletes expired sessions every `every` (at least one second apart), starting one period after the call.
/// A failed sweep is logged and the loop carries on; abort the handle to stop it.
pub fn spawn_expired_cleanup<S>(store: S, every: Duration) -> tokio::task::JoinHandle<()>
where
    S: ExpiredDeletion + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every.max(Duration::from_secs(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // The first tick is immediate; the app has just started.
        loop {
            interval.tick().await;
            match store.delete_expired().await {
                Ok(()) => tracing::debug!("expired sessions deleted"),
                Err(err) => tracing::warn!(error = %err, "deleting expired sessions failed; will retry"),
            }
        }
    })
}
