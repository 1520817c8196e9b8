//! `GET /sessions`: the person's sessions in every browser, each with "Sign out", and "Sign out everywhere".
//!
//! A page of its own rather than part of the profile: listing reads the directory and each session's record,
//! and the profile page is served from memory.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use signin_login::{ActiveSession, CsrfToken, CurrentUser, MySessions};

use crate::state::PageContext;
use crate::{AppError, AppState, SessionUser};

/// Where the page is.
pub(crate) const PATH: &str = crate::state::SESSIONS_PATH;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(PATH, get(sessions))
}

#[derive(Serialize)]
struct SessionsContext<'a> {
    page: PageContext,
    user: &'a SessionUser,
    csrf: &'a str,
    sessions: Vec<ActiveSession>,
    end_url: String,
    end_all_url: String,
}

async fn sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser<SessionUser>,
    csrf: CsrfToken,
    mine: MySessions,
) -> Result<Response, Response> {
    let sessions = mine.list().await.map_err(IntoResponse::into_response)?;
    let login = state.login.sessions();
    let context = SessionsContext {
        page: state.page_signed_in_by(user.issuer.as_ref()),
        user: &user,
        csrf: csrf.as_str(),
        sessions,
        end_url: login.url(&login.login_settings().end_session_path),
        end_all_url: login.url(&login.login_settings().end_all_sessions_path),
    };
    let html = state.templates.render("sessions.html", context).map_err(|err| AppError::from(err).into_response())?;
    Ok(Html(html).into_response())
}
