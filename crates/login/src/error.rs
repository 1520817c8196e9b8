//! What can go wrong, and the pages that say so.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use signin_auth::{AuthError, AuthErrorKind};
use signin_session::SessionError;

use crate::hook::SignInError;

/// Why the login layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot work; the message names the key.
    #[error("{0}")]
    Config(String),
    /// The provider could not be discovered at start-up.
    #[error("OpenID Connect discovery failed: {0}")]
    Discovery(#[from] AuthError),
}

/// The page for a failed request: status, a short title and a sentence for the person.
///
/// Every error response of this crate carries one as a response extension, so a service can render it in its own
/// layout (a middleware that looks for `response.extensions().get::<ErrorPage>()`); the body is a plain page that
/// stands on its own for services that do not.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short title, e.g. "Sign-in failed".
    pub title: Cow<'static, str>,
    /// What happened, in plain words; never a token, a code or an internal detail.
    pub message: Cow<'static, str>,
    /// The person should see the sign-in page with this message (e.g. after pressing "Cancel" at the provider).
    pub show_login: bool,
    /// Where the page leads on, when somewhere else than the start page (e.g. "Sign in again").
    pub link: Option<PageLink>,
}

/// A link an [`ErrorPage`] offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PageLink {
    /// The link's text.
    pub label: Cow<'static, str>,
    /// Where it goes (a site path, with the public URL's prefix).
    pub url: String,
}

impl ErrorPage {
    /// A page with this status, title and message.
    pub fn new(status: StatusCode, title: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, title: title.into(), message: message.into(), show_login: false, link: None }
    }

    /// The page for a status that nothing described more closely (405 from a router, 413 from a body limit, …).
    pub fn for_status(status: StatusCode) -> Self {
        let (title, message) = match status.as_u16() {
            400 => ("Bad request", "The request could not be understood."),
            401 => ("Sign-in required", "Please sign in first."),
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
        let link = self.link.as_ref().map_or_else(String::new, |link| {
            format!("<p><a href=\"{}\">{}</a></p>", escape(&link.url), escape(&link.label))
        });
        let body = format!(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{title}</title><main><h1>{title}</h1>\
             <p>{message}</p>{link}</main></html>",
            title = escape(&self.title),
            message = escape(&self.message)
        );
        let mut response = (self.status, Html(body)).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.extensions_mut().insert(self);
        response
    }
}

