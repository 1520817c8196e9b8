//! The layers every response passes through: security headers, limits, timeouts, panics, error pages.

use std::any::Any;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::AppState;
use signin_login::ErrorPage;

use crate::error::render_error_pages;

/// The Content-Security-Policy: our own scripts and styles only, images from us or any https host (profile
/// pictures), no framing, forms post only to us.
pub(crate) fn content_security_policy(extra_img_origins: &[String]) -> String {
    let mut img = String::from("'self' https: data:");
    for origin in extra_img_origins {
        img.push(' ');
        img.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
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

/// Wraps the router in the protective layers, outermost first: tracing, security headers, error pages,
/// request timeout, panic catcher, body limit.
pub(crate) fn protect(app: Router, state: AppState) -> Router {
    let settings = &state.settings;
    let csp = HeaderValue::from_str(&content_security_policy(&state.extra_img_origins()))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    let hsts = state.is_https().then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        )
    });
    app.layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), render_error_pages))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(tower::util::option_layer(hsts))
        // Every failure is logged once where it is handled (`AppError`, the panic handler, the error-page layer for
        // the layers' own 5xx); the trace layer's own "response failed" line would be a second one.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)))
}
