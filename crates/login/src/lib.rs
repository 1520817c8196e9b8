#![doc = include_str!("../README.md")]

mod attempts;
mod backchannel;
mod domains;
mod error;
mod extract;
mod hook;
mod limit;
mod mine;
mod noise;
mod provider_check;
mod risc;
mod routes;
mod settings;
mod sign_out;

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use signin_auth::LoginFlow;
use signin_domain::LocalPath;
use signin_session::{AuthSession, HashedIds};
use tower::{Layer, Service};
use tower_sessions::SessionManagerLayer;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use url::Url;

pub use error::{Error, ErrorPage, PageLink};
pub use extract::{Api, CsrfToken, CurrentUser, MaybeUser, Rejection};
pub use hook::{KeepClaims, SignIn, SignInError};
pub use limit::{ForwardedHeader, RateLimitSettings};
pub use mine::{ActiveSession, MySessions};
pub use settings::{LoginSettings, generate_cookie_key};
/// The RISC event types the receiver acts on ([`Login::with_risc`]).
pub use signin_auth::event as risc_event;
pub use signin_auth::{
    Claims, GOOGLE_ISSUER, OidcClient, Provider, ProviderSettings, RiscReceiver, RiscSettings, SignedIn, Tokens,
    issuer_name,
};
pub use signin_session::{
    AccountHolds, MemoryAccountHolds, MemoryDirectory, MemoryUsedTokens, MySqlAccountHolds, MySqlSessionDirectory,
    MySqlSessionStore, MySqlUsedTokens, SessionDirectory, SessionSettings, UsedTokens, sqlx_pool,
};
pub use tower_sessions::SessionStore;

use crate::attempts::{AttemptCookies, Attempts, common_path};
use crate::provider_check::ProviderCheck;
use crate::settings::AttemptKeys;

/// The site's sign-in settings and its sessions: what every service on the site shares (the cookie, the session
/// store, the paths). Build one, then wrap the router with [`Sessions::layer`]. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Arc<Site>);

struct Site {
    public_url: Url,
    /// The public URL's path without its trailing slash: `""` at the root, `/auth` under a prefix.
    prefix: String,
    origin: String,
    /// `<public URL><callback path>`.
    redirect_url: Url,
    session: SessionSettings,
    /// The session cookie's name as sent ([`SessionSettings::cookie`]).
    cookie: String,
    login: LoginSettings,
    attempts: Attempts,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("public_url", &self.0.public_url.as_str())
            .field("session", &self.0.session)
            .field("login", &self.0.login)
            .finish()
    }
}

impl Sessions {
    /// The site at `public_url` (scheme, host, port and an optional path prefix, as people reach it; behind a
    /// proxy that strips the prefix, every path and link this crate makes carries it).
    pub fn new(public_url: Url, session: SessionSettings, login: LoginSettings) -> Result<Self, Error> {
        let plain = matches!(public_url.scheme(), "http" | "https")
            && public_url.host().is_some()
            && public_url.query().is_none()
            && public_url.fragment().is_none()
            && public_url.username().is_empty()
            && public_url.password().is_none()
            && !public_url.path().starts_with("//");
        if !plain {
            return Err(Error::Config(
                "server.public_url must be an http(s) URL without credentials, query or fragment, e.g. \
                 https://login.example.com"
                    .into(),
            ));
        }
        if public_url.scheme() == "https" && !session.secure {
            return Err(Error::Config("session.secure must stay on when the site is served over https".into()));
        }
        session.check().map_err(|err| match err {
            signin_session::SessionError::Config(message) => Error::Config(message),
            other => Error::Config(other.to_string()),
        })?;
        login.check()?;
        let prefix = public_url.path().trim_end_matches('/').to_owned();
        let mut redirect_url = public_url.clone();
        redirect_url.set_path(&format!("{prefix}{}", login.callback_path));
        let attempts = Attempts::new(
            AttemptKeys::parse(&login.cookie_keys)?,
            AttemptCookies {
                session_cookie: &session.cookie_name,
                path: format!("{prefix}{}", common_path(&login.login_path, &login.callback_path)),
                secure: session.secure,
                max_age: login.pending_login,
                max: login.max_attempts,
                scope: redirect_url.to_string(),
            },
        );
        let origin = public_url.origin().ascii_serialization();
        let cookie = session.cookie();
        Ok(Self(Arc::new(Site { public_url, prefix, origin, redirect_url, session, cookie, login, attempts })))
    }

