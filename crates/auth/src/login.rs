//! The state of a login between `begin` and `complete`, and the callback's query.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// How long a pending login stays usable.
pub const PENDING_LOGIN_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// What [`crate::IdentityProvider::begin`] returns.
#[derive(Debug)]
pub struct LoginStart {
    /// Where to send the browser (the provider's authorization endpoint with all parameters).
    pub authorize_url: url::Url,
    /// What to keep until the callback.
    pub pending: PendingLogin,
}

/// The secrets of one login attempt: the `state` (CSRF), the `nonce`, the PKCE verifier and when it started.
///
/// It serialises so that it can live in a server-side session. Never send it to the browser. Its `Debug` output
/// shows nothing but the start time.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
    /// Unix seconds.
    pub(crate) created_at: i64,
}

impl PendingLogin {
    /// When the login started, in Unix seconds.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Compares the callback's `state` with ours in constant time; a missing state never matches.
    pub(crate) fn state_matches(&self, state: Option<&str>) -> bool {
        state.is_some_and(|state| bool::from(state.as_bytes().ct_eq(self.state.as_bytes())))
    }

    /// Whether the login started too long ago at `now` (Unix seconds), or implausibly far in the future.
    pub(crate) fn is_expired(&self, now: i64, leeway: Duration) -> bool {
        let age = now.saturating_sub(self.created_at);
        age > PENDING_LOGIN_MAX_AGE.as_secs() as i64 || age < -(leeway.as_secs() as i64)
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The query of the provider's redirect back to us (`/login/callback?...`).
///
/// Every field comes from the browser and is untrusted. `Debug` hides `code` and `state` and leaves out
/// `error_description` (free text chosen by whoever crafted the link).
#[derive(Clone, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// Our `state`, echoed.
    pub state: Option<String>,
    /// An OAuth error code, e.g. `access_denied`.
    pub error: Option<String>,
    /// Free text about the error: attacker-controlled, never shown or logged.
    pub error_description: Option<String>,
    /// The issuer, when the provider implements RFC 9207.
    pub iss: Option<String>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("Callback")
            .field("code", &redact(&self.code))
            .field("state", &redact(&self.state))
            .field("error", &self.error.as_deref().map(crate::error::error_code))
            .field("error_description", &self.error_description.as_ref().map(|_| "[omitted]"))
            .field("iss", &self.iss.as_deref().map(crate::error::clean))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(created_at: i64) -> PendingLogin {
        PendingLogin {
            state: "state-abc".into(),
            nonce: "nonce-def".into(),
            pkce_verifier: "verifier-ghi".into(),
            created_at,
        }
    }

    #[test]
    fn state_must_match_exactly() {
        let p = pending(0);
        assert!(p.state_matches(Some("state-abc")));
        for bad in [None, Some(""), Some("state-ab"), Some("state-abcd"), Some("STATE-ABC")] {
            assert!(!p.state_matches(bad), "{bad:?}");
        }
    }

    #[test]
    fn pending_logins_expire_after_ten_minutes() {
        let leeway = Duration::from_secs(60);
        let p = pending(1_000_000);
        assert!(!p.is_expired(1_000_000, leeway));
        assert!(!p.is_expired(1_000_000 + 600, leeway));
        assert!(p.is_expired(1_000_000 + 601, leeway));
        assert!(!p.is_expired(1_000_000 - 60, leeway), "a little clock skew is fine");
        assert!(p.is_expired(1_000_000 - 3600, leeway), "a start time far in the future is refused");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let out = format!("{:?}", pending(42));
        for secret in ["state-abc", "nonce-def", "verifier-ghi"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("42"));
        let cb = Callback {
            code: Some("code-123".into()),
            state: Some("state-abc".into()),
            error: Some("access_denied".into()),
            error_description: Some("<script>alert(1)</script>".into()),
            iss: Some("https://accounts.google.com".into()),
        };
        let out = format!("{cb:?}");
        for hidden in ["code-123", "state-abc", "<script>"] {
            assert!(!out.contains(hidden), "{out}");
        }
        assert!(out.contains("access_denied") && out.contains("accounts.google.com"), "{out}");
    }

    #[test]
    fn pending_login_survives_a_session_round_trip() {
        let json = serde_json::to_string(&pending(7)).expect("serialise");
        let back: PendingLogin = serde_json::from_str(&json).expect("deserialise");
        assert!(back.state_matches(Some("state-abc")));
        assert_eq!(back.created_at(), 7);
    }
}
