//! The layers every response passes through: security headers, limits, timeouts, panics, error pages.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use signin_login::{RateLimitSettings, SessionLayer, SessionStore};
use std::net::SocketAddr;
use tower::{Service, ServiceBuilder};

use axum::extract::{ConnectInfo, MatchedPath};
use tower_http::body::Limited;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::{AppState, BodyDeadline};
use signin_login::ErrorPage;

use crate::error::render_error_pages;

/// The Content-Security-Policy: our own scripts and styles only, images from us or any https host (profile
/// pictures), no framing, forms post only to us (and, for the sign-out form, on to the providers whose
/// end-session page it leads to: browsers hold a form's redirects to `form-action` too).
pub(crate) fn content_security_policy(extra_img_origins: &[String], form_action_origins: &[String]) -> String {
    let mut img = String::from("'self' https: data:");
    for origin in extra_img_origins {
        img.push(' ');
        img.push_str(origin);
    }
    let mut form = String::from("'self'");
    for origin in form_action_origins {
        form.push(' ');
        form.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; connect-src 'self'; \
         form-action {form}; frame-ancestors 'none'; base-uri 'none'"
    )
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    // Marks the failure as described (and logged), so the error-page layer does not log it a second time.
    response.extensions_mut().insert(ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR));
    response
}

/// The headers every response gets: security headers set over whatever the handler chose, and `Cache-Control:
/// no-store` unless the handler chose otherwise (the assets).
#[derive(Clone)]
struct ResponseHeaders {
    overriding: Arc<[(HeaderName, HeaderValue)]>,
}

impl ResponseHeaders {
    fn new(state: &AppState) -> Self {
        let csp =
            HeaderValue::from_str(&content_security_policy(&state.extra_img_origins(), &state.end_session_origins()))
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
        let mut overriding = vec![
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
        ];
        if state.is_https() {
            overriding.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            ));
        }
        Self { overriding: overriding.into() }
    }

    fn apply(&self, mut response: Response<Body>) -> Response<Body> {
        let headers = response.headers_mut();
        for (name, value) in self.overriding.iter() {
            headers.insert(name.clone(), value.clone());
        }
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// The request id header.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions (for the span of its log lines).
#[derive(Clone)]
pub(crate) struct RequestId(HeaderValue);

/// A new request id: 16 hex characters from the thread's CSPRNG, short enough to quote from an error page.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u64 = rand::random();
    let mut text = [0u8; 16];
    for (n, digit) in text.iter_mut().enumerate() {
        *digit = HEX[usize::try_from((id >> (60 - 4 * n)) & 0xf).unwrap_or(0)];
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// An incoming `X-Request-Id`, when it comes from a trusted proxy and is a plain token of at most 64 characters.
fn trusted_request_id(proxies: &RateLimitSettings, request: &Request<Body>) -> Option<HeaderValue> {
    let value = request.headers().get(&REQUEST_ID)?;
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())?;
    let plain = value.len() <= 64
        && !value.is_empty()
        && value.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (plain && proxies.trusts(peer)).then(|| value.clone())
}

/// The span of a request: its id, method and path (never the query, which may carry a code or a state). Every
/// log line written while the request is handled carries it.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.0.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path())
}

/// The outermost layer: gives the request its id, and on the way out renders error pages (with the id as their
/// reference), sets `X-Request-Id` and records the request's duration by route and status class
/// (`signin_http_request_duration_seconds`). One layer with one unboxed future for the three, since each is a
/// few atomic operations and would otherwise cost a layer and an allocation of its own per request.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    state: AppState,
    histograms: Arc<RouteHistograms>,
}

impl<S> Service<Request<Body>> for Observe<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let proxies = &self.state.login.sessions().login_settings().rate_limit;
        let id = trusted_request_id(proxies, &request).unwrap_or_else(new_request_id);
        request.headers_mut().remove(&REQUEST_ID);
        request.extensions_mut().insert(RequestId(id.clone()));
        let deadline = request.extensions().get::<BodyDeadline>().cloned();
        let route = RouteSlot::default();
        request.extensions_mut().insert(route.clone());
        Observed {
            inner: self.inner.call(request),
            done: Some(Done {
                id,
                histograms: self.histograms.clone(),
                route,
                state: self.state.clone(),
                started: std::time::Instant::now(),
                deadline,
            }),
        }
    }
}

struct Done {
    id: HeaderValue,
    histograms: Arc<RouteHistograms>,
    /// The route the router matched, once it has.
    route: RouteSlot,
    state: AppState,
    started: std::time::Instant,
    /// The body's deadline, for a request with a body.
    deadline: Option<BodyDeadline>,
}

pin_project_lite::pin_project! {
    /// The future of [`Observe`].
    pub(crate) struct Observed<F> {
        #[pin]
        inner: F,
        done: Option<Done>,
    }
}

