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
    Invalid(std::borrow::Cow<'static, str>),
}

impl Rejected {
    fn invalid(reason: &'static str) -> Self {
        Self::Invalid(reason.into())
    }
}

/// A compact JWS split into its three parts (`header.payload.signature`), still encoded.
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> Compact<'a> {
    /// The three parts of `raw`, if it has exactly three.
    pub(crate) fn split(raw: &'a str) -> Option<Self> {
        let mut parts = raw.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(header), Some(payload), Some(signature), None) => Some(Self { header, payload, signature }),
            _ => None,
        }
    }

    /// The payload's claims, decoded but not verified: read them only once the signature has checked out, or to
    /// decide how to check it.
    pub(crate) fn claims(&self) -> Option<Map<String, Value>> {
        decode_json(self.payload)
    }
}

/// One base64url part of a JWS, as a JSON object.
pub(crate) fn decode_json(part: &str) -> Option<Map<String, Value>> {
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
        return Err(Rejected::invalid("the token is too long"));
    }
    let Some(Compact { header: head, payload: body, signature }) = Compact::split(raw) else {
        return Err(Rejected::invalid("the token is not a signed JWT"));
    };
    let header = decode_json(head).ok_or(Rejected::invalid("the token's header is unreadable"))?;
    let alg: CoreJwsSigningAlgorithm = header
        .get("alg")
        .cloned()
        .and_then(|alg| serde_json::from_value(alg).ok())
        .ok_or(Rejected::invalid("the token names no known algorithm"))?;
    if alg == CoreJwsSigningAlgorithm::None || alg.uses_shared_secret() || !allowed.contains(&alg) {
        return Err(Rejected::invalid("the token's algorithm is not allowed"));
    }
    if header.contains_key("crit") {
        return Err(Rejected::invalid("the token has critical header parameters"));
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
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| Rejected::invalid("the signature is not base64url"))?;
    let message = format!("{head}.{body}");
    if !candidates.iter().any(|key| key.verify_signature(&alg, message.as_bytes(), &signature).is_ok()) {
        return Err(Rejected::invalid("the signature does not verify"));
    }
    let payload = decode_json(body).ok_or(Rejected::invalid("the token's claims are unreadable"))?;
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

/// The one audience rule of every token this crate accepts (ID tokens, logout tokens, security event tokens): `aud`
/// is a string or a non-empty list of strings, and **every** audience it names is one of `ours`. A token that also
/// names an audience we do not trust was issued for someone else as well, who could replay it to us (OpenID Connect
/// Core §3.1.3.7 step 3: refuse untrusted audiences).
pub(crate) fn audience_accepted(aud: Option<&Value>, ours: &[&str]) -> bool {
    let ours_only = |aud: &Value| aud.as_str().is_some_and(|aud| ours.contains(&aud));
    match aud {
        Some(aud @ Value::String(_)) => ours_only(aud),
        Some(Value::Array(list)) => !list.is_empty() && list.iter().all(ours_only),
        _ => false,
    }
}

/// Who handed us a token whose key we do not hold, which decides how soon the keys may be fetched again for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The provider's own answer, on a connection we opened (the ID token of a code redemption): a rotation is the
    /// likely cause, so the keys are fetched at once (at most once per [`ANSWERED_REFETCH`]).
    Answered,
    /// Posted by anyone (a logout token, a security event): at most once per the configured interval, in a budget
    /// of its own, so that a flood of forged tokens cannot hold back a fetch for the first kind.
    Posted,
}

/// The least time between two fetches for [`Source::Answered`] tokens.
pub(crate) const ANSWERED_REFETCH: std::time::Duration = std::time::Duration::from_secs(1);

/// Posted tokens with a key we do not hold: anyone can send them, so one line per interval sums them up.
static UNKNOWN_KEYS: std::sync::LazyLock<signin_domain::Tally> =
    std::sync::LazyLock::new(|| signin_domain::Tally::new(std::time::Duration::from_secs(10)));

/// A key set published at a URL (an OpenID provider's `jwks_uri`, a security event transmitter's): fetched at
/// start-up, and again when a token names a key it does not hold (rotation), within the budget of the token's
/// [`Source`]; tokens that wait on a fetch under way share it.
pub(crate) struct RemoteKeys {
    url: openidconnect::JsonWebKeySetUrl,
    refetch_interval: std::time::Duration,
    /// Swapped whole when refreshed; readers clone the `Arc` and never hold the lock across an await.
    keys: std::sync::RwLock<std::sync::Arc<CoreJsonWebKeySet>>,
    /// Counts successful fetches: a token that waited for the lock while another fetch succeeded uses its result.
    fetches: std::sync::atomic::AtomicU64,
    /// When each budget was last spent, each behind a lock of its own: one fetch at a time per source, and a
    /// fetch for posted tokens (held up by a slow keys endpoint) never holds up one for the provider's answers.
    answered: tokio::sync::Mutex<Option<std::time::Instant>>,
    posted: tokio::sync::Mutex<Option<std::time::Instant>>,
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
            fetches: std::sync::atomic::AtomicU64::new(0),
            answered: tokio::sync::Mutex::new(None),
            posted: tokio::sync::Mutex::new(None),
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

