//! `POST <login path>/<provider id>/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0. The provider
//! POSTs a logout token when the person signs out there; once it verifies ([`Provider::verify_logout_token`]) and
//! its `jti` is new, the sessions it names end on every instance (they are deleted from the store, which the
//! other instances' caches hear of through the change feed).
//!
//! Answers per §2.8: 200 when done, 400 with a JSON error when the token is refused, 501 when the site keeps no
//! session directory (nothing could be found to end), always `Cache-Control: no-store`.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use signin_auth::LogoutToken;

use crate::{Control, Login, SignIn, noise};

/// The request body: `logout_token=<JWT>`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    logout_token: String,
}

/// §2.8: 200, or 400 with an OAuth-style JSON error.
fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let body =
        error.map(|(error, description)| serde_json::json!({ "error": error, "error_description": description }));
    crate::error::machine_answer(status, body)
}

fn counted(outcome: &'static str) {
    metrics::counter!("signin_backchannel_logouts_total", "outcome" => outcome).increment(1);
}

#[tracing::instrument(name = "backchannel_logout", skip_all)]
pub(crate) async fn receive<H: SignIn>(
    State(login): State<Login<H>>,
    provider: usize,
    control: Option<axum::Extension<Control>>,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Some(axum::Extension(control)) = control else {
        counted("no_directory");
        return answer(StatusCode::NOT_IMPLEMENTED, Some(("invalid_request", "this site keeps no session directory")));
    };
    let raw = form.map(|Form(form)| form.logout_token).unwrap_or_default();
    if raw.is_empty() {
        noise::bad_logout_token(&"no logout_token");
        counted("invalid");
        return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", "logout_token is missing")));
    }
    let provider = login.entry(provider).flow.provider();
    let token = match provider.verify_logout_token(&raw).await {
        Ok(token) => token,
        Err(err) => {
            noise::bad_logout_token(&err);
            counted("invalid");
            let reason = match &err {
                signin_auth::AuthError::InvalidLogoutToken { reason } => reason.as_str(),
                _ => "the logout token could not be verified",
            };
            return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", reason)));
        }
    };
    let key = format!("logout {} {}", token.issuer, token.jti);
    let ended = match login.first_use(&key, token.accepted_until).await {
        Ok(false) => {
            noise::bad_logout_token(&"a replayed jti");
            counted("replayed");
            return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", "this logout token was used already")));
        }
        Ok(true) => end(&control, &token).await,
        Err(err) => Err(err),
    };
    match ended {
        Ok(ended) => {
            counted("success");
            tracing::info!(oidc.issuer = %token.issuer, sessions = ended, "back-channel logout");
            answer(StatusCode::OK, None)
        }
        Err(err) => {
            // The provider may send it again: let it.
            login.release_use(&key).await;
            counted("store_error");
            tracing::error!(error = %err, "back-channel logout could not end the sessions");
            answer(StatusCode::SERVICE_UNAVAILABLE, Some(("temporarily_unavailable", "try again")))
        }
    }
}

/// Ends what the token names: the sessions begun in its provider session (`sid`; only the subject's when it names
/// one too, see [`signin_session::end_provider_session`]), else every session of the subject.
async fn end(control: &Control, token: &LogoutToken) -> Result<usize, signin_session::BoxError> {
    let owner = token.subject.as_deref().map(|subject| signin_session::owner_key(&token.issuer, subject));
    match (&token.session_id, &owner) {
        (Some(sid), owner) => {
            let key = signin_session::provider_session_key(&token.issuer, sid);
            signin_session::end_provider_session(&*control.store, &*control.directory, &key, owner.as_deref()).await
        }
        (None, Some(owner)) => signin_session::end_all_sessions(&*control.store, &*control.directory, owner).await,
        (None, None) => Ok(0),
    }
}
