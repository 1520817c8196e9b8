//! One sign-in attempt from start to finish: [`LoginFlow`] owns every protocol rule (fresh secrets, `error=`,
//! `state`, the attempt's age, RFC 9207 `iss`, a present code); a [`Provider`] only plays the provider.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use rand::RngCore as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::claims::SignedIn;
use crate::error::AuthError;

/// How far in the future an attempt's start time may lie (clocks of several instances differ a little).
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What the browser is sent to the provider with: the values [`LoginFlow::begin`] made for one attempt.
#[derive(Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    /// The `state` parameter.
    pub state: &'a str,
    /// The `nonce` parameter.
    pub nonce: &'a str,
    /// The PKCE S256 `code_challenge` (already hashed and encoded).
    pub code_challenge: &'a str,
    /// A `login_hint`, when the caller has one.
    pub login_hint: Option<&'a str>,
    /// A `prompt` value, when the person must choose or confirm the account again (after signing out).
    pub prompt: Option<&'a str>,
    /// Scopes asked for on top of what the person has granted (incremental authorization); empty for a sign-in.
    /// With any, the request also asks the provider to keep the scopes granted before (Google's
    /// `include_granted_scopes=true`).
    pub extra_scopes: &'a [String],
    /// The person holds no refresh token: ask for offline access with `prompt=consent`, the only way Google (and
    /// OpenID Connect Core §11) issues one.
    pub consent: bool,
}

