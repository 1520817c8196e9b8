//! The HTTP server around the router: connection limits (in all and per client) and timeouts, the `Host` rule of
//! HTTP/1.1, and a graceful drain on shutdown.
//!
//! `axum::serve` has neither a header-read timeout nor a connection cap nor a shutdown deadline, so the accept loop
//! is written here on hyper's own connection builder (its timer closes slow and idle connections). Every connection
//! is tracked: who it is from, whether a request is in progress on it and since when it has waited for one. When the
//! slots run out (all of them, or one client's share), the connection that has waited longest is closed to make
//! room; a new connection is refused only when none waits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use axum::response::IntoResponse;
use axum::routing::future::RouteFuture;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use signin_domain::Tally;
use signin_login::{ErrorPage, RateLimitSettings};
use signin_web::{BodyDeadline, HealthCheck};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Sleep;
use tower::Service;

/// How the server treats connections (from `[server]`; see [`crate::ServerSettings`]).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// See [`crate::ServerSettings::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`crate::ServerSettings::body_read_timeout`].
    pub body_read_timeout: Duration,
    /// See [`crate::ServerSettings::max_connections`].
    pub max_connections: usize,
    /// See [`crate::ServerSettings::max_connections_per_client`].
    pub max_connections_per_client: usize,
    /// See [`crate::ServerSettings::drain`].
    pub drain: Duration,
    /// See [`crate::ServerSettings::shutdown_timeout`].
    pub shutdown_timeout: Duration,
    /// The proxies of `login.rate_limit.trusted_proxies`: each carries many clients, so none is held to the
    /// per-client share.
    pub proxies: RateLimitSettings,
}

/// Whether the server is draining; shared by the accept loop, the responses and the readiness check.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The readiness check that fails once shutdown has begun.
#[async_trait]
impl HealthCheck for Draining {
    fn name(&self) -> &'static str {
        "accepting"
    }

    async fn check(&self) -> Result<(), String> {
        if self.is_draining() { Err("shutting down".to_owned()) } else { Ok(()) }
    }
}

/// Where the server takes its connections from.
pub(crate) enum Listener {
    /// A socket this process bound: closing it resets what is queued on it, so the drain takes that first.
    Own(TcpListener),
    /// A socket handed down by the parent (systemd's socket activation): other processes hold it too, and it stays
    /// open after this one lets go of it, so what is queued there is left to the next process.
    Inherited(TcpListener),
}

impl Listener {
    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket().local_addr()
    }

    fn socket(&self) -> &TcpListener {
        match self {
            Self::Own(socket) | Self::Inherited(socket) => socket,
        }
    }
}

