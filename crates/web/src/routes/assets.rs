//! Static assets, compiled into the binary: no CDN, no files to deploy beside it.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use signin_login::ErrorPage;

/// Each asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../../../static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../../../static/app.js")),
    ("avatar.svg", "image/svg+xml", include_bytes!("../../../../static/avatar.svg")),
    ("google-g.svg", "image/svg+xml", include_bytes!("../../../../static/google-g.svg")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../../../static/favicon.svg")),
];

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ErrorPage::for_status(StatusCode::NOT_FOUND).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        *bytes,
    )
        .into_response()
}