/// The provider's side of a sign-in. [`crate::OidcClient`] is the real one; tests put a fake here.
///
/// An implementation formats the authorization URL and redeems codes; it makes no decision about `state`, expiry or
/// the callback's parameters: [`LoginFlow`] has made those before [`Provider::redeem`] is called.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The issuer identifier, exactly as configured (RFC 9207 compares the callback's `iss` with it).
    fn issuer(&self) -> &str;

    /// The name people know the provider by ("Google"), for pages.
    fn display_name(&self) -> &str;

    /// The provider's short name in URLs (`/login/<id>`) and attempt cookies, distinct among a site's providers
    /// ([`crate::ProviderSettings::id`]). `oidc` by default.
    fn id(&self) -> &str {
        "oidc"
    }

    /// The client id this site has at the provider: the audience of its tokens, and of its security events.
    /// Empty by default (a provider that issues no tokens to this site itself).
    fn client_id(&self) -> &str {
        ""
    }

    /// How far the provider's clock may be from ours ([`crate::ProviderSettings::clock_leeway`]; a minute by
    /// default): records that must outlast what this provider's tokens and attempts allow last this much longer.
    fn clock_leeway(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }

    /// The authorization endpoint's URL with every parameter of the request (response type `code`, client id,
    /// redirect URI, scopes, `state`, `nonce`, PKCE S256).
    fn authorization_url(&self, request: AuthorizationRequest<'_>) -> url::Url;

    /// Exchanges the code (with the PKCE verifier), verifies the ID token against `nonce`, and returns the claims and
    /// tokens.
    async fn redeem(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<SignedIn, AuthError>;

    /// Verifies a back-channel logout token the provider sent (OpenID Connect Back-Channel Logout 1.0 §2.6):
    /// signature with the provider's keys and algorithms, then its claims. Refused by default: a provider that
    /// cannot verify tokens has no back-channel logout.
    async fn verify_logout_token(&self, raw: &str) -> Result<crate::LogoutToken, AuthError> {
        let _ = raw;
        Err(AuthError::InvalidLogoutToken { reason: "this provider has no back-channel logout".into() })
    }

    /// What signing out does at this provider (nothing by default), so that a sign-in keeps what it needs.
    fn sign_out_plan(&self) -> SignOutPlan {
        SignOutPlan::default()
    }

    /// Revokes a token of a sign-in at the provider (RFC 7009): its refresh token when `refresh`, else its access
    /// token. Bounded by the provider's sign-out timeout. Does nothing by default.
    async fn revoke(&self, token: &SecretString, refresh: bool) -> Result<(), AuthError> {
        let _ = (token, refresh);
        Ok(())
    }

    /// Where to send the browser to end the person's session at the provider (RP-Initiated Logout), with the
    /// sign-in's ID token as `id_token_hint`, coming back to `post_logout_redirect`; `None` when it has no such
    /// endpoint (the default).
    fn end_session_url(&self, id_token_hint: &str, post_logout_redirect: &url::Url) -> Option<url::Url> {
        let _ = (id_token_hint, post_logout_redirect);
        None
    }

    /// Whether the site keeps a refresh token of this provider's grants ([`crate::ProviderSettings::offline_access`]),
    /// so that it can act for the person when they are away. Off by default.
    fn offline_access(&self) -> bool {
        false
    }

    /// The scopes a sign-in asks for, `openid` first (the configured ones besides it); `openid` alone by default.
    fn sign_in_scopes(&self) -> &[String] {
        static OPENID: std::sync::LazyLock<[String; 1]> = std::sync::LazyLock::new(|| ["openid".to_owned()]);
        &*OPENID
    }

    /// The scopes a person may be asked to grant on top of sign-in ([`crate::ProviderSettings::grantable_scopes`]);
    /// none by default.
    fn grantable_scopes(&self) -> &[String] {
        &[]
    }

    /// Exchanges a refresh token for a new access token (RFC 6749 §6). A new ID token in the answer is verified and
    /// must name `issuer` and `subject` ([`AuthError::RefreshIdentityChanged`] otherwise); `invalid_grant` is
    /// [`AuthError::GrantEnded`]; anything else leaves the grant as it was. Unsupported by default.
    async fn refresh(
        &self,
        refresh_token: &SecretString,
        issuer: &str,
        subject: &str,
    ) -> Result<crate::Refreshed, AuthError> {
        let _ = (refresh_token, issuer, subject);
        Err(AuthError::Configuration { reason: "this provider does not refresh tokens".into() })
    }

    /// Whether the provider answers (readiness, and the check before sending anyone there).
    async fn ping(&self) -> Result<(), AuthError> {
        Ok(())
    }

    /// The `prompt` to send with the first sign-in after an explicit sign-out, so that the provider lets the person
    /// choose (or confirm) the account rather than signing the previous one straight back in; `None` for none.
    /// OpenID Connect's `login` by default.
    fn prompt_after_sign_out(&self) -> Option<&str> {
        Some("login")
    }
}

/// What signing out does at a provider, beyond ending the site's session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignOutPlan {
    /// Revoke the sign-in's token ([`Provider::revoke`]).
    pub revoke: bool,
    /// Send the browser to the provider's end-session endpoint ([`Provider::end_session_url`]).
    pub end_session: bool,
}

/// What [`LoginFlow::begin`] returns.
#[derive(Debug)]
pub struct LoginStart {
    /// Where to send the browser (the provider's authorization endpoint with all parameters).
    pub authorize_url: url::Url,
    /// What to keep until the callback.
    pub pending: PendingLogin,
}

/// The secrets of one login attempt: the `state` (CSRF), the `nonce`, the PKCE verifier and when it started.
///
/// It serialises so that the caller can keep it (an encrypted cookie, a server-side session); only
/// [`LoginFlow::begin`] makes one. Its `Debug` output shows nothing but the start time.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    pkce_verifier: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    created_at: i64,
}

impl PendingLogin {
    /// When the login started, in Unix seconds.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// The `state` this attempt sent. It travels in URLs, so it is no secret once sent; callers use it to find
    /// the attempt a callback belongs to.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Compares the callback's `state` with ours in constant time; a missing state never matches.
    fn state_matches(&self, state: Option<&str>) -> bool {
        state.is_some_and(|state| bool::from(state.as_bytes().ct_eq(self.state.as_bytes())))
    }

