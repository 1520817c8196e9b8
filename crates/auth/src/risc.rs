//! A receiver of Security Event Tokens (RFC 8417) from a RISC transmitter (OpenID RISC profile), such as Google's
//! Cross-Account Protection: the transmitter's configuration (`/.well-known/risc-configuration`: its issuer and
//! keys) is read at start-up, and each pushed token (RFC 8935) is verified against it: signature with the
//! transmitter's keys, `iss`, `aud` (one of the site's client ids), `iat`, `jti`; then its events are read.
//!
//! What to do about them (ending sessions, holding an account) is the caller's: see `signin-login`.

use std::time::Duration;

use chrono::Utc;
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::AuthError;
use crate::http::HttpClient;
use crate::jws::{self, RemoteKeys};

/// Google's RISC configuration document.
pub const GOOGLE_RISC_CONFIGURATION: &str = "https://accounts.google.com/.well-known/risc-configuration";

/// How old a token may be (`iat`). A transmitter retries a delivery that failed for a while; older is a replay.
pub const SECURITY_EVENT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The event types this receiver acts on, by their short names (the last segment of the type URI).
pub mod event {
    /// The person's sessions at the provider were revoked.
    pub const SESSIONS_REVOKED: &str = "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
    /// The OAuth tokens the provider issued to the site for the person were revoked.
    pub const TOKENS_REVOKED: &str = "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";
    /// The account was disabled (e.g. hijacked).
    pub const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
    /// The account was enabled again.
    pub const ACCOUNT_ENABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-enabled";
    /// The account was deleted.
    pub const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
    /// The person must change their credentials (suspicious activity).
    pub const CREDENTIAL_CHANGE_REQUIRED: &str =
        "https://schemas.openid.net/secevent/risc/event-type/account-credential-change-required";
    /// A test token the transmitter sends on request.
    pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/risc/event-type/verification";
}

/// `[login.risc]`: receiving security events.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiscSettings {
    /// Receive security events (register the receiver with the transmitter first; see the README). Default off.
    pub enabled: bool,
    /// The transmitter's configuration document (default Google's).
    pub configuration_url: String,
    /// Allowed clock difference for `iat` (default 60 s).
    #[serde(with = "signin_domain::duration")]
    pub clock_leeway: Duration,
    /// Limit for each HTTP call to the transmitter (default 10 s).
    #[serde(with = "signin_domain::duration")]
    pub http_timeout: Duration,
    /// The transmitter's keys are fetched again on an unknown key id at most once per this long (default 60 s).
    #[serde(with = "signin_domain::duration")]
    pub key_refetch_interval: Duration,
}

impl Default for RiscSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            configuration_url: GOOGLE_RISC_CONFIGURATION.to_owned(),
            clock_leeway: Duration::from_secs(60),
            http_timeout: Duration::from_secs(10),
            key_refetch_interval: Duration::from_secs(60),
        }
    }
}

/// What the transmitter's configuration says (the fields this receiver uses).
#[derive(Debug, Deserialize)]
struct Configuration {
    issuer: String,
    jwks_uri: String,
}

/// One event of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// The event type URI (see [`event`]).
    pub kind: String,
    /// Whom it is about: the issuer and subject of the account (`subject_type` `iss-sub`), when it names one.
    pub subject: Option<(String, String)>,
    /// The event's `reason`, when it gives one (e.g. `hijacking` for a disabled account).
    pub reason: Option<String>,
}

/// A verified Security Event Token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEventToken {
    /// Its id (`jti`): a token is acted on once.
    pub jti: String,
    /// When it was issued (`iat`, Unix seconds).
    pub issued_at: i64,
    /// Until when a token with this `iat` is accepted (Unix seconds): a record of its `jti` must last that long.
    pub accepted_until: i64,
    /// Its events.
    pub events: Vec<SecurityEvent>,
}

/// The receiver for one transmitter. Cheap to share behind an `Arc`.
pub struct RiscReceiver {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    http: HttpClient,
    keys: RemoteKeys,
}

impl std::fmt::Debug for RiscReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiscReceiver").field("issuer", &self.issuer).field("audiences", &self.audiences).finish()
    }
}

/// The transmitter's algorithms: RISC tokens are RS256 (Google's are).
const ALGORITHMS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
];

impl RiscReceiver {
    /// Reads the transmitter's configuration and keys; tokens must be addressed to one of `audiences` (the
    /// site's client ids).
    pub async fn discover(settings: &RiscSettings, audiences: Vec<String>) -> Result<Self, AuthError> {
        let http =
            HttpClient::new(settings.http_timeout, 1024 * 1024).map_err(|err| AuthError::ProviderUnavailable {
                reason: "cannot build the HTTP client".into(),
                source: Some(Box::new(err)),
            })?;
        let request = http::Request::builder()
            .uri(settings.configuration_url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|_| AuthError::Configuration { reason: "login.risc.configuration_url is not a URL".into() })?;
        let response = http
            .execute(request)
            .await
            .map_err(|err| AuthError::unavailable(format!("the RISC configuration could not be read: {err}")))?;
        if !response.status().is_success() {
            return Err(AuthError::unavailable(format!("the RISC configuration answered {}", response.status())));
        }
        let configuration: Configuration = serde_json::from_slice(response.body())
            .map_err(|_| AuthError::unavailable("the RISC configuration is not the expected JSON"))?;
        let jwks_url = openidconnect::JsonWebKeySetUrl::new(configuration.jwks_uri)
            .map_err(|_| AuthError::unavailable("the RISC configuration's jwks_uri is not a URL"))?;
        let keys = RemoteKeys::fetch(&jwks_url, &http).await?;
        tracing::info!(risc.issuer = %configuration.issuer, "RISC transmitter configured");
        Ok(Self {
            issuer: configuration.issuer,
            audiences,
            leeway: settings.clock_leeway,
            keys: RemoteKeys::new(jwks_url, keys, settings.key_refetch_interval),
            http,
        })
    }