    /// The session middleware for a router: the session cookie as configured, the store under [`HashedIds`] (the
    /// table never holds a working cookie value), and what the extractors need. Add it outermost of the routes
    /// that use the extractors or the sign-in routes.
    pub fn layer<S: SessionStore + Clone>(&self, store: S) -> SessionLayer<S> {
        self.layer_with(store, None)
    }

    /// Like [`Sessions::layer`], with a directory of each person's sessions: sign-ins are recorded in it, the
    /// [`MySessions`] extractor lists them, and the routes of [`Login::routes`] that end one or all of them work.
    pub fn layer_with_directory<S: SessionStore + Clone>(
        &self,
        store: S,
        directory: Arc<dyn SessionDirectory>,
    ) -> SessionLayer<S> {
        self.layer_with(store, Some(directory))
    }

    fn layer_with<S: SessionStore + Clone>(
        &self,
        store: S,
        directory: Option<Arc<dyn SessionDirectory>>,
    ) -> SessionLayer<S> {
        let control = directory.clone().map(|directory| Control { store: Arc::new(store.clone()), directory });
        let watch = SaveWatch { store: HashedIds::new(store), directory };
        SessionLayer { sessions: signin_session::session_layer(watch, &self.0.session), site: self.clone(), control }
    }

    /// The public URL.
    pub fn public_url(&self) -> &Url {
        &self.0.public_url
    }

    /// The site's origin, e.g. `https://login.example.com`.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// A site path as people reach it: with the public URL's prefix (`/login` → `/auth/login`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0.prefix)
    }

    /// Where a sign-in link points, with `next` when given: `/login?next=%2Fnotes` (the main provider's).
    pub fn login_url(&self, next: Option<&LocalPath>) -> String {
        self.login_url_at(&self.0.login.login_path, next)
    }

    fn login_url_at(&self, path: &str, next: Option<&LocalPath>) -> String {
        let login = self.url(path);
        match next {
            Some(next) if next.as_ref() != "/" => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_ref().as_bytes()).collect();
                format!("{login}?next={next}")
            }
            _ => login,
        }
    }

    /// The sign-in page that begins a new sign-in even for someone signed in (`again=1`), with `next` as in
    /// [`Sessions::login_url`]: for a session this service cannot use.
    pub fn sign_in_again_url(&self, next: Option<&LocalPath>) -> String {
        let url = self.login_url(next);
        let glue = if url.contains('?') { '&' } else { '?' };
        format!("{url}{glue}again=1")
    }

    /// Where the sign-out form posts.
    pub fn logout_url(&self) -> String {
        self.url(&self.0.login.logout_path)
    }

    /// Where a sign-out, and a sign-in without `next`, lead.
    pub(crate) fn home_url(&self) -> String {
        self.url(&self.0.login.home_path)
    }

    /// The redirect URI to register with the provider: the public URL and the callback path. With several
    /// providers, this is the first one's; each other has its own ([`Sessions::redirect_url_for`]).
    pub fn redirect_url(&self) -> &Url {
        &self.0.redirect_url
    }

    /// The redirect URI of a provider after the first, with id `provider_id`:
    /// `<public URL><login path>/<id>/callback`, e.g. `https://login.example.com/login/corp/callback`.
    pub fn redirect_url_for(&self, provider_id: &str) -> Url {
        let mut url = self.0.public_url.clone();
        url.set_path(&self.url(&ProviderPaths::other(&self.0.login, provider_id).callback));
        url
    }

    /// The session settings.
    pub fn session_settings(&self) -> &SessionSettings {
        &self.0.session
    }

    /// The sign-in settings.
    pub fn login_settings(&self) -> &LoginSettings {
        &self.0.login
    }

    pub(crate) fn attempts(&self) -> &Attempts {
        &self.0.attempts
    }
}

/// The layer [`Sessions::layer`] makes.
#[derive(Clone)]
pub struct SessionLayer<S: SessionStore> {
    sessions: SessionManagerLayer<SaveWatch<HashedIds<S>>>,
    site: Sessions,
    control: Option<Control>,
}

/// What the session routes and [`MySessions`] need besides the request's session: the store under
/// [`HashedIds`] (asked by stored id) and the directory.
#[derive(Clone)]
pub(crate) struct Control {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) directory: Arc<dyn SessionDirectory>,
}

