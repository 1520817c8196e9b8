#![doc = include_str!("../README.md")]

use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use signin_login::{Api, CurrentUser, SessionStore, Sessions};

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

/// The service: `GET /notes` for signed-in people, `401` JSON for everyone else.
pub fn app<S: SessionStore + Clone>(sessions: &Sessions, store: S) -> Router {
    Router::new().route("/notes", get(notes)).route_layer(Extension(Api)).layer(sessions.layer(store))
}
