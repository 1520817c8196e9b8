//! The fakes (a provider, a hook, a store that tells what it holds), a tiny browser, and the helpers the test
//! modules share. Everything goes through the crate's public API; the fake provider only plays the provider.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;
use signin_login::{
    ActiveSession, Api, Claims, CsrfToken, CurrentUser, ErrorPage, Login, LoginSettings, MaybeUser, MemoryDirectory,
    MySessions, Provider, SessionSettings, SessionStore, Sessions, SignIn, SignInError, SignedIn, UsedTokens,
};
use tower::ServiceExt as _;
use tower_sessions::MemoryStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use url::Url;

/// The fake provider's issuer.
pub const ISSUER: &str = "https://idp.example";
/// The session cookie's name on https (the default base name, `__Host-` in front).
pub const SESSION_COOKIE: &str = "__Host-signin_session";
/// The cookie's base name (`session.cookie_name`), its name over plain http.
pub const BASE_NAME: &str = "signin_session";
/// The prefix of every attempt cookie's name on https.
pub const ATTEMPT_PREFIX: &str = "__Secure-signin_session_login_";
/// The cookie that binds attempts to the browser (`__Host-`: no sibling subdomain can set it).
pub const BINDING_COOKIE: &str = "__Host-signin_session_browser";
/// Its name over plain http.
pub const PLAIN_BINDING_COOKIE: &str = "signin_session_browser";

// ---------------------------------------------------------------------------------------------------------------
// The fake provider.

/// The provider in memory (`signin_auth::fake`): codes starting with `good` redeem once, `again` every time,
/// `outage` is a provider outage, anything else is refused. It records what it was asked to redeem.
pub use signin_auth::fake::{FakeProvider, Redeemed};

/// The test site's providers.
pub struct FakeIdp;

impl FakeIdp {
    /// The site's main provider: id `oidc`, [`ISSUER`].
    #[expect(clippy::new_ret_no_self, reason = "a namespace for the test providers")]
    pub fn new() -> Arc<FakeProvider> {
        Self::named("oidc", ISSUER)
    }

    /// A provider with this id and issuer (its authorize endpoint is `<issuer>/authorize`).
    pub fn named(id: &str, issuer: &str) -> Arc<FakeProvider> {
        Arc::new(FakeProvider::new(id, issuer, "Example IdP", Self::claims()))
    }

