//! The typed view of a session that the web layer uses.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signin_domain::{LocalPath, User};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::SessionError;

/// The session, seen as sign-in state. Every key lives here, so nothing else spells them.
#[derive(Clone, Debug)]
pub struct AuthSession(Session);

impl AuthSession {
    /// The signed-in user.
    const USER: &'static str = "auth.user";
    /// The token forms must send back.
    const CSRF: &'static str = "auth.csrf";
    /// The state of a login in progress (state, nonce, PKCE verifier), owned by the auth crate.
    const PENDING: &'static str = "auth.pending";
    /// Where to go after the login in progress.
    const NEXT: &'static str = "auth.next";
    /// When the signed-in user was last seen, in Unix milliseconds.
    const SEEN: &'static str = "auth.seen";

    /// Wraps the request's session.
    pub fn new(session: Session) -> Self {
        Self(session)
    }

    /// The signed-in user, if any. A stored user this version cannot read counts as signed out (and is removed),
    /// so an old session never makes every request fail.
    pub async fn user(&self) -> Result<Option<User>, SessionError> {
        let Some(value) = self.0.get_value(Self::USER).await? else {
            return Ok(None);
        };
        match serde_json::from_value(value) {
            Ok(user) => Ok(Some(user)),
            Err(err) => {
                tracing::warn!(error = %err, "unreadable user in session; treating the session as signed out");
                self.0.remove_value(Self::USER).await?;
                Ok(None)
            }
        }
    }

    /// Remembers a login in progress and where to go once it is done, replacing any earlier one.
    pub async fn start_login<P: Serialize + Send + Sync>(
        &self,
        pending: &P,
        next: &LocalPath,
    ) -> Result<(), SessionError> {
        self.0.insert(Self::PENDING, pending).await?;
        self.0.insert(Self::NEXT, next).await?;
        Ok(())
    }

    /// Takes the login in progress out of the session. Both keys are removed, so a replayed callback finds
    /// nothing. A missing `next` gives the root; a pending value that does not decode gives `None`.
    pub async fn take_login<P: DeserializeOwned>(&self) -> Result<Option<(P, LocalPath)>, SessionError> {
        // Look before removing: removing marks the session modified, which would cost a write on every replay.
        if self.0.get_value(Self::PENDING).await?.is_none() && self.0.get_value(Self::NEXT).await?.is_none() {
            return Ok(None);
        }
        let pending = self.0.remove_value(Self::PENDING).await?;
        let next = self.0.remove_value(Self::NEXT).await?;
        let Some(pending) = pending else {
            return Ok(None);
        };
        let pending = match serde_json::from_value(pending) {
            Ok(pending) => pending,
            Err(err) => {
                tracing::warn!(error = %err, "unreadable login state in session; ignoring it");
                return Ok(None);
            }
        };
        let next = next.and_then(|next| serde_json::from_value(next).ok()).unwrap_or_else(LocalPath::root);
        Ok(Some((pending, next)))
    }

    /// Signs the user in: gives the session a new id (the old id, which may have been planted by an attacker, is
    /// deleted: session fixation), stores the user, a fresh CSRF token and the time last seen.
    pub async fn sign_in(&self, user: &User) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        self.0.remove_value(Self::PENDING).await?;
        self.0.remove_value(Self::NEXT).await?;
        self.0.insert(Self::USER, user).await?;
        self.0.insert(Self::CSRF, new_csrf_token()).await?;
        self.0.insert(Self::SEEN, now_unix_ms()).await?;
        Ok(())
    }

    /// The CSRF token of the signed-in session, to put in forms.
    pub async fn csrf_token(&self) -> Result<Option<String>, SessionError> {
        Ok(self.0.get::<String>(Self::CSRF).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "unreadable CSRF token in session");
            None
        }))
    }

    /// Whether `submitted` equals the session's CSRF token, compared in constant time. False when the session has
    /// no token or `submitted` is empty.
    pub async fn verify_csrf(&self, submitted: &str) -> Result<bool, SessionError> {
        let Some(expected) = self.csrf_token().await? else {
            return Ok(false);
        };
        if submitted.is_empty() || expected.is_empty() {
            return Ok(false);
        }
        Ok(expected.as_bytes().ct_eq(submitted.as_bytes()).into())
    }

    /// Signs out: deletes the session from the store and empties it, so the middleware removes the cookie.
    pub async fn sign_out(&self) -> Result<(), SessionError> {
        if self.0.id().is_none() {
            // Never stored (a browser that came without a session): there is no row to delete, and asking the
            // store to delete nothing only logs a warning.
            self.0.clear().await;
            return Ok(());
        }
        self.0.flush().await?;
        Ok(())
    }

    /// For a signed-in session last seen more than `interval` ago, records that it is seen now. That modifies the
    /// session, so the middleware saves it and pushes its expiry forward. Otherwise nothing is written, which keeps
    /// most requests free of session writes.
    pub async fn touch(&self, interval: std::time::Duration) -> Result<(), SessionError> {
        if self.0.get_value(Self::USER).await?.is_none() {
            return Ok(());
        }
        let now = now_unix_ms();
        let seen = self.0.get::<i64>(Self::SEEN).await.ok().flatten();
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if seen.is_none_or(|seen| now.saturating_sub(seen) >= interval) {
            self.0.insert(Self::SEEN, now).await?;
        }
        Ok(())
    }
}

/// 32 random bytes from the thread's CSPRNG, base64url without padding (43 characters).
fn new_csrf_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_unix_ms() -> i64 {
    // Milliseconds, not seconds: tower-sessions marks a session modified only when a value really changes, so a
    // coarser clock would make a touch within the same second of the last one a silent no-op.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