    /// Fetches the set again and keeps it, unless the budget of `source` was spent moments ago (failed or not: a
    /// keys endpoint that is down is not asked per token), in which case the keys as they are. A caller that waited
    /// while another fetch succeeded takes that one's result.
    pub(crate) async fn refresh(
        &self,
        http: &crate::http::HttpClient,
        source: Source,
    ) -> Result<std::sync::Arc<CoreJsonWebKeySet>, crate::AuthError> {
        use std::sync::atomic::Ordering;
        let before = self.fetches.load(Ordering::Acquire);
        let (lock, least) = match source {
            Source::Answered => (&self.answered, ANSWERED_REFETCH.min(self.refetch_interval)),
            Source::Posted => (&self.posted, self.refetch_interval),
        };
        let mut last = lock.lock().await;
        if self.fetches.load(Ordering::Acquire) != before {
            return Ok(self.current());
        }
        if last.is_some_and(|at| at.elapsed() < least) {
            tracing::debug!(?source, "the keys were fetched again moments ago; not again");
            return Ok(self.current());
        }
        *last = Some(std::time::Instant::now());
        let fresh = std::sync::Arc::new(Self::fetch(&self.url, http).await?);
        *self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
        self.fetches.fetch_add(1, Ordering::AcqRel);
        tracing::info!(keys = fresh.keys().len(), "signing keys refreshed");
        Ok(fresh)
    }

    /// Says that a token names a key we do not hold: once per token for the provider's own answers (a rotation is
    /// worth a line), summed up for posted ones (anyone can send as many as they like).
    pub(crate) fn unknown_key(source: Source) {
        match source {
            Source::Answered => tracing::info!("token signed with an unknown key; fetching the keys again"),
            Source::Posted => {
                tracing::debug!("posted token signed with an unknown key");
                if let Some(count) = UNKNOWN_KEYS.add() {
                    tracing::info!(
                        count,
                        "posted tokens signed with an unknown key (the keys are fetched again at most once per interval)"
                    );
                }
            }
        }
    }

    /// Runs `check` with the keys as they are; when it finds no key for the token, fetches the keys again within
    /// the budget of `source` and runs it once more. The one place that retries on an unknown key, for every
    /// token kind. A refusal becomes `invalid(reason)`; the keys endpoint failing stays what it is.
    pub(crate) async fn with_refetch<T>(
        &self,
        http: &crate::http::HttpClient,
        source: Source,
        check: impl Fn(&CoreJsonWebKeySet) -> Result<T, Rejected>,
        invalid: impl Fn(String) -> crate::AuthError,
    ) -> Result<T, crate::AuthError> {
        let result = match check(&self.current()) {
            Err(Rejected::NoKey) => {
                Self::unknown_key(source);
                let fresh = self.refresh(http, source).await?;
                check(&fresh)
            }
            other => other,
        };
        result.map_err(|rejected| match rejected {
            Rejected::NoKey => invalid("no key matches the token's signature".to_owned()),
            Rejected::Invalid(reason) => invalid(reason.into_owned()),
        })
    }

    /// Verifies a compact JWS with these keys (see [`verify`]), fetching them again on an unknown key
    /// ([`RemoteKeys::with_refetch`]).
    pub(crate) async fn verify(
        &self,
        raw: &str,
        allowed: &[CoreJwsSigningAlgorithm],
        http: &crate::http::HttpClient,
        source: Source,
        invalid: fn(String) -> crate::AuthError,
    ) -> Result<Verified, crate::AuthError> {
        self.with_refetch(http, source, |keys| verify(raw, keys, allowed), invalid).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One table for the audience rule that ID tokens, logout tokens and security event tokens share.
    #[test]
    fn every_audience_named_must_be_ours() {
        let ours = ["client", "android-client"];
        let cases = [
            (json!("client"), true),
            (json!(["client"]), true),
            (json!(["client", "android-client"]), true),
            (json!("android-client"), true),
            (json!("someone-else"), false),
            (json!(["client", "someone-else"]), false),
            (json!(["someone-else", "client"]), false),
            (json!([]), false),
            (json!([42]), false),
            (json!(["client", 42]), false),
            (json!(42), false),
            (json!(null), false),
            (json!({ "client": true }), false),
        ];
        for (aud, accepted) in cases {
            assert_eq!(audience_accepted(Some(&aud), &ours), accepted, "{aud}");
        }
        assert!(!audience_accepted(None, &ours), "no aud at all");
        assert!(!audience_accepted(Some(&json!("client")), &[]), "nobody trusted");
    }
}
