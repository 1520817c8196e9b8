//! The fakes at the crate's seams and the helpers every module uses.
//!
//! The router is the real one, built the way the server builds it: a `signin_login::Login` over a fake provider
//! and the app's own `RecordUsers` hook over a fake user store; sessions live in tower-sessions' memory store
//! (behind a wrapper that tells how many it holds), under the cookie name and flags production uses. Requests go
//! through `oneshot`.
//!
//! The fake provider only plays the provider: it formats the authorization URL (with the `state` the login flow
//! chose) and redeems codes. Every protocol rule (`state`, expiry, `error=`, `iss`) is the auth crate's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, header, request};
use chrono::{DateTime, Utc};
use signin_domain::{Identity, RepositoryError, User, UserId, UserRepository};
use signin_login::{Claims, GOOGLE_ISSUER, Login, LoginSettings, SessionSettings, Sessions, generate_cookie_key};
use signin_web::{App, HealthCheck, RecordUsers, Templates, WebSettings};
use tower::ServiceExt as _;
use tower_sessions::MemoryStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// The public URL of the site under test, unless a test says otherwise.
pub const ORIGIN: &str = "http://127.0.0.1:3000";
/// The fake provider's issuer (unless it plays Google).
pub const ISSUER: &str = "https://idp.example.com";
/// The fake provider's name on pages (unless it plays Google).
pub const PROVIDER_NAME: &str = "Example ID";
/// Where the fake provider sends the browser; its URL adds `state`, `nonce` and `code_challenge`.
pub const AUTHORIZE_URL: &str = "https://idp.example.com/authorize";
/// The session cookie's name (the default).
pub const SESSION_COOKIE: &str = "signin_session";
/// The cookie that binds sign-in attempts to the browser (its name over plain http).
pub const BINDING_COOKIE: &str = "signin_session_browser=";
/// The prefix of every sign-in attempt cookie's name.
pub const ATTEMPT_PREFIX: &str = "signin_session_login_";
/// A code the fake provider redeems, once; any code that starts with it does too (see [`FakeProvider::good_code`]).
pub const GOOD_CODE: &str = "good-code";
/// The code for which the fake provider answers with an account whose email is not verified.
pub const UNVERIFIED_CODE: &str = "unverified";
/// The code for which the fake provider's token endpoint fails (a provider outage during the callback).
pub const OUTAGE_CODE: &str = signin_auth::fake::OUTAGE_CODE;
/// The request body limit of the router under test (the default).
pub const MAX_BODY: usize = 16 * 1024;

/// Who the fake provider signs in.
pub const NAME: &str = "Ada Lovelace";
pub const EMAIL: &str = "ada@example.com";
pub const PICTURE: &str = "https://pictures.example.com/ada.png";

pub use signin_auth::fake::FakeProvider;

/// The provider in memory (`signin_auth::fake`): codes starting with [`GOOD_CODE`] (and [`UNVERIFIED_CODE`]) redeem
/// once each, like a real one, and any other code is refused; its health check can be made to fail, and it counts
/// the checks. With `google`, it has Google's issuer and name (for Google's branding).
pub fn fake_provider(google: bool) -> Arc<FakeProvider> {
    let issuer = if google { GOOGLE_ISSUER } else { ISSUER };
    let mut claims = Claims::new(issuer, "ada");
    claims.profile.email = Some(EMAIL.into());
    claims.profile.email_verified = Some(true);
    claims.profile.name = Some(NAME.into());
    claims.profile.given_name = Some("Ada".into());
    claims.profile.picture = Some(PICTURE.into());
    let provider = FakeProvider::new("oidc", issuer, if google { "Google" } else { PROVIDER_NAME }, claims);
    Arc::new(provider.authorizing_at(url::Url::parse(AUTHORIZE_URL).expect("the authorization URL parses")))
}

/// A user store that stores nothing and gives every identity id 1, but remembers each `record_login` (the row a
/// real store would have written).
#[derive(Clone, Default)]
pub struct FakeUsers {
    logins: Arc<Mutex<Vec<Identity>>>,
}