impl<S: SessionStore + Clone, I> Layer<I> for SessionLayer<S> {
    type Service = SessionService<<SessionManagerLayer<SaveWatch<HashedIds<S>>> as Layer<I>>::Service>;

    fn layer(&self, inner: I) -> Self::Service {
        SessionService { inner: self.sessions.layer(inner), site: self.site.clone(), control: self.control.clone() }
    }
}

/// What the store saw of the request's session, for [`SessionService`] to act on in the response.
#[derive(Default)]
struct Noted {
    /// Saving it failed.
    save_failed: Cell<bool>,
    /// Its cookie names no stored session (expired, signed out, made up).
    unknown: Cell<bool>,
}

tokio::task_local! {
    static NOTED: Noted;
}

/// The store as [`SessionLayer`] uses it: it notes a failed save, so that [`SessionService`] can tell the session
/// middleware's bare 500 for it (the store is down) from anything else, and answer 503; and a cookie that names no
/// session, so that the browser is told to drop it.
#[derive(Clone)]
pub struct SaveWatch<S> {
    store: S,
    directory: Option<Arc<dyn SessionDirectory>>,
}

impl<S: fmt::Debug> fmt::Debug for SaveWatch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveWatch").field("store", &self.store).field("directory", &self.directory.is_some()).finish()
    }
}

impl<S> SaveWatch<S> {
    fn noted<T>(result: session_store::Result<T>) -> session_store::Result<T> {
        if result.is_err() {
            // Outside a request (no scope), there is nobody to tell.
            let _ = NOTED.try_with(|noted| noted.save_failed.set(true));
        }
        result
    }
}

#[async_trait::async_trait]
impl<S: SessionStore> SessionStore for SaveWatch<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        Self::noted(self.store.create(record).await)?;
        // A new signed-in session goes into the directory; failing that, the sign-in fails (503): a session that
        // "sign out everywhere" could not find must not exist.
        if let Some(directory) = &self.directory
            && let Some((owner, entry)) =
                AuthSession::directory_entry(&record.data, HashedIds::<()>::stored_id(&record.id))
        {
            let added = directory.add(&owner, &entry).await;
            Self::noted(added.map_err(|err| session_store::Error::Backend(err.to_string())))?;
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        Self::noted(self.store.save(record).await)
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let loaded = self.store.load(session_id).await;
        if let Ok(None) = loaded {
            noise::unknown_session();
            let _ = NOTED.try_with(|noted| noted.unknown.set(true));
        }
        loaded
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        self.store.delete(session_id).await?;
        if let Some(directory) = &self.directory
            && let Err(err) = directory.remove(&HashedIds::<()>::stored_id(session_id)).await
        {
            // The session itself is gone; a listing drops the stale entry.
            tracing::warn!(error = %err, "removing a session from the directory failed");
        }
        Ok(())
    }
}

/// The service [`SessionLayer`] wraps around the routes.
#[derive(Clone)]
pub struct SessionService<I> {
    inner: I,
    site: Sessions,
    control: Option<Control>,
}

impl<I> Service<Request<Body>> for SessionService<I>
where
    I: Service<Request<Body>, Response = Response<Body>>,
    I::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = I::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, I::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let site = self.site.clone();
        let scrubbed = noise::scrub(request.headers_mut(), &site.0.cookie);
        request.extensions_mut().insert(site.clone());
        if let Some(control) = &self.control {
            request.extensions_mut().insert(control.clone());
        }
        let answer = self.inner.call(request);
        Box::pin(NOTED.scope(Noted::default(), async move {
            let mut response = answer.await?;
            if NOTED.with(|noted| noted.save_failed.get()) && response.status() == StatusCode::INTERNAL_SERVER_ERROR {
                // The session middleware has logged the store's error already.
                return Ok(ErrorPage::for_status(StatusCode::SERVICE_UNAVAILABLE).into_response());
            }
            let (name, secure) = (&site.0.cookie, site.0.session.secure);
            // The session middleware removes the cookie with only its name and path; a browser ignores a `__Host-`
            // cookie set without `Secure`, removal or not, so it would keep the dead cookie and send it on.
            noise::secure_removals(response.headers_mut(), name, secure);
            if scrubbed != noise::SessionCookies::Fine || NOTED.with(|noted| noted.unknown.get()) {
                noise::clear_cookie(response.headers_mut(), name, secure);
            }
            Ok(response)
        }))
    }
}

