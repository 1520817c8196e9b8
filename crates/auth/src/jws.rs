//! Signed tokens other than ID tokens (back-channel logout tokens, security event tokens), checked against a key
//! set. openidconnect verifies ID tokens only, with their own claim rules; its key type verifies a signature over
//! any message, which this builds on: the header is read, the algorithm must be one the caller allows (never
//! `none`, never a shared secret), the key is chosen by `kid`, and the claims are left to the caller.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey as _, JsonWebKeyUse as _, JwsSigningAlgorithm as _};
use serde_json::{Map, Value};

/// The longest token read (a logout token or an event token is well under 2 KB).
const MAX_TOKEN: usize = 16 * 1024;

/// A token whose signature checked out.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) header: Map<String, Value>,
    pub(crate) payload: Map<String, Value>,
}

/// Why a token did not verify.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// No key in the set has the token's `kid`: worth fetching the keys again.
    NoKey,
    /// Anything else, said plainly (never with the token's content).
    Invalid(&'static str),
}

fn decode_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies a compact JWS against `keys` with one of `allowed` (asymmetric algorithms only).
pub(crate) fn verify(
    raw: &str,
    keys: &CoreJsonWebKeySet,
    allowed: &[CoreJwsSigningAlgorithm],
) -> Result<Verified, Rejected> {
    if raw.len() > MAX_TOKEN {
        return Err(Rejected::Invalid("the token is too long"));
    }
    let mut parts = raw.split('.');
    let (Some(head), Some(body), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejected::Invalid("the token is not a signed JWT"));
    };
    let header = decode_json(head).ok_or(Rejected::Invalid("the token's header is unreadable"))?;
    let alg: CoreJwsSigningAlgorithm = header
        .get("alg")
        .cloned()
        .and_then(|alg| serde_json::from_value(alg).ok())
        .ok_or(Rejected::Invalid("the token names no known algorithm"))?;
    if alg == CoreJwsSigningAlgorithm::None || alg.uses_shared_secret() || !allowed.contains(&alg) {
        return Err(Rejected::Invalid("the token's algorithm is not allowed"));
    }
    if header.contains_key("crit") {
        return Err(Rejected::Invalid("the token has critical header parameters"));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<_> = keys
        .keys()
        .iter()
        .filter(|key| key.key_use().is_none_or(|usage| usage.allows_signature()))
        .filter(|key| kid.is_none_or(|kid| key.key_id().is_some_and(|id| id.as_str() == kid)))
        .collect();
    if candidates.is_empty() {
        return Err(Rejected::NoKey);
    }
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| Rejected::Invalid("the signature is not base64url"))?;
    let message = format!("{head}.{body}");
    if !candidates.iter().any(|key| key.verify_signature(&alg, message.as_bytes(), &signature).is_ok()) {
        return Err(Rejected::Invalid("the signature does not verify"));
    }
    let payload = decode_json(body).ok_or(Rejected::Invalid("the token's claims are unreadable"))?;
    Ok(Verified { header, payload })
}

/// Whether the header's `typ`, when it has one, is `media` (e.g. `logout+jwt`), with or without the `application/`
/// that RFC 7515 §4.1.9 lets a sender leave out; compared without regard to case.
pub(crate) fn typed_as(header: &Map<String, Value>, media: &str) -> bool {
    header.get("typ").is_none_or(|typ| {
        typ.as_str().is_some_and(|typ| {
            let typ = typ.to_ascii_lowercase();
            typ == media || typ.strip_prefix("application/") == Some(media)
        })
    })
}

/// Whether `aud` (a string or a list of strings) names `client_id`.
pub(crate) fn audience_includes(aud: Option<&Value>, client_id: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    }
}

/// A key set published at a URL (an OpenID provider's `jwks_uri`, a security event transmitter's): fetched at
/// start-up, and again when a token names a key it does not hold (rotation), at most once per `refetch_interval`;
/// tokens that wait on a fetch under way share it.
pub(crate) struct RemoteKeys {
    url: openidconnect::JsonWebKeySetUrl,
    refetch_interval: std::time::Duration,
    /// Swapped whole when refreshed; readers clone the `Arc` and never hold the lock across an await.
    keys: std::sync::RwLock<std::sync::Arc<CoreJsonWebKeySet>>,
    /// When the keys were last fetched again: one fetch at a time, at most one per `refetch_interval`.
    refetched: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl RemoteKeys {
    pub(crate) fn new(
        url: openidconnect::JsonWebKeySetUrl,
        keys: CoreJsonWebKeySet,
        refetch_interval: std::time::Duration,
    ) -> Self {
        Self {
            url,
            refetch_interval,
            keys: std::sync::RwLock::new(std::sync::Arc::new(keys)),
            refetched: tokio::sync::Mutex::new(None),
        }
    }

    /// Fetches the set once.
    pub(crate) async fn fetch(
        url: &openidconnect::JsonWebKeySetUrl,
        http: &crate::http::HttpClient,
    ) -> Result<CoreJsonWebKeySet, crate::AuthError> {
        Ok(openidconnect::JsonWebKeySet::fetch_async(url, http).await?)
    }

    /// Whether the keys endpoint answers with a key set (nothing is kept).
    pub(crate) async fn ping(&self, http: &crate::http::HttpClient) -> Result<(), crate::AuthError> {
        Self::fetch(&self.url, http).await.map(drop)
    }

    /// The keys as they are.
    pub(crate) fn current(&self) -> std::sync::Arc<CoreJsonWebKeySet> {
        // A poisoned lock only means a writer panicked between two whole-value swaps: the value is still whole.
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Fetches the set again and keeps it; within `refetch_interval` of the last attempt (failed or not: a keys
    /// endpoint that is down is not asked per token), the keys as they are.
    pub(crate) async fn refresh(
        &self,
        http: &crate::http::HttpClient,
    ) -> Result<std::sync::Arc<CoreJsonWebKeySet>, crate::AuthError> {
        let mut refetched = self.refetched.lock().await;
        if refetched.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            tracing::debug!("the keys were fetched again moments ago; not again");
            return Ok(self.current());
        }
        *refetched = Some(std::time::Instant::now());
        let fresh = std::sync::Arc::new(Self::fetch(&self.url, http).await?);
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        tracing::info!(keys = fresh.keys().len(), "signing keys refreshed");
        Ok(fresh)
    }

    /// Verifies a compact JWS with these keys (see [`verify`]); on an unknown key, fetches them again and
    /// retries. A refusal becomes `invalid(reason)`; the keys endpoint failing stays what it is.
    pub(crate) async fn verify(
        &self,
        raw: &str,
        allowed: &[CoreJwsSigningAlgorithm],
        http: &crate::http::HttpClient,
        invalid: fn(String) -> crate::AuthError,
    ) -> Result<Verified, crate::AuthError> {
        let result = match verify(raw, &self.current(), allowed) {
            Err(Rejected::NoKey) => {
                tracing::info!("token signed with an unknown key; fetching the keys again");
                let fresh = self.refresh(http).await?;
                verify(raw, &fresh, allowed)
            }
            other => other,
        };
        result.map_err(|rejected| match rejected {
            Rejected::NoKey => invalid("no key matches the token's signature".to_owned()),
            Rejected::Invalid(reason) => invalid(reason.to_owned()),
        })
    }
}
