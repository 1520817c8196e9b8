//! Prometheus metrics: the recorder (installed once per process), the `/metrics` endpoint on an address of its own,
//! and the gauges sampled from the pools and the sessions table.
//!
//! The crates emit through the `metrics` facade: sign-ins by outcome (`signin_sign_ins_total`), requests by route
//! and status class (`signin_http_request_duration_seconds`), provider calls by endpoint
//! (`signin_provider_request_seconds`), session cache hits and misses, rate-limit refusals.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use signin_persistence::DbPool;
use sqlx::MySqlPool;
use subtle::ConstantTimeEq as _;

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's recorder, installed on first use; `None` if another recorder was installed first.
pub(crate) fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS);
            match builder.and_then(PrometheusBuilder::install_recorder) {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics are not recorded");
                    None
                }
            }
        })
        .clone()
}

#[derive(Clone)]
struct Endpoint {
    handle: PrometheusHandle,
    token: Option<SecretString>,
}

/// `GET /metrics`, with the bearer token when one is configured.
pub(crate) fn router(handle: PrometheusHandle, token: Option<SecretString>) -> Router {
    Router::new().route("/metrics", get(render)).with_state(Endpoint { handle, token })
}

async fn render(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(token) = &endpoint.token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], endpoint.handle.render()).into_response()
}

/// Samples the gauges every 15 s (and keeps the histograms' windows current) until aborted.
pub(crate) fn spawn_sampler(
    handle: PrometheusHandle,
    users: DbPool,
    sessions: MySqlPool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(15));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
            let status = users.status();
            metrics::gauge!("signin_db_pool_connections", "pool" => "users", "state" => "idle")
                .set(f64::from(u32::try_from(status.available).unwrap_or(0)));
            metrics::gauge!("signin_db_pool_connections", "pool" => "users", "state" => "in_use")
                .set(f64::from(u32::try_from(status.size.saturating_sub(status.available)).unwrap_or(0)));
            metrics::gauge!("signin_db_pool_waiting", "pool" => "users")
                .set(f64::from(u32::try_from(status.waiting).unwrap_or(0)));
            let idle = u32::try_from(sessions.num_idle()).unwrap_or(0);
            metrics::gauge!("signin_db_pool_connections", "pool" => "sessions", "state" => "idle").set(f64::from(idle));
            metrics::gauge!("signin_db_pool_connections", "pool" => "sessions", "state" => "in_use")
                .set(f64::from(sessions.size().saturating_sub(idle)));
            match sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE expiry_date > NOW()")
                .fetch_one(&sessions)
                .await
            {
                Ok(active) => metrics::gauge!("signin_sessions_active").set(active as f64),
                Err(err) => tracing::debug!(error = %err, "counting the active sessions failed"),
            }
        }
    })
}
