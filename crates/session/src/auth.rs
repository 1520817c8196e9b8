//! The typed view of a session as sign-in state. Every key lives here, so nothing else spells them.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use tower_sessions::Session;

use crate::SessionError;

/// The session, seen as sign-in state: who is signed in (a value of the service's own user type), the CSRF token
/// for forms, and when the person was last seen. Only signed-in sessions are ever stored.
#[derive(Clone, Debug)]
pub struct AuthSession(Session);

impl AuthSession {
    /// The signed-in user.
    const USER: &'static str = "auth.user";
    /// The token forms must send back.
    const CSRF: &'static str = "auth.csrf";
    /// When the signed-in user was last seen, in Unix milliseconds.
    const SEEN: &'static str = "auth.seen";
    /// When the session's absolute lifetime ends (Unix milliseconds).
    const UNTIL: &'static str = "auth.until";
    /// Whose session it is ([`crate::owner_key`]), for the session directory.
    pub(crate) const OWNER: &'static str = "auth.owner";
    /// When the person signed in (Unix milliseconds).
    pub(crate) const SINCE: &'static str = "auth.since";
    /// The browser's `User-Agent` at sign-in.
    pub(crate) const AGENT: &'static str = "auth.agent";
    /// The provider's session the sign-in belongs to ([`crate::provider_session_key`] of the ID token's `sid`),
    /// for back-channel logout.
    pub(crate) const PROVIDER_SESSION: &'static str = "auth.psid";
    /// What signing out needs from the sign-in (tokens to revoke, the ID token for the provider's end-session
    /// endpoint): kept in the server-side record only, never in a cookie.
    const SIGN_OUT: &'static str = "auth.out";
    /// Set when the person signed in again because a page could not read the stored user.
    const AGAIN: &'static str = "auth.again";
    /// The id of the provider the person signed in with, whose grant acts for them.
    const PROVIDER: &'static str = "auth.provider";

    /// Wraps the request's session.
    pub fn new(session: Session) -> Self {
        Self(session)
    }

