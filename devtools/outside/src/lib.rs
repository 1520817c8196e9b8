//! A service of another team, written from the login library's README: its routes, signed-in `/me`.

use axum::{Json, Router, routing::get};
use signin_login::{Claims, CurrentUser, KeepClaims, Login, MySqlSessionStore, Provider, SessionStore, Sessions};
use signin_login::SiteSettings;

/// The README's quick start as written: the site's settings, MySQL, discovery. It needs a provider and a database,
/// so the test below runs its in-memory twin; this proves the quick start builds here.
pub async fn quick_start() -> Result<Router, Box<dyn std::error::Error>> {
    let site = SiteSettings::load()?; // [session], [login], [oidc], [providers.*], [database], as the app reads them
    let pool = signin_login::sqlx_pool(&site.database.url, 4, site.database.connect_timeout)?;
    let sessions = Sessions::from_settings("https://notes.example.com".parse()?, &site)?;
    let login = Login::builder(sessions.clone(), KeepClaims).shared_in(&pool).discover(site.all_providers()).await?;
    let store = MySqlSessionStore::new(pool)?;
    Ok(Router::new().route("/me", get(me)).merge(login.build()?.routes()).layer(sessions.layer(store)))
}

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