/// How long a connection that has not sent a request yet is left, once shutdown begins, before it is closed: its
/// first request may be on the way (a client sends it right after connecting), and it is served.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `signal`, then drains: readiness fails and every response closes its
/// connection for `drain`, then the server stops accepting and the requests in flight get `shutdown_timeout` to
/// finish.
pub(crate) async fn serve(
    listener: Listener,
    router: Router,
    settings: ConnectionSettings,
    draining: Draining,
    signal: impl Future<Output = ()> + Send,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let limit = settings.max_connections.max(1);
    let (closing, closing_rx) = watch::channel(false);
    let server = Server {
        http,
        shared: Arc::new(Shared { router, draining: draining.clone(), body_read_timeout: settings.body_read_timeout }),
        table: Arc::new(Table::new(limit, settings.max_connections_per_client.clamp(1, limit), settings.proxies)),
        first_request_grace: FIRST_REQUEST_GRACE.min(settings.header_read_timeout),
        closing: closing_rx,
        accept_errors: Tally::new(Duration::from_secs(10)),
    };
    let socket = listener.socket();
    server.accept_until(socket, signal).await;

    tracing::info!(drain = ?settings.drain, "shutting down: draining (readiness answers 503)");
    draining.start();
    server.accept_until(socket, tokio::time::sleep(settings.drain)).await;
    match listener {
        Listener::Own(listener) => {
            // Connections the kernel has queued but nobody accepted yet would be reset when the listener closes,
            // their requests perhaps already sent: take them too (briefly, however fast new ones arrive), then
            // close.
            let sweep = Instant::now();
            while sweep.elapsed() < Duration::from_millis(200) {
                match tokio::time::timeout(Duration::from_millis(5), listener.accept()).await {
                    Ok(Ok((stream, peer))) => server.connection(stream, peer),
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            drop(listener);
        }
        Listener::Inherited(listener) => {
            // Only this process's copy goes: the socket stays open, and the connections queued on it wait for
            // the next process rather than being reset.
            drop(listener);
            tracing::info!("let go of the inherited socket: what is queued on it is left to the next process");
        }
    }

    let table = server.table.clone();
    tracing::info!(connections = table.open(), "no longer accepting; finishing the requests in flight");
    drop(server);
    let _ = closing.send(true);
    match tokio::time::timeout(settings.shutdown_timeout, closing.closed()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => {
            tracing::warn!(
                timeout = ?settings.shutdown_timeout,
                connections = table.open(),
                "connections still open at the shutdown deadline are dropped"
            );
            table.drop_all();
        }
    }
}

struct Server {
    http: hyper::server::conn::http1::Builder,
    shared: Arc<Shared>,
    table: Arc<Table>,
    first_request_grace: Duration,
    /// Turns `true` when the server stops accepting; every connection holds a receiver, so the sender learns when
    /// the last one has closed.
    closing: watch::Receiver<bool>,
    accept_errors: Tally,
}

/// What every request of every connection needs.
struct Shared {
    router: Router,
    draining: Draining,
    body_read_timeout: Duration,
}

impl Server {
    async fn accept_until(&self, listener: &TcpListener, until: impl Future<Output = ()> + Send) {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.connection(stream, peer),
                    Err(err) => {
                        // Out of file descriptors, mostly: wait a moment rather than spin.
                        if let Some(count) = self.accept_errors.add() {
                            tracing::warn!(error = %err, count, "accepting connections failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    fn connection(&self, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let Some(tracked) = self.table.admit(peer.ip().to_canonical()) else {
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        let service = ConnectionService { shared: self.shared.clone(), peer, tracked: tracked.clone() };
        let connection = self.http.serve_connection(TokioIo::new(stream), service);
        let mut closing = self.closing.clone();
        let table = self.table.clone();
        let grace = self.first_request_grace;
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // When the server stops accepting: when this connection is to be closed, and whether it has been asked.
            let mut close_at: Option<tokio::time::Instant> = None;
            let mut asked = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(err) = ended {
                            tracing::debug!(error = %err, "connection ended with an error");
                        }
                        break;
                    }
                    () = tracked.close.notified() => {
                        // Closed to make room (or at the shutdown deadline). A request that has just begun on it
                        // is finished first: hyper then closes the connection after the response.
                        if tracked.dropped.load(Ordering::Acquire) || !tracked.is_busy() {
                            break;
                        }
                        connection.as_mut().graceful_shutdown();
                        asked = true;
                    }
                    _ = closing.changed(), if close_at.is_none() => {
                        let wait = if tracked.has_had_a_request() { Duration::ZERO } else { grace };
                        close_at = Some((tracked.accepted + wait).into());
                    }
                    () = tokio::time::sleep_until(close_at.unwrap_or_else(tokio::time::Instant::now)),
                        if close_at.is_some() && !asked =>
                    {
                        // hyper closes an idle connection at once, and one with a request in progress after its
                        // response.
                        connection.as_mut().graceful_shutdown();
                        asked = true;
                    }
                }
            }
            table.remove(&tracked);
        });
    }
}

/// The open connections, by client address, and the limits they are held to.
struct Table {
    limit: usize,
    per_client: usize,
    proxies: RateLimitSettings,
    epoch: Instant,
    open: Mutex<Open>,
    /// New connections closed at once: every slot busy.
    refused: Tally,
    /// New connections closed at once: their client's share busy.
    over_share: Tally,
    /// Waiting connections closed to make room for a new one.
    made_room: Tally,
}

#[derive(Default)]
struct Open {
    count: usize,
    by_client: HashMap<IpAddr, Vec<Arc<Tracked>>>,
}

impl Open {
    fn remove(&mut self, tracked: &Arc<Tracked>) {
        let Some(connections) = self.by_client.get_mut(&tracked.client) else { return };
        let Some(at) = connections.iter().position(|other| Arc::ptr_eq(other, tracked)) else { return };
        connections.swap_remove(at);
        if connections.is_empty() {
            self.by_client.remove(&tracked.client);
        }
        self.count -= 1;
    }

    /// The connection of `client` that has waited longest for a request.
    fn longest_waiting_of(&self, client: IpAddr) -> Option<Arc<Tracked>> {
        self.by_client.get(&client).and_then(|connections| longest_waiting(connections.iter())).cloned()
    }

    /// The connection that has waited longest for a request, whoever its client.
    fn longest_waiting(&self) -> Option<Arc<Tracked>> {
        longest_waiting(self.by_client.values().flatten()).cloned()
    }
}