    /// Whether the login started longer than `max_age` before `now` (Unix seconds), or implausibly far ahead.
    fn is_expired(&self, now: i64, max_age: Duration) -> bool {
        let age = now.saturating_sub(self.created_at);
        age > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX) || age < -(CLOCK_SKEW.as_secs() as i64)
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

impl Callback {
    /// The longest `code` accepted (Google's are under 100 characters; JWT-shaped codes of other providers stay
    /// well under this). Longer ones are refused before anything is looked up or sent to the provider.
    pub const MAX_CODE: usize = 4096;
    /// The longest `state` accepted (ours are 43 characters).
    pub const MAX_STATE: usize = 512;
    /// The longest `error`, `error_description` or `iss` accepted.
    pub const MAX_OTHER: usize = 1024;

    /// Whether every parameter is within its length cap.
    pub fn within_limits(&self) -> bool {
        let fits = |value: &Option<String>, max: usize| value.as_ref().is_none_or(|v| v.len() <= max);
        fits(&self.code, Self::MAX_CODE)
            && fits(&self.state, Self::MAX_STATE)
            && fits(&self.error, Self::MAX_OTHER)
            && fits(&self.error_description, Self::MAX_OTHER)
            && fits(&self.iss, Self::MAX_OTHER)
    }
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

/// Sign-in attempts with one provider: makes each attempt's secrets and checks the callback against them before
/// the provider redeems the code. Cheap to clone.
#[derive(Clone)]
pub struct LoginFlow {
    provider: Arc<dyn Provider>,
    max_age: Duration,
}

impl fmt::Debug for LoginFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginFlow")
            .field("issuer", &self.provider.issuer())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl LoginFlow {
    /// Attempts with `provider` that must be completed within `max_age`.
    pub fn new(provider: Arc<dyn Provider>, max_age: Duration) -> Self {
        Self { provider, max_age }
    }

    /// The provider.
    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// How long an attempt may take.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Starts an attempt: a fresh `state` and `nonce` (32 random bytes each) and a PKCE S256 verifier (32 random
    /// bytes, RFC 7636 §4.1). Keep the [`PendingLogin`] and send the browser to the URL. `after_sign_out`: the
    /// browser signed out explicitly since its last sign-in, so the provider is asked to let the person choose
    /// ([`Provider::prompt_after_sign_out`]).
    pub fn begin(&self, login_hint: Option<&str>, after_sign_out: bool) -> LoginStart {
        self.start(login_hint, if after_sign_out { self.provider.prompt_after_sign_out() } else { None }, &[], false)
    }

    /// Starts an attempt that asks the signed-in person (`login_hint`: their subject) for `extra_scopes` on top of
    /// what they granted, and for offline access with consent when `consent` (they hold no refresh token). The
    /// callback is checked exactly as a sign-in's.
    pub fn begin_grant(&self, login_hint: &str, extra_scopes: &[String], consent: bool) -> LoginStart {
        self.start(Some(login_hint), None, extra_scopes, consent)
    }

    fn start(
        &self,
        login_hint: Option<&str>,
        prompt: Option<&str>,
        extra_scopes: &[String],
        consent: bool,
    ) -> LoginStart {
        let pending = PendingLogin {
            state: random_token(),
            nonce: random_token(),
            pkce_verifier: random_token(),
            created_at: Utc::now().timestamp(),
        };
        let code_challenge = pkce_challenge(&pending.pkce_verifier);
        let authorize_url = self.provider.authorization_url(AuthorizationRequest {
            state: &pending.state,
            nonce: &pending.nonce,
            code_challenge: &code_challenge,
            login_hint,
            prompt,
            extra_scopes,
            consent,
        });
        LoginStart { authorize_url, pending }
    }

    /// The provider's refusal (`error=…`, e.g. `access_denied` when the person pressed "Cancel"), whatever else
    /// the callback carries. It stands even when the attempt it belongs to cannot be found: the person is told the
    /// sign-in was cancelled rather than that it expired.
    pub fn refusal(callback: &Callback) -> Option<AuthError> {
        callback.error.as_deref().map(AuthError::from_callback_error)
    }

    /// Checks the callback against the attempt, in this order: `error=` (→ `Denied`), `state` (constant time), the
    /// attempt's age, `iss` when sent (RFC 9207), a present code; then the provider redeems the code.
    ///
    /// The caller must have removed the attempt from wherever it kept it, so that the callback cannot be replayed.
    /// Errors are returned, not logged: the caller logs each failure once, where it handles it.
    pub async fn complete(&self, pending: PendingLogin, callback: Callback) -> Result<SignedIn, AuthError> {
        if let Some(refused) = Self::refusal(&callback) {
            return Err(refused);
        }
        if !pending.state_matches(callback.state.as_deref()) {
            return Err(AuthError::StateMismatch);
        }
        if pending.is_expired(Utc::now().timestamp(), self.max_age) {
            return Err(AuthError::LoginExpired);
        }
        if let Some(iss) = callback.iss.as_deref()
            && iss != self.provider.issuer()
        {
            return Err(AuthError::CallbackIssuerMismatch);
        }
        let code = callback.code.filter(|code| !code.is_empty()).ok_or(AuthError::MissingCode)?;
        self.provider.redeem(&code, &pending.pkce_verifier, &pending.nonce).await
    }
}

/// 32 bytes from the thread's CSPRNG, base64url without padding (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7636 S256: `BASE64URL(SHA256(verifier))`.
fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest as _;
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::claims::{Claims, Tokens};

