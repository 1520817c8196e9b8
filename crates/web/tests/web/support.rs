//! The fakes at the crate's seams and the helpers every module uses.
//!
//! The router is the real one; the provider and the user store are fakes behind their traits; sessions live in
//! tower-sessions' memory store, under the cookie name and flags production uses. Requests go through `oneshot`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, header, request};
use chrono::{DateTime, Utc};
use signin_auth::{AuthError, AuthErrorKind, Callback, IdentityProvider, LoginStart, PendingLogin};
use signin_domain::{Identity, ProfileClaims, RepositoryError, User, UserId, UserRepository};
use signin_session::SessionSettings;
use signin_web::{App, AppState, HealthCheck, Templates, WebSettings};
use tower::ServiceExt as _;
use tower_sessions::cookie::SameSite;
use tower_sessions::{MemoryStore, SessionManagerLayer};

/// The public URL of the site under test, unless a test says otherwise.
pub const ORIGIN: &str = "http://127.0.0.1:3000";
/// The `state` the fake provider hands out (every login gets the same one).
pub const STATE: &str = "fake-state";
/// Where the fake provider sends the browser.
pub const AUTHORIZE_URL: &str = "https://idp.example.com/authorize?state=fake-state";
/// The code the fake provider accepts.
pub const GOOD_CODE: &str = "good-code";
/// The code for which the fake provider answers with an account whose email is not verified.
pub const UNVERIFIED_CODE: &str = "unverified";
/// The request body limit of the router under test (the default).
pub const MAX_BODY: usize = 16 * 1024;

/// Who the fake provider signs in.
pub const NAME: &str = "Ada Lovelace";
pub const EMAIL: &str = "ada@example.com";
pub const PICTURE: &str = "https://pictures.example.com/ada.png";

/// The code for which the fake provider's token endpoint fails (a provider outage during the callback).
pub const OUTAGE_CODE: &str = "provider-outage";

/// A provider that accepts [`GOOD_CODE`] (and [`UNVERIFIED_CODE`]) with the state it handed out, like a real one.
/// Its health check can be made to fail, and it counts the checks.
#[derive(Clone, Default)]
pub struct FakeProvider {
    outage: Arc<Mutex<Option<AuthErrorKind>>>,
    pings: Arc<AtomicUsize>,
}

impl FakeProvider {
    /// From now on the health check fails with this kind (`ProviderTimeout` or `ProviderUnavailable`), or passes.
    pub fn set_outage(&self, kind: Option<AuthErrorKind>) {
        *self.outage.lock().unwrap_or_else(PoisonError::into_inner) = kind;
    }

    /// How many health checks were made.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
}

fn unavailable() -> AuthError {
    AuthError::ProviderUnavailable { reason: "connection refused".into(), source: None }
}

#[async_trait]
impl IdentityProvider for FakeProvider {
    fn begin(&self) -> LoginStart {
        // `PendingLogin` keeps its fields to the auth crate; it is serialisable (it lives in sessions), so a fake
        // builds one the way a session store would.
        let pending: PendingLogin = serde_json::from_value(serde_json::json!({
            "state": STATE,
            "nonce": "fake-nonce",
            "pkce_verifier": "fake-verifier",
            "created_at": Utc::now().timestamp(),
        }))
        .expect("a pending login from its serialised form");
        LoginStart { authorize_url: AUTHORIZE_URL.parse().expect("url"), pending }
    }