impl FakeUsers {
    /// The identities `record_login` was called with, oldest first.
    pub fn logins(&self) -> Vec<Identity> {
        self.logins.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl UserRepository for FakeUsers {
    async fn record_login(&self, identity: &Identity, at: DateTime<Utc>) -> Result<User, RepositoryError> {
        self.logins.lock().unwrap_or_else(PoisonError::into_inner).push(identity.clone());
        Ok(User {
            id: UserId::new(1),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            picture: identity.picture.clone(),
            created_at: at,
            last_login_at: at,
        })
    }

    async fn find(&self, _id: UserId) -> Result<Option<User>, RepositoryError> {
        Ok(None)
    }

    async fn find_by_email(&self, _email: &str) -> Result<Vec<User>, RepositoryError> {
        Ok(Vec::new())
    }

    async fn forget(&self, _issuer: &str, _subject: &str) -> Result<bool, RepositoryError> {
        Ok(false)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(())
    }
}

/// The memory store, remembering the ids written to it so tests can tell how many sessions it holds (the memory
/// store itself cannot list them). The ids are those the store sees (hashes of the cookies' ids).
#[derive(Debug, Clone, Default)]
pub struct CountingStore {
    memory: MemoryStore,
    ids: Arc<Mutex<HashSet<Id>>>,
}

impl CountingStore {
    /// How many sessions the store holds.
    pub async fn count(&self) -> usize {
        let ids: Vec<Id> = self.ids.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect();
        let mut held = 0;
        for id in ids {
            if self.memory.load(&id).await.expect("the memory store answers").is_some() {
                held += 1;
            }
        }
        held
    }

    fn remember(&self, id: Id) {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.memory.create(record).await?;
        self.remember(record.id);
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.memory.save(record).await?;
        self.remember(record.id);
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        self.memory.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.memory.delete(session_id).await?;
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).remove(session_id);
        Ok(())
    }
}

/// How to build the app under test.
pub struct Options {
    pub public_url: &'static str,
    pub max_body_bytes: usize,
    pub health: Vec<Arc<dyn HealthCheck>>,
    pub provider_check_interval: Duration,
    /// The provider plays Google (its issuer and name).
    pub google: bool,
    /// Sessions in this store (another app's, to share them) instead of a new one.
    pub store: Option<CountingStore>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: ORIGIN,
            max_body_bytes: MAX_BODY,
            health: Vec::new(),
            provider_check_interval: LoginSettings::default().provider_check_interval,
            google: false,
            store: None,
        }
    }
}

/// The whole router over the fakes, and the fakes and the session store to look into.
pub struct TestApp {
    router: Router,
    pub users: FakeUsers,
    pub provider: Arc<FakeProvider>,
    pub store: CountingStore,
}

impl TestApp {
    /// The app at [`ORIGIN`] with default settings.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    /// The app at a public URL (https sends HSTS and makes the cookies `Secure`).
    pub fn at(public_url: &'static str) -> Self {
        Self::with(Options { public_url, ..Options::default() })
    }

    pub fn with(options: Options) -> Self {
        let public_url: url::Url = options.public_url.parse().expect("public url");
        let secure = public_url.scheme() == "https";
        let sessions = Sessions::new(
            public_url,
            SessionSettings { secure, ..SessionSettings::default() },
            LoginSettings {
                cookie_keys: vec![generate_cookie_key().into()],
                provider_check_interval: options.provider_check_interval,
                ..LoginSettings::default()
            },
        )
        .expect("valid site settings");
        let users = FakeUsers::default();
        let provider = fake_provider(options.google);
        let login = Login::builder(sessions, RecordUsers::new(Arc::new(users.clone())))
            .providers(vec![provider.clone()])
            .per_instance()
            .build()
            .expect("a login with an attempt-cookie key");
        let app = App {
            login,
            templates: Templates::new().expect("templates"),
            settings: WebSettings { max_body_bytes: options.max_body_bytes, ..WebSettings::default() },
            health: options.health,
            directory: Some(std::sync::Arc::new(signin_login::MemoryDirectory::default())),
        };
        let store = options.store.unwrap_or_default();
        Self { router: signin_web::router(app, store.clone()), users, provider, store }
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.expect("the router's service is infallible")
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Response<Body> {
        self.send(get(path, cookie)).await
    }
}

/// A request to `path`, carrying `cookie` (a `Cookie` header's value) if given.
pub fn request(method: Method, path: &str, cookie: Option<&str>) -> request::Builder {
    let request = Request::builder().method(method).uri(path);
    match cookie {
        Some(cookie) => request.header(header::COOKIE, cookie),
        None => request,
    }
}

pub fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    request(Method::GET, path, cookie).body(Body::empty()).expect("request")
}

pub async fn body_text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await.expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// A header's value, or `""`.
pub fn header(headers: &HeaderMap, name: impl header::AsHeaderName) -> &str {
    headers.get(name).map(|v| v.to_str().expect("ascii header")).unwrap_or_default()
}

/// Every `Set-Cookie` of a response, in full.
pub fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii set-cookie").to_owned())
        .collect()
}

/// The `Set-Cookie` a response sends for the cookie called `name` (in full), if any.
pub fn set_cookie_named(response: &Response<Body>, name: &str) -> Option<String> {
    set_cookies(response).into_iter().find(|set| set.split_once('=').is_some_and(|(n, _)| n == name))
}

