#![doc = include_str!("../README.md")]

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use signin_login::{AccessToken, Api, CurrentUser, SessionStore, Sessions};

/// What this service reads of the signed-in user: only the fields it needs of what the signin app stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    /// The user's id in the signin app.
    pub id: u64,
    /// The verified email address.
    pub email: String,
}

/// The body of `GET /notes`.
#[derive(Debug, Serialize)]
pub struct Notes {
    /// Whose notes.
    pub owner: String,
    /// The notes.
    pub notes: Vec<String>,
}

async fn notes(CurrentUser(member): CurrentUser<Member>) -> Json<Notes> {
    Json(Notes { owner: member.email, notes: vec![format!("Welcome, member {}!", member.id)] })
}

/// The provider API this service calls for the signed-in person: its userinfo endpoint (a stand-in for any Google
/// API: at Google, `https://openidconnect.googleapis.com/v1/userinfo`).
#[derive(Debug, Clone)]
pub struct ProviderApi {
    /// The endpoint.
    pub url: url::Url,
    /// The HTTP client (rustls, a timeout).
    pub http: reqwest::Client,
}

/// `GET /provider/me`: what the provider says about the person, asked with their own access token.
async fn provider_me(
    State(api): State<ProviderApi>,
    token: AccessToken,
) -> Result<Json<serde_json::Value>, (StatusCode, &'static str)> {
    let answer = api.http.get(api.url.clone()).header(header::AUTHORIZATION, token.authorization()).send().await;
    let unavailable = (StatusCode::BAD_GATEWAY, "The provider did not answer.");
    let answer = answer.map_err(|_| unavailable)?;
    if !answer.status().is_success() {
        return Err((StatusCode::BAD_GATEWAY, "The provider refused the request."));
    }
    let body: serde_json::Value = answer.json().await.map_err(|_| unavailable)?;
    // Only what the page needs: the person's id, name and email as the provider has them now, and which access
    // the token carries (never the token itself).
    Ok(Json(serde_json::json!({
        "sub": body["sub"],
        "name": body["name"],
        "email": body["email"],
        "scopes": token.scopes(),
    })))
}

/// The service: `GET /notes` for signed-in people and `GET /provider/me`, which calls the provider for them;
/// `401` JSON for everyone else.
pub fn app<S: SessionStore + Clone>(sessions: &Sessions, store: S, provider: ProviderApi) -> Router {
    Router::new()
        .route("/notes", get(notes))
        .route("/provider/me", get(provider_me))
        .with_state(provider)
        .route_layer(Extension(Api))
        .layer(sessions.layer(store))
}