    async fn complete(&self, pending: PendingLogin, callback: Callback) -> Result<ProfileClaims, AuthError> {
        if let Some(code) = callback.error {
            return Err(AuthError::Denied { code });
        }
        let expected = serde_json::to_value(&pending).expect("a pending login serialises")["state"].clone();
        if callback.state.is_none() || callback.state.as_deref() != expected.as_str() {
            return Err(AuthError::StateMismatch);
        }
        let verified = match callback.code.as_deref() {
            Some(GOOD_CODE) => true,
            Some(UNVERIFIED_CODE) => false,
            Some(OUTAGE_CODE) => return Err(unavailable()),
            Some(_) => return Err(AuthError::CodeRejected { code: "invalid_grant".into() }),
            None => return Err(AuthError::MissingCode),
        };
        Ok(ProfileClaims {
            issuer: "https://idp.example.com".into(),
            subject: "ada".into(),
            email: Some(EMAIL.into()),
            email_verified: Some(verified),
            name: Some(NAME.into()),
            given_name: Some("Ada".into()),
            picture: Some(PICTURE.into()),
        })
    }

    async fn ping(&self) -> Result<(), AuthError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        match *self.outage.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(AuthErrorKind::ProviderTimeout) => Err(AuthError::ProviderTimeout),
            Some(_) => Err(unavailable()),
            None => Ok(()),
        }
    }
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

    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(())
    }
}

/// How to build the app under test.
pub struct Options {
    pub public_url: &'static str,
    pub max_body_bytes: usize,
    pub health: Vec<Arc<dyn HealthCheck>>,
    pub provider_check_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            public_url: ORIGIN,
            max_body_bytes: MAX_BODY,
            health: Vec::new(),
            provider_check_interval: WebSettings::new(ORIGIN.parse().expect("url")).provider_check_interval,
        }
    }
}

/// The whole router over the fakes, and the user store to look into.
pub struct TestApp {
    router: Router,
    pub users: FakeUsers,
    pub provider: FakeProvider,
}

impl TestApp {
    /// The app at [`ORIGIN`] with default settings.
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    /// The app at a public URL (https sends HSTS and makes the cookie `Secure`).
    pub fn at(public_url: &'static str) -> Self {
        Self::with(Options { public_url, ..Options::default() })
    }

    pub fn with(options: Options) -> Self {
        let users = FakeUsers::default();
        let mut settings = WebSettings::new(options.public_url.parse().expect("public url"));
        settings.max_body_bytes = options.max_body_bytes;
        settings.provider_check_interval = options.provider_check_interval;
        let provider = FakeProvider::default();
        let app = App {
            users: Arc::new(users.clone()),
            identity: Arc::new(provider.clone()),
            templates: Templates::new().expect("templates"),
            settings,
            health: options.health,
        };
        let sessions = SessionManagerLayer::new(MemoryStore::default())
            .with_name(SessionSettings::default().cookie_name)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(options.public_url.starts_with("https:"))
            .with_path("/");
        Self { router: signin_web::router(AppState::new(app), sessions), users, provider }
    }

    pub async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(request).await.expect("the router's service is infallible")
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Response<Body> {
        self.send(get(path, cookie)).await
    }
}

/// A request to `path`, carrying `cookie` if given.
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

/// The `name=value` of the cookie a response sets.
pub fn set_cookie(response: &Response<Body>) -> Option<String> {
    let value = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned()).filter(|pair| !pair.is_empty())
}

/// The `name=value` of the session cookie a response must set.
#[track_caller]
pub fn session_cookie(response: &Response<Body>) -> String {
    set_cookie(response).expect("a session cookie")
}

/// The callback the provider sends the browser to, with our state and `code`.
pub fn callback(code: &str) -> String {
    format!("/login/callback?code={code}&state={STATE}")
}

/// Signs in a fresh browser through the fake provider; `inspect` sees the `/login` and the callback responses.
/// Returns the session cookie of the signed-in browser.
pub async fn sign_in_inspecting(app: &TestApp, inspect: impl Fn(&Response<Body>)) -> String {
    let login = app.get("/login", None).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    inspect(&login);
    let cookie = session_cookie(&login);
    let callback = app.get(&callback(GOOD_CODE), Some(&cookie)).await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER, "the fake sign-in completes");
    inspect(&callback);
    // The session id changes at sign-in.
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
