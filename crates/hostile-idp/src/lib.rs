#![doc = include_str!("../README.md")]

mod keys;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use keys::{Keys, Signing, at_hash, encode_jwt, pkce_challenge, random_token};

/// The client id the provider knows.
pub const CLIENT_ID: &str = "hostile-client";
/// The client secret the provider knows.
pub const CLIENT_SECRET: &str = "hostile-client-secret";
/// The `sub` of the person who always signs in.
pub const SUBJECT: &str = "hostile-user-1";

/// One way for the provider to misbehave. Exactly one is active at a time (see [`Scenario`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Behave like a correct provider (Google-like: claims in the ID token, `azp`, `at_hash`, `iss` on the callback).
    #[default]
    None,
    /// `/authorize` redirects back with `error=access_denied` (and a hostile `error_description`).
    AuthorizeDenied,
    /// The discovery document's `issuer` is not the URL it was fetched from.
    DiscoveryIssuerMismatch,
    /// The discovery document answers `302 Found` to `/attacker/openid-configuration` on this server.
    DiscoveryRedirect,
    /// The ID token's `iss` is another issuer.
    IdTokenIssuerMismatch,
    /// The ID token names the issuer without its scheme (as Google may for its own issuer only).
    IdTokenIssuerWithoutScheme,
    /// The callback's `iss` parameter names another issuer.
    CallbackIssMismatch,
    /// The callback carries no `iss` parameter (like providers without RFC 9207).
    CallbackIssOmitted,
    /// The ID token has no `aud`.
    AudMissing,
    /// The ID token's `aud` is another client.
    AudNotClient,
    /// `aud` is `[our client, another client]`, without `azp`.
    AudExtraUntrusted,
    /// `azp` names another client.
    AzpWrong,
    /// The ID token has no `sub`.
    SubMissing,
    /// The ID token has no `iat`.
    IatMissing,
    /// `exp` lies this far in the past (`iat` a minute before it).
    ExpiredBy(Duration),
    /// `iat` lies this far in the future.
    IatInFuture(Duration),
    /// `nbf` lies this far in the future.
    NbfInFuture(Duration),
    /// `alg: none` with an empty signature.
    AlgNone,
    /// RS256 header naming the provider's key, signed with another key.
    BadSignature,
    /// HS256 signed with the provider's public key (PEM text) as the HMAC secret.
    Hs256WithPublicKey,
    /// Signed by an attacker key, with `jku` pointing at `/attacker/jwks` on this server (which serves that key).
    JkuHeader,
    /// Signed by an attacker key, with `x5u` pointing at `/attacker/cert.pem` on this server.
    X5uHeader,
    /// No `kid` in the header; the key set has one key.
    NoKid,
    /// No `kid` in the header; the key set has two keys.
    NoKidSeveralKeys,
    /// Tokens are signed with a second key; `/jwks` now serves both keys.
    KeyRotated,
    /// Tokens are signed with a second key; `/jwks` answers 502.
    KeyRotatedJwksDown,
    /// The ID token's `nonce` is not the one from `/authorize`.
    NonceWrong,
    /// The ID token has no `nonce`.
    NonceMissing,
    /// The ID token carries no email or profile claims; `/userinfo` has them.
    ProfileOnlyInUserinfo,
    /// Like [`Fault::ProfileOnlyInUserinfo`], and `/userinfo` speaks about another `sub`.
    UserinfoSubMismatch,
    /// `at_hash` does not match the access token.
    AtHashWrong,
    /// `/token` waits this long before answering.
    TokenHangs(Duration),
    /// `/revoke` waits this long before answering.
    RevocationHangs(Duration),
    /// `/jwks` answers only after this long (the whole provider is hanging, as far as a client can tell).
    KeysHang(Duration),
    /// `/token` answers 200 with a JSON body of this many bytes (with `Content-Length`).
    TokenOversized(usize),
    /// `/token` answers 200 with a JSON body of this many bytes, chunked (no `Content-Length`).
    TokenOversizedChunked(usize),
    /// `/token` answers 200 with HTML.
    TokenNotJson,
    /// `/token` answers 503 with an OAuth-looking JSON error.
    TokenServerError,
    /// `/token` redeems a code as often as it is shown (against RFC 6749 §4.1.2), each time with a fresh ID token
    /// for the same nonce: a buggy or hostile provider, against which a replayed callback must still not sign in.
    CodeReusable,
    /// Refresh tokens rotate: each refresh answers a new `refresh_token` and the one presented is dead (presenting
    /// it again gets `invalid_grant`). Without this fault a refresh token stays valid and a refresh answers none,
    /// as Google does.
    RefreshRotates,
    /// A refresh answers an ID token about another `sub` than the one who signed in.
    RefreshSubjectChanged,
    /// A refresh answers an ID token whose `iss` is another issuer.
    RefreshIssuerChanged,
    /// A refresh answers 200 with JSON that has no `access_token` (nor an ID token).
    RefreshWithoutAccessToken,
    /// Every refresh answers 400 `invalid_grant`, as when the person revoked the app's access at the provider.
    RefreshInvalidGrant,
}

