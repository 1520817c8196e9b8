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

/// Whether `aud` (a string or a list of strings) names `client_id`.
pub(crate) fn audience_includes(aud: Option<&Value>, client_id: &str) -> bool {
    match aud {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    }
}
