//! The pages. Each module exports `router()`.

pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod home;
pub(crate) mod sessions;

use axum::http::StatusCode;
use signin_login::ErrorPage;

/// Any path no route knows.
pub(crate) async fn not_found() -> ErrorPage {
    ErrorPage::for_status(StatusCode::NOT_FOUND)
}

/// A known path with a method it does not take.
pub(crate) async fn method_not_allowed() -> ErrorPage {
    ErrorPage::for_status(StatusCode::METHOD_NOT_ALLOWED)
}
