#![doc = include_str!("../README.md")]

mod error;
mod headers;
mod health;
mod provider_check;
mod routes;
mod state;
mod templates;

pub use error::AppError;
pub use health::HealthCheck;
pub use state::{App, AppState, WebSettings};
pub use templates::Templates;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_sessions::{SessionManagerLayer, SessionStore};

use crate::error::ErrorPage;

/// Builds the whole HTTP application: pages, assets, health checks, sessions and the protective layers.
///
/// The session layer is passed in so that tests can use an in-memory store and production the MySQL one.
pub fn router<S>(state: AppState, sessions: SessionManagerLayer<S>) -> Router
where
    S: SessionStore + Clone,
{
    let pages =
        Router::new().merge(routes::home::router()).merge(routes::login::router()).merge(routes::logout::router());
    let pages = pages.layer(sessions).layer(axum::middleware::map_response(session_store_failure));
    let app = Router::new()
        .merge(pages)
        .merge(routes::assets::router())
        .merge(health::router())
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state.clone());
    headers::protect(app, state)
}

/// The session layer saves a changed session after the handler has answered; when that fails (the store is down)
/// it logs the error and replaces the answer with a bare 500. Handlers' own failures always carry an [`ErrorPage`]
/// and a bare 500 has no other source inside this layer, so it means "the session store is unavailable": 503, the
/// same page as for any other database outage (e.g. `/login` while MySQL is stopped).
async fn session_store_failure(response: Response) -> Response {
    let bare =
        response.extensions().get::<ErrorPage>().is_none() && response.headers().get(header::CONTENT_TYPE).is_none();
    if response.status() == StatusCode::INTERNAL_SERVER_ERROR && bare {
        return ErrorPage::for_status(StatusCode::SERVICE_UNAVAILABLE).into_response();
    }
    response
}