    /// The directory entry of a signed-in session's record, under its owner: what a store hands to
    /// [`crate::SessionDirectory::add`] when the session of a sign-in is created, without knowing the keys a
    /// sign-in writes. `None` for a record nobody owns (signed out, or signed in with no owner). `stored_id` is the
    /// record's id as the store keeps it ([`crate::HashedIds::stored_id`]).
    pub fn directory_entry(
        data: &std::collections::HashMap<String, serde_json::Value>,
        stored_id: tower_sessions::session::Id,
    ) -> Option<(String, crate::DirectoryEntry)> {
        let owner = data.get(Self::OWNER).and_then(serde_json::Value::as_str)?;
        let since = data.get(Self::SINCE).and_then(serde_json::Value::as_i64).unwrap_or_default();
        let entry = crate::DirectoryEntry {
            id: stored_id,
            signed_in_at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(since) * 1_000_000)
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
            user_agent: data.get(Self::AGENT).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
            provider_session: data.get(Self::PROVIDER_SESSION).and_then(serde_json::Value::as_str).map(str::to_owned),
        };
        Some((owner.to_owned(), entry))
    }

    /// Whether someone is signed in, whatever the stored user looks like.
    pub async fn is_signed_in(&self) -> Result<bool, SessionError> {
        Ok(self.signed_in_user().await?.is_some())
    }

    /// The stored user, when someone is signed in and the session's absolute lifetime has not ended. A session
    /// past it (or from before lifetimes were recorded) is signed out here and now: deleted from the store.
    async fn signed_in_user(&self) -> Result<Option<serde_json::Value>, SessionError> {
        let Some(value) = self.0.get_value(Self::USER).await? else {
            return Ok(None);
        };
        let until = self.0.get::<i64>(Self::UNTIL).await.ok().flatten();
        if until.is_some_and(|until| now_unix_ms() < until) {
            return Ok(Some(value));
        }
        tracing::debug!("the session's absolute lifetime has ended; signed out");
        self.sign_out().await?;
        Ok(None)
    }

    /// The signed-in user as `U`. A stored user that does not read as `U` counts as signed out for this request
    /// (it is not removed: another service sharing the session may read it with a type of its own), so an old or
    /// foreign session never makes every request fail. [`AuthSession::read_user`] tells the two apart.
    pub async fn user<U: DeserializeOwned>(&self) -> Result<Option<U>, SessionError> {
        Ok(self.read_user::<U>().await?.into_user())
    }

    /// The session's user as `U`, telling a signed-out session from one whose stored user does not read as `U`.
    pub async fn read_user<U: DeserializeOwned>(&self) -> Result<StoredUser<U>, SessionError> {
        let Some(value) = self.signed_in_user().await? else {
            return Ok(StoredUser::SignedOut);
        };
        match serde_json::from_value(value) {
            Ok(user) => Ok(StoredUser::User(user)),
            Err(err) => {
                tracing::debug!(
                    error = %err,
                    expected = std::any::type_name::<U>(),
                    "the session's user does not read as this type"
                );
                let fresh = self.0.get::<bool>(Self::AGAIN).await.ok().flatten().unwrap_or(false);
                Ok(StoredUser::Unreadable { signed_in_again: fresh })
            }
        }
    }

    /// Signs `user` in: empties the session (nothing of an earlier person, or of another service, carries over),
    /// gives it a new id (the old id, which may have been planted by an attacker, is deleted: session fixation),
    /// and stores the user, a fresh CSRF token, the time last seen and the end of its absolute `lifetime`. The
    /// session lives per the layer's inactivity expiry, and never past `lifetime`.
    pub async fn sign_in<U: Serialize + Send + Sync>(
        &self,
        user: &U,
        details: SignInDetails<'_>,
    ) -> Result<(), SessionError> {
        self.0.clear().await;
        self.0.cycle_id().await?;
        let now = now_unix_ms();
        let lifetime = i64::try_from(details.lifetime.as_millis()).unwrap_or(i64::MAX);
        self.0.insert(Self::USER, user).await?;
        self.0.insert(Self::CSRF, new_csrf_token()).await?;
        self.0.insert(Self::SEEN, now).await?;
        self.0.insert(Self::SINCE, now).await?;
        self.0.insert(Self::UNTIL, now.saturating_add(lifetime)).await?;
        if let Some(owner) = details.owner {
            self.0.insert(Self::OWNER, owner).await?;
            let agent: String = details.user_agent.chars().take(crate::MAX_USER_AGENT).collect();
            self.0.insert(Self::AGENT, agent).await?;
            if let Some(key) = details.provider_session {
                self.0.insert(Self::PROVIDER_SESSION, key).await?;
            }
        }
        if let Some(data) = details.sign_out {
            self.0.insert(Self::SIGN_OUT, data).await?;
        }
        if details.again {
            self.0.insert(Self::AGAIN, true).await?;
        }
        if let Some(provider) = details.provider {
            self.0.insert(Self::PROVIDER, provider).await?;
        }
        Ok(())
    }

    /// Who is signed in, and with which provider: the owner ([`crate::owner_key`]) and the provider's id, when
    /// someone is signed in and the sign-in recorded both.
    pub async fn signed_in_with(&self) -> Result<Option<(String, String)>, SessionError> {
        if self.signed_in_user().await?.is_none() {
            return Ok(None);
        }
        let owner = self.0.get::<String>(Self::OWNER).await.ok().flatten();
        let provider = self.0.get::<String>(Self::PROVIDER).await.ok().flatten();
        Ok(owner.zip(provider))
    }

    /// Whose session it is ([`crate::owner_key`]), when someone is signed in and it was recorded.
    pub async fn owner(&self) -> Result<Option<String>, SessionError> {
        if self.signed_in_user().await?.is_none() {
            return Ok(None);
        }
        Ok(self.0.get::<String>(Self::OWNER).await.ok().flatten())
    }

    /// The session's id as the store holds it ([`crate::HashedIds::stored_id`] of the cookie's), once it has one.
    pub fn stored_id(&self) -> Option<tower_sessions::session::Id> {
        self.0.id().map(|id| crate::HashedIds::<()>::stored_id(&id))
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

    /// What the sign-in kept for signing out ([`SignInDetails::sign_out`]), while someone is signed in.
    pub async fn sign_out_data(&self) -> Result<Option<serde_json::Value>, SessionError> {
        if !self.is_signed_in().await? {
            return Ok(None);
        }
        Ok(self.0.get::<serde_json::Value>(Self::SIGN_OUT).await.ok().flatten())
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
    pub async fn touch(&self, interval: Duration) -> Result<(), SessionError> {
        if !self.is_signed_in().await? {
            return Ok(());
        }
        self.refresh_seen(interval).await
    }

    /// The signed-in user as `U` (as [`AuthSession::user`]), and the session touched (as [`AuthSession::touch`])
    /// when it is: what a request that wants its user does, with one read of the user.
    pub async fn current_user<U: DeserializeOwned>(
        &self,
        touch_interval: Duration,
    ) -> Result<StoredUser<U>, SessionError> {
        let user = self.read_user::<U>().await?;
        if matches!(user, StoredUser::User(_)) {
            self.refresh_seen(touch_interval).await?;
        }
        Ok(user)
    }

    /// Records that the session is seen now, when it was last seen more than `interval` ago.
    async fn refresh_seen(&self, interval: Duration) -> Result<(), SessionError> {
        let now = now_unix_ms();
        let seen = self.0.get::<i64>(Self::SEEN).await.ok().flatten();
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        if seen.is_none_or(|seen| now.saturating_sub(seen) >= interval) {
            self.0.insert(Self::SEEN, now).await?;
        }
        Ok(())
    }
}

/// What a session holds of its user, read as `U`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredUser<U> {
    /// Nobody is signed in (or the session's absolute lifetime has ended).
    SignedOut,
    /// The signed-in user.
    User(U),
    /// Someone is signed in, but the stored user does not read as `U`: stored by another service with a type of
    /// its own, or by an older version of this one.
    Unreadable {
        /// The person signed in again for that already ([`SignInDetails::again`]): a fresh sign-in stored a user
        /// that still does not read as `U`, so the page asks for a type the hook does not store.
        signed_in_again: bool,
    },
}