impl<F> std::future::Future for Observed<F>
where
    F: std::future::Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = std::task::ready!(this.inner.poll(cx));
        let Some(done) = this.done.take() else {
            return std::task::Poll::Ready(Ok(response));
        };
        let response = match &done.deadline {
            Some(deadline) if deadline.has_passed() => crate::deadline::timed_out(response),
            _ => response,
        };
        let histograms = done.histograms.for_route(done.route.0.get());
        let mut response = render_error_pages(&done.state, response, done.id.to_str().ok());
        let class = usize::from((response.status().as_u16() / 100).clamp(1, 5) - 1);
        histograms[class].record(done.started.elapsed().as_secs_f64());
        response.headers_mut().insert(REQUEST_ID, done.id);
        std::task::Poll::Ready(Ok(response))
    }
}

/// The histograms of `signin_http_request_duration_seconds`, by route and status class. The route is the one the
/// router matched (axum's [`MatchedPath`], which [`TagRoute`] leaves in the request's [`RouteSlot`]), so that every route is
/// counted under its own pattern and a new one cannot be missed; a request no route matched counts as `other`.
/// Each route's histograms are registered at its first request: the routes are the router's, so they are few.
struct RouteHistograms {
    routes: std::sync::RwLock<Vec<(Arc<str>, ByClass)>>,
    other: ByClass,
}

/// One route's histograms, by status class (1xx … 5xx).
type ByClass = Arc<[metrics::Histogram; 5]>;

impl RouteHistograms {
    fn new() -> Self {
        Self { routes: std::sync::RwLock::new(Vec::new()), other: Self::by_class("other") }
    }

    fn by_class(route: &str) -> ByClass {
        Arc::new(["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            metrics::histogram!("signin_http_request_duration_seconds", "route" => route.to_owned(), "status" => class)
        }))
    }

    fn for_route(&self, route: Option<&MatchedPath>) -> ByClass {
        let Some(route) = route.map(MatchedPath::as_str) else {
            return self.other.clone();
        };
        let known = |routes: &[(Arc<str>, ByClass)]| {
            routes.iter().find(|(known, _)| &**known == route).map(|(_, histograms)| histograms.clone())
        };
        // A poisoned lock only means a writer panicked between two whole pushes.
        if let Some(histograms) = known(&self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner)) {
            return histograms;
        }
        let mut routes = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(histograms) = known(&routes) {
            return histograms;
        }
        let histograms = Self::by_class(route);
        routes.push((Arc::from(route), histograms.clone()));
        histograms
    }
}

/// Where the router's match of a request is left for [`Observe`], outside the router: filled by [`TagRoute`] as
/// the request reaches its route, read however the request ends (a handler's answer, a timeout, a panic).
#[derive(Clone, Default)]
pub(crate) struct RouteSlot(Arc<std::sync::OnceLock<MatchedPath>>);

/// Fills the request's [`RouteSlot`] with the route the router matched ([`MatchedPath`]).
#[derive(Clone, Copy)]
pub(crate) struct TagRoute;

impl<S> tower::Layer<S> for TagRoute {
    type Service = TagRouteService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TagRouteService { inner }
    }
}

/// The service of [`TagRoute`].
#[derive(Clone)]
pub(crate) struct TagRouteService<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for TagRouteService<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if let (Some(slot), Some(route)) =
            (request.extensions().get::<RouteSlot>(), request.extensions().get::<MatchedPath>())
        {
            let _ = slot.0.set(route.clone());
        }
        self.inner.call(request)
    }
}

/// Wraps the routes in the session layer and the protective layers, outermost first: request id, error pages and
/// request metrics ([`Observe`]), tracing, security headers, request timeout, panic catcher, body limit, sessions. One stack around the whole router, with no boxing between the layers: each response mapper is a plain
/// function of the response.
pub(crate) fn protect<S: SessionStore + Clone>(
    routes: Router,
    sessions: SessionLayer<S>,
    state: AppState,
) -> impl Service<Request<Body>, Response: IntoResponse, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    let settings = &state.settings;
    let headers = ResponseHeaders::new(&state);
    let pages = state.clone();
    let histograms = Arc::new(RouteHistograms::new());
    let routes = routes.layer(TagRoute);
    ServiceBuilder::new()
        .layer(tower::layer::layer_fn(move |inner| Observe {
            inner,
            state: pages.clone(),
            histograms: histograms.clone(),
        }))
        .map_response(Response::into_response)
        // Every failure is logged once where it is handled (`AppError`, the panic handler, the error-page rendering
        // for the layers' own 5xx); the trace layer's own "response failed" line would be a second one.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .map_response(Response::into_response)
        .map_response(move |response| headers.apply(response))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .map_response(Response::into_response)
        .layer(CatchPanicLayer::custom(panic_response))
        .map_response(Response::into_response)
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .map_request(|request: Request<Limited<Body>>| request.map(Body::new))
        .layer(sessions)
        .service(routes)
}