/// An answer to a machine (a provider's back-channel POST, a transmitter's push): the status, the JSON error body
/// the protocol defines when there is one, and `Cache-Control: no-store`.
pub(crate) fn machine_answer(status: StatusCode, body: Option<serde_json::Value>) -> Response {
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Why a sign-in, a sign-out or reading the session failed. Each is logged once, where it becomes a response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    /// The provider or the token failed a check, or the provider is unavailable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The service's sign-in hook said no, or failed.
    #[error(transparent)]
    Hook(#[from] SignInError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The provider did not answer the check `/login` makes before sending anyone there.
    #[error("the sign-in provider is not answering: {reason}")]
    ProviderDown {
        /// It timed out (504) rather than failed (502).
        timed_out: bool,
        /// What the check found.
        reason: String,
    },
    /// A callback arrived with no attempt under way in this browser (expired, used, or begun elsewhere).
    #[error("no sign-in is under way in this browser")]
    NoPendingLogin,
    /// The attempt cookie does not open (tampered with, another deployment's key, oversized).
    #[error("the sign-in attempt cookie does not open")]
    BadAttempt,
    /// The attempt cookie opens, but it was begun in another browser: its binding is not this browser's binding
    /// cookie (a planted attempt, login CSRF). Refused before the provider is asked.
    #[error("the sign-in attempt was begun in another browser")]
    OtherBrowser,
    /// The attempt was completed already (a replayed callback that the provider redeemed again), on this
    /// instance or another: no second session.
    #[error("the sign-in attempt {attempt} was completed already; the replayed callback is refused")]
    Replayed {
        /// The attempt's id (as in the logs of `/login` and of its first callback).
        attempt: String,
    },
    /// A callback at one provider's path for an attempt that began with another (a mix-up attack, RFC 9207 §1):
    /// refused before anything is sent to either provider.
    #[error("the sign-in began with provider `{began}` and came back to the callback of `{arrived}`")]
    MixUp {
        /// The id of the provider the attempt began with.
        began: String,
        /// The id of the provider whose callback it reached.
        arrived: String,
    },
    /// `/login` cannot record an attempt (no attempt-cookie key configured).
    #[error("no attempt-cookie key is configured (login.cookie_keys)")]
    NoAttemptKey,
    /// The account is not from a domain this site accepts (`login.hosted_domains`, `login.email_domains`).
    #[error("the account's domain is not accepted")]
    DomainRefused(String),
    /// The provider reported the account disabled (a RISC `account-disabled` event) and not enabled since; the
    /// provider's name.
    #[error("the account is on hold: its provider reported it disabled")]
    AccountHeld(String),
    /// A sign-out without a valid CSRF token or from another site.
    #[error("the sign-out request failed the CSRF check")]
    Csrf,
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request body is larger than the limit (found while reading a body sent without a length).
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    /// The grant route was asked for a scope the provider's `grantable_scopes` does not list.
    #[error("the scope `{0}` is not grantable on this site")]
    UngrantableScope(String),
    /// A grant came back for another account than the one signed in (or the session ended meanwhile); the
    /// provider's name.
    #[error("the grant came back for another account")]
    GrantOtherAccount(String),
    /// Grants cannot be kept: the site has no [`crate::grants::ProviderTokens`].
    #[error("this site keeps no grants")]
    NoTokens,
    /// The grant store failed.
    #[error("the grant store is unavailable")]
    TokensUnavailable,
}

impl LoginError {
    /// The reason of a failed sign-in, as the `outcome` label of the `signin_sign_ins_total` metric.
    pub(crate) fn reason(&self) -> &'static str {
        use signin_auth::AuthError as A;
        match self {
            Self::Auth(A::Denied { .. }) => "denied",
            Self::Auth(A::StateMismatch) => "state",
            Self::Auth(A::LoginExpired) => "expired",
            Self::Auth(A::CallbackIssuerMismatch) => "issuer",
            Self::Auth(A::MissingCode) => "missing_code",
            Self::Auth(A::CodeRejected { .. }) => "code_rejected",
            Self::Auth(A::InvalidIdToken { .. } | A::UserInfoSubjectMismatch) => "invalid_token",
            Self::Auth(A::ProviderUnavailable { .. }) => "provider_error",
            Self::Auth(A::ProviderTimeout) => "provider_timeout",
            Self::Auth(_) => "provider_error",
            Self::Hook(SignInError::Refused(_)) => "refused",
            Self::Hook(SignInError::Invalid { .. }) => "invalid",
            Self::Hook(_) => "hook_failed",
            Self::DomainRefused(_) => "domain_refused",
            Self::AccountHeld(_) => "account_held",
            Self::Session(_) => "session_store",
            Self::NoPendingLogin => "no_attempt",
            Self::BadAttempt => "bad_attempt",
            Self::MixUp { .. } => "mix_up",
            Self::OtherBrowser => "other_browser",
            Self::Replayed { .. } => "replayed",
            Self::BadRequest(_) | Self::PayloadTooLarge | Self::UngrantableScope(_) => "bad_request",
            Self::GrantOtherAccount(_) => "other_account",
            Self::NoTokens | Self::TokensUnavailable => "grant_store",
            Self::ProviderDown { .. } | Self::NoAttemptKey | Self::Csrf => "other",
        }
    }

    /// Whether anyone could have sent it without beginning a sign-in in this browser (no attempt cookie, a
    /// tampered one, a forged sign-out, a malformed request): summed up in the log rather than a line each.
    fn is_noise(&self) -> bool {
        matches!(self, Self::NoPendingLogin | Self::BadAttempt | Self::OtherBrowser | Self::Csrf | Self::BadRequest(_))
    }

    pub(crate) fn page(&self) -> ErrorPage {
        match self {
            Self::Auth(err) => match err.kind() {
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
                AuthErrorKind::GrantEnded => ErrorPage::new(StatusCode::FORBIDDEN, "Access ended", err.user_message()),
            },
            Self::Hook(SignInError::Refused(message)) => {
                ErrorPage::new(StatusCode::FORBIDDEN, "Sign-in refused", message.clone())
            }
            Self::Hook(SignInError::Invalid { title, message }) => {
                ErrorPage::new(StatusCode::BAD_REQUEST, title.clone(), message.clone())
            }
            Self::Hook(SignInError::Unavailable(_)) | Self::Session(SessionError::Unavailable(_)) => {
                ErrorPage::for_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            Self::Hook(SignInError::Failed(_)) | Self::Session(_) | Self::NoAttemptKey => {
                ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::ProviderDown { timed_out: true, .. } => ErrorPage::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Sign-in provider timeout",
                "The sign-in provider is not answering. Please try again in a few minutes.",
            ),
            Self::ProviderDown { timed_out: false, .. } => ErrorPage::new(
                StatusCode::BAD_GATEWAY,
                "Sign-in provider error",
                "The sign-in provider cannot be reached right now. Please try again in a few minutes.",
            ),
            Self::NoPendingLogin | Self::BadAttempt | Self::Replayed { .. } => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in has expired or was already completed. Please sign in again.",
            ),
            Self::OtherBrowser => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "This sign-in was started in another browser. Please sign in again here.",
            ),
            Self::MixUp { .. } => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "This sign-in came back from a different provider than the one it began with. Please sign in again.",
            ),
            Self::AccountHeld(provider) => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Account disabled",
                format!(
                    "{provider} reported this account disabled, so it cannot sign in here. Once {provider} has \
                     restored it, sign in again."
                ),
            ),
            Self::DomainRefused(why) => ErrorPage::new(StatusCode::FORBIDDEN, "Sign-in refused", why.clone()),
            Self::Csrf => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The sign-out request could not be verified. Please use the sign-out button on the page.",
            ),
            Self::BadRequest(what) => ErrorPage::new(StatusCode::BAD_REQUEST, "Bad request", *what),
            Self::PayloadTooLarge => ErrorPage::for_status(StatusCode::PAYLOAD_TOO_LARGE),
            Self::UngrantableScope(scope) => ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Access not available",
                format!("This site does not ask for the access `{}`.", crate::grants::shown_scope(scope)),
            ),
            Self::GrantOtherAccount(provider) => ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Another account",
                format!(
                    "You chose another {provider} account than the one signed in here, or signed out meanwhile. \
                     Nothing was changed. Grant access with the account you are signed in with."
                ),
            ),
            Self::NoTokens => ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR),
            Self::TokensUnavailable => ErrorPage::for_status(StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

impl IntoResponse for LoginError {
    fn into_response(self) -> Response {
        let page = self.page();
        if page.status.is_server_error() {
            tracing::error!(error = ?self, status = page.status.as_u16(), "request failed: {self}");
        } else if self.is_noise() {
            crate::noise::refused(&self, page.status.as_u16());
        } else {
            tracing::warn!(status = page.status.as_u16(), "request refused: {self}");
        }
        page.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_plain_page_escapes_its_text() {
        let response = ErrorPage::new(StatusCode::FORBIDDEN, "<b>", "Tom & \"Jerry\"").into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.extensions().get::<ErrorPage>().is_some());
        let body = axum::body::to_bytes(response.into_body(), 4096).await.expect("body");
        let body = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(body.contains("<title>&lt;b&gt;</title>") && body.contains("Tom &amp; &quot;Jerry&quot;"), "{body}");
        assert!(!body.contains("<b>"), "{body}");
    }

    #[test]
    fn escape_covers_the_html_specials() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;");
    }
}