impl<U> StoredUser<U> {
    /// The user, when it reads as `U`.
    pub fn into_user(self) -> Option<U> {
        match self {
            Self::User(user) => Some(user),
            Self::SignedOut | Self::Unreadable { .. } => None,
        }
    }
}

/// What a sign-in records besides the user.
#[derive(Debug, Clone, Copy)]
pub struct SignInDetails<'a> {
    /// The absolute lifetime of the session.
    pub lifetime: Duration,
    /// Whose session it is ([`crate::owner_key`]), for the session directory; `None` keeps it out of any.
    pub owner: Option<&'a str>,
    /// The browser's `User-Agent`.
    pub user_agent: &'a str,
    /// The provider's session it belongs to ([`crate::provider_session_key`]), when the ID token named one.
    pub provider_session: Option<&'a str>,
    /// What signing out will need (see [`AuthSession::sign_out_data`]); it may hold tokens.
    pub sign_out: Option<&'a serde_json::Value>,
    /// The person signed in again because a page could not read their session's user: a page that still cannot
    /// is misconfigured, not out of date (see [`StoredUser::Unreadable`]).
    pub again: bool,
    /// The id of the provider the person signed in with ([`AuthSession::signed_in_with`]).
    pub provider: Option<&'a str>,
}

impl SignInDetails<'_> {
    /// A session of this lifetime that no directory lists.
    pub fn lasting(lifetime: Duration) -> Self {
        SignInDetails {
            lifetime,
            owner: None,
            user_agent: "",
            provider_session: None,
            sign_out: None,
            again: false,
            provider: None,
        }
    }
}

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
