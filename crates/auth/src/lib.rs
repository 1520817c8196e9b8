#![doc = include_str!("../README.md")]

mod client;
mod error;
mod http;
mod login;

pub use client::{OidcClient, ProviderSettings};
pub use error::{AuthError, AuthErrorKind, BoxError};
pub use login::{Callback, LoginStart, PENDING_LOGIN_MAX_AGE, PendingLogin};

/// A provider that can sign people in: the seam the web layer depends on (as `Arc<dyn IdentityProvider>`), so it
/// can be faked in tests.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// Starts an authorization-code request: scopes `openid` plus the configured ones, PKCE S256, a fresh `state`
    /// and `nonce`. Keep the returned [`PendingLogin`] (e.g. in the session) and send the browser to the URL.
    fn begin(&self) -> LoginStart;

    /// Validates the callback against the pending login and returns the verified claims.
    ///
    /// The caller must remove the pending login from wherever it keeps it before calling this, so that a callback
    /// cannot be replayed. The caller also applies its own rules (e.g. `signin_domain::Identity::from_claims`, which
    /// requires a verified email address): this method does not look at `email_verified`.
    async fn complete(
        &self,
        pending: PendingLogin,
        callback: Callback,
    ) -> Result<signin_domain::ProfileClaims, AuthError>;

    /// Whether the provider's keys endpoint answers (readiness).
    async fn ping(&self) -> Result<(), AuthError> {
        Ok(())
    }
}