fn longest_waiting<'a>(connections: impl Iterator<Item = &'a Arc<Tracked>>) -> Option<&'a Arc<Tracked>> {
    connections
        .filter_map(|tracked| tracked.waiting_since().map(|since| (since, tracked)))
        .min_by_key(|(since, _)| *since)
        .map(|(_, tracked)| tracked)
}

/// Why a new connection was not taken.
enum Refusal {
    /// Its client holds its whole share, every one of them with a request in progress.
    OverShare,
    /// Every slot holds a request in progress.
    Full,
}

impl Table {
    fn new(limit: usize, per_client: usize, proxies: RateLimitSettings) -> Self {
        let every = Duration::from_secs(10);
        Self {
            limit,
            per_client,
            proxies,
            epoch: Instant::now(),
            open: Mutex::default(),
            refused: Tally::new(every),
            over_share: Tally::new(every),
            made_room: Tally::new(every),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self) -> usize {
        self.lock().count
    }

    /// Takes a new connection from `client` if there is room, making room by closing a waiting connection when
    /// the client's share or every slot is taken; `None`: refused.
    fn admit(&self, client: IpAddr) -> Option<Arc<Tracked>> {
        let mut made_room = 0;
        let outcome = {
            let mut open = self.lock();
            let mut outcome = Ok(());
            // A trusted proxy's connections carry its clients' requests: the share is theirs, not the proxy's.
            if !self.proxies.trusts(client)
                && open.by_client.get(&client).is_some_and(|connections| connections.len() >= self.per_client)
            {
                match open.longest_waiting_of(client) {
                    Some(waiting) => {
                        open.remove(&waiting);
                        waiting.close(false);
                        made_room += 1;
                    }
                    None => outcome = Err(Refusal::OverShare),
                }
            }
            if outcome.is_ok() && open.count >= self.limit {
                match open.longest_waiting() {
                    Some(waiting) => {
                        open.remove(&waiting);
                        waiting.close(false);
                        made_room += 1;
                    }
                    None => outcome = Err(Refusal::Full),
                }
            }
            outcome.map(|()| {
                let tracked = Arc::new(Tracked::new(client, self.epoch));
                open.by_client.entry(client).or_default().push(tracked.clone());
                open.count += 1;
                tracked
            })
        };
        for _ in 0..made_room {
            if let Some(count) = self.made_room.add() {
                tracing::info!(count, "connections waiting for a request closed to make room for new ones");
            }
        }
        match outcome {
            Ok(tracked) => Some(tracked),
            Err(Refusal::OverShare) => {
                if let Some(count) = self.over_share.add() {
                    tracing::warn!(
                        count,
                        client = %client,
                        limit = self.per_client,
                        "a client's share of the connections is taken: its new connections closed (last: that client)"
                    );
                }
                None
            }
            Err(Refusal::Full) => {
                if let Some(count) = self.refused.add() {
                    tracing::warn!(count, limit = self.limit, "connection limit reached: new connections closed");
                }
                None
            }
        }
    }

    fn remove(&self, tracked: &Arc<Tracked>) {
        self.lock().remove(tracked);
    }

    /// Drops every connection, requests in progress or not (the shutdown deadline).
    fn drop_all(&self) {
        for tracked in self.lock().by_client.values().flatten() {
            tracked.close(true);
        }
    }
}

/// Marks a connection that has a request in progress.
const BUSY: u64 = u64::MAX;

/// One open connection, as the table sees it.
struct Tracked {
    client: IpAddr,
    epoch: Instant,
    accepted: Instant,
    /// Since when (milliseconds after `epoch`) the connection has waited for a request; [`BUSY`] while one is in
    /// progress, from its head until its response has gone.
    waiting_since: AtomicU64,
    /// Whether a request has come on it.
    used: AtomicBool,
    /// Asks the connection's task to close it.
    close: Notify,
    /// Close even with a request in progress.
    dropped: AtomicBool,
}

impl Tracked {
    fn new(client: IpAddr, epoch: Instant) -> Self {
        let accepted = Instant::now();
        Self {
            client,
            epoch,
            accepted,
            waiting_since: AtomicU64::new(millis_between(epoch, accepted)),
            used: AtomicBool::new(false),
            close: Notify::new(),
            dropped: AtomicBool::new(false),
        }
    }

    fn waiting_since(&self) -> Option<u64> {
        let since = self.waiting_since.load(Ordering::Acquire);
        (since != BUSY).then_some(since)
    }

    fn is_busy(&self) -> bool {
        self.waiting_since().is_none()
    }