    /// The transmitter's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies a pushed token: signature, `iss`, `aud`, `iat`, a `jti`, and events to read.
    pub async fn verify(&self, raw: &str) -> Result<SecurityEventToken, AuthError> {
        let invalid = |reason: String| AuthError::InvalidSecurityEvent { reason };
        let token = self.keys.verify(raw, ALGORITHMS, &self.http, jws::Source::Posted, invalid).await?;
        check(&token, &self.issuer, &self.audiences, self.leeway, Utc::now().timestamp())
            .map_err(|reason| invalid(reason.to_owned()))
    }
}

/// The claim checks of a Security Event Token after its signature.
fn check(
    token: &jws::Verified,
    issuer: &str,
    audiences: &[String],
    leeway: Duration,
    now: i64,
) -> Result<SecurityEventToken, &'static str> {
    let payload = &token.payload;
    // RFC 8417 §2.3: explicitly typed, so that no other kind of JWT passes for one.
    if !jws::typed_as(&token.header, "secevent+jwt") {
        return Err("the token's typ is not secevent+jwt");
    }
    if payload.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("iss is not the transmitter's issuer");
    }
    let ours: Vec<&str> = audiences.iter().map(String::as_str).collect();
    if !jws::audience_accepted(payload.get("aud"), &ours) {
        return Err("aud does not name this site, or names another audience too");
    }
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(60);
    let max_age = i64::try_from(SECURITY_EVENT_MAX_AGE.as_secs()).unwrap_or(i64::MAX);
    let iat = payload.get("iat").and_then(Value::as_i64).ok_or("iat is missing")?;
    if iat > now + leeway {
        return Err("iat is in the future");
    }
    if iat < now - max_age {
        return Err("iat is too old");
    }
    let jti = payload.get("jti").and_then(Value::as_str).filter(|jti| !jti.is_empty() && jti.len() <= 256);
    let jti = jti.ok_or("jti is missing")?.to_owned();
    let events = payload.get("events").and_then(Value::as_object).ok_or("events is missing")?;
    if events.is_empty() {
        return Err("events is empty");
    }
    let events = events
        .iter()
        .map(|(kind, body)| SecurityEvent {
            kind: kind.clone(),
            subject: body.get("subject").and_then(|subject| {
                let iss = subject.get("iss").and_then(Value::as_str)?;
                let sub = subject.get("sub").and_then(Value::as_str)?;
                Some((iss.to_owned(), sub.to_owned()))
            }),
            reason: body.get("reason").and_then(Value::as_str).map(str::to_owned),
        })
        .collect();
    Ok(SecurityEventToken { jti, issued_at: iat, accepted_until: iat.saturating_add(max_age), events })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn checked(payload: Value) -> Result<SecurityEventToken, &'static str> {
        let Value::Object(payload) = payload else { panic!("an object") };
        let token = jws::Verified { header: serde_json::Map::new(), payload };
        check(
            &token,
            "https://accounts.google.com/",
            &["client-a".to_owned(), "client-b".to_owned()],
            Duration::from_secs(60),
            NOW,
        )
    }

    fn good() -> Value {
        json!({
            "iss": "https://accounts.google.com/", "aud": "client-b", "iat": NOW, "jti": "j-1",
            "events": { event::ACCOUNT_DISABLED: {
                "subject": { "subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": "7" },
                "reason": "hijacking",
            } },
        })
    }

    #[test]
    fn a_good_token_gives_its_events_with_subject_and_reason() {
        let token = checked(good()).expect("good");
        assert_eq!(token.jti, "j-1");
        assert_eq!(
            token.events,
            [SecurityEvent {
                kind: event::ACCOUNT_DISABLED.to_owned(),
                subject: Some(("https://accounts.google.com/".to_owned(), "7".to_owned())),
                reason: Some("hijacking".to_owned()),
            }]
        );
        let mut verification = good();
        verification["events"] = json!({ event::VERIFICATION: { "state": "s" } });
        assert_eq!(checked(verification).expect("verification").events[0].subject, None);
    }

    #[test]
    fn issuer_audience_time_jti_and_events_are_required() {
        for (name, value, why) in [
            ("iss", json!("https://evil.example/"), "iss"),
            ("aud", json!("someone-else"), "aud"),
            ("iat", json!(NOW + 3600), "future"),
            ("iat", json!(NOW - 8 * 86_400), "too old"),
            ("iat", Value::Null, "iat is missing"),
            ("jti", Value::Null, "jti"),
            ("events", json!({}), "events"),
            ("events", Value::Null, "events"),
        ] {
            let mut payload = good();
            if value.is_null() {
                payload.as_object_mut().expect("object").remove(name);
            } else {
                payload[name] = value;
            }
            assert!(checked(payload).expect_err(why).contains(why), "{name}");
        }
    }
}
