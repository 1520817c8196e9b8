//! The OpenID Connect relying party.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod, CoreErrorResponseType,
    CoreGenderClaim, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyAdditionalClaims, EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, IdToken,
    IdTokenVerifier, IssuerUrl, JsonWebKey as _, JwsSigningAlgorithm as _, LocalizedClaim, LoginHint, Nonce,
    OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, SignatureVerificationError,
    StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use openidconnect::{AdditionalProviderMetadata, EndSessionUrl, LogoutRequest, PostLogoutRedirectUrl, RevocationUrl};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use signin_domain::ProfileClaims;
use subtle::ConstantTimeEq as _;

use crate::claims::{Claims, SignedIn, Tokens};
use crate::error::AuthError;
use crate::http::HttpClient;
use crate::jws::{Compact, Rejected};
use crate::login::{AuthorizationRequest, Provider};

/// How to reach and trust one OpenID provider; deserialises from the `[oidc]` configuration section.
///
/// Durations are seconds (`10`) or forms such as `"10s"`, `"1m"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// A short name for the provider in URLs (`/login/<id>`) and attempt cookies: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
    /// Default: `google` for Google's issuer, else `oidc`. Several providers need distinct ids.
    #[serde(default)]
    pub id: Option<String>,
    /// The issuer, e.g. `https://accounts.google.com`; must equal the discovery document's `issuer` exactly.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider.
    pub client_secret: SecretString,
    /// The name pages call the provider by; default "Google" for Google's issuer, else the issuer's host.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Scopes besides `openid` (which is always requested); default `email`, `profile`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Limit for each HTTP call to the provider (default 10 s).
    #[serde(default = "default_http_timeout", with = "signin_domain::duration")]
    pub http_timeout: Duration,
    /// Allowed clock difference for `exp`, `iat` and `nbf` (default 60 s).
    #[serde(default = "default_clock_leeway", with = "signin_domain::duration")]
    pub clock_leeway: Duration,
    /// Largest response body read from the provider (default 1 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// A posted token (logout token, security event) naming an unknown key fetches the keys again at most once per
    /// this long (default 60 s); an ID token the provider answered with does so at once (at most once a second).
    #[serde(default = "default_key_refetch_interval", with = "signin_domain::duration")]
    pub key_refetch_interval: Duration,
    /// The `prompt` sent with the first sign-in after an explicit sign-out; default `select_account` for Google
    /// (the account chooser), `login` elsewhere (OpenID Connect's re-authentication). An empty value sends none.
    #[serde(default)]
    pub prompt_after_sign_out: Option<String>,
    /// At sign-out, revoke the sign-in's token at the provider (RFC 7009) when it advertises a
    /// `revocation_endpoint` (Google does): best effort, in the background, never delaying the sign-out. Default on.
    #[serde(default = "default_true")]
    pub revoke_at_sign_out: bool,
    /// At sign-out, send the browser on to the provider's `end_session_endpoint` (OpenID Connect RP-Initiated
    /// Logout) with `id_token_hint` and `post_logout_redirect_uri` (the site's home, to register with the
    /// provider), when it advertises one (Google does not). Default off: signing out of the site leaves the
    /// person signed in at the provider.
    #[serde(default)]
    pub end_session_at_sign_out: bool,
    /// Limit for a revocation request at sign-out (default 3 s).
    #[serde(default = "default_sign_out_timeout", with = "signin_domain::duration")]
    pub sign_out_timeout: Duration,
    /// Keep a refresh token of each person's grant, so that the site can act for them while they are away: at
    /// Google `access_type=offline`, elsewhere the `offline_access` scope; `prompt=consent` only when no refresh
    /// token is held for the person (the only way Google issues one). Default off.
    #[serde(default)]
    pub offline_access: bool,
    /// Scopes a signed-in person may be asked to grant on top of sign-in (`GET /login/grant?scope=…`), e.g.
    /// `https://www.googleapis.com/auth/calendar.readonly`. The grant route refuses any other, so that no link can
    /// make the site ask for more than it uses. Default none.
    #[serde(default)]
    pub grantable_scopes: Vec<String>,
}

fn default_true() -> bool {
    true
}

fn default_sign_out_timeout() -> Duration {
    Duration::from_secs(3)
}

/// What a provider's discovery document says beyond OpenID Connect Discovery's core fields: where tokens are
/// revoked (RFC 8414) and where a session at the provider ends (RP-Initiated Logout).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct SignOutMetadata {
    #[serde(default)]
    revocation_endpoint: Option<RevocationUrl>,
    #[serde(default)]
    end_session_endpoint: Option<EndSessionUrl>,
}
impl AdditionalProviderMetadata for SignOutMetadata {}

/// A discovery document with [`SignOutMetadata`].
pub(crate) type Metadata = openidconnect::ProviderMetadata<
    SignOutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    openidconnect::core::CoreClaimName,
    openidconnect::core::CoreClaimType,
    openidconnect::core::CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    openidconnect::core::CoreResponseMode,
    openidconnect::core::CoreResponseType,
    openidconnect::core::CoreSubjectIdentifierType,
>;

/// Google's issuer identifier.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The other form of Google's `iss` in its ID tokens.
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

fn default_scopes() -> Vec<String> {
    vec!["email".to_owned(), "profile".to_owned()]
}
fn default_http_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_clock_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_max_response_bytes() -> usize {
    1024 * 1024
}

fn default_key_refetch_interval() -> Duration {
    Duration::from_secs(60)
}