    fn has_had_a_request(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// A request begins: the connection is busy until the returned guard drops (with the response's body).
    fn busy(self: &Arc<Self>) -> Busy {
        self.used.store(true, Ordering::Release);
        self.waiting_since.store(BUSY, Ordering::Release);
        Busy(self.clone())
    }

    fn close(&self, even_busy: bool) {
        if even_busy {
            self.dropped.store(true, Ordering::Release);
        }
        self.close.notify_one();
    }
}

fn millis_between(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(BUSY - 1).min(BUSY - 1)
}

/// A request in progress on a connection; dropping it marks the connection as waiting again.
struct Busy(Arc<Tracked>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.waiting_since.store(millis_between(self.0.epoch, Instant::now()), Ordering::Release);
    }
}

/// The service of one connection: checks the request, times its body, and hands it to the router.
struct ConnectionService {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tracked: Arc<Tracked>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: Request<Incoming>) -> Answer {
        let busy = self.tracked.busy();
        let draining = self.shared.draining.clone();
        if !has_one_valid_host(&request) {
            return Answer { routed: None, early: Some(bad_host()), draining, busy: Some(busy) };
        }
        let deadline = (!request.body().is_end_stream()).then(BodyDeadline::default);
        let limit = self.shared.body_read_timeout;
        let timer = deadline.clone().map(|deadline| BodyTimer {
            until: tokio::time::Instant::now() + limit,
            sleep: None,
            deadline,
            expired: false,
        });
        let mut request = request.map(|inner| TimedBody { inner, timer });
        request.extensions_mut().insert(ConnectInfo(self.peer));
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(deadline);
        }
        // The router is always ready (axum's `Router::poll_ready`), so it is called straight away.
        let routed = self.shared.router.clone().call(request);
        Answer { routed: Some(routed), early: None, draining, busy: Some(busy) }
    }
}

/// RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without a `Host` header, and to any request with
/// more than one or with one that is not a host with an optional port. (HTTP/1.0 did not require it.)
fn has_one_valid_host<B>(request: &Request<B>) -> bool {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => request.version() < Version::HTTP_11,
        (Some(host), None) => {
            // `uri-host [":" port]`: an authority without user information. An empty one names no host, which an
            // http URI must (RFC 9110 §4.2.1).
            let value = host.as_bytes();
            !value.contains(&b'@') && axum::http::uri::Authority::try_from(value).is_ok()
        }
        (Some(_), Some(_)) => false,
    }
}

static BAD_HOSTS: LazyLock<Tally> = LazyLock::new(|| Tally::new(Duration::from_secs(10)));

/// The answer to a request without exactly one valid `Host`: the plain error page, and the connection closed (a
/// client that frames its requests so may have more wrong).
fn bad_host() -> Response<AxumBody> {
    tracing::debug!("a request without exactly one valid Host header: answered 400");
    if let Some(count) = BAD_HOSTS.add() {
        tracing::info!(count, "requests without exactly one valid Host header, answered 400");
    }
    let mut response = ErrorPage::for_status(StatusCode::BAD_REQUEST).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    response
}

pin_project_lite::pin_project! {
    /// The future of [`ConnectionService`].
    struct Answer {
        #[pin]
        routed: Option<RouteFuture<Infallible>>,
        early: Option<Response<AxumBody>>,
        draining: Draining,
        busy: Option<Busy>,
    }
}

impl Future for Answer {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.routed.as_pin_mut() {
            Some(routed) => match ready!(routed.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => this.early.take().unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        };
        if this.draining.is_draining() {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let busy = this.busy.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody { inner, _busy: busy })))
    }
}

pin_project_lite::pin_project! {
    /// A response's body; the connection counts as busy until it is dropped (hyper drops it once it has been sent,
    /// or with the connection).
    struct TrackedBody {
        #[pin]
        inner: AxumBody,
        _busy: Option<Busy>,
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request's body, bounded in time (`server.body_read_timeout`, counted from the request's head): once that
    /// has passed, reading it fails, and the [`BodyDeadline`] tells the web layer to answer 408.
    struct TimedBody {
        #[pin]
        inner: Incoming,
        // `None` for a request without a body.
        timer: Option<BodyTimer>,
    }
}

struct BodyTimer {
    until: tokio::time::Instant,
    /// Made the first time the body is not there yet: most bodies arrive with their head and need no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    deadline: BodyDeadline,
    expired: bool,
}

/// Why reading a request's body failed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body_read_timeout")]
struct BodyTimedOut;

