#![doc = include_str!("../README.md")]

mod error;
mod headers;
mod health;
mod routes;
mod sign_in;
mod state;
mod templates;

pub use error::AppError;
pub use health::HealthCheck;
pub use sign_in::{RecordUsers, SessionUser};
pub use state::{App, AppState, WebSettings};
pub use templates::Templates;

use axum::Router;
use signin_login::SessionStore;

/// Builds the whole HTTP application: pages, `/api/me`, the sign-in routes of the login library, assets, health
/// checks, the sessions (in `store`) and the protective layers.
pub fn router<S: SessionStore + Clone>(app: App, store: S) -> Router {
    let state = AppState::new(app);
    let sessions = state.login.sessions().layer(store);
    let pages = Router::new()
        .merge(routes::home::router())
        .merge(routes::api::router())
        .merge(state.login.routes())
        .layer(sessions);
    let app = Router::new()
        .merge(pages)
        .merge(routes::assets::router())
        .merge(health::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state.clone());
    headers::protect(app, state)
}