    fn pending(created_at: i64) -> PendingLogin {
        PendingLogin {
            state: "state-abc".into(),
            nonce: "nonce-def".into(),
            pkce_verifier: "verifier-ghi".into(),
            created_at,
        }
    }

    /// Records what it was asked to redeem; every code signs "ada" in.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, String)>>);

    #[async_trait]
    impl Provider for Recorder {
        fn issuer(&self) -> &str {
            "https://idp.example"
        }
        fn display_name(&self) -> &str {
            "Example"
        }
        fn authorization_url(&self, request: AuthorizationRequest<'_>) -> url::Url {
            let mut url = url::Url::parse("https://idp.example/authorize").expect("url");
            url.query_pairs_mut()
                .append_pair("state", request.state)
                .append_pair("nonce", request.nonce)
                .append_pair("code_challenge", request.code_challenge);
            if let Some(prompt) = request.prompt {
                url.query_pairs_mut().append_pair("prompt", prompt);
            }
            url
        }
        async fn redeem(&self, code: &str, verifier: &str, nonce: &str) -> Result<SignedIn, AuthError> {
            self.0.lock().expect("lock").push((code.into(), verifier.into(), nonce.into()));
            Ok(SignedIn {
                claims: Claims::new(self.issuer(), "ada"),
                tokens: Tokens::new("access".into(), None, "id-token".into(), None),
            })
        }
    }

    fn flow() -> (Arc<Recorder>, LoginFlow) {
        let recorder = Arc::new(Recorder::default());
        (recorder.clone(), LoginFlow::new(recorder, Duration::from_secs(600)))
    }

