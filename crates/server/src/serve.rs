//! The HTTP server around the router: connection limits and timeouts, and a graceful drain on shutdown.
//!
//! `axum::serve` has neither a header-read timeout nor a connection cap nor a shutdown deadline, so the accept loop
//! is written here on hyper's own connection builder (its timer closes slow and idle connections) and hyper-util's
//! graceful-shutdown watcher.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use signin_domain::Tally;
use signin_web::HealthCheck;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;

/// How the server treats connections (from `[server]`; see [`crate::ServerSettings`]).
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// See [`crate::ServerSettings::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`crate::ServerSettings::max_connections`].
    pub max_connections: usize,
    /// See [`crate::ServerSettings::drain`].
    pub drain: Duration,
    /// See [`crate::ServerSettings::shutdown_timeout`].
    pub shutdown_timeout: Duration,
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

/// Serves `router` on `listener` until `signal`, then drains: readiness fails and every response closes its
/// connection for `drain`, then the listener closes and the requests in flight get `shutdown_timeout` to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    draining: Draining,
    signal: impl Future<Output = ()> + Send,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let server = Server {
        http,
        router,
        draining: draining.clone(),
        permits: Arc::new(Semaphore::new(settings.max_connections.max(1))),
        max_connections: settings.max_connections.max(1),
        graceful: GracefulShutdown::new(),
        refused: Tally::new(Duration::from_secs(10)),
        accept_errors: Tally::new(Duration::from_secs(10)),
    };
    server.accept_until(&listener, signal).await;

    tracing::info!(drain = ?settings.drain, "shutting down: draining (readiness answers 503)");
    draining.start();
    server.accept_until(&listener, tokio::time::sleep(settings.drain)).await;
    // Connections the kernel has queued but nobody accepted yet would be reset when the listener closes, their
    // requests perhaps already sent: take them too (briefly, however fast new ones arrive), then close.
    let sweep = Instant::now();
    while sweep.elapsed() < Duration::from_millis(200) {
        match tokio::time::timeout(Duration::from_millis(5), listener.accept()).await {
            Ok(Ok((stream, peer))) => server.connection(stream, peer),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    drop(listener);

    let open = server.graceful.count();
    tracing::info!(connections = open, "no longer accepting; finishing the requests in flight");
    match tokio::time::timeout(settings.shutdown_timeout, server.graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            timeout = ?settings.shutdown_timeout,
            "connections still open at the shutdown deadline are dropped"
        ),
    }
}

struct Server {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    draining: Draining,
    permits: Arc<Semaphore>,
    max_connections: usize,
    graceful: GracefulShutdown,
    refused: Tally,
    accept_errors: Tally,
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
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            if let Some(count) = self.refused.add() {
                tracing::warn!(count, limit = self.max_connections, "connection limit reached: new connections closed");
            }
            drop(stream);
            return;
        };
        let _ = stream.set_nodelay(true);
        let draining = self.draining.clone();
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            })
            .map_response(move |mut response: Response<axum::body::Body>| {
                if draining.is_draining() {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            })
            .service(self.router.clone());
        let connection = self.http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