/// What the provider does next: one [`Fault`] and claim overrides.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// The active fault.
    pub fault: Fault,
    /// Claims merged over the person's defaults (`email`, `email_verified`, `name`, `given_name`, `picture`, ...),
    /// in the ID token and in `/userinfo`. `Value::Null` removes a claim.
    pub claims: Map<String, Value>,
}

impl Scenario {
    /// A scenario with this fault and the default claims.
    pub fn fault(fault: Fault) -> Self {
        Self { fault, claims: Map::new() }
    }

    /// Sets a claim (e.g. `email_verified` to `false` or to the string `"false"`).
    pub fn with_claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Removes a claim.
    pub fn without_claim(self, name: &str) -> Self {
        self.with_claim(name, Value::Null)
    }
}

/// A running hostile provider on `127.0.0.1`. Dropping it stops the server.
pub struct HostileIdp {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Grant {
    redirect_uri: String,
    /// Who signs in: the `login_hint`, when it is a plain name, else [`SUBJECT`].
    subject: String,
    code_challenge: String,
    nonce: Option<String>,
    /// The `scope` of `/authorize`, as sent.
    scope: Option<String>,
    /// Whether `/authorize` asked for offline access (`access_type=offline` or the `offline_access` scope): the
    /// code's token response then carries a refresh token.
    offline: bool,
    used: bool,
}

/// What a refresh token stands for.
struct RefreshGrant {
    subject: String,
    /// The token response's `scope`, as granted with the code.
    scope: String,
}

struct Shared {
    issuer: String,
    keys: Keys,
    scenario: Mutex<Scenario>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Each access token issued, with its subject.
    access_tokens: Mutex<Vec<(String, String)>>,
    /// The tokens revoked at `/revoke` by an authenticated client, in order.
    revoked: Mutex<Vec<String>>,
    /// Each refresh token issued, in order.
    refresh_issued: Mutex<Vec<String>>,
    /// The refresh tokens that still work (issued, not revoked, not rotated away).
    refresh_grants: Mutex<HashMap<String, RefreshGrant>>,
    /// The `/token` requests with `grant_type=refresh_token`.
    refresh_calls: Mutex<usize>,
    /// The `expires_in` of the access tokens it issues (seconds).
    token_lifetime: Mutex<u64>,
    hits: Mutex<HashMap<String, usize>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn scenario(&self) -> Scenario {
        lock(&self.scenario).clone()
    }

