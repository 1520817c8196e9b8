//! Liveness and readiness.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

/// How long one readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Something the service needs in order to answer requests (a database, the session store).
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// A short name for the report, e.g. `database`.
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers.
    async fn check(&self) -> Result<(), String>;
}

#[derive(Serialize)]
struct Report {
    ready: bool,
    checks: Vec<CheckReport>,
}

#[derive(Serialize)]
struct CheckReport {
    name: &'static str,
    ok: bool,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/health/live", get(live)).route("/health/ready", get(ready))
}

async fn live() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok")
}

async fn ready(State(state): State<AppState>) -> Response {
    let checks = futures_join(state.health.iter().cloned()).await;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(Report { ready, checks })).into_response()
}

async fn futures_join(checks: impl Iterator<Item = Arc<dyn HealthCheck>>) -> Vec<CheckReport> {
    let handles: Vec<_> = checks
        .map(|check| {
            tokio::spawn(async move {
                let ok = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                    Ok(Ok(())) => true,
                    Ok(Err(reason)) => {
                        tracing::warn!(check = check.name(), %reason, "readiness check failed");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(check = check.name(), "readiness check timed out");
                        false
                    }
                };
                CheckReport { name: check.name(), ok }
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(handles.len());
    for handle in handles {
        reports.push(handle.await.unwrap_or(CheckReport { name: "unknown", ok: false }));
    }
    reports
}
