//! The session layer: tower-sessions around the routes, with the store under [`HashedIds`], the session directory
//! fed at each sign-in, a store failure answered 503, and the session cookie's removals and clean-ups.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use futures_util::future::BoxFuture;
use signin_session::{AuthSession, HashedIds, SessionDirectory};
use tower::{Layer, Service};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use tower_sessions::{SessionManagerLayer, SessionStore};

use crate::{ErrorPage, Sessions, noise};

impl Sessions {
    /// The session middleware for a router: the session cookie as configured, the store under [`HashedIds`] (the
    /// table never holds a working cookie value), and what the extractors need. Add it outermost of the routes
    /// that use the extractors or the sign-in routes.
    pub fn layer<S: SessionStore + Clone>(&self, store: S) -> SessionLayer<S> {
        self.layer_with(store, None)
    }

    /// Like [`Sessions::layer`], with a directory of each person's sessions: sign-ins are recorded in it, the
    /// [`MySessions`](crate::MySessions) extractor lists them, and the routes of [`Login::routes`](crate::Login::routes)
    /// that end one or all of them work.
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
}

/// The layer [`Sessions::layer`] makes.
#[derive(Clone)]
pub struct SessionLayer<S: SessionStore> {
    pub(crate) sessions: SessionManagerLayer<SaveWatch<HashedIds<S>>>,
    pub(crate) site: Sessions,
    pub(crate) control: Option<Control>,
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
    pub(crate) store: S,
    pub(crate) directory: Option<Arc<dyn SessionDirectory>>,
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
        // A dead cookie is cleared only in answers to a navigation (or to a client that is not a browser). A fetch or
        // a subresource still carrying the id a sign-in has just replaced may be answered after that sign-in's own
        // answer, and its removal would then delete the new cookie.
        let navigation = request.headers().get("sec-fetch-mode").is_none_or(|mode| mode.as_bytes() == b"navigate");
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
            let unknown = NOTED.with(|noted| noted.unknown.get());
            if scrubbed != noise::SessionCookies::Fine || (navigation && unknown) {
                noise::clear_cookie(response.headers_mut(), name, secure);
            } else if unknown {
                noise::keep_cookie(response.headers_mut(), name);
            }
            Ok(response)
        }))
    }
}