/// Sign-in with one or several providers: the routes that sign people in and out, around the service's [`SignIn`]
/// hook. Cheap to clone.
pub struct Login<H> {
    inner: Arc<LoginInner<H>>,
}

struct LoginInner<H> {
    sessions: Sessions,
    /// The `jti`s of the logout and security event tokens acted on (per issuer), for refusing a replay.
    used_tokens: Arc<dyn UsedTokens>,
    /// Receiving security events ([`Login::with_risc`]).
    risc: Option<risc::Risc>,
    /// The first is the site's main provider (`/login`, `login.callback_path`).
    providers: Vec<Entry>,
    hook: H,
    /// One per-client limit shared by the sign-in routes.
    limit: limit::Limit,
    domains: domains::DomainRules,
}

/// One provider of the site: its attempts, its health check and its routes.
struct Entry {
    flow: LoginFlow,
    check: ProviderCheck,
    paths: ProviderPaths,
}

/// A provider's sign-in routes, without the public URL's prefix.
#[derive(Debug, Clone)]
struct ProviderPaths {
    login: String,
    callback: String,
    /// Where its back-channel logout tokens arrive: `<login path>/<id>/backchannel-logout` for every provider.
    backchannel: String,
}

impl ProviderPaths {
    /// The main provider's: `login.login_path` and `login.callback_path`.
    fn main(login: &LoginSettings, id: &str) -> Self {
        Self {
            login: login.login_path.clone(),
            callback: login.callback_path.clone(),
            backchannel: Self::other(login, id).backchannel,
        }
    }

    /// Any other provider's: `<login path>/<id>` and `<login path>/<id>/callback`.
    fn other(login: &LoginSettings, id: &str) -> Self {
        let base = format!("{}/{id}", login.login_path.trim_end_matches('/'));
        Self { callback: format!("{base}/callback"), backchannel: format!("{base}/backchannel-logout"), login: base }
    }
}

/// Whether a provider id can be part of a path and a cookie: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
fn plain_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A provider as a page shows it: a sign-in button.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderLink {
    /// The provider's id ([`Provider::id`]).
    pub id: String,
    /// The name people know it by ("Google").
    pub name: String,
    /// Its issuer.
    pub issuer: String,
    /// Google's branding (the "G" button) applies.
    pub google: bool,
    /// Where its sign-in starts, e.g. `/login` for the main provider and `/login/corp` for another.
    pub login_url: String,
}

impl<H> Clone for Login<H> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<H> fmt::Debug for Login<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flows: Vec<&LoginFlow> = self.inner.providers.iter().map(|entry| &entry.flow).collect();
        f.debug_struct("Login").field("sessions", &self.inner.sessions).field("providers", &flows).finish()
    }
}

impl<H: SignIn> Login<H> {
    /// Discovers the provider (discovery document and keys, once, now: call this at start-up) and signs people in
    /// with it, the callback registered as [`Sessions::redirect_url`].
    pub async fn discover(sessions: Sessions, provider: ProviderSettings, hook: H) -> Result<Self, Error> {
        Self::discover_all(sessions, [provider], hook).await
    }

    /// Discovers several providers at once and signs people in with each. The first is the main one (`/login`,
    /// its callback at [`Sessions::redirect_url`]); every other has `/login/<id>` and its callback at
    /// [`Sessions::redirect_url_for`] its id.
    pub async fn discover_all(
        sessions: Sessions,
        providers: impl IntoIterator<Item = ProviderSettings>,
        hook: H,
    ) -> Result<Self, Error> {
        let discoveries =
            providers.into_iter().enumerate().map(|(index, settings)| {
                let redirect = if index == 0 {
                    sessions.redirect_url().clone()
                } else {
                    sessions.redirect_url_for(&settings.id())
                };
                async move {
                    OidcClient::discover(settings, redirect).await.map(|client| Arc::new(client) as Arc<dyn Provider>)
                }
            });
        let clients = futures_util::future::try_join_all(discoveries).await?;
        Self::with_providers(sessions, clients, hook)
    }