/// The `name=value` of a `Set-Cookie`.
pub fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The `name=value` of the session cookie a response sets, if it sets one with a value.
pub fn set_session_cookie(response: &Response<Body>) -> Option<String> {
    // Over https the cookie goes as `__Host-<name>`.
    let secure = format!("__Host-{SESSION_COOKIE}");
    set_cookie_named(response, SESSION_COOKIE)
        .or_else(|| set_cookie_named(response, &secure))
        .map(|set| pair(&set))
        .filter(|pair| pair.split_once('=').is_some_and(|(_, value)| !value.is_empty()))
}

/// The `name=value` of the session cookie a response must set.
#[track_caller]
pub fn session_cookie(response: &Response<Body>) -> String {
    set_session_cookie(response).expect("a session cookie")
}

/// The attempt cookies a response sets (in full), removals included.
pub fn set_attempt_cookies(response: &Response<Body>) -> Vec<String> {
    set_cookies(response)
        .into_iter()
        .filter(|set| {
            set.starts_with(ATTEMPT_PREFIX)
                || set.strip_prefix("__Secure-").is_some_and(|s| s.starts_with(ATTEMPT_PREFIX))
        })
        .collect()
}

/// One sign-in under way in a browser: the attempt cookie `/login` set and the `state` it sent to the provider.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `signin_session_login_<hash>=<sealed>; signin_session_browser=<binding>`: the attempt cookie and the
    /// browser's binding cookie, as the browser that began it sends them to the callback.
    pub cookie: String,
    /// The `state` of the authorization URL.
    pub state: String,
    /// The whole `Set-Cookie` of the attempt.
    pub set_cookie: String,
}

impl Attempt {
    /// The attempt `/login` answered with: a 303 to the provider, with the state in the URL and one attempt cookie.
    #[track_caller]
    pub fn from_login(response: &Response<Body>) -> Self {
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "/login sends the browser away");
        let state = provider_query(response, "state").expect("a state in the authorization URL");
        let attempts: Vec<String> =
            set_attempt_cookies(response).into_iter().filter(|set| !set.contains("Max-Age=0")).collect();
        assert_eq!(attempts.len(), 1, "one new attempt cookie: {attempts:?}");
        let set_cookie = attempts.into_iter().next().expect("one attempt cookie");
        let binding = set_cookies(response)
            .into_iter()
            .find(|set| set.starts_with(BINDING_COOKIE) || set.starts_with(&format!("__Host-{BINDING_COOKIE}")))
            .expect("the browser's binding cookie");
        Self { cookie: format!("{}; {}", pair(&set_cookie), pair(&binding)), state, set_cookie }
    }

    /// The attempt cookie's name.
    pub fn name(&self) -> &str {
        self.cookie.split_once('=').map_or("", |(name, _)| name)
    }

    /// The callback the provider sends this browser to, with `code`.
    pub fn callback(&self, code: &str) -> String {
        callback(code, &self.state)
    }
}

/// A parameter of the authorization URL a `/login` response sends the browser to, when it goes to the provider.
pub fn provider_query(response: &Response<Body>, name: &str) -> Option<String> {
    let location = header(response.headers(), header::LOCATION);
    let url = url::Url::parse(location).ok()?;
    if !url.as_str().starts_with(AUTHORIZE_URL) {
        return None;
    }
    url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// The callback the provider sends the browser to, with `code` and `state`.
pub fn callback(code: &str, state: &str) -> String {
    let state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    format!("/login/callback?code={code}&state={state}")
}

/// A `Cookie` header's value with every given `name=value`.
pub fn cookies(pairs: &[&str]) -> String {
    pairs.join("; ")
}

/// Starts a sign-in in a fresh browser (`/login` plus `query`).
pub async fn begin(app: &TestApp, query: &str) -> Attempt {
    Attempt::from_login(&app.get(&format!("/login{query}"), None).await)
}

/// Signs in a fresh browser through the fake provider; `inspect` sees the `/login` and the callback responses.
/// Returns the session cookie of the signed-in browser.
pub async fn sign_in_inspecting(app: &TestApp, inspect: impl Fn(&Response<Body>)) -> String {
    let login = app.get("/login", None).await;
    let attempt = Attempt::from_login(&login);
    inspect(&login);
    let callback = app.get(&attempt.callback(&app.provider.good_code()), Some(&attempt.cookie)).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER, "the fake sign-in completes");
    inspect(&callback);
    session_cookie(&callback)
}

pub async fn sign_in(app: &TestApp) -> String {
    sign_in_inspecting(app, |_| ()).await
}

/// The CSRF token of a signed-in session, as its profile page puts it in the logout form.
pub async fn csrf_token(app: &TestApp, cookie: &str) -> String {
    let profile = body_text(app.get("/", Some(cookie)).await).await;
    let at = profile.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    profile[at..].split('"').next().expect("csrf value").to_owned()
}
