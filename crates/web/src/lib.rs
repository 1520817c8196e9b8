#![doc = include_str!("../README.md")]

mod deadline;
mod error;
mod headers;
mod health;
mod routes;
mod sign_in;
mod state;
mod templates;

pub use deadline::BodyDeadline;
pub use error::AppError;
pub use health::HealthCheck;
pub use sign_in::{RecordUsers, SessionUser};
pub use state::{App, AppState, WebSettings};
pub use templates::Templates;

use axum::Router;
use signin_login::SessionStore;

/// Builds the whole HTTP application: pages, `/api/me`, the sign-in routes of the login library, assets, health
/// checks, the sessions (in `store`) and the protective layers.
///
/// The layers wrap the routes once, as one service, rather than each route on its own (`Router::layer`): a request
/// then clones one stack of layers instead of a nested chain of boxed ones. Sessions load lazily, on a handler's
/// first read, so the routes that never read one (assets, health) never touch the store.
pub fn router<S: SessionStore + Clone>(app: App, store: S) -> Router {
    let state = AppState::new(app);
    let sessions = match &state.directory {
        Some(directory) => state.login.sessions().layer_with_directory(store, directory.clone()),
        None => state.login.sessions().layer(store),
    };
    let routes = Router::new()
        .merge(routes::home::router())
        .merge(routes::api::router())
        .merge(routes::sessions::router())
        .merge(state.login.routes())
        .merge(routes::assets::router())
        .merge(health::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state.clone());
    Router::new().fallback_service(headers::protect(routes, sessions, state))
}