    /// Signs people in with `provider` (an [`OidcClient`], or a fake in tests). Refuses to work without an
    /// attempt-cookie key (`login.cookie_keys`).
    pub fn new(sessions: Sessions, provider: Arc<dyn Provider>, hook: H) -> Result<Self, Error> {
        Self::with_providers(sessions, vec![provider], hook)
    }

    /// Signs people in with each of `providers`; the first is the main one (see [`Login::discover_all`]). Their
    /// ids and issuers must be distinct: an attempt is completed only by the callback of the provider it began
    /// with, and an RFC 9207 `iss` names one provider.
    pub fn with_providers(sessions: Sessions, providers: Vec<Arc<dyn Provider>>, hook: H) -> Result<Self, Error> {
        if providers.is_empty() {
            return Err(Error::Config("no OpenID provider is configured".into()));
        }
        if !sessions.attempts().can_start() {
            return Err(Error::Config(
                "login.cookie_keys is empty: set APP__LOGIN__COOKIE_KEYS to a random key (`signin generate-key` \
                 makes one); every instance needs the same"
                    .into(),
            ));
        }
        let login = &sessions.0.login;
        let mut routes = vec![
            login.logout_path.clone(),
            login.end_session_path.clone(),
            login.end_all_sessions_path.clone(),
            login.risc_path.clone(),
        ];
        let mut entries: Vec<Entry> = Vec::with_capacity(providers.len());
        for (index, provider) in providers.into_iter().enumerate() {
            let id = provider.id();
            if !plain_id(id) {
                return Err(Error::Config(format!(
                    "provider id `{id}` must be 1 to 32 of a-z, 0-9, - and _ (oidc.id, providers[].id)"
                )));
            }
            if let Some(other) = entries.iter().map(|entry| entry.flow.provider()).find(|other| other.id() == id) {
                return Err(Error::Config(format!(
                    "two providers have the id `{id}` ({} and {}): give each its own id",
                    other.issuer(),
                    provider.issuer()
                )));
            }
            if entries.iter().any(|entry| entry.flow.provider().issuer() == provider.issuer()) {
                return Err(Error::Config(format!("the issuer {} is configured twice", provider.issuer())));
            }
            let paths = if index == 0 { ProviderPaths::main(login, id) } else { ProviderPaths::other(login, id) };
            for path in [&paths.login, &paths.callback, &paths.backchannel] {
                if routes.contains(path) {
                    return Err(Error::Config(format!(
                        "provider `{id}` would serve {path}, which another route already has: choose another id"
                    )));
                }
                routes.push(path.clone());
            }
            entries.push(Entry {
                flow: LoginFlow::new(provider, login.pending_login),
                check: ProviderCheck::new(login.provider_check_interval),
                paths,
            });
        }
        let limit = limit::layer(&login.rate_limit)?;
        let domains = domains::DomainRules::new(&login.hosted_domains, &login.email_domains);
        let used_tokens: Arc<dyn UsedTokens> = Arc::new(MemoryUsedTokens::default());
        Ok(Self {
            inner: Arc::new(LoginInner { sessions, used_tokens, risc: None, providers: entries, hook, limit, domains }),
        })
    }

