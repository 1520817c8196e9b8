//! `GET /`: the login page for visitors, the profile page for signed-in users.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use signin_login::{CsrfToken, MaybeUser};

use crate::state::PageContext;
use crate::{AppError, AppState, SessionUser};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(home))
}

#[derive(Serialize)]
struct ProfileContext<'a> {
    page: PageContext,
    user: &'a SessionUser,
    csrf: &'a str,
}

#[tracing::instrument(name = "home", skip_all, fields(user.id = tracing::field::Empty))]
async fn home(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser<SessionUser>,
    csrf: Option<CsrfToken>,
) -> Result<Response, AppError> {
    let Some(user) = user else {
        return Ok(Html(state.login_page()?).into_response());
    };
    tracing::Span::current().record("user.id", tracing::field::display(user.id));
    let csrf = csrf.as_ref().map(CsrfToken::as_str).unwrap_or_default();
    let page = state.page_signed_in_by(user.issuer.as_ref());
    Ok(Html(state.templates.render("profile.html", ProfileContext { page, user: &user, csrf })?).into_response())
}