    fn fault(&self) -> Fault {
        lock(&self.scenario).fault.clone()
    }
}

impl HostileIdp {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(scenario: Scenario) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            keys: Keys::load()?,
            scenario: Mutex::new(scenario),
            grants: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(Vec::new()),
            revoked: Mutex::new(Vec::new()),
            refresh_issued: Mutex::new(Vec::new()),
            refresh_grants: Mutex::new(HashMap::new()),
            refresh_calls: Mutex::new(0),
            token_lifetime: Mutex::new(3599),
            hits: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/risc-configuration", get(risc_configuration))
            .route("/jwks", get(jwks))
            .route("/attacker/jwks", get(attacker_jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/revoke", post(revoke))
            .layer(middleware::from_fn_with_state(shared.clone(), count))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // The server ends when the task is aborted (drop); an accept error ends it early, which tests notice.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { shared, task })
    }

    /// The issuer: `http://127.0.0.1:PORT`, no trailing slash.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The client id to configure in the relying party.
    pub fn client_id(&self) -> &str {
        CLIENT_ID
    }

    /// The client secret to configure in the relying party.
    pub fn client_secret(&self) -> &str {
        CLIENT_SECRET
    }

    /// Switches the behaviour, e.g. between discovery and the token exchange.
    pub fn set_scenario(&self, scenario: Scenario) {
        *lock(&self.shared.scenario) = scenario;
    }

    /// From now on, access tokens are said to live this many seconds (`expires_in`; 3599 at first, as Google's).
    pub fn set_token_lifetime(&self, seconds: u64) {
        *lock(&self.shared.token_lifetime) = seconds;
    }

    /// The access tokens issued so far, in order.
    pub fn access_tokens(&self) -> Vec<String> {
        lock(&self.shared.access_tokens).iter().map(|(token, _)| token.clone()).collect()
    }

    /// The tokens revoked at `/revoke` so far, in order.
    pub fn revoked(&self) -> Vec<String> {
        lock(&self.shared.revoked).clone()
    }

    /// The refresh tokens issued so far (with codes, and by refreshes under [`Fault::RefreshRotates`]), in order.
    pub fn refresh_tokens(&self) -> Vec<String> {
        lock(&self.shared.refresh_issued).clone()
    }

    /// How many `/token` requests with `grant_type=refresh_token` arrived so far, whatever they were answered
    /// (the `/token` faults and refused refreshes included).
    pub fn refresh_calls(&self) -> usize {
        *lock(&self.shared.refresh_calls)
    }

    /// How many requests reached `path` (any method, query ignored), including unknown paths.
    pub fn requests_to(&self, path: &str) -> usize {
        lock(&self.shared.hits).get(path).copied().unwrap_or(0)
    }
}

/// Which key signs a token made by [`HostileIdp::sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The provider's own key, as its key set publishes it.
    Provider,
    /// An attacker's key, under the provider's `kid` (a forged signature).
    Attacker,
}

impl HostileIdp {
    /// A JWT of these claims signed RS256 by `signer`, its header's `typ` as given, e.g. a logout token or a
    /// security event token this provider (or someone pretending to be it) sends.
    pub fn sign(&self, claims: &Value, typ: &str, signer: Signer) -> anyhow::Result<String> {
        let keys = &self.shared.keys;
        let key = match signer {
            Signer::Provider => &keys.primary,
            Signer::Attacker => &keys.attacker,
        };
        encode_jwt(&Signing::Rs256 { key, kid: Some(keys.primary.kid) }, &[("typ", json!(typ))], claims)
    }

    /// A JWT of these claims signed RS256 by an attacker's key under `kid`, a key id the provider's set does not
    /// hold: what anyone can POST to make a relying party fetch the keys again.
    pub fn sign_with_unknown_kid(&self, claims: &Value, typ: &str, kid: &str) -> anyhow::Result<String> {
        encode_jwt(&Signing::Rs256 { key: &self.shared.keys.attacker, kid: Some(kid) }, &[("typ", json!(typ))], claims)
    }

    /// The RISC transmitter's issuer: the provider's with a trailing slash, as Google writes its own.
    pub fn risc_issuer(&self) -> String {
        format!("{}/", self.shared.issuer)
    }

    /// The claims of a correct Security Event Token from this provider as a RISC transmitter to its client, with
    /// one event of type `event` about `sub` (`subject_type` `iss-sub`), or with no subject.
    pub fn security_event_claims(&self, event: &str, sub: Option<&str>) -> Value {
        let mut body = json!({});
        if let Some(sub) = sub {
            body["subject"] = json!({ "subject_type": "iss-sub", "iss": self.risc_issuer(), "sub": sub });
        }
        json!({
            "iss": self.risc_issuer(),
            "aud": CLIENT_ID,
            "iat": now(),
            "jti": random_token(),
            "events": { event: body },
        })
    }

