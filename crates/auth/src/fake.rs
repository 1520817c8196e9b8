//! A provider in memory for unit tests (feature `fake`, for `[dev-dependencies]` only): it formats an authorization
//! URL and redeems codes by their shape, as scripted, with no network. End-to-end tests use the real development
//! provider and the hostile one instead.
//!
//! Codes: `good…` redeem once (a second use is refused, as a real provider refuses it), `again…` every time (a
//! provider that redeems a code twice), `unverified…` once, for an account whose email is not verified;
//! [`OUTAGE_CODE`] is a provider outage; anything else is refused (`invalid_grant`).
//!
//! With [`FakeProvider::with_offline_access`], every redeemed code also yields a refresh token, and
//! [`Provider::refresh`] answers as [`FakeProvider::set_refresh`] scripts it (rotating refresh tokens: the old one
//! dies), counting its calls.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{AuthError, AuthErrorKind, AuthorizationRequest, Claims, Provider, Refreshed, SignedIn, Tokens};

/// How [`Provider::refresh`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshAnswer {
    /// A new access token and a new refresh token (the old one dies).
    #[default]
    Fresh,
    /// `invalid_grant`.
    Ended,
    /// The provider is down.
    Down,
    /// A new ID token about someone else.
    OtherPerson,
}

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
    subject: Mutex<Option<String>>,
    outage: Mutex<Option<AuthErrorKind>>,
    pings: AtomicUsize,
    next_code: AtomicUsize,
    used: Mutex<HashSet<String>>,
    redeemed: Mutex<Vec<Redeemed>>,
    offline: bool,
    /// What a sign-in asks for: `openid email profile`.
    sign_in: Vec<String>,
    grantable: Vec<String>,
    /// The scopes of the last authorization request, granted by the next redemption (`None`: the sign-in's).
    asked: Mutex<Option<Vec<String>>>,
    /// Scopes people untick: never granted.
    declined: Mutex<Vec<String>>,
    token_lifetime: Mutex<Duration>,
    refresh_answer: Mutex<RefreshAnswer>,
    refresh_delay: Mutex<Duration>,
    refreshes: AtomicUsize,
    /// The refresh tokens that work: a refresh consumes the one it used.
    live_refresh_tokens: Mutex<HashSet<String>>,
    /// A refresh token was used after it had been consumed.
    reused: AtomicBool,
    /// Signing out revokes ([`FakeProvider::revoking`]).
    revokes: bool,
    revocations: Mutex<Vec<(String, bool)>>,
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
            subject: Mutex::new(None),
            outage: Mutex::new(None),
            pings: AtomicUsize::new(0),
            next_code: AtomicUsize::new(0),
            used: Mutex::new(HashSet::new()),
            redeemed: Mutex::new(Vec::new()),
            offline: false,
            sign_in: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
            grantable: Vec::new(),
            asked: Mutex::new(None),
            declined: Mutex::new(Vec::new()),
            token_lifetime: Mutex::new(Duration::from_secs(3600)),
            refresh_answer: Mutex::new(RefreshAnswer::Fresh),
            refresh_delay: Mutex::new(Duration::ZERO),
            refreshes: AtomicUsize::new(0),
            live_refresh_tokens: Mutex::new(HashSet::new()),
            reused: AtomicBool::new(false),
            revokes: false,
            revocations: Mutex::new(Vec::new()),
        }
    }

    /// The same, revoking tokens at sign-out ([`crate::SignOutPlan::revoke`]); [`FakeProvider::revocations`] lists
    /// them.
    #[must_use]
    pub fn revoking(mut self) -> Self {
        self.revokes = true;
        self
    }

    /// The tokens revoked so far, each with whether it was a refresh token.
    pub fn revocations(&self) -> Vec<(String, bool)> {
        lock(&self.revocations).clone()
    }

    /// The same, keeping refresh tokens ([`Provider::offline_access`]) and letting people grant `grantable` on
    /// top of sign-in.
    #[must_use]
    pub fn with_offline_access(mut self, grantable: &[&str]) -> Self {
        self.offline = true;
        self.grantable = grantable.iter().map(|scope| (*scope).to_owned()).collect();
        self
    }

    /// Access tokens from now on live this long.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.token_lifetime) = lifetime;
    }

    /// From now on people untick these scopes.
    pub fn set_declined(&self, scopes: &[&str]) {
        *lock(&self.declined) = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    }

    /// How refreshes answer from now on, after `delay`.
    pub fn set_refresh(&self, answer: RefreshAnswer, delay: Duration) {
        *lock(&self.refresh_answer) = answer;
        *lock(&self.refresh_delay) = delay;
    }

    /// How many refreshes were asked for.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Whether a consumed refresh token was ever sent again (what a rotating provider punishes).
    pub fn saw_reused_refresh_token(&self) -> bool {
        self.reused.load(Ordering::SeqCst)
    }

    /// The scopes granted now for a request of `asked`: without those people untick.
    fn granted(&self, asked: Vec<String>) -> Vec<String> {
        let declined = lock(&self.declined).clone();
        asked.into_iter().filter(|scope| !declined.contains(scope)).collect()
    }

    fn new_refresh_token(&self) -> String {
        let token = format!("rt-{}", self.next_code.fetch_add(1, Ordering::SeqCst));
        lock(&self.live_refresh_tokens).insert(token.clone());
        token
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
        if let Some(subject) = lock(&self.subject).clone() {
            claims.profile.subject = subject;
        }
        claims
    }

    /// Makes good codes sign in another subject from now on (another account at the same provider), or the
    /// first one again.
    pub fn set_subject(&self, subject: Option<&str>) {
        *lock(&self.subject) = subject.map(str::to_owned);
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
            if request.consent {
                query.append_pair("consent", "1");
            }
            if !request.extra_scopes.is_empty() {
                query.append_pair("scope", &request.extra_scopes.join(" "));
            }
        }
        let mut asked = self.sign_in_scopes().to_vec();
        asked.extend(request.extra_scopes.iter().cloned());
        *lock(&self.asked) = Some(asked);
        url
    }

    fn offline_access(&self) -> bool {
        self.offline
    }

    fn sign_out_plan(&self) -> crate::SignOutPlan {
        crate::SignOutPlan { revoke: self.revokes, end_session: false }
    }

    async fn revoke(&self, token: &SecretString, refresh: bool) -> Result<(), AuthError> {
        lock(&self.revocations).push((token.expose_secret().to_owned(), refresh));
        if refresh {
            lock(&self.live_refresh_tokens).remove(token.expose_secret());
        }
        Ok(())
    }

    fn sign_in_scopes(&self) -> &[String] {
        &self.sign_in
    }

    fn grantable_scopes(&self) -> &[String] {
        &self.grantable
    }

    async fn refresh(&self, refresh_token: &SecretString, issuer: &str, subject: &str) -> Result<Refreshed, AuthError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let (answer, delay) = (*lock(&self.refresh_answer), *lock(&self.refresh_delay));
        tokio::time::sleep(delay).await;
        match answer {
            RefreshAnswer::Down => return Err(unavailable("the fake provider is down")),
            RefreshAnswer::Ended => return Err(AuthError::GrantEnded { code: "invalid_grant".into() }),
            RefreshAnswer::OtherPerson => return Err(AuthError::RefreshIdentityChanged),
            RefreshAnswer::Fresh => {}
        }
        if issuer != self.issuer || subject != self.claims().profile.subject {
            return Err(AuthError::RefreshIdentityChanged);
        }
        if !lock(&self.live_refresh_tokens).remove(refresh_token.expose_secret()) {
            self.reused.store(true, Ordering::SeqCst);
            return Err(AuthError::GrantEnded { code: "invalid_grant".into() });
        }
        Ok(Refreshed {
            access_token: format!("at-{}", self.next_code.fetch_add(1, Ordering::SeqCst)).into(),
            refresh_token: Some(self.new_refresh_token().into()),
            id_token: None,
            expires_in: Some(*lock(&self.token_lifetime)),
            scopes: None,
        })
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
        let refresh = self.offline.then(|| SecretString::from(self.new_refresh_token()));
        let asked = lock(&self.asked).take().unwrap_or_else(|| self.sign_in_scopes().to_vec());
        let access = format!("at-{}", self.next_code.fetch_add(1, Ordering::SeqCst));
        let lifetime = *lock(&self.token_lifetime);
        let tokens = Tokens::new(access.into(), refresh, "id-token".into(), Some(lifetime))
            .with_scopes(Some(self.granted(asked)));
        Ok(SignedIn { claims, tokens })
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
