//! A service of another team, written from the login library's README: its routes, signed-in `/me`.

use axum::{Json, Router, routing::get};
use signin_login::{Claims, CurrentUser, KeepClaims, Login, Provider, SessionStore, Sessions};

async fn me(CurrentUser(me): CurrentUser<Claims>) -> Json<Claims> {
    Json(me)
}

/// The service's router: `/me` for signed-in people, the sign-in routes, the session layer.
pub fn app(
    sessions: Sessions,
    provider: std::sync::Arc<dyn Provider>,
    store: impl SessionStore + Clone,
) -> Result<Router, signin_login::Error> {
    let login = Login::builder(sessions.clone(), KeepClaims).providers(vec![provider]).per_instance().build()?;
    Ok(Router::new().route("/me", get(me)).merge(login.routes()).layer(sessions.layer(store)))
}