    /// The claims a good code of the main provider signs in with.
    pub fn claims() -> Claims {
        let mut claims = Claims::new(ISSUER, "ada");
        claims.profile.email = Some("ada@example.com".into());
        claims.profile.email_verified = Some(true);
        claims.profile.name = Some("Ada Lovelace".into());
        claims
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The service's hook.

/// The service's say in a sign-in: keep the claims, or refuse in one of the ways a hook can.
#[derive(Debug, Clone)]
pub enum Hook {
    Keep,
    Refuse(&'static str),
    Invalid {
        title: &'static str,
        message: &'static str,
    },
    Unavailable,
    /// Keeps the claims and counts its calls (each would write the user's row).
    Counting(Arc<AtomicUsize>),
}

impl SignIn for Hook {
    type User = Claims;

    async fn sign_in(&self, signed_in: &SignedIn, _: &dyn Provider) -> Result<Claims, SignInError> {
        match self {
            Self::Keep => Ok(signed_in.claims.clone()),
            Self::Refuse(message) => Err(SignInError::Refused((*message).into())),
            Self::Invalid { title, message } => {
                Err(SignInError::Invalid { title: (*title).into(), message: (*message).into() })
            }
            Self::Unavailable => Err(SignInError::Unavailable("the user database is down".into())),
            Self::Counting(calls) => {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(signed_in.claims.clone())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The session store.

/// A [`MemoryStore`] that remembers the ids written to it, so tests can tell what it holds (the memory store
/// itself cannot list its records). The ids are those the store sees: [`Sessions::layer`] wraps it in
/// `HashedIds`, so they are hashes of the cookies' ids.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub memory: MemoryStore,
    ids: Arc<Mutex<HashSet<Id>>>,
    writes: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Store {
    /// From now on every call fails as a store that is down would (or works again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    fn check(&self) -> session_store::Result<()> {
        if self.down.load(Ordering::Relaxed) {
            return Err(session_store::Error::Backend("connection refused".to_owned()));
        }
        Ok(())
    }

    /// The records the memory store holds (and that have not expired).
    pub async fn records(&self) -> Vec<Record> {
        let ids: Vec<Id> = self.ids.lock().expect("ids lock").iter().copied().collect();
        let mut records = Vec::new();
        for id in ids {
            if let Some(record) = self.memory.load(&id).await.expect("the memory store loads") {
                records.push(record);
            }
        }
        records
    }

    /// Whether the store holds nothing and was never written to.
    pub async fn is_untouched(&self) -> bool {
        self.writes.load(Ordering::Relaxed) == 0 && self.records().await.is_empty()
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.check()?;
        self.memory.create(record).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.ids.lock().expect("ids lock").insert(record.id);
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.check()?;
        self.memory.save(record).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.ids.lock().expect("ids lock").insert(record.id);
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        self.check()?;
        self.memory.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.check()?;
        self.memory.delete(session_id).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The site.

/// How to build a [`Site`].
pub struct Options {
    pub public_url: &'static str,
    pub keys: Vec<String>,
    pub pending_login: Duration,
    pub hook: Hook,
    pub hosted_domains: Vec<String>,
    pub email_domains: Vec<String>,
    /// Keep a directory of each person's sessions.
    pub directory: bool,
    /// The used-token store, when several sites (instances) share one.
    pub used_tokens: Option<Arc<dyn UsedTokens>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: "https://example.com",
            keys: vec![signin_login::generate_cookie_key()],
            pending_login: Duration::from_secs(600),
            hook: Hook::Keep,
            hosted_domains: Vec::new(),
            email_domains: Vec::new(),
            directory: false,
            used_tokens: None,
        }
    }
}

impl Options {
    pub fn session_settings(&self) -> SessionSettings {
        SessionSettings { secure: self.public_url.starts_with("https:"), ..SessionSettings::default() }
    }

    pub fn login_settings(&self) -> LoginSettings {
        LoginSettings {
            cookie_keys: self.keys.iter().cloned().map(Into::into).collect(),
            pending_login: self.pending_login,
            hosted_domains: self.hosted_domains.clone(),
            email_domains: self.email_domains.clone(),
            ..LoginSettings::default()
        }
    }

    pub fn sessions(&self) -> Sessions {
        let url = Url::parse(self.public_url).expect("a valid public URL");
        Sessions::new(url, self.session_settings(), self.login_settings()).expect("valid settings")
    }

    pub fn build(self) -> Site {
        let sessions = self.sessions();
        let idp = FakeIdp::new();
        let builder = Login::builder(sessions.clone(), self.hook).providers(vec![idp.clone()]);
        let builder = match self.used_tokens {
            Some(used) => builder.stores(
                used,
                Arc::new(signin_login::MemoryAccountHolds::default()),
                Arc::new(signin_login::MemoryGrants::default()),
            ),
            None => builder.per_instance(),
        };
        let login = builder.build().expect("a login with a key");
        let store = Store::default();
        let layer = if self.directory {
            sessions.layer_with_directory(store.clone(), Arc::new(MemoryDirectory::default()))
        } else {
            sessions.layer(store.clone())
        };
        let app = routes(&login).layer(layer);
        Site { app, store, idp, sessions }
    }
}

async fn me(CurrentUser(user): CurrentUser<Claims>) -> Json<Claims> {
    Json(user)
}

async fn maybe(MaybeUser(user): MaybeUser<Claims>) -> String {
    match user {
        Some(user) => format!("signed in as {}", user.profile.subject),
        None => "signed out".to_owned(),
    }
}

async fn mine(mine: Option<MySessions>) -> Json<Option<Vec<ActiveSession>>> {
    match mine {
        Some(mine) => Json(Some(mine.list().await.expect("listed"))),
        None => Json(None),
    }
}

async fn form(token: CsrfToken) -> String {
    token.as_str().to_owned()
}

/// The test service's routes and the sign-in routes, without the session layer.
pub fn routes(login: &Login<Hook>) -> Router {
    let api = Router::new().route("/api/me", get(me)).route_layer(Extension(Api));
    Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/form", get(form))
        .route("/mine", get(mine))
        .merge(api)
        .merge(login.routes())
}

/// A site in memory: the router with the session layer, its store, the fake provider.
pub struct Site {
    pub app: Router,
    pub store: Store,
    pub idp: Arc<FakeProvider>,
    pub sessions: Sessions,
}

impl Site {
    /// The same site's sessions, for another service on it (each service builds its own [`Sessions`]).
    pub fn same_site(&self) -> Sessions {
        let sessions = &self.sessions;
        Sessions::new(
            sessions.public_url().clone(),
            sessions.session_settings().clone(),
            sessions.login_settings().clone(),
        )
        .expect("the same settings")
    }

    /// The default site: `https://example.com`, one key, 10-minute attempts, the hook keeps the claims.
    pub fn new() -> Self {
        Options::default().build()
    }

    pub fn with(options: Options) -> Self {
        options.build()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        Reply::from(self.app.clone().oneshot(request).await.expect("the router is infallible")).await
    }

    /// `GET uri` with these cookies (`name=value; name=value`, or none).
    pub async fn get(&self, uri: &str, cookies: Option<&str>) -> Reply {
        self.send(request(Method::GET, uri, cookies, &[], Body::empty())).await
    }

    /// `GET uri` with these cookies and headers.
    pub async fn get_with(&self, uri: &str, cookies: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        self.send(request(Method::GET, uri, cookies, headers, Body::empty())).await
    }

    /// `POST /logout` with a form body (`csrf=...`, or none) and extra headers.
    pub async fn logout(&self, cookies: Option<&str>, csrf: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        let body = csrf.map_or_else(String::new, |token| format!("csrf={token}"));
        self.send(request(Method::POST, "/logout", cookies, &all, Body::from(body))).await
    }

    /// `GET <uri>` (a `/login` URL) with these cookies; expects the redirect to the provider and its new attempt
    /// cookie.
    pub async fn start(&self, uri: &str, cookies: Option<&str>) -> Started {
        Started::from(self.get(uri, cookies).await)
    }

    /// A whole sign-in with a fresh good code; returns the session cookie (`name=value`).
    pub async fn sign_in(&self) -> String {
        let started = self.start("/login", None).await;
        let reply = self.get(&started.callback(&self.idp.good_code()), Some(&started.cookies())).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        reply.session_cookie().expect("a session cookie").pair()
    }
}

/// A request.
pub fn request(
    method: Method,
    uri: &str,
    cookies: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(cookies) = cookies {
        builder = builder.header(header::COOKIE, cookies);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).expect("a valid request")
}

// ---------------------------------------------------------------------------------------------------------------
// Responses and cookies.

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub page: Option<ErrorPage>,
}

impl Reply {
    async fn from(response: axum::response::Response) -> Self {
        let page = response.extensions().get::<ErrorPage>().cloned();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("a readable body");
        Self { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned(), page }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().expect("an ASCII header"))
    }

    /// The `Location` header; panics without one.
    pub fn location(&self) -> &str {
        self.header("location").expect("a Location header")
    }

    pub fn set_cookies(&self) -> Vec<SetCookie> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| SetCookie::parse(value.to_str().expect("an ASCII Set-Cookie")))
            .collect()
    }

    /// The `Set-Cookie` for `name`; panics when there are several.
    pub fn set_cookie(&self, name: &str) -> Option<SetCookie> {
        let mut found: Vec<SetCookie> = self.set_cookies().into_iter().filter(|c| c.name == name).collect();
        assert!(found.len() <= 1, "several Set-Cookie for {name}: {found:?}");
        found.pop()
    }

    /// The session cookie this response sets (not a removal).
    pub fn session_cookie(&self) -> Option<SetCookie> {
        // Over plain http the cookie goes under its base name.
        self.set_cookie(SESSION_COOKIE).or_else(|| self.set_cookie(BASE_NAME)).filter(|cookie| !cookie.is_removal())
    }

    /// The attempt cookies this response sets or removes.
    pub fn attempt_cookies(&self) -> Vec<SetCookie> {
        let plain = format!("{BASE_NAME}_login_");
        self.set_cookies()
            .into_iter()
            .filter(|c| c.name.starts_with(ATTEMPT_PREFIX) || c.name.starts_with(&plain))
            .collect()
    }

    /// The response is our error page with this status, and the plain page says `title`.
    #[track_caller]
    pub fn assert_page(&self, status: StatusCode, title: &str) -> &ErrorPage {
        assert_eq!(self.status, status, "{}", self.body);
        let page = self.page.as_ref().expect("an ErrorPage extension");
        assert_eq!(page.status, status);
        assert_eq!(page.title, title);
        assert!(self.body.contains(title), "{}", self.body);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        page
    }
}

/// A `Set-Cookie` header, split on `;`.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lowercased, with their values (empty for flags).
    pub attributes: Vec<(String, String)>,
}

impl SetCookie {
    pub fn parse(header: &str) -> Self {
        let mut parts = header.split(';').map(str::trim);
        let (name, value) = parts.next().and_then(|pair| pair.split_once('=')).expect("name=value");
        let attributes = parts
            .filter(|part| !part.is_empty())
            .map(|part| match part.split_once('=') {
                Some((key, value)) => (key.trim().to_ascii_lowercase(), value.trim().to_owned()),
                None => (part.to_ascii_lowercase(), String::new()),
            })
            .collect();
        Self { name: name.to_owned(), value: value.to_owned(), attributes }
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn has(&self, flag: &str) -> bool {
        self.attribute(flag).is_some()
    }

    pub fn max_age(&self) -> Option<i64> {
        self.attribute("max-age").map(|age| age.parse().expect("a numeric Max-Age"))
    }

    /// Whether this header removes the cookie.
    pub fn is_removal(&self) -> bool {
        self.max_age() == Some(0)
    }

    /// `name=value`, as a browser sends it back.
    pub fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// A redirect to the provider, read: the authorize URL's parameters and the new attempt cookie.
#[derive(Debug)]
pub struct Started {
    pub reply: Reply,
    pub url: Url,
    pub query: HashMap<String, String>,
    pub cookie: SetCookie,
    /// The browser's binding cookie, as `/login` set it (again).
    pub binding: SetCookie,
}

impl Started {
    #[track_caller]
    pub fn from(reply: Reply) -> Self {
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        let url = Url::parse(reply.location()).expect("an absolute authorize URL");
        assert_eq!(url.path(), "/authorize", "{url}");
        let query = url.query_pairs().into_owned().collect();
        let mut new: Vec<SetCookie> = reply.attempt_cookies().into_iter().filter(|c| !c.is_removal()).collect();
        assert_eq!(new.len(), 1, "exactly one new attempt cookie: {new:?}");
        let cookie = new.pop().expect("one cookie");
        let binding = reply.set_cookie(BINDING_COOKIE).or_else(|| reply.set_cookie(PLAIN_BINDING_COOKIE));
        let binding = binding.expect("the browser's binding cookie");
        Self { reply, url, query, cookie, binding }
    }

    /// The cookies the browser that began it sends to the callback: the attempt and the binding.
    pub fn cookies(&self) -> String {
        format!("{}; {}", self.cookie.pair(), self.binding.pair())
    }

    pub fn param(&self, name: &str) -> &str {
        self.query.get(name).map_or_else(|| panic!("no {name} in {}", self.url), String::as_str)
    }

    pub fn state(&self) -> &str {
        self.param("state")
    }

    /// The callback with this code and the attempt's state.
    pub fn callback(&self, code: &str) -> String {
        self.callback_at("/login/callback", code)
    }

    /// The callback at `path` with this code and the attempt's state.
    pub fn callback_at(&self, path: &str, code: &str) -> String {
        format!("{path}?code={code}&state={}", self.state())
    }

    /// Whether the provider was asked to redeem with this attempt's nonce and a verifier that matches its
    /// challenge.
    pub fn redeemed_by(&self, redeemed: &Redeemed) -> bool {
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(redeemed.verifier.as_bytes()));
        redeemed.nonce == self.param("nonce") && challenge == self.param("code_challenge")
    }
}

/// A browser's cookie jar, just enough of one: keeps cookies by name with their path, drops removed ones, sends
/// those whose path matches the request.
#[derive(Debug, Default)]
pub struct Browser {
    cookies: Vec<(String, String, String)>,
}

impl Browser {
    /// Takes the response's `Set-Cookie` headers.
    pub fn keep(&mut self, reply: &Reply) {
        for cookie in reply.set_cookies() {
            self.cookies.retain(|(name, _, _)| *name != cookie.name);
            if !cookie.is_removal() {
                let path = cookie.attribute("path").unwrap_or("/").to_owned();
                self.cookies.push((cookie.name.clone(), cookie.value.clone(), path));
            }
        }
    }

