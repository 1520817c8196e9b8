#![doc = include_str!("../README.md")]

mod error;
mod headers;
mod health;
mod routes;
mod state;
mod templates;

pub use error::AppError;
pub use health::HealthCheck;
pub use state::{App, AppState, WebSettings};
pub use templates::Templates;

use axum::Router;
use tower_sessions::{SessionManagerLayer, SessionStore};

/// Builds the whole HTTP application: pages, assets, health checks, sessions and the protective layers.
///
/// The session layer is passed in so that tests can use an in-memory store and production the MySQL one.
pub fn router<S>(state: AppState, sessions: SessionManagerLayer<S>) -> Router
where
    S: SessionStore + Clone,
{
    let pages =
        Router::new().merge(routes::home::router()).merge(routes::login::router()).merge(routes::logout::router());
    let pages = pages.layer(sessions);
    let app = Router::new()
        .merge(pages)
        .merge(routes::assets::router())
        .merge(health::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state.clone());
    headers::protect(app, state)
}
