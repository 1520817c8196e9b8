//! `GET /`: the login page for visitors, the profile page for signed-in users.

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use serde::Serialize;
use signin_domain::User;
use signin_session::AuthSession;
use tower_sessions::Session;

use crate::{AppError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(get::home))
}

#[derive(Serialize)]
struct ProfileContext<'a> {
    user: ProfileView<'a>,
    csrf: &'a str,
}

#[derive(Serialize)]
struct ProfileView<'a> {
    name: &'a str,
    email: &'a str,
    picture: Option<&'a str>,
}

impl<'a> From<&'a User> for ProfileView<'a> {
    fn from(user: &'a User) -> Self {
        Self { name: user.name.as_ref(), email: user.email.as_ref(), picture: user.picture.as_ref().map(AsRef::as_ref) }
    }
}

#[derive(Serialize)]
struct LoginContext {
    message: Option<&'static str>,
}

mod get {
    use super::*;

    #[tracing::instrument(name = "home", skip_all, fields(user.id = tracing::field::Empty))]
    pub(super) async fn home(State(state): State<AppState>, session: Session) -> Result<Html<String>, AppError> {
        let auth = AuthSession::new(session);
        let Some(user) = auth.user().await? else {
            return Ok(Html(state.templates.render("login.html", LoginContext { message: None })?));
        };
        tracing::Span::current().record("user.id", tracing::field::display(user.id));
        auth.touch(state.settings.touch_interval).await?;
        let csrf = auth.csrf_token().await?.unwrap_or_default();
        let page =
            state.templates.render("profile.html", ProfileContext { user: ProfileView::from(&user), csrf: &csrf })?;
        Ok(Html(page))
    }
}