    /// The claims of a correct back-channel logout token from this provider to its client for `sub` and/or
    /// `sid`: issued now, a fresh `jti`, the logout event.
    pub fn logout_claims(&self, sub: Option<&str>, sid: Option<&str>) -> Value {
        let mut claims = json!({
            "iss": self.shared.issuer,
            "aud": CLIENT_ID,
            "iat": now(),
            "exp": now() + 120,
            "jti": random_token(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        claims
    }
}

impl Drop for HostileIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn count(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    *lock(&shared.hits).entry(request.uri().path().to_owned()).or_default() += 1;
    next.run(request).await
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

fn secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let base = &shared.issuer;
    if shared.fault() == Fault::DiscoveryRedirect {
        return (StatusCode::FOUND, [(header::LOCATION, format!("{base}/attacker/openid-configuration"))])
            .into_response();
    }
    let issuer = match shared.fault() {
        Fault::DiscoveryIssuerMismatch => format!("{base}/other"),
        _ => base.clone(),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "userinfo_endpoint": format!("{base}/userinfo"),
            "revocation_endpoint": format!("{base}/revoke"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "given_name", "picture", "sub"],
            "code_challenge_methods_supported": ["S256"],
        }),
    )
}

/// The RISC transmitter's configuration (Google's shape): its issuer and keys.
async fn risc_configuration(State(shared): State<Arc<Shared>>) -> Response {
    let base = &shared.issuer;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": format!("{base}/"),
            "jwks_uri": format!("{base}/jwks"),
            "delivery_methods_supported": ["https://schemas.openid.net/secevent/risc/delivery-method/push"],
        }),
    )
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let keys = &shared.keys;
    if let Fault::KeysHang(wait) = shared.fault() {
        tokio::time::sleep(wait).await;
    }
    match shared.fault() {
        Fault::KeyRotatedJwksDown => (StatusCode::BAD_GATEWAY, "upstream down").into_response(),
        Fault::NoKidSeveralKeys | Fault::KeyRotated => {
            json_response(StatusCode::OK, &json!({ "keys": [keys.primary.jwk(), keys.rotated.jwk()] }))
        }
        _ => json_response(StatusCode::OK, &json!({ "keys": [keys.primary.jwk()] })),
    }
}

async fn attacker_jwks(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &json!({ "keys": [shared.keys.attacker.jwk()] }))
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(to) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    url.query_pairs_mut().extend_pairs(params);
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    }
}

async fn authorize(State(shared): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return (StatusCode::BAD_REQUEST, "missing redirect_uri").into_response();
    };
    let state = q.get("state").map(String::as_str).unwrap_or_default();
    if shared.fault() == Fault::AuthorizeDenied {
        return redirect(
            redirect_uri,
            &[("error", "access_denied"), ("error_description", "<script>alert('pwned')</script>"), ("state", state)],
        );
    }
    let scopes_ok = q.get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    let pkce_ok = q.get("code_challenge_method").map(String::as_str) == Some("S256");
    let valid = q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("response_type").map(String::as_str) == Some("code")
        && scopes_ok
        && pkce_ok;
    let Some(challenge) = q.get("code_challenge").filter(|_| valid) else {
        return redirect(redirect_uri, &[("error", "invalid_request"), ("state", state)]);
    };
    let scope = q.get("scope").cloned();
    let offline = q.get("access_type").map(String::as_str) == Some("offline")
        || scope.as_deref().is_some_and(|s| s.split(' ').any(|s| s == "offline_access"));
    let code = random_token();
    lock(&shared.grants).insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            subject: q.get("login_hint").filter(|hint| plain_name(hint)).cloned().unwrap_or_else(|| SUBJECT.to_owned()),
            code_challenge: challenge.clone(),
            nonce: q.get("nonce").cloned(),
            scope,
            offline,
            used: false,
        },
    );
    let iss = match shared.fault() {
        Fault::CallbackIssOmitted => None,
        Fault::CallbackIssMismatch => Some("https://evil.example".to_owned()),
        _ => Some(shared.issuer.clone()),
    };
    let mut params = vec![("code", code.as_str()), ("state", state)];
    if let Some(iss) = iss.as_deref() {
        params.push(("iss", iss));
    }
    redirect(redirect_uri, &params)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_response(status, &json!({ "error": error }))
}

