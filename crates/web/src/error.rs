//! The app's own failures, and the error pages for every failure.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use signin_login::ErrorPage;

use crate::AppState;
use crate::state::LoginContext;

/// What the app's own handlers can fail with (sign-in failures are the login library's, with pages of their own).
/// The page says what happened in plain words; the details go to the log, once, here.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A template failed to render.
    #[error("template failed: {0}")]
    Template(#[from] minijinja::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let page = ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::error!(error = ?self, status = page.status.as_u16(), "request failed: {self}");
        page.into_response()
    }
}

#[derive(Serialize)]
struct ErrorContext<'a> {
    page: crate::state::PageContext,
    status: u16,
    title: &'a str,
    message: &'a str,
    /// The request id, for the person to quote.
    reference: Option<&'a str>,
    /// Where the page leads on instead of the start page.
    link: Option<&'a signin_login::PageLink>,
}

/// Renders error pages in the site's layout: for responses that carry an [`ErrorPage`] (the login library's and
/// ours), and for bare error responses from the router and the layers (405, 413, 408, …) that have no body.
pub(crate) fn render_error_pages(state: &AppState, response: Response, reference: Option<&str>) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let page = match response.extensions().get::<ErrorPage>() {
        Some(page) => page.clone(),
        None if response.headers().get(header::CONTENT_TYPE).is_none() || status == StatusCode::PAYLOAD_TOO_LARGE => {
            if status.is_server_error() {
                // A layer's own failure (the request timeout's 503): nothing else logs it.
                tracing::error!(status = status.as_u16(), "request failed: {status}");
            }
            ErrorPage::for_status(status)
        }
        None => return response,
    };
    let rendered = if page.show_login {
        state.templates.render("login.html", LoginContext { page: state.page(), message: Some(&page.message) })
    } else {
        state.templates.render(
            "error.html",
            ErrorContext {
                page: state.page(),
                status: page.status.as_u16(),
                title: &page.title,
                message: &page.message,
                reference,
                link: page.link.as_ref(),
            },
        )
    };
    let mut out = match rendered {
        Ok(html) => (page.status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "error page failed to render");
            (page.status, "Error").into_response()
        }
    };
    // Keep what the inner layers decided about the response (e.g. the Allow header of a 405, cookies).
    let (parts, _) = response.into_parts();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out
}