    /// The `Cookie` header for a request to `uri`.
    pub fn cookie_header(&self, uri: &str) -> Option<String> {
        let path = uri.split('?').next().unwrap_or(uri);
        let matching: Vec<String> = self
            .cookies
            .iter()
            .filter(|(_, _, cookie_path)| {
                path == cookie_path
                    || (path.starts_with(cookie_path.as_str())
                        && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
            })
            .map(|(name, value, _)| format!("{name}={value}"))
            .collect();
        (!matching.is_empty()).then(|| matching.join("; "))
    }

    /// The names of the attempt cookies held.
    pub fn attempts(&self) -> Vec<String> {
        self.cookies.iter().filter(|(n, _, _)| n.starts_with(ATTEMPT_PREFIX)).map(|(n, _, _)| n.clone()).collect()
    }

    /// `GET uri` from this browser: its cookies go along, the response's are kept.
    pub async fn get(&mut self, site: &Site, uri: &str) -> Reply {
        let reply = site.get(uri, self.cookie_header(uri).as_deref()).await;
        self.keep(&reply);
        reply
    }

    /// Starts a sign-in from this browser.
    pub async fn start(&mut self, site: &Site, uri: &str) -> Started {
        let started = site.start(uri, self.cookie_header(uri).as_deref()).await;
        self.keep(&started.reply);
        started
    }
}
