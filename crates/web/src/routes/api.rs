//! `GET /api/me`: the signed-in user as JSON; `401` problem JSON when signed out.

use axum::routing::get;
use axum::{Extension, Json, Router};
use signin_login::{Api, CurrentUser};

use crate::{AppState, SessionUser};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me)).route_layer(Extension(Api))
}

async fn me(CurrentUser(user): CurrentUser<SessionUser>) -> Json<SessionUser> {
    Json(user)
}
