//! What a completed sign-in yields: the verified claims and, for callers that want them, the tokens.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use signin_domain::ProfileClaims;

/// Claims that [`Claims::additional`] leaves out: the protocol's own, checked by the relying party and of no use
/// afterwards, and the profile statements that [`Claims::profile`] carries.
const NOT_ADDITIONAL: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "azp",
    "at_hash",
    "c_hash",
    "auth_time",
    "jti",
    "email",
    "email_verified",
    "name",
    "given_name",
    "picture",
];

/// The verified claims of a sign-in: the profile statements (from the ID token, completed from userinfo when the
/// token had no email) and every other claim of the ID token (e.g. Google's `hd`, `family_name`, `locale`).
///
/// `email_verified` is reported as sent; deciding what is acceptable is the caller's job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// `iss`, `sub`, `email`, `email_verified`, `name`, `given_name`, `picture`.
    #[serde(flatten)]
    pub profile: ProfileClaims,
    /// The ID token's other claims, by name (protocol claims such as `aud`, `exp` or `nonce` left out).
    #[serde(default)]
    pub additional: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// Claims naming only an issuer and a subject (for tests and fakes).
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            profile: ProfileClaims { issuer: issuer.into(), subject: subject.into(), ..ProfileClaims::default() },
            additional: serde_json::Map::new(),
        }
    }

    /// An additional claim as text, e.g. `claims.additional_str("hd")`.
    pub fn additional_str(&self, name: &str) -> Option<&str> {
        self.additional.get(name).and_then(serde_json::Value::as_str)
    }

    /// The additional claims of a verified ID token payload.
    pub(crate) fn additional_from(
        mut payload: serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        payload.retain(|name, _| !NOT_ADDITIONAL.contains(&name.as_str()));
        payload
    }
}

/// The tokens of a sign-in. Nothing here is logged (`Debug` shows only which are present) or stored by this
/// library; a caller that needs them (to call an API for the person) takes them from [`SignedIn::tokens`].
#[derive(Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<SecretString>,
    /// The ID token as received (a JWS).
    pub id_token: SecretString,
    /// The access token's lifetime, when the provider said.
    pub expires_in: Option<Duration>,
    /// The scopes granted, as the token response's `scope` lists them (people can untick scopes); `None` when it
    /// sent none, which RFC 6749 §5.1 allows only when they are exactly the ones asked for.
    pub scopes: Option<Vec<String>>,
}

impl Tokens {
    /// Wraps the tokens (no `scope` stated).
    pub fn new(
        access_token: SecretString,
        refresh_token: Option<SecretString>,
        id_token: SecretString,
        expires_in: Option<Duration>,
    ) -> Self {
        Self { access_token, refresh_token, id_token, expires_in, scopes: None }
    }

    /// The same tokens, with the granted scopes the token response stated.
    #[must_use]
    pub fn with_scopes(mut self, scopes: Option<Vec<String>>) -> Self {
        self.scopes = scopes;
        self
    }
}

/// What a refresh (RFC 6749 §6) yields: a new access token, and whatever else the provider sent with it.
#[derive(Clone)]
pub struct Refreshed {
    /// The new access token.
    pub access_token: SecretString,
    /// A new refresh token, when the provider rotates them: the old one must not be used again.
    pub refresh_token: Option<SecretString>,
    /// A new ID token, verified, and naming the grant's issuer and subject (OpenID Connect Core §12.2).
    pub id_token: Option<SecretString>,
    /// The new access token's lifetime, when the provider said.
    pub expires_in: Option<Duration>,
    /// The scopes the new access token has, when the provider said.
    pub scopes: Option<Vec<String>>,
}

impl fmt::Debug for Refreshed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refreshed")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("id_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The verified claims.
    pub claims: Claims,
    /// The tokens.
    pub tokens: Tokens,
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn additional_claims_leave_out_protocol_and_profile_claims() {
        let payload = json!({
            "iss": "https://accounts.google.com", "sub": "1", "aud": "c", "exp": 1, "iat": 1, "nonce": "n",
            "email": "a@example.com", "email_verified": true, "hd": "example.com", "locale": "en",
        });
        let serde_json::Value::Object(map) = payload else { unreachable!("an object literal") };
        let extra = Claims::additional_from(map);
        assert_eq!(extra.keys().map(String::as_str).collect::<Vec<_>>(), ["hd", "locale"]);
    }

    #[test]
    fn claims_round_trip_through_json_with_the_profile_flat() {
        let mut claims = Claims::new("https://idp.example", "ada");
        claims.profile.email = Some("ada@example.com".into());
        claims.additional.insert("hd".into(), json!("example.com"));
        let value = serde_json::to_value(&claims).expect("serialise");
        assert_eq!(value["subject"], "ada");
        assert_eq!(value["additional"]["hd"], "example.com");
        let back: Claims = serde_json::from_value(value).expect("deserialise");
        assert_eq!(back, claims);
        assert_eq!(back.additional_str("hd"), Some("example.com"));
    }

    #[test]
    fn tokens_never_print() {
        let tokens = Tokens::new("at-secret".into(), Some("rt-secret".into()), "idt-secret".into(), None);
        let out = format!("{tokens:?}");
        assert!(!out.contains("secret"), "{out}");
        assert_eq!(tokens.access_token.expose_secret(), "at-secret");
    }
}