    /// Records the logout and security event tokens acted on in `used` (every instance must share it:
    /// [`MySqlUsedTokens`]), so that one replayed to another instance is refused there too; by default each
    /// instance remembers its own. Call it right after building the login, before cloning it.
    pub fn with_used_tokens(mut self, used: Arc<dyn UsedTokens>) -> Result<Self, Error> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| Error::Config("Login::with_used_tokens must be called before the login is cloned".into()))?;
        inner.used_tokens = used;
        Ok(self)
    }

    /// Receives security events from a RISC transmitter at `login.risc_path` (see the README), acting on them with
    /// the site's session directory, `holds` (accounts that may not sign in until released) and the hook's
    /// [`SignIn::forget`]. Call it right after building the login, before cloning it.
    pub fn with_risc(
        mut self,
        receiver: Arc<signin_auth::RiscReceiver>,
        holds: Arc<dyn AccountHolds>,
    ) -> Result<Self, Error> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| Error::Config("Login::with_risc must be called before the login is cloned".into()))?;
        inner.risc = Some(risc::Risc { receiver, holds });
        Ok(self)
    }

    /// `GET /login`, `GET /login/callback` and `POST /logout` (the configured paths), each other provider's
    /// `GET /login/<id>` and `GET /login/<id>/callback`, and the session routes, for `Router::merge`.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let login = &self.inner.sessions.0.login;
        let mut router = Router::new();
        for (index, entry) in self.inner.providers.iter().enumerate() {
            router = router
                .route(
                    &entry.paths.login,
                    get(move |state, auth, headers, query| routes::login::<H>(state, index, auth, headers, query)),
                )
                .route(
                    &entry.paths.callback,
                    get(move |state, auth, headers, query| routes::callback::<H>(state, index, auth, headers, query)),
                );
        }
        let mut backchannel = Router::new();
        for (index, entry) in self.inner.providers.iter().enumerate() {
            backchannel = backchannel.route(
                &entry.paths.backchannel,
                post(move |state, control, form| backchannel::receive::<H>(state, index, control, form)),
            );
        }
        router
            .route(&login.logout_path, post(routes::logout::<H>))
            .route(&login.end_session_path, post(mine::end_one::<H>))
            .route(&login.end_all_sessions_path, post(mine::end_all::<H>))
            .route_layer(self.inner.limit.clone())
            // A provider POSTs its logout tokens from one address, possibly many at once: not rate limited; nor is
            // a RISC transmitter.
            .merge(backchannel)
            .route(&login.risc_path, post(risc::receive::<H>))
            .with_state(self.clone())
    }

    /// The main provider (the first).
    pub fn provider(&self) -> &dyn Provider {
        self.inner.providers[0].flow.provider()
    }

    /// Every provider, the main one first.
    pub fn providers(&self) -> impl Iterator<Item = &dyn Provider> {
        self.inner.providers.iter().map(|entry| entry.flow.provider())
    }

    /// The provider with this issuer, if the site has it.
    pub fn provider_by_issuer(&self, issuer: &str) -> Option<&dyn Provider> {
        self.providers().find(|provider| provider.issuer() == issuer)
    }

    /// The sign-in buttons of a login page, the main provider first; `next` as in [`Sessions::login_url`].
    pub fn links(&self, next: Option<&LocalPath>) -> Vec<ProviderLink> {
        self.inner
            .providers
            .iter()
            .map(|entry| {
                let provider = entry.flow.provider();
                ProviderLink {
                    id: provider.id().to_owned(),
                    name: provider.display_name().to_owned(),
                    issuer: provider.issuer().to_owned(),
                    google: provider.issuer() == GOOGLE_ISSUER,
                    login_url: self.inner.sessions.login_url_at(&entry.paths.login, next),
                }
            })
            .collect()
    }

    fn entry(&self, index: usize) -> &Entry {
        &self.inner.providers[index]
    }

    /// Claims `key` (an issuer and a `jti`) for a token accepted until `accepted_until` (Unix seconds, as the
    /// token's check worked it out): whether it was not used before.
    async fn first_use(&self, key: &str, accepted_until: i64) -> Result<bool, signin_session::BoxError> {
        // Out of range only for a nonsensical `iat`, which the checks refuse; kept the longest, then.
        let until = time::OffsetDateTime::from_unix_timestamp(accepted_until)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc() + signin_auth::SECURITY_EVENT_MAX_AGE);
        self.claim_once(key, until).await
    }

    /// Claims `key` until `until` in the used-token store every instance shares: whether this was its first use.
    async fn claim_once(&self, key: &str, until: time::OffsetDateTime) -> Result<bool, signin_session::BoxError> {
        self.inner.used_tokens.first_use(key, until).await
    }

    /// Gives up the claim on `key`, for a token that could not be acted on (its sender retries it).
    async fn release_use(&self, key: &str) {
        if let Err(err) = self.inner.used_tokens.release(key).await {
            tracing::warn!(error = %err, "a used token's record could not be released; a retry of it is refused");
        }
    }

    /// Where the provider with this id sends its back-channel logout tokens (to register as its
    /// `backchannel_logout_uri`): `<public URL><login path>/<id>/backchannel-logout`.
    pub fn backchannel_logout_url(&self, provider_id: &str) -> Option<Url> {
        let entry = self.inner.providers.iter().find(|entry| entry.flow.provider().id() == provider_id)?;
        let mut url = self.inner.sessions.public_url().clone();
        url.set_path(&self.inner.sessions.url(&entry.paths.backchannel));
        Some(url)
    }

    /// The site.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }
}