impl ProviderSettings {
    /// Settings with defaults: scopes `email` and `profile`, 10 s timeout, 60 s leeway, 1 MiB responses.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            id: None,
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            display_name: None,
            scopes: default_scopes(),
            http_timeout: default_http_timeout(),
            clock_leeway: default_clock_leeway(),
            max_response_bytes: default_max_response_bytes(),
            key_refetch_interval: default_key_refetch_interval(),
            prompt_after_sign_out: None,
            revoke_at_sign_out: true,
            end_session_at_sign_out: false,
            sign_out_timeout: default_sign_out_timeout(),
            offline_access: false,
            grantable_scopes: Vec::new(),
        }
    }

    /// The `prompt` for the first sign-in after a sign-out: the configured one (none when empty),
    /// `select_account` for Google, else `login`.
    pub fn prompt_after_sign_out(&self) -> Option<String> {
        match self.prompt_after_sign_out.as_deref().map(str::trim) {
            Some("") => None,
            Some(prompt) => Some(prompt.to_owned()),
            None if self.issuer == GOOGLE_ISSUER => Some("select_account".to_owned()),
            None => Some("login".to_owned()),
        }
    }

    /// The provider's id: the configured one, `google` for Google's issuer, else `oidc`.
    pub fn id(&self) -> String {
        match self.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None if self.issuer == GOOGLE_ISSUER => "google".to_owned(),
            None => "oidc".to_owned(),
        }
    }

    /// The name pages call the provider by: the configured one, "Google" for Google's issuer, else the issuer's
    /// host.
    pub fn display_name(&self) -> String {
        match self.display_name.as_deref().map(str::trim).filter(|name| !name.is_empty()) {
            Some(name) => name.to_owned(),
            None => issuer_name(&self.issuer),
        }
    }
}

/// The name of the provider with this issuer when nothing better is configured: "Google" for Google's issuer, else
/// the issuer's host (else the issuer as written).
pub fn issuer_name(issuer: &str) -> String {
    if issuer == GOOGLE_ISSUER {
        return "Google".to_owned();
    }
    url::Url::parse(issuer).ok().and_then(|url| url.host_str().map(str::to_owned)).unwrap_or_else(|| issuer.to_owned())
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("display_name", &self.display_name)
            .field("scopes", &self.scopes)
            .field("http_timeout", &self.http_timeout)
            .field("clock_leeway", &self.clock_leeway)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("key_refetch_interval", &self.key_refetch_interval)
            .field("prompt_after_sign_out", &self.prompt_after_sign_out)
            .field("revoke_at_sign_out", &self.revoke_at_sign_out)
            .field("end_session_at_sign_out", &self.end_session_at_sign_out)
            .field("sign_out_timeout", &self.sign_out_timeout)
            .field("offline_access", &self.offline_access)
            .field("grantable_scopes", &self.grantable_scopes)
            .finish()
    }
}

/// The token endpoint's answer with the ID token kept as raw text.
///
/// openidconnect's own response type parses the ID token while parsing the JSON, so an ID token with a missing or
/// mistyped claim would look like "the provider sent garbage" (502). Keeping it raw lets us parse it ourselves and
/// report it as a rejected token (400), and gives us the payload for the `nbf` check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct TokenReply(StandardTokenResponse<RawIdToken, CoreTokenType>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawIdToken {
    id_token: Option<String>,
}
impl ExtraTokenFields for RawIdToken {}

impl OAuth2TokenResponse for TokenReply {
    type TokenType = CoreTokenType;
    fn access_token(&self) -> &AccessToken {
        self.0.access_token()
    }
    fn token_type(&self) -> &CoreTokenType {
        self.0.token_type()
    }
    fn expires_in(&self) -> Option<Duration> {
        self.0.expires_in()
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.0.refresh_token()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.0.scopes()
    }
}

impl TokenResponse<EmptyAdditionalClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>
    for TokenReply
{
    /// Always `None`: the raw token is parsed and verified by [`OidcClient`] itself.
    fn id_token(
        &self,
    ) -> Option<
        &IdToken<EmptyAdditionalClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>,
    > {
        None
    }
}

type RpClient = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenReply,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// An OpenID Connect relying party for one provider: discovery and keys are fetched once at start-up; the keys are
/// fetched again when a token names a key we do not know (rotation). Cheap to clone.
#[derive(Clone)]
pub struct OidcClient {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProviderSettings,
    id: String,
    display_name: String,
    prompt_after_sign_out: Option<String>,
    /// What a sign-in asks for: `openid`, then the configured scopes besides it.
    sign_in_scopes: Vec<String>,
    issuer: IssuerUrl,
    client: RpClient,
    http: HttpClient,
    /// The provider's keys (fetched again on an unknown key id, at most once per `key_refetch_interval`).
    keys: crate::jws::RemoteKeys,
    /// What the provider advertises in `id_token_signing_alg_values_supported`, without `none`.
    algs: Vec<CoreJwsSigningAlgorithm>,
    /// The end-session endpoint, when advertised.
    end_session: Option<EndSessionUrl>,
    /// The revocation endpoint, when one is advertised.
    revocation: Option<url::Url>,
    /// How the client authenticates to the token (and revocation) endpoint.
    client_auth: AuthType,
}