/// RFC 6749 2.3.1: client_secret_basic, with form-encoded id and secret, or client_secret_post.
/// `form_id` / `form_secret`: the body's `client_id` and `client_secret`, if any.
fn client_authenticated(headers: &HeaderMap, form_id: Option<&str>, form_secret: Option<&str>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let decode = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default()
    };
    let (id, secret) = match basic {
        Some(pair) => match pair.split_once(':') {
            Some((id, secret)) => (decode(id), decode(secret)),
            None => return false,
        },
        None => (form_id.unwrap_or_default().to_owned(), form_secret.unwrap_or_default().to_owned()),
    };
    id == CLIENT_ID && secret == CLIENT_SECRET
}

fn padded_json(size: usize) -> String {
    let head = r#"{"access_token":"x","token_type":"Bearer","padding":""#;
    let tail = r#""}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "a".repeat(fill))
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Response {
    if form.grant_type.as_deref() == Some("refresh_token") {
        *lock(&shared.refresh_calls) += 1;
    }
    let scenario = shared.scenario();
    // These faults answer every `/token` request, whatever its grant type.
    match scenario.fault {
        Fault::TokenHangs(wait) => tokio::time::sleep(wait).await,
        Fault::TokenOversized(size) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], padded_json(size)).into_response();
        }
        Fault::TokenOversizedChunked(size) => {
            let body = padded_json(size).into_bytes();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
            let body = Body::from_stream(futures_util::stream::iter(chunks));
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        Fault::TokenNotJson => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html>Service maintenance</html>")
                .into_response();
        }
        Fault::TokenServerError => return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        _ => {}
    }
    if !client_authenticated(&headers, form.client_id.as_deref(), form.client_secret.as_deref()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match form.grant_type.as_deref() {
        Some("authorization_code") => redeem_code(&shared, &scenario, &form),
        Some("refresh_token") => refresh(&shared, &scenario, &form),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

/// The `authorization_code` grant: the code's access token, ID token and, for offline access, a refresh token.
fn redeem_code(shared: &Shared, scenario: &Scenario, form: &TokenForm) -> Response {
    let (nonce, subject, scope, offline) = {
        let mut grants = lock(&shared.grants);
        let Some(grant) = form.code.as_deref().and_then(|code| grants.get_mut(code)) else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        };
        // A code works once (RFC 6749 4.1.2); a second use is refused.
        if grant.used && !matches!(scenario.fault, Fault::CodeReusable) {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        grant.used = true;
        let verifier_ok = form.code_verifier.as_deref().is_some_and(|v| pkce_challenge(v) == grant.code_challenge);
        if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) || !verifier_ok {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        let scope = grant.scope.clone().unwrap_or_else(|| "openid email profile".to_owned());
        (grant.nonce.clone(), grant.subject.clone(), scope, grant.offline)
    };
    let refresh_token = offline.then(|| issue_refresh_token(shared, &subject, &scope));
    token_response(shared, scenario, &subject, nonce, &scope, refresh_token, false)
}

/// The `refresh_token` grant: a fresh access token and ID token for the refresh token's subject and scope.
fn refresh(shared: &Shared, scenario: &Scenario, form: &TokenForm) -> Response {
    if scenario.fault == Fault::RefreshInvalidGrant {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let presented = form.refresh_token.as_deref().unwrap_or_default();
    let rotates = scenario.fault == Fault::RefreshRotates;
    let known = {
        let mut grants = lock(&shared.refresh_grants);
        if rotates {
            grants.remove(presented)
        } else {
            grants
                .get(presented)
                .map(|grant| RefreshGrant { subject: grant.subject.clone(), scope: grant.scope.clone() })
        }
    };
    let Some(RefreshGrant { subject, scope }) = known else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let next = rotates.then(|| issue_refresh_token(shared, &subject, &scope));
    if scenario.fault == Fault::RefreshWithoutAccessToken {
        return json_response(
            StatusCode::OK,
            &json!({ "token_type": "Bearer", "expires_in": *lock(&shared.token_lifetime), "scope": scope }),
        );
    }
    token_response(shared, scenario, &subject, None, &scope, next, true)
}

/// A new refresh token for `subject`, remembered until it is revoked (or rotated away).
fn issue_refresh_token(shared: &Shared, subject: &str, scope: &str) -> String {
    let token = random_token();
    lock(&shared.refresh_grants)
        .insert(token.clone(), RefreshGrant { subject: subject.to_owned(), scope: scope.to_owned() });
    lock(&shared.refresh_issued).push(token.clone());
    token
}

/// A successful token response: a new access token for `subject`, an ID token (from a refresh when `refresh`),
/// `scope`, and the refresh token when there is one.
fn token_response(
    shared: &Shared,
    scenario: &Scenario,
    subject: &str,
    nonce: Option<String>,
    scope: &str,
    refresh_token: Option<String>,
    refresh: bool,
) -> Response {
    let access_token = random_token();
    lock(&shared.access_tokens).push((access_token.clone(), subject.to_owned()));
    match id_token(shared, scenario, subject, nonce, &access_token, refresh) {
        Ok(id_token) => {
            let mut body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": *lock(&shared.token_lifetime),
                "scope": scope,
                "id_token": id_token,
            });
            if let Some(refresh_token) = refresh_token {
                body["refresh_token"] = json!(refresh_token);
            }
            json_response(StatusCode::OK, &body)
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("hostile idp bug: {err}")).into_response(),
    }
}

/// A `login_hint` that names who signs in: 1 to 64 ASCII letters, digits, `-` or `_`.
fn plain_name(hint: &str) -> bool {
    (1..=64).contains(&hint.len()) && hint.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The person's claims with the scenario's overrides (`null` removes): Ada for [`SUBJECT`], else `<sub>@example.com`.
fn profile(scenario: &Scenario, subject: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    if subject == SUBJECT {
        claims.insert("email".into(), json!("ada@example.com"));
        claims.insert("name".into(), json!("Ada Lovelace"));
        claims.insert("given_name".into(), json!("Ada"));
    } else {
        claims.insert("email".into(), json!(format!("{subject}@example.com")));
        claims.insert("name".into(), json!(subject));
        claims.insert("given_name".into(), json!(subject));
    }
    claims.insert("email_verified".into(), json!(true));
    claims.insert("picture".into(), json!("https://example.com/ada.png"));
    for (name, value) in &scenario.claims {
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.clone(), value.clone());
        }
    }
    claims
}

