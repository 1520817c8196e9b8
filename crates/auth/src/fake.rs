//! A provider in memory for unit tests (feature `fake`, for `[dev-dependencies]` only): it formats an authorization
//! URL and redeems codes by their shape, as scripted, with no network. End-to-end tests use the real development
//! provider and the hostile one instead.
//!
//! Codes: `good…` redeem once (a second use is refused, as a real provider refuses it), `again…` every time (a
//! provider that redeems a code twice), `unverified…` once, for an account whose email is not verified;
//! [`OUTAGE_CODE`] is a provider outage; anything else is refused (`invalid_grant`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::{AuthError, AuthErrorKind, AuthorizationRequest, Claims, Provider, SignedIn, Tokens};

/// The code whose redemption fails as a provider outage does.
pub const OUTAGE_CODE: &str = "outage";

/// One call of [`Provider::redeem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The code.
    pub code: String,
    /// The PKCE verifier sent with it.
    pub verifier: String,
    /// The nonce the ID token was checked against.
    pub nonce: String,
}

/// The scripted provider. Share it behind an `Arc` between the site under test and the test.
pub struct FakeProvider {
    id: String,
    issuer: String,
    display_name: String,
    authorize_url: url::Url,
    claims: Claims,
    hd: Mutex<Option<String>>,
    outage: Mutex<Option<AuthErrorKind>>,
    pings: AtomicUsize,
    next_code: AtomicUsize,
    used: Mutex<HashSet<String>>,
    redeemed: Mutex<Vec<Redeemed>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeProvider {
    /// A provider with this id, issuer and name; its authorization endpoint is `<issuer>/authorize`; a good code
    /// signs in with `claims` (whose issuer becomes this one's).
    pub fn new(id: &str, issuer: &str, display_name: &str, mut claims: Claims) -> Self {
        claims.profile.issuer = issuer.to_owned();
        let authorize_url = url::Url::parse(&format!("{issuer}/authorize"))
            .or_else(|_| url::Url::parse("https://idp.invalid/authorize"))
            .expect("a valid URL");
        Self {
            id: id.to_owned(),
            issuer: issuer.to_owned(),
            display_name: display_name.to_owned(),
            authorize_url,
            claims,
            hd: Mutex::new(None),
            outage: Mutex::new(None),
            pings: AtomicUsize::new(0),
            next_code: AtomicUsize::new(0),
            used: Mutex::new(HashSet::new()),
            redeemed: Mutex::new(Vec::new()),
        }
    }

    /// The same, sending browsers to `authorize_url` instead (e.g. a provider that plays Google, whose issuer
    /// is not under the test's control).
    #[must_use]
    pub fn authorizing_at(mut self, authorize_url: url::Url) -> Self {
        self.authorize_url = authorize_url;
        self
    }

    /// What a good code signs in with now.
    pub fn claims(&self) -> Claims {
        let mut claims = self.claims.clone();
        if let Some(hd) = lock(&self.hd).clone() {
            claims.additional.insert("hd".into(), serde_json::Value::from(hd));
        }
        claims
    }

    /// Makes good codes carry this `hd` claim (a Google Workspace account), or none.
    pub fn set_hd(&self, hd: Option<&str>) {
        *lock(&self.hd) = hd.map(str::to_owned);
    }

    /// From now on the health check fails with this kind (`ProviderTimeout`, or any other for a failure), or
    /// passes.
    pub fn set_outage(&self, kind: Option<AuthErrorKind>) {
        *lock(&self.outage) = kind;
    }

    /// How many health checks were made.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// A good code no one has used yet.
    pub fn good_code(&self) -> String {
        format!("good-{}", self.next_code.fetch_add(1, Ordering::SeqCst))
    }

    /// Every redemption so far, in order.
    pub fn redeemed(&self) -> Vec<Redeemed> {
        lock(&self.redeemed).clone()
    }
}

fn unavailable(reason: &str) -> AuthError {
    AuthError::ProviderUnavailable { reason: reason.to_owned(), source: None }
}

#[async_trait]
impl Provider for FakeProvider {
    fn issuer(&self) -> &str {
        &self.issuer
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn authorization_url(&self, request: AuthorizationRequest<'_>) -> url::Url {
        let mut url = self.authorize_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("state", request.state)
                .append_pair("nonce", request.nonce)
                .append_pair("code_challenge", request.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = request.login_hint {
                query.append_pair("login_hint", hint);
            }
            if let Some(prompt) = request.prompt {
                query.append_pair("prompt", prompt);
            }
        }
        url
    }

    async fn redeem(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<SignedIn, AuthError> {
        lock(&self.redeemed).push(Redeemed {
            code: code.to_owned(),
            verifier: pkce_verifier.to_owned(),
            nonce: nonce.to_owned(),
        });
        if code == OUTAGE_CODE {
            return Err(unavailable("the fake provider is down"));
        }
        let once = code.starts_with("good") || code.starts_with("unverified");
        let accepted = code.starts_with("again") || (once && lock(&self.used).insert(code.to_owned()));
        if !accepted {
            return Err(AuthError::CodeRejected { code: "invalid_grant".into() });
        }
        let mut claims = self.claims();
        if code.starts_with("unverified") {
            claims.profile.email_verified = Some(false);
        }
        Ok(SignedIn { claims, tokens: Tokens::new("access-token".into(), None, "id-token".into(), None) })
    }

    async fn ping(&self) -> Result<(), AuthError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        match *lock(&self.outage) {
            Some(AuthErrorKind::ProviderTimeout) => Err(AuthError::ProviderTimeout),
            Some(_) => Err(unavailable("ping failed")),
            None => Ok(()),
        }
    }
}