impl fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcClient").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Fetches the discovery document and the key set, and checks that they can work. Call this at start-up.
    /// `redirect_url` is where the provider sends the browser back (the callback registered with it).
    #[tracing::instrument(skip_all, fields(oidc.issuer = %settings.issuer))]
    pub async fn discover(settings: ProviderSettings, redirect_url: url::Url) -> Result<Self, AuthError> {
        let http = HttpClient::new(settings.http_timeout, settings.max_response_bytes).map_err(|err| {
            AuthError::ProviderUnavailable {
                reason: "cannot build the HTTP client".into(),
                source: Some(Box::new(err)),
            }
        })?;
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|_| AuthError::Configuration { reason: "the issuer is not a URL".into() })?;
        // Also checks that the document's `issuer` is exactly ours, and fetches the key set.
        let metadata = Metadata::discover_async(issuer, &http).await?;
        Self::from_metadata(settings, metadata, redirect_url, http)
    }

    /// The client for a provider whose discovery document (with its key set) is at hand.
    fn from_metadata(
        settings: ProviderSettings,
        metadata: Metadata,
        redirect_url: url::Url,
        http: HttpClient,
    ) -> Result<Self, AuthError> {
        let issuer = metadata.issuer().clone();

        let algs: Vec<_> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        if algs.is_empty() {
            return Err(AuthError::Configuration { reason: "the provider advertises no ID token signature".into() });
        }
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| AuthError::Configuration { reason: "the provider has no token endpoint".into() })?;
        // RFC 8414: client_secret_basic is the default when the provider lists nothing.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            None => AuthType::BasicAuth,
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) => AuthType::BasicAuth,
            Some(methods) if methods.contains(&CoreClientAuthMethod::ClientSecretPost) => AuthType::RequestBody,
            Some(_) => {
                return Err(AuthError::Configuration {
                    reason: "the token endpoint supports neither client_secret_basic nor client_secret_post".into(),
                });
            }
        };
        let jwks_url = metadata.jwks_uri().clone();
        let keys = metadata.jwks().clone();
        let settings_refetch = settings.key_refetch_interval;
        let redirect = RedirectUrl::from_url(redirect_url);
        let revocation_url = metadata.additional_metadata().revocation_endpoint.clone();
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client: RpClient = openidconnect::Client::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(ClientSecret::new(settings.client_secret.expose_secret().to_owned())),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type.clone());

        let revocation = revocation_url.map(|url| url.url().clone());
        tracing::info!(oidc.keys = keys.keys().len(), "OpenID provider discovered");
        Ok(Self {
            inner: Arc::new(Inner {
                id: settings.id(),
                display_name: settings.display_name(),
                prompt_after_sign_out: settings.prompt_after_sign_out(),
                sign_in_scopes: std::iter::once("openid".to_owned())
                    .chain(settings.scopes.iter().filter(|scope| scope.as_str() != "openid").cloned())
                    .collect(),
                settings,
                issuer,
                client,
                http,
                keys: crate::jws::RemoteKeys::new(jwks_url, keys, settings_refetch),
                algs,
                end_session,
                revocation,
                client_auth: auth_type,
            }),
        })
    }

    /// The issuer, as configured (and as the provider's discovery document states it).
    pub fn issuer(&self) -> &str {
        &self.inner.settings.issuer
    }

    fn verifier(&self, keys: &CoreJsonWebKeySet) -> CoreIdTokenVerifier<'static> {
        let settings = &self.inner.settings;
        let client_id = ClientId::new(settings.client_id.clone());
        let issuer = self.inner.issuer.clone();
        // With a client secret, openidconnect verifies HS* tokens keyed by it. Only allow that when the provider
        // says it signs that way; the algorithm list below also restricts it.
        let verifier = if self.inner.algs.iter().any(|alg| alg.uses_shared_secret()) {
            let secret = ClientSecret::new(settings.client_secret.expose_secret().to_owned());
            IdTokenVerifier::new_confidential_client(client_id, secret, issuer, keys.clone())
        } else {
            IdTokenVerifier::new_public_client(client_id, issuer, keys.clone())
        };
        let leeway = chrono::Duration::from_std(settings.clock_leeway).unwrap_or(chrono::Duration::seconds(60));
        verifier
            .set_allowed_algs(self.inner.algs.clone())
            // openidconnect rejects when now >= exp; shifting "now" back grants the leeway.
            .set_time_fn(move || Utc::now() - leeway)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > Utc::now() + leeway { Err("the token is issued in the future".to_owned()) } else { Ok(()) }
            })
    }

    /// One verification attempt against one key set: signature (unless `signature_verified` already, see
    /// [`OidcClient::google_bare_issuer`]), iss, aud, exp, iat, nonce, then at_hash.
    fn verify_with(
        &self,
        token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
        nonce: Option<&Nonce>,
        access_token: &AccessToken,
        signature_verified: bool,
    ) -> Result<CoreIdTokenClaims, Rejected> {
        let verifier = self.verifier(keys);
        let verifier = if signature_verified { verifier.insecure_disable_signature_check() } else { verifier };
        // A refresh's ID token carries no nonce of ours (OpenID Connect Core §12.2): `None` checks none.
        let checked = match nonce {
            Some(nonce) => token.claims(&verifier, nonce),
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
        };
        let claims = match checked {
            Ok(claims) => claims.clone(),
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                return Err(Rejected::NoKey);
            }
            // That variant's message leaves out the cause (ambiguous key, bad signature, disallowed alg, ...).
            Err(ClaimsVerificationError::SignatureVerification(err)) => {
                return Err(Rejected::Invalid(format!("signature verification failed: {err}").into()));
            }
            Err(err) => return Err(Rejected::Invalid(err.to_string().into())),
        };
        if let Some(claimed) = claims.access_token_hash() {
            let alg = token.signing_alg().map_err(|err| Rejected::Invalid(err.to_string().into()))?;
            let expected = if alg.uses_shared_secret() {
                let secret = self.inner.settings.client_secret.expose_secret().as_bytes().to_vec();
                AccessTokenHash::from_token(access_token, alg, &CoreJsonWebKey::new_symmetric(secret))
            } else {
                let key = token.signing_key(&verifier).map_err(|err| Rejected::Invalid(err.to_string().into()))?;
                AccessTokenHash::from_token(access_token, alg, key)
            }
            .map_err(|err| Rejected::Invalid(err.to_string().into()))?;
            if !bool::from(claimed.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(Rejected::Invalid("at_hash does not match the access token".into()));
            }
        }
        Ok(claims)
    }

    /// Verifies a JWS signature with the provider's keys and algorithms; on an unknown key, fetches the key set
    /// once more and retries. A refusal becomes `invalid(reason)`; the provider's keys endpoint failing stays what
    /// it is.
    async fn verify_signature(
        &self,
        raw: &str,
        source: crate::jws::Source,
        invalid: fn(String) -> AuthError,
    ) -> Result<crate::jws::Verified, AuthError> {
        self.inner.keys.verify(raw, &self.inner.algs, &self.inner.http, source, invalid).await
    }

    /// Google's ID tokens carry `iss` as `https://accounts.google.com` or `accounts.google.com` (Google's own
    /// documentation accepts both). openidconnect cannot even parse the second (an issuer is a URL), so for
    /// Google's issuer only, and only for that exact value, the signature is verified on the token as sent, and
    /// every claim check runs on a copy whose `iss` has the scheme: the copy's signature check is the one skipped,
    /// having been done on the original. Every other issuer must match exactly.
    async fn google_bare_issuer(&self, raw: &str) -> Result<Option<String>, AuthError> {
        if self.inner.settings.issuer != GOOGLE_ISSUER {
            return Ok(None);
        }
        let Some(compact) = Compact::split(raw) else {
            return Ok(None);
        };
        let payload = compact.claims();
        let Some(mut payload) = payload.filter(|p| p.get("iss").and_then(|v| v.as_str()) == Some(GOOGLE_BARE_ISSUER))
        else {
            return Ok(None);
        };
        self.verify_signature(raw, crate::jws::Source::Answered, |reason| {
            AuthError::invalid_token(format!("signature verification failed: {reason}"))
        })
        .await?;
        payload.insert("iss".into(), serde_json::Value::from(GOOGLE_ISSUER));
        let body = serde_json::to_vec(&payload).map_err(|err| AuthError::invalid_token(err.to_string()))?;
        Ok(Some(format!("{}.{}.{}", compact.header, URL_SAFE_NO_PAD.encode(body), compact.signature)))
    }

    /// Parses and verifies the ID token; on an unknown key, fetches the key set once more and retries.
    async fn verify_id_token(
        &self,
        raw: &str,
        nonce: Option<&Nonce>,
        access_token: &AccessToken,
    ) -> Result<(CoreIdTokenClaims, serde_json::Map<String, serde_json::Value>), AuthError> {
        let normalised = self.google_bare_issuer(raw).await?;
        let signature_verified = normalised.is_some();
        let token = CoreIdToken::from_str(normalised.as_deref().unwrap_or(raw))
            .map_err(|err| AuthError::invalid_token(format!("the ID token is malformed: {err}")))?;
        let claims = self
            .inner
            .keys
            .with_refetch(
                &self.inner.http,
                crate::jws::Source::Answered,
                |keys| self.verify_with(&token, keys, nonce, access_token, signature_verified),
                AuthError::invalid_token,
            )
            .await?;
        let payload = self.check_extra_claims(raw, &claims)?;
        Ok((claims, payload))
    }

    /// The checks openidconnect leaves to us, `azp` and `nbf`, and the shared audience rule; returns the (verified) payload's claims.
    fn check_extra_claims(
        &self,
        raw: &str,
        claims: &CoreIdTokenClaims,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
        let client_id = &self.inner.settings.client_id;
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != client_id
        {
            return Err(AuthError::invalid_token(format!("azp `{}` is not our client", azp.as_str())));
        }
        // The signature is verified by now, so the payload is the provider's.
        let payload = Compact::split(raw)
            .and_then(|compact| compact.claims())
            .ok_or_else(|| AuthError::invalid_token("the ID token payload is unreadable"))?;
        // openidconnect refuses untrusted audiences too; this is the rule every token kind shares, so that ID tokens
        // and logout tokens can never drift apart.
        if !crate::jws::audience_accepted(payload.get("aud"), &[client_id.as_str()]) {
            return Err(AuthError::invalid_token("aud does not name this client, or names another audience too"));
        }
        if let Some(nbf) = payload.get("nbf") {
            let nbf = nbf.as_f64().ok_or_else(|| AuthError::invalid_token("nbf is not a number"))?;
            let latest = Utc::now().timestamp() as f64 + self.inner.settings.clock_leeway.as_secs_f64();
            if nbf > latest {
                return Err(AuthError::invalid_token("the token is not valid yet (nbf)"));
            }
        }
        Ok(payload)
    }

    async fn user_info(&self, access_token: AccessToken, subject: &str) -> Result<CoreUserInfoClaims, AuthError> {
        let request = self
            .inner
            .client
            .user_info(access_token, None)
            .map_err(|_| AuthError::Configuration { reason: "the provider has no userinfo endpoint".into() })?;
        let info: CoreUserInfoClaims = request.request_async(&self.inner.http).await?;
        // OpenID Connect Core 5.3.2: the userinfo `sub` must be the ID token's, or the answer is about someone else.
        if info.subject().as_str() != subject {
            return Err(AuthError::UserInfoSubjectMismatch);
        }
        Ok(info)
    }

    async fn redeem_code(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<SignedIn, AuthError> {
        let reply = self
            .inner
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.inner.http)
            .await?;
        let raw = reply
            .0
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or_else(|| AuthError::invalid_token("the token response has no ID token"))?;
        let access_token = reply.access_token();
        if !bearer_token(access_token.secret()) {
            return Err(AuthError::unavailable("the token endpoint answered an unusable access token"));
        }
        let (claims, payload) = self.verify_id_token(raw, Some(&Nonce::new(nonce.to_owned())), access_token).await?;

        let mut profile = ProfileClaims {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|email| email.as_str().to_owned()),
            email_verified: claims.email_verified(),
            name: default_value(claims.name()).map(|name| name.as_str().to_owned()),
            given_name: default_value(claims.given_name()).map(|name| name.as_str().to_owned()),
            picture: default_value(claims.picture()).map(|url| url.as_str().to_owned()),
        };
        if profile.email.is_none() && self.inner.client.user_info_url().is_some() {
            let info = self.user_info(access_token.clone(), &profile.subject).await?;
            // Email and its verification flag travel together, from the same source.
            profile.email = info.email().map(|email| email.as_str().to_owned());
            profile.email_verified = info.email_verified();
            profile.name = profile.name.or_else(|| default_value(info.name()).map(|n| n.as_str().to_owned()));
            profile.given_name =
                profile.given_name.or_else(|| default_value(info.given_name()).map(|n| n.as_str().to_owned()));
            profile.picture = profile.picture.or_else(|| default_value(info.picture()).map(|u| u.as_str().to_owned()));
        }
        let tokens = Tokens::new(
            SecretString::from(access_token.secret().clone()),
            reply
                .refresh_token()
                .filter(|token| !token.secret().is_empty())
                .map(|token| SecretString::from(token.secret().clone())),
            SecretString::from(raw.to_owned()),
            reply.expires_in(),
        )
        .with_scopes(granted_scopes(&reply));
        Ok(SignedIn { claims: Claims { profile, additional: Claims::additional_from(payload) }, tokens })
    }
}