static SLOW_BODIES: LazyLock<Tally> = LazyLock::new(|| Tally::new(Duration::from_secs(10)));

impl Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.project();
        if this.timer.as_ref().is_some_and(|timer| timer.expired) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let Some(timer) = this.timer.as_mut() else { return Poll::Pending };
        let until = timer.until;
        let sleep = timer.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        ready!(sleep.as_mut().poll(cx));
        timer.expired = true;
        timer.deadline.pass();
        tracing::debug!("a request body did not arrive in time: answered 408");
        if let Some(count) = SLOW_BODIES.add() {
            tracing::info!(count, "request bodies not received within server.body_read_timeout, answered 408");
        }
        Poll::Ready(Some(Err(BodyTimedOut.into())))
    }

    fn is_end_stream(&self) -> bool {
        self.timer.as_ref().is_some_and(|timer| timer.expired) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, hosts: &[&'static str]) -> Request<()> {
        let mut request = Request::builder().uri("/").version(version);
        for host in hosts {
            request = request.header(header::HOST, *host);
        }
        request.body(()).expect("request")
    }

    #[test]
    fn http_1_1_needs_exactly_one_valid_host() {
        assert!(has_one_valid_host(&request(Version::HTTP_11, &["login.example.com"])));
        assert!(has_one_valid_host(&request(Version::HTTP_11, &["127.0.0.1:3000"])));
        assert!(has_one_valid_host(&request(Version::HTTP_11, &["[::1]:3000"])));
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &[])), "none");
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &["a.example", "b.example"])), "two");
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &["a.example", "a.example"])), "the same twice");
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &[""])), "empty");
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &["user@a.example"])), "user information");
        assert!(!has_one_valid_host(&request(Version::HTTP_11, &["a.example/path"])), "a path");
    }

    #[test]
    fn http_1_0_may_leave_host_out_but_not_send_two() {
        assert!(has_one_valid_host(&request(Version::HTTP_10, &[])));
        assert!(!has_one_valid_host(&request(Version::HTTP_10, &["a.example", "b.example"])));
    }

    fn proxies(trusted: &[&str]) -> RateLimitSettings {
        RateLimitSettings {
            trusted_proxies: trusted.iter().map(|net| net.parse().expect("net")).collect(),
            ..RateLimitSettings::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_client_over_its_share_loses_its_longest_waiting_connection_and_a_busy_share_refuses() {
        let table = Table::new(10, 2, proxies(&[]));
        let first = table.admit(ip("192.0.2.1")).expect("first");
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit(ip("192.0.2.1")).expect("second");

        let third = table.admit(ip("192.0.2.1")).expect("room is made");

        assert_eq!(table.open(), 2);
        assert!(table.lock().longest_waiting_of(ip("192.0.2.1")).is_some_and(|t| Arc::ptr_eq(&t, &second)));
        assert!(!table.lock().by_client[&ip("192.0.2.1")].iter().any(|t| Arc::ptr_eq(t, &first)), "the oldest went");
        let (_a, _b) = (second.busy(), third.busy());
        assert!(table.admit(ip("192.0.2.1")).is_none(), "a share of busy connections refuses");
        assert!(table.admit(ip("192.0.2.2")).is_some(), "another client is not held to it");
    }

    #[test]
    fn a_trusted_proxy_is_not_held_to_a_share_and_a_full_table_closes_the_longest_waiting() {
        let table = Table::new(3, 1, proxies(&["10.0.0.0/8"]));
        let held: Vec<_> = (0..3).map(|_| table.admit(ip("10.0.0.5")).expect("a proxy's connection")).collect();
        let _busy = held[1].busy();

        let newcomer = table.admit(ip("192.0.2.9"));

        assert!(newcomer.is_some(), "room is made");
        assert_eq!(table.open(), 3);
        let kept = &table.lock().by_client[&ip("10.0.0.5")];
        assert!(kept.iter().any(|t| Arc::ptr_eq(t, &held[1])), "the busy one stays");
        assert!(!kept.iter().any(|t| Arc::ptr_eq(t, &held[0])), "the one waiting longest went");
    }

    #[test]
    fn a_table_of_busy_connections_refuses() {
        let table = Table::new(2, 2, proxies(&[]));
        let held: Vec<_> = (0..2).map(|_| table.admit(ip("192.0.2.1")).expect("admitted")).collect();
        let _busy: Vec<_> = held.iter().map(Tracked::busy).collect();
        assert!(table.admit(ip("192.0.2.2")).is_none());
        drop(_busy);
        assert!(table.admit(ip("192.0.2.2")).is_some(), "waiting again: room can be made");
    }
}