fn id_token(
    shared: &Shared,
    scenario: &Scenario,
    subject: &str,
    nonce: Option<String>,
    access_token: &str,
    refresh: bool,
) -> anyhow::Result<String> {
    let now = now();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(shared.issuer));
    claims.insert("sub".into(), json!(subject));
    claims.insert("aud".into(), json!(CLIENT_ID));
    claims.insert("azp".into(), json!(CLIENT_ID));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 600));
    claims.insert("at_hash".into(), json!(at_hash(access_token)));
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    let fault = &scenario.fault;
    if !matches!(fault, Fault::ProfileOnlyInUserinfo | Fault::UserinfoSubMismatch) {
        claims.extend(profile(scenario, subject));
    }
    match fault {
        Fault::IdTokenIssuerMismatch => drop(claims.insert("iss".into(), json!("https://evil.example"))),
        Fault::IdTokenIssuerWithoutScheme => {
            let bare = shared.issuer.trim_start_matches("http://").trim_start_matches("https://").to_owned();
            drop(claims.insert("iss".into(), json!(bare)));
        }
        Fault::AudMissing => drop(claims.remove("aud")),
        Fault::AudNotClient => {
            claims.insert("aud".into(), json!("someone-else"));
            claims.remove("azp");
        }
        Fault::AudExtraUntrusted => {
            claims.insert("aud".into(), json!([CLIENT_ID, "untrusted-client"]));
            claims.remove("azp");
        }
        Fault::AzpWrong => drop(claims.insert("azp".into(), json!("someone-else"))),
        Fault::SubMissing => drop(claims.remove("sub")),
        Fault::IatMissing => drop(claims.remove("iat")),
        Fault::ExpiredBy(by) => {
            claims.insert("exp".into(), json!(now - secs(*by)));
            claims.insert("iat".into(), json!(now - secs(*by) - 60));
        }
        Fault::IatInFuture(by) => {
            claims.insert("iat".into(), json!(now + secs(*by)));
            claims.insert("exp".into(), json!(now + secs(*by) + 600));
        }
        Fault::NbfInFuture(by) => drop(claims.insert("nbf".into(), json!(now + secs(*by)))),
        Fault::NonceWrong => drop(claims.insert("nonce".into(), json!("not-the-nonce-you-sent"))),
        Fault::NonceMissing => drop(claims.remove("nonce")),
        Fault::AtHashWrong => drop(claims.insert("at_hash".into(), json!(at_hash("another-access-token")))),
        Fault::RefreshSubjectChanged if refresh => drop(claims.insert("sub".into(), json!("someone-else"))),
        Fault::RefreshIssuerChanged if refresh => drop(claims.insert("iss".into(), json!("https://evil.example"))),
        _ => {}
    }
    let claims = Value::Object(claims);
    let keys = &shared.keys;
    let public_pem = keys.primary.public_pem();
    let jku = [("jku", json!(format!("{}/attacker/jwks", shared.issuer)))];
    let x5u = [("x5u", json!(format!("{}/attacker/cert.pem", shared.issuer)))];
    let attacker = Signing::Rs256 { key: &keys.attacker, kid: Some(keys.attacker.kid) };
    let (signing, extra): (Signing<'_>, &[(&str, Value)]) = match fault {
        Fault::AlgNone => (Signing::None { kid: keys.primary.kid }, &[]),
        Fault::BadSignature => (Signing::Rs256 { key: &keys.attacker, kid: Some(keys.primary.kid) }, &[]),
        Fault::Hs256WithPublicKey => (Signing::Hs256 { secret: public_pem.as_bytes(), kid: keys.primary.kid }, &[]),
        Fault::JkuHeader => (attacker, &jku),
        Fault::X5uHeader => (attacker, &x5u),
        Fault::NoKid | Fault::NoKidSeveralKeys => (Signing::Rs256 { key: &keys.primary, kid: None }, &[]),
        Fault::KeyRotated | Fault::KeyRotatedJwksDown => {
            (Signing::Rs256 { key: &keys.rotated, kid: Some(keys.rotated.kid) }, &[])
        }
        _ => (Signing::Rs256 { key: &keys.primary, kid: Some(keys.primary.kid) }, &[]),
    };
    encode_jwt(&signing, extra, &claims)
}

#[derive(Deserialize)]
struct RevokeForm {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// RFC 7009: an authenticated client revokes a token; 200 whether or not the token was known.
async fn revoke(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<RevokeForm>) -> Response {
    if let Fault::RevocationHangs(wait) = shared.fault() {
        tokio::time::sleep(wait).await;
    }
    if !client_authenticated(&headers, form.client_id.as_deref(), form.client_secret.as_deref()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(token) = form.token.filter(|token| !token.is_empty()) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    lock(&shared.refresh_grants).remove(&token);
    lock(&shared.revoked).push(token);
    StatusCode::OK.into_response()
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let subject = token.and_then(|token| {
        lock(&shared.access_tokens).iter().find(|(known, _)| known == token).map(|(_, subject)| subject.clone())
    });
    let Some(subject) = subject else {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")])
            .into_response();
    };
    let scenario = shared.scenario();
    let sub = if scenario.fault == Fault::UserinfoSubMismatch { "someone-else" } else { subject.as_str() };
    let mut claims = profile(&scenario, &subject);
    claims.insert("sub".into(), json!(sub));
    json_response(StatusCode::OK, &Value::Object(claims))
}