/// Whether an access token can travel as `Authorization: Bearer <token>` (RFC 6750 §2.1's `b64token`): not empty,
/// and only the characters it allows.
fn bearer_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

/// The scopes a token response states, if it states any.
fn granted_scopes(reply: &TokenReply) -> Option<Vec<String>> {
    reply.scopes().map(|scopes| scopes.iter().map(|scope| scope.as_str().to_owned()).collect())
}

impl OidcClient {
    /// RFC 6749 §6: a new access token for a refresh token; a new ID token in the answer is verified as at sign-in
    /// (signature, `iss`, `aud`, `azp`, `exp`, `iat`, `at_hash`; no nonce) and must name the same issuer and subject.
    async fn refresh_grant(
        &self,
        refresh_token: &SecretString,
        issuer: &str,
        subject: &str,
    ) -> Result<crate::Refreshed, AuthError> {
        let reply = self
            .inner
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_owned()))
            .request_async(&self.inner.http)
            .await
            .map_err(AuthError::from_refresh)?;
        let access_token = reply.access_token();
        let id_token = match reply.0.extra_fields().id_token.as_deref() {
            None => None,
            Some(raw) => {
                // Another issuer is another party speaking for the grant: refused as a change of identity (the
                // grant is dropped), before the verification that would call it merely an invalid token.
                let stated = Compact::split(raw)
                    .and_then(|compact| compact.claims())
                    .and_then(|claims| claims.get("iss").and_then(|iss| iss.as_str()).map(str::to_owned));
                let google_bare = issuer == GOOGLE_ISSUER && stated.as_deref() == Some(GOOGLE_BARE_ISSUER);
                if stated.as_deref().is_some_and(|stated| stated != issuer && !google_bare) {
                    return Err(AuthError::RefreshIdentityChanged);
                }
                let (claims, _) = self.verify_id_token(raw, None, access_token).await?;
                if claims.issuer().as_str() != issuer || claims.subject().as_str() != subject {
                    return Err(AuthError::RefreshIdentityChanged);
                }
                Some(SecretString::from(raw.to_owned()))
            }
        };
        if !bearer_token(access_token.secret()) {
            return Err(AuthError::unavailable("the token endpoint answered an unusable access token"));
        }
        Ok(crate::Refreshed {
            access_token: SecretString::from(access_token.secret().clone()),
            refresh_token: reply
                .refresh_token()
                .filter(|token| !token.secret().is_empty())
                .map(|token| SecretString::from(token.secret().clone())),
            id_token,
            expires_in: reply.expires_in(),
            scopes: granted_scopes(&reply),
        })
    }

    /// RFC 7009 revocation, written here rather than through openidconnect: its revocation request refuses any
    /// endpoint that is not https, which RFC 7009 asks of the network and this follows except on loopback, where
    /// the development and test providers run.
    async fn revoke_token(&self, token: &SecretString, refresh: bool) -> Result<(), AuthError> {
        let url = self
            .inner
            .revocation
            .as_ref()
            .ok_or_else(|| AuthError::Configuration { reason: "the provider has no revocation endpoint".into() })?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !loopback {
            return Err(AuthError::Configuration { reason: "the revocation endpoint is not https".into() });
        }
        let request = self.revocation_request(url, token, refresh)?;
        let settings = &self.inner.settings;
        let answer = tokio::time::timeout(settings.sign_out_timeout, self.inner.http.execute(request)).await;
        match answer {
            Err(_) | Ok(Err(crate::http::HttpError::Timeout)) => Err(AuthError::ProviderTimeout),
            Ok(Err(err)) => Err(AuthError::unavailable(format!("the revocation request failed: {err}"))),
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => {
                Err(AuthError::unavailable(format!("the revocation endpoint answered {}", response.status())))
            }
        }
    }

    /// The revocation request: the token, its type, and the client's authentication as at the token endpoint.
    fn revocation_request(
        &self,
        url: &url::Url,
        token: &SecretString,
        refresh: bool,
    ) -> Result<http::Request<Vec<u8>>, AuthError> {
        let settings = &self.inner.settings;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token.expose_secret());
        form.append_pair("token_type_hint", if refresh { "refresh_token" } else { "access_token" });
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json");
        match self.inner.client_auth {
            AuthType::RequestBody => {
                form.append_pair("client_id", &settings.client_id);
                form.append_pair("client_secret", settings.client_secret.expose_secret());
            }
            _ => {
                // RFC 6749 §2.3.1: the id and secret form-encoded, then Basic.
                let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
                let pair =
                    format!("{}:{}", encode(&settings.client_id), encode(settings.client_secret.expose_secret()));
                let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
                request = request.header(http::header::AUTHORIZATION, basic);
            }
        }
        request
            .body(form.finish().into_bytes())
            .map_err(|_| AuthError::unavailable("the revocation request could not be built"))
    }
}

