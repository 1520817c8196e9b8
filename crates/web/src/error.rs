//! One error type for every handler, and the error pages.

use std::borrow::Cow;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use signin_auth::{AuthError, AuthErrorKind};
use signin_domain::{IdentityError, RepositoryError};
use signin_session::SessionError;

use crate::AppState;

/// Everything a handler can fail with. The page shown says what happened in plain words; the details go to the
/// log, once, here.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The provider or the token failed a check.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The verified claims do not make a usable identity (e.g. email not verified).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The user store failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// A template failed to render.
    #[error("template failed: {0}")]
    Template(#[from] minijinja::Error),
    /// The provider did not answer the check `/login` makes before sending anyone there.
    #[error("the sign-in provider is not answering: {reason}")]
    ProviderDown {
        /// It timed out (504) rather than failed (502).
        timed_out: bool,
        /// What the check found.
        reason: String,
    },
    /// A callback arrived with no sign-in under way in this browser (expired, replayed or foreign).
    #[error("no sign-in is under way in this session")]
    NoPendingLogin,
    /// A sign-out without a valid CSRF token or from another site.
    #[error("the sign-out request failed the CSRF check")]
    Csrf,
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request body is larger than `max_body_bytes` (found while reading a body sent without a length).
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
}

/// What the error-page middleware renders; attached to a response as an extension.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPage {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: Cow<'static, str>,
    /// Show the login page (with the message) instead of the error card.
    pub show_login: bool,
}

impl ErrorPage {
    pub(crate) fn new(status: StatusCode, title: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, title, message: message.into(), show_login: false }
    }

    /// The page for a status that no handler described (405 from the router, 413 from the body limit, …).
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let (title, message) = match status.as_u16() {
            400 => ("Bad request", "The request could not be understood."),
            403 => ("Forbidden", "You are not allowed to do that."),
            404 => ("Page not found", "There is no page at this address."),
            405 => ("Method not allowed", "This page does not accept that kind of request."),
            408 => ("Request timeout", "The request took too long to arrive."),
            413 => ("Request too large", "The request is larger than this site accepts."),
            415 => ("Unsupported request", "The request's content type is not accepted here."),
            422 => ("Bad request", "The form could not be read."),
            429 => ("Too many requests", "Please slow down and try again in a moment."),
            502 => ("Sign-in provider error", "The sign-in provider did not answer properly. Please try again."),
            503 => ("Temporarily unavailable", "The service is temporarily unavailable. Please try again in a minute."),
            504 => ("Sign-in provider timeout", "The sign-in provider took too long to answer. Please try again."),
            s if s >= 500 => ("Something went wrong", "Something went wrong on our side. Please try again later."),
            _ => ("Request failed", "The request could not be completed."),
        };
        Self::new(status, title, message)
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl AppError {
    fn page(&self) -> ErrorPage {
        match self {
            AppError::Auth(err) => match err.kind() {
                AuthErrorKind::Denied => ErrorPage {
                    show_login: true,
                    ..ErrorPage::new(StatusCode::FORBIDDEN, "Sign-in cancelled", err.user_message())
                },
                AuthErrorKind::InvalidRequest => {
                    ErrorPage::new(StatusCode::BAD_REQUEST, "Sign-in failed", err.user_message())
                }
                AuthErrorKind::ProviderUnavailable => {
                    ErrorPage::new(StatusCode::BAD_GATEWAY, "Sign-in provider error", err.user_message())
                }
                AuthErrorKind::ProviderTimeout => {
                    ErrorPage::new(StatusCode::GATEWAY_TIMEOUT, "Sign-in provider timeout", err.user_message())
                }
            },
            AppError::Identity(IdentityError::EmailNotVerified) => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Email not verified",
                "User email not available or not verified by Google. Verify your email address with your \
                 account provider, then sign in again.",
            ),
            AppError::Identity(_) => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The sign-in provider did not send a usable account id or email address.",
            ),
            AppError::Session(SessionError::Unavailable(_)) | AppError::Repository(RepositoryError::Unavailable(_)) => {
                ErrorPage::for_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            AppError::Session(_) | AppError::Repository(_) | AppError::Template(_) => {
                ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
            AppError::ProviderDown { timed_out: true, .. } => ErrorPage::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Sign-in provider timeout",
                "The sign-in provider is not answering. Please try again in a few minutes.",
            ),
            AppError::ProviderDown { timed_out: false, .. } => ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                "Sign-in provider error",
                "The sign-in provider cannot be reached right now. Please try again in a few minutes.",
            ),
            AppError::NoPendingLogin => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in has expired or was already completed. Please sign in again.",
            ),
            AppError::Csrf => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The sign-out request could not be verified. Please use the Logout button on your profile page.",
            ),
            AppError::BadRequest(what) => ErrorPage::new(StatusCode::BAD_REQUEST, "Bad request", *what),
            AppError::PayloadTooLarge => ErrorPage::for_status(StatusCode::PAYLOAD_TOO_LARGE),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let page = self.page();
        if page.status.is_server_error() {
            tracing::error!(error = ?self, status = page.status.as_u16(), "request failed: {self}");
        } else {
            tracing::warn!(status = page.status.as_u16(), "request refused: {self}");
        }
        page.into_response()
    }
}

#[derive(Serialize)]
struct ErrorContext<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct LoginContext<'a> {
    message: Option<&'a str>,
}

/// Renders error pages: for responses that carry an [`ErrorPage`], and for bare error responses from the router
/// and the layers (405, 413, 408, …) that have no body of their own.
pub(crate) async fn render_error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
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
        state.templates.render("login.html", LoginContext { message: Some(&page.message) })
    } else {
        state.templates.render(
            "error.html",
            ErrorContext { status: page.status.as_u16(), title: page.title, message: &page.message },
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
