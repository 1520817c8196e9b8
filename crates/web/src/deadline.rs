//! The request body's deadline, which the server keeps and the web layer answers for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use signin_login::ErrorPage;

/// Put in a request's extensions by the server that reads it: passes when the request's body has not arrived in
/// time (`server.body_read_timeout`). Reading the body then fails, and whatever a handler made of that, the request
/// is answered 408 Request Timeout with `Connection: close` (the rest of the body is never read).
#[derive(Debug, Clone, Default)]
pub struct BodyDeadline(Arc<AtomicBool>);

impl BodyDeadline {
    /// The body did not arrive in time.
    pub fn pass(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the body did not arrive in time.
    pub fn has_passed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The 408 that replaces `answered` (the handler's response to a body that never came): its headers stay (security
/// headers, cookies), but not what described the old body or sent the browser elsewhere.
pub(crate) fn timed_out(answered: Response) -> Response {
    let mut response = ErrorPage::for_status(StatusCode::REQUEST_TIMEOUT).into_response();
    let (parts, _) = answered.into_parts();
    for (name, value) in &parts.headers {
        if ![header::CONTENT_TYPE, header::CONTENT_LENGTH, header::LOCATION, header::CACHE_CONTROL].contains(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