/// The unlocalised value of a claim, else the first localised one.
fn default_value<T>(claim: Option<&LocalizedClaim<T>>) -> Option<&T> {
    let claim = claim?;
    claim.get(None).or_else(|| claim.iter().next().map(|(_, value)| value))
}

#[async_trait::async_trait]
impl Provider for OidcClient {
    fn issuer(&self) -> &str {
        &self.inner.settings.issuer
    }

    fn id(&self) -> &str {
        &self.inner.id
    }

    fn display_name(&self) -> &str {
        &self.inner.display_name
    }

    fn clock_leeway(&self) -> std::time::Duration {
        self.inner.settings.clock_leeway
    }

    fn client_id(&self) -> &str {
        &self.inner.settings.client_id
    }

    fn prompt_after_sign_out(&self) -> Option<&str> {
        self.inner.prompt_after_sign_out.as_deref()
    }

    fn authorization_url(&self, request: AuthorizationRequest<'_>) -> url::Url {
        let (state, nonce) = (request.state.to_owned(), request.nonce.to_owned());
        let mut authorize = self
            .inner
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_extra_param("code_challenge", request.code_challenge)
            .add_extra_param("code_challenge_method", "S256");
        let settings = &self.inner.settings;
        let google = settings.issuer == GOOGLE_ISSUER;
        let mut scopes: Vec<&str> =
            settings.scopes.iter().map(String::as_str).filter(|scope| *scope != "openid").collect();
        for extra in request.extra_scopes {
            if !scopes.contains(&extra.as_str()) && extra != "openid" {
                scopes.push(extra);
            }
        }
        // Offline access: at Google a parameter, elsewhere the scope of OpenID Connect Core §11.
        if settings.offline_access && !google && !scopes.contains(&"offline_access") {
            scopes.push("offline_access");
        }
        for scope in scopes {
            authorize = authorize.add_scope(Scope::new(scope.to_owned()));
        }
        if settings.offline_access && google {
            authorize = authorize.add_extra_param("access_type", "offline");
        }
        // At Google, every token of the grant covers what the person granted before, a sign-in's too (a sign-in
        // would otherwise narrow the token the person's other sessions share).
        if google {
            authorize = authorize.add_extra_param("include_granted_scopes", "true");
        }
        if let Some(hint) = request.login_hint {
            authorize = authorize.set_login_hint(LoginHint::new(hint.to_owned()));
        }
        match (request.prompt, request.consent) {
            (Some(prompt), true) if !prompt.split(' ').any(|p| p == "consent") => {
                authorize = authorize.add_extra_param("prompt", format!("{prompt} consent"));
            }
            (Some(prompt), _) => authorize = authorize.add_extra_param("prompt", prompt.to_owned()),
            (None, true) => authorize = authorize.add_extra_param("prompt", "consent"),
            (None, false) => {}
        }
        authorize.url().0
    }

