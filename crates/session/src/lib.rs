#![doc = include_str!("../README.md")]

mod auth;
mod error;
mod store;

use std::time::Duration;

use serde::Deserialize;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use auth::AuthSession;
pub use error::SessionError;
pub use store::{MySqlSessionStore, sqlx_pool};

/// How the session cookie and the session lifetime behave.
///
/// In configuration files the durations are numbers of seconds (`inactivity = 604800`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SessionSettings {
    /// The cookie's name (default `signin_session`). Make it distinctive: cookies are not separated by port.
    pub cookie_name: String,
    /// Whether the cookie is `Secure` (default `true`; only plain-http development turns it off).
    pub secure: bool,
    /// How long a session lives without activity (default 7 days).
    #[serde(deserialize_with = "seconds")]
    pub inactivity: Duration,
    /// How stale the recorded last activity may get before a request refreshes it, which also pushes the expiry
    /// forward (default 1 hour). Larger means fewer writes, at the cost of expiry being that much less exact.
    #[serde(deserialize_with = "seconds")]
    pub touch_interval: Duration,
    /// How often expired sessions are deleted (default 1 hour).
    #[serde(deserialize_with = "seconds")]
    pub cleanup_interval: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            cookie_name: "signin_session".to_owned(),
            secure: true,
            inactivity: Duration::from_secs(7 * 24 * 60 * 60),
            touch_interval: Duration::from_secs(60 * 60),
            cleanup_interval: Duration::from_secs(60 * 60),
        }
    }
}

fn seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

/// The session middleware: cookie named per settings, `HttpOnly`, `SameSite=Lax` (the provider's redirect back to
/// the callback is a cross-site navigation, which a `Strict` cookie would miss), `Secure` per settings, path `/`,
/// and expiry after `inactivity` without a change to the session (see [`AuthSession::touch`]).
pub fn session_layer(store: MySqlSessionStore, settings: &SessionSettings) -> SessionManagerLayer<MySqlSessionStore> {
    // A duration beyond what `time` can hold is clamped; nobody means "longer than 10 years" anyway.
    let inactivity = time::Duration::try_from(settings.inactivity)
        .unwrap_or(time::Duration::weeks(520))
        .min(time::Duration::weeks(520));
    SessionManagerLayer::new(store)
        .with_name(settings.cookie_name.clone())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(inactivity))
}

/// Deletes expired sessions every `every` (at least one second apart), starting one period after the call.
/// A failed sweep is logged and the loop carries on; abort the handle to stop it.
pub fn spawn_expired_cleanup(store: MySqlSessionStore, every: Duration) -> tokio::task::JoinHandle<()> {
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
