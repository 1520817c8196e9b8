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
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use signin_auth::LogoutToken;

use crate::{Control, Login, SignIn};

/// The request body: `logout_token=<JWT>`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    logout_token: String,
}

fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let mut response = match error {
        Some((error, description)) => {
            let body = serde_json::json!({ "error": error, "error_description": description });
            (status, axum::Json(body)).into_response()
        }
        None => status.into_response(),
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
    // Past this, the token's `iat` refuses it anyway.
    let until = time::OffsetDateTime::from_unix_timestamp(token.accepted_until)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc() + signin_auth::LOGOUT_TOKEN_MAX_AGE);
    let ended = match login.first_use(&key, until).await {
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
            let _ = login.inner.used_tokens.release(&key).await;
            counted("store_error");
            tracing::error!(error = %err, "back-channel logout could not end the sessions");
            answer(StatusCode::SERVICE_UNAVAILABLE, Some(("temporarily_unavailable", "try again")))
        }
    }
}

/// Ends what the token names: the sessions begun in its provider session (`sid`; only the subject's when it names
/// one too), else every session of the subject.
async fn end(control: &Control, token: &LogoutToken) -> Result<usize, signin_session::BoxError> {
    let owner = token.subject.as_deref().map(|subject| signin_session::owner_key(&token.issuer, subject));
    match (&token.session_id, &owner) {
        (Some(sid), owner) => {
            let key = signin_session::provider_session_key(&token.issuer, sid);
            let mut ended =
                signin_session::end_provider_session(&*control.store, &*control.directory, &key, owner.as_deref())
                    .await?;
            // The subject's sessions whose ID token named no `sid` cannot be told apart from this provider session's:
            // they end too.
            if let Some(owner) = owner {
                for entry in control.directory.list(owner).await? {
                    if entry.provider_session.is_none() {
                        control.store.delete(&entry.id).await?;
                        control.directory.remove(&entry.id).await?;
                        ended += 1;
                    }
                }
            }
            Ok(ended)
        }
        (None, Some(owner)) => signin_session::end_all_sessions(&*control.store, &*control.directory, owner).await,
        (None, None) => Ok(0),
    }
}

use crate::noise;