    fn offline_access(&self) -> bool {
        self.inner.settings.offline_access
    }

    fn sign_in_scopes(&self) -> &[String] {
        &self.inner.sign_in_scopes
    }

    fn grantable_scopes(&self) -> &[String] {
        &self.inner.settings.grantable_scopes
    }

    #[tracing::instrument(skip_all, fields(oidc.issuer = %self.inner.settings.issuer))]
    async fn refresh(
        &self,
        refresh_token: &SecretString,
        issuer: &str,
        subject: &str,
    ) -> Result<crate::Refreshed, AuthError> {
        self.refresh_grant(refresh_token, issuer, subject).await
    }

    #[tracing::instrument(skip_all, fields(oidc.issuer = %self.inner.settings.issuer))]
    async fn verify_logout_token(&self, raw: &str) -> Result<crate::LogoutToken, AuthError> {
        let invalid = |reason: &str| AuthError::InvalidLogoutToken { reason: reason.to_owned() };
        let verified = self
            .verify_signature(raw, crate::jws::Source::Posted, |reason| AuthError::InvalidLogoutToken { reason })
            .await?;
        let settings = &self.inner.settings;
        crate::logout::check(
            &verified,
            &settings.issuer,
            &settings.client_id,
            settings.clock_leeway,
            Utc::now().timestamp(),
        )
        .map_err(invalid)
    }

    /// Errors are returned, not logged: the caller logs each failure once, where it handles it.
    #[tracing::instrument(skip_all, fields(oidc.issuer = %self.inner.settings.issuer))]
    async fn redeem(&self, code: &str, pkce_verifier: &str, nonce: &str) -> Result<SignedIn, AuthError> {
        self.redeem_code(code, pkce_verifier, nonce).await
    }

