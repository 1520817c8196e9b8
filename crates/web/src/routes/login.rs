//! `GET /login` starts the sign-in; `GET /login/callback` finishes it.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Redirect;
use axum::routing::get;
use serde::Deserialize;
use signin_auth::{AuthError, AuthErrorKind, Callback, PendingLogin};
use signin_domain::{Identity, LocalPath};
use signin_session::AuthSession;
use tower_sessions::{Expiry, Session};

use crate::{AppError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/login", get(get::login)).route("/login/callback", get(get::callback))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

fn to_time(d: std::time::Duration) -> tower_sessions::cookie::time::Duration {
    tower_sessions::cookie::time::Duration::try_from(d).unwrap_or(tower_sessions::cookie::time::Duration::MAX)
}

mod get {
    use super::*;

    /// Sends the browser to the provider: PKCE, state and nonce are kept in the session, never in the URL we
    /// control. `next` survives only if it is a local path.
    #[tracing::instrument(name = "login", skip_all)]
    pub(super) async fn login(
        State(state): State<AppState>,
        session: Session,
        query: Result<Query<LoginQuery>, QueryRejection>,
    ) -> Result<Redirect, AppError> {
        let next = LocalPath::parse_or_root(query.as_ref().ok().and_then(|Query(q)| q.next.as_deref()));
        let auth = AuthSession::new(session.clone());
        if auth.user().await?.is_some() {
            return Ok(Redirect::to(next.as_ref()));
        }
        // Don't send anyone to a provider that does not answer: our page says so instead of a browser error.
        state.provider_check().ensure(state.identity.as_ref()).await?;
        let start = state.identity.begin();
        auth.start_login(&start.pending, &next).await?;
        // An unfinished sign-in should not hold a row for the full session lifetime.
        session.set_expiry(Some(Expiry::OnInactivity(to_time(state.settings.pending_login_ttl))));
        Ok(Redirect::to(start.authorize_url.as_str()))
    }

    /// The provider sends the browser back here. Any failure leaves no user row and no signed-in session.
    #[tracing::instrument(name = "login_callback", skip_all, fields(user.id = tracing::field::Empty))]
    pub(super) async fn callback(
        State(state): State<AppState>,
        session: Session,
        query: Result<Query<Callback>, QueryRejection>,
    ) -> Result<Redirect, AppError> {
        let callback =
            query.map(|Query(c)| c).map_err(|_| AppError::BadRequest("The sign-in response is malformed."))?;
        let auth = AuthSession::new(session.clone());
        let signed_in = auth.user().await?.is_some();
        // Taken out once: a replayed callback finds nothing.
        let pending = auth.take_login::<PendingLogin>().await?;
        let result = finish(&state, &auth, &session, pending, callback).await;
        if result.is_err() && !signed_in {
            // Leave nothing behind for a failed sign-in: the row goes and the cookie is cleared.
            auth.sign_out().await?;
        }
        result
    }

    async fn finish(
        state: &AppState,
        auth: &AuthSession,
        session: &Session,
        pending: Option<(PendingLogin, LocalPath)>,
        callback: Callback,
    ) -> Result<Redirect, AppError> {
        if let Some(code) = callback.error.as_deref() {
            // The user cancelled, or the provider refused: say so on the login page, whatever else came along.
            return Err(AuthError::from_callback_error(code).into());
        }
        let Some((pending, next)) = pending else {
            return Err(AppError::NoPendingLogin);
        };
        let claims = match state.identity.complete(pending, callback).await {
            Ok(claims) => claims,
            Err(err) => {
                if matches!(err.kind(), AuthErrorKind::ProviderUnavailable | AuthErrorKind::ProviderTimeout) {
                    state.provider_check().forget().await;
                }
                return Err(err.into());
            }
        };
        let identity = Identity::from_claims(claims)?;
        let user = state.users.record_login(&identity, chrono::Utc::now()).await?;
        tracing::Span::current().record("user.id", tracing::field::display(user.id));
        auth.sign_in(&user).await?;
        session.set_expiry(Some(Expiry::OnInactivity(to_time(state.settings.session_inactivity))));
        tracing::info!(user.id = %user.id, "user signed in");
        Ok(Redirect::to(next.as_ref()))
    }
}