    fn callback(state: &str) -> Callback {
        Callback { code: Some("the-code".into()), state: Some(state.into()), ..Callback::default() }
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
    fn pending_logins_expire_after_their_max_age() {
        let max_age = Duration::from_secs(600);
        let p = pending(1_000_000);
        assert!(!p.is_expired(1_000_000, max_age));
        assert!(!p.is_expired(1_000_000 + 600, max_age));
        assert!(p.is_expired(1_000_000 + 601, max_age));
        assert!(!p.is_expired(1_000_000 - 60, max_age), "a little clock skew is fine");
        assert!(p.is_expired(1_000_000 - 3600, max_age), "a start time far in the future is refused");
        assert!(p.is_expired(1_000_000 + 61, Duration::from_secs(60)));
    }

    #[test]
    fn after_a_sign_out_the_provider_is_asked_to_let_the_person_choose() {
        let flow = LoginFlow::new(Arc::new(Recorder::default()), Duration::from_secs(600));
        let prompt = |url: &url::Url| url.query_pairs().find(|(k, _)| k == "prompt").map(|(_, v)| v.into_owned());

        assert_eq!(prompt(&flow.begin(None, false).authorize_url), None, "an ordinary sign-in asks nothing extra");
        assert_eq!(prompt(&flow.begin(None, true).authorize_url).as_deref(), Some("login"), "the trait's default");
    }

    #[test]
    fn begin_makes_fresh_secrets_and_an_s256_challenge() {
        let (_, flow) = flow();
        let a = flow.begin(None, false);
        let b = flow.begin(None, false);
        assert_ne!(a.pending.state, b.pending.state);
        assert_ne!(a.pending.nonce, b.pending.nonce);
        assert_ne!(a.pending.pkce_verifier, b.pending.pkce_verifier);
        assert_eq!(a.pending.state.len(), 43);
        let query: std::collections::HashMap<_, _> = a.authorize_url.query_pairs().into_owned().collect();
        assert_eq!(query["state"], a.pending.state);
        assert_eq!(query["nonce"], a.pending.nonce);
        assert_eq!(query["code_challenge"], pkce_challenge(&a.pending.pkce_verifier));
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[tokio::test]
    async fn complete_checks_the_callback_before_the_provider_sees_it() {
        let (recorder, flow) = flow();
        let start = flow.begin(None, false);
        let state = start.pending.state().to_owned();
        type Expected = fn(&AuthError) -> bool;
        let cases: Vec<(Callback, Expected)> = vec![
            (
                Callback { error: Some("access_denied".into()), ..callback(&state) },
                |e| matches!(e, AuthError::Denied { code } if code == "access_denied"),
            ),
            (callback("other-state"), |e| matches!(e, AuthError::StateMismatch)),
            (Callback { state: None, ..callback(&state) }, |e| matches!(e, AuthError::StateMismatch)),
            (Callback { iss: Some("https://evil.example".into()), ..callback(&state) }, |e| {
                matches!(e, AuthError::CallbackIssuerMismatch)
            }),
            (Callback { code: None, ..callback(&state) }, |e| matches!(e, AuthError::MissingCode)),
            (Callback { code: Some(String::new()), ..callback(&state) }, |e| matches!(e, AuthError::MissingCode)),
        ];
        for (cb, expected) in cases {
            let err = flow.complete(start.pending.clone(), cb.clone()).await.expect_err("refused");
            assert!(expected(&err), "{cb:?} gave {err:?}");
        }
        let old = PendingLogin { created_at: start.pending.created_at - 601, ..start.pending.clone() };
        assert!(matches!(flow.complete(old, callback(&state)).await, Err(AuthError::LoginExpired)));
        assert!(recorder.0.lock().expect("lock").is_empty(), "no refused callback reached the provider");

        let ok = Callback { iss: Some("https://idp.example".into()), ..callback(&state) };
        let signed_in = flow.complete(start.pending.clone(), ok).await.expect("signed in");
        assert_eq!(signed_in.claims.profile.subject, "ada");
        let calls = recorder.0.lock().expect("lock").clone();
        assert_eq!(calls, [("the-code".to_owned(), start.pending.pkce_verifier.clone(), start.pending.nonce.clone())]);
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
    fn pending_login_survives_a_round_trip() {
        let json = serde_json::to_string(&pending(7)).expect("serialise");
        let back: PendingLogin = serde_json::from_str(&json).expect("deserialise");
        assert!(back.state_matches(Some("state-abc")));
        assert_eq!(back.created_at(), 7);
    }
}
