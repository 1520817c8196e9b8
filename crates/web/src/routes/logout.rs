//! `POST /logout`: ends the session, on the server too.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, header};
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use signin_session::AuthSession;
use tower_sessions::Session;

use crate::{AppError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/logout", post(post::logout))
}

/// The logout form: just the CSRF token the profile page put in it.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// A request from a page of another site: its `Origin` (sent by browsers on every POST) is not ours.
fn from_another_site(headers: &HeaderMap, our_origin: &str) -> bool {
    match headers.get(header::ORIGIN) {
        Some(origin) => origin.as_bytes() != our_origin.as_bytes(),
        None => false,
    }
}

mod post {
    use super::*;

    #[tracing::instrument(name = "logout", skip_all, fields(user.id = tracing::field::Empty))]
    pub(super) async fn logout(
        State(state): State<AppState>,
        session: Session,
        headers: HeaderMap,
        form: Result<Form<LogoutForm>, FormRejection>,
    ) -> Result<Redirect, AppError> {
        let auth = AuthSession::new(session);
        let Some(user) = auth.user().await? else {
            // Already signed out (an old tab): nothing to end.
            return Ok(Redirect::to("/"));
        };
        tracing::Span::current().record("user.id", tracing::field::display(user.id));
        if from_another_site(&headers, &state.settings.origin()) {
            return Err(AppError::Csrf);
        }
        let submitted = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if submitted.is_empty() || !auth.verify_csrf(&submitted).await? {
            return Err(AppError::Csrf);
        }
        // Deletes the row, so the cookie is worthless even where a copy of it survives.
        auth.sign_out().await?;
        tracing::info!(user.id = %user.id, "user signed out");
        Ok(Redirect::to("/"))
    }
}