    fn sign_out_plan(&self) -> crate::SignOutPlan {
        let settings = &self.inner.settings;
        crate::SignOutPlan {
            revoke: settings.revoke_at_sign_out && self.inner.revocation.is_some(),
            end_session: settings.end_session_at_sign_out && self.inner.end_session.is_some(),
        }
    }

    #[tracing::instrument(skip_all, fields(oidc.issuer = %self.inner.settings.issuer))]
    async fn revoke(&self, token: &SecretString, refresh: bool) -> Result<(), AuthError> {
        self.revoke_token(token, refresh).await
    }

    fn end_session_url(&self, id_token_hint: &str, post_logout_redirect: &url::Url) -> Option<url::Url> {
        let endpoint = self.inner.end_session.clone()?;
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.inner.settings.client_id.clone()))
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(post_logout_redirect.clone()));
        if let Ok(hint) = CoreIdToken::from_str(id_token_hint) {
            request = request.set_id_token_hint(&hint);
        }
        Some(request.http_get_url())
    }

    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> Result<(), AuthError> {
        self.inner.keys.ping(&self.inner.http).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_after_a_sign_out_is_the_account_chooser_for_google_and_login_elsewhere() {
        let settings = |issuer: &str, configured: Option<&str>| ProviderSettings {
            prompt_after_sign_out: configured.map(str::to_owned),
            ..ProviderSettings::new(issuer, "id", SecretString::from("s"))
        };
        assert_eq!(settings(GOOGLE_ISSUER, None).prompt_after_sign_out().as_deref(), Some("select_account"));
        assert_eq!(settings("https://idp.example", None).prompt_after_sign_out().as_deref(), Some("login"));
        assert_eq!(settings(GOOGLE_ISSUER, Some("consent")).prompt_after_sign_out().as_deref(), Some("consent"));
        assert_eq!(settings(GOOGLE_ISSUER, Some("")).prompt_after_sign_out(), None, "empty: none");
    }

    #[test]
    fn settings_debug_hides_the_secret() {
        let settings =
            ProviderSettings::new("https://accounts.google.com", "client-1", SecretString::from("very-secret-value"));
        let out = format!("{settings:?}");
        assert!(!out.contains("very-secret-value"), "{out}");
        assert!(out.contains("client-1") && out.contains("[redacted]"));
        assert_eq!(settings.scopes, ["email", "profile"]);
        assert_eq!(settings.http_timeout, Duration::from_secs(10));
        assert_eq!(settings.clock_leeway, Duration::from_secs(60));
        assert_eq!(settings.max_response_bytes, 1024 * 1024);
        assert_eq!(settings.display_name(), "Google");
    }

    #[test]
    fn other_providers_are_named_by_config_or_host() {
        let mut settings = ProviderSettings::new("https://login.example.org/realm", "c", SecretString::from("s"));
        assert_eq!(settings.display_name(), "login.example.org");
        settings.display_name = Some("Example SSO".into());
        assert_eq!(settings.display_name(), "Example SSO");
    }

    /// A client for `issuer` whose keys are the hostile provider's (no discovery: its document is made here).
    async fn client_with_hostile_keys(idp: &signin_hostile_idp::HostileIdp, issuer: &str) -> OidcClient {
        client_with_hostile_keys_and(idp, issuer, |_| {}).await
    }

    /// The same, with the settings tweaked first.
    async fn client_with_hostile_keys_and(
        idp: &signin_hostile_idp::HostileIdp,
        issuer: &str,
        tweak: impl FnOnce(&mut ProviderSettings),
    ) -> OidcClient {
        let jwks: CoreJsonWebKeySet =
            reqwest::get(format!("{}/jwks", idp.issuer())).await.expect("jwks").json().await.expect("a key set");
        let metadata = Metadata::new(
            IssuerUrl::new(issuer.to_owned()).expect("issuer"),
            openidconnect::AuthUrl::new(format!("{issuer}/authorize")).expect("url"),
            openidconnect::JsonWebKeySetUrl::new(format!("{}/jwks", idp.issuer())).expect("url"),
            vec![openidconnect::ResponseTypes::new(vec![openidconnect::core::CoreResponseType::Code])],
            vec![openidconnect::core::CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            SignOutMetadata::default(),
        )
        .set_token_endpoint(Some(openidconnect::TokenUrl::new(format!("{issuer}/token")).expect("url")))
        .set_jwks(jwks);
        let mut settings = ProviderSettings::new(issuer, signin_hostile_idp::CLIENT_ID, SecretString::from("secret"));
        tweak(&mut settings);
        let http = HttpClient::new(Duration::from_secs(5), 1 << 20).expect("http");
        let redirect = url::Url::parse("https://app.example/login/callback").expect("url");
        OidcClient::from_metadata(settings, metadata, redirect, http).expect("client")
    }

    /// What the authorization request says, parameter by parameter.
    fn query(url: &url::Url) -> std::collections::HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    }

    #[tokio::test]
    async fn offline_access_and_grants_ask_google_and_other_providers_each_their_own_way() {
        use signin_hostile_idp::{HostileIdp, Scenario};
        let idp = HostileIdp::start(Scenario::default()).await.expect("keys");
        let offline = |settings: &mut ProviderSettings| settings.offline_access = true;
        let google = client_with_hostile_keys_and(&idp, GOOGLE_ISSUER, offline).await;
        let other = client_with_hostile_keys_and(&idp, "https://idp.example", offline).await;
        let calendar = ["https://www.googleapis.com/auth/calendar.readonly".to_owned()];
        let request = |hint, extra_scopes, consent| AuthorizationRequest {
            state: "s",
            nonce: "n",
            code_challenge: "c",
            login_hint: hint,
            prompt: None,
            extra_scopes,
            consent,
        };

        // A sign-in: Google keeps earlier grants and is asked for offline access by parameter; no consent forced.
        let sign_in = query(&google.authorization_url(request(None, &[], false)));
        assert_eq!(sign_in["access_type"], "offline");
        assert_eq!(sign_in["include_granted_scopes"], "true");
        assert_eq!(sign_in["scope"], "openid email profile", "sign-in asks for the identity scopes only");
        assert!(!sign_in.contains_key("prompt"));
        // A grant of one more scope, without a refresh token held: consent, the person named.
        let grant = query(&google.authorization_url(request(Some("1234"), &calendar, true)));
        assert_eq!(grant["scope"], format!("openid email profile {}", calendar[0]));
        assert_eq!((grant["prompt"].as_str(), grant["login_hint"].as_str()), ("consent", "1234"));
        assert_eq!(grant["access_type"], "offline");

        // Elsewhere offline access is the OpenID Connect scope, and Google's parameters are not sent.
        let elsewhere = query(&other.authorization_url(request(None, &[], true)));
        assert_eq!(elsewhere["scope"], "openid email profile offline_access");
        assert_eq!(elsewhere["prompt"], "consent");
        assert!(!elsewhere.contains_key("access_type") && !elsewhere.contains_key("include_granted_scopes"));

        // Without offline access, neither asks for it.
        let online = client_with_hostile_keys(&idp, GOOGLE_ISSUER).await;
        let plain = query(&online.authorization_url(request(None, &[], false)));
        assert!(!plain.contains_key("access_type") && !plain["scope"].contains("offline_access"));
    }

    fn id_token_claims(iss: &str) -> serde_json::Value {
        let now = Utc::now().timestamp();
        serde_json::json!({
            "iss": iss, "aud": signin_hostile_idp::CLIENT_ID, "sub": "1234", "iat": now, "exp": now + 600,
            "nonce": "n-1", "email": "ada@example.com", "email_verified": true,
        })
    }

    #[tokio::test]
    async fn googles_issuer_is_accepted_with_and_without_its_scheme_and_no_other_issuer_is() {
        use signin_hostile_idp::{HostileIdp, Scenario, Signer};
        let idp = HostileIdp::start(Scenario::default()).await.expect("keys");
        let google = client_with_hostile_keys(&idp, GOOGLE_ISSUER).await;
        let (nonce, access) = (Nonce::new("n-1".into()), AccessToken::new("at".into()));
        let verify = |client: &OidcClient, claims: serde_json::Value, signer: Signer| {
            let raw = idp.sign(&claims, "JWT", signer).expect("signed");
            let (client, nonce, access) = (client.clone(), nonce.clone(), access.clone());
            async move { client.verify_id_token(&raw, Some(&nonce), &access).await }
        };

        for iss in ["https://accounts.google.com", "accounts.google.com"] {
            let (claims, _) = verify(&google, id_token_claims(iss), Signer::Provider).await.expect(iss);
            assert_eq!(claims.issuer().as_str(), GOOGLE_ISSUER, "{iss}: the user is keyed by the one issuer");
        }
        // The bare form is not a way around the signature, the audience, the expiry or the nonce.
        let forged = verify(&google, id_token_claims("accounts.google.com"), Signer::Attacker).await;
        assert!(forged.expect_err("forged").to_string().contains("signature"));
        let mut other_audience = id_token_claims("accounts.google.com");
        other_audience["aud"] = "someone-else".into();
        assert!(verify(&google, other_audience, Signer::Provider).await.is_err());
        let mut expired = id_token_claims("accounts.google.com");
        expired["exp"] = (Utc::now().timestamp() - 3600).into();
        assert!(verify(&google, expired, Signer::Provider).await.is_err());
        let mut other_nonce = id_token_claims("accounts.google.com");
        other_nonce["nonce"] = "not-ours".into();
        assert!(verify(&google, other_nonce, Signer::Provider).await.is_err());
        for iss in ["accounts.google.com.evil.example", "https://accounts.google.com/", "http://accounts.google.com"] {
            assert!(verify(&google, id_token_claims(iss), Signer::Provider).await.is_err(), "{iss}");
        }

        // Anywhere else, the issuer matches exactly.
        let other = client_with_hostile_keys(&idp, "https://idp.example").await;
        assert!(verify(&other, id_token_claims("https://idp.example"), Signer::Provider).await.is_ok());
        // The audience rule logout tokens follow too (jws::audience_accepted): ours alone, as a list or not.
        for (aud, accepted) in [
            (serde_json::json!([signin_hostile_idp::CLIENT_ID]), true),
            (serde_json::json!([signin_hostile_idp::CLIENT_ID, "untrusted"]), false),
            (serde_json::json!("untrusted"), false),
        ] {
            let mut claims = id_token_claims("https://idp.example");
            claims["aud"] = aud.clone();
            assert_eq!(verify(&other, claims, Signer::Provider).await.is_ok(), accepted, "aud {aud}");
        }
        for iss in ["idp.example", "accounts.google.com", GOOGLE_ISSUER] {
            assert!(verify(&other, id_token_claims(iss), Signer::Provider).await.is_err(), "{iss}");
        }
    }

    #[test]
    fn localized_claims_prefer_the_unlocalised_value() {
        let mut claim = LocalizedClaim::new();
        claim.insert(Some(openidconnect::LanguageTag::new("de".into())), "Ada (de)".to_owned());
        assert_eq!(default_value(Some(&claim)).map(String::as_str), Some("Ada (de)"));
        claim.insert(None, "Ada".to_owned());
        assert_eq!(default_value(Some(&claim)).map(String::as_str), Some("Ada"));
        assert_eq!(default_value::<String>(None), None);
    }
}
