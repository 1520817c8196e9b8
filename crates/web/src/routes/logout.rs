//! `POST /logout`: ends the session, on the server too.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use signin_session::AuthSession;
use tower_sessions::Session;

use crate::{AppError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/logout", post(post::logout))
}

/// The logout form: just the CSRF token the profile page put in it.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// A request from a page of another site: the browser says so in `Sec-Fetch-Site`, or its `Origin` is not ours.
///
/// `Origin: null` proves nothing either way: browsers send it on every POST from a page whose referrer policy is
/// `no-referrer`, which ours is. The CSRF token is checked in every case; this is the second line.
fn from_another_site(headers: &HeaderMap, our_origin: &str) -> bool {
    let fetch_site =
        headers.get("sec-fetch-site").is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
    let origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        let origin = origin.as_bytes();
        origin != b"null" && origin != our_origin.as_bytes()
    });
    fetch_site || origin
}

mod post {
    use super::*;

    #[tracing::instrument(name = "logout", skip_all, fields(user.id = tracing::field::Empty))]
    pub(super) async fn logout(
        State(state): State<AppState>,
        session: Session,
        headers: HeaderMap,
        form: Result<Form<LogoutForm>, FormRejection>,
    ) -> Result<Redirect, AppError> {
        // A body over the limit sent without a length is only caught while the form is read: refuse it as such
        // (a body announced too large never gets here), whatever else is wrong with the request.
        if let Err(rejection) = &form
            && rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
        {
            return Err(AppError::PayloadTooLarge);
        }
        let auth = AuthSession::new(session);
        let Some(user) = auth.user().await? else {
            // Already signed out (an old tab): nothing to end.
            return Ok(Redirect::to("/"));
        };
        tracing::Span::current().record("user.id", tracing::field::display(user.id));
        if from_another_site(&headers, &state.settings.origin()) {
            return Err(AppError::Csrf);
        }
        let submitted = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if submitted.is_empty() || !auth.verify_csrf(&submitted).await? {
            return Err(AppError::Csrf);
        }
        // Deletes the row, so the cookie is worthless even where a copy of it survives.
        auth.sign_out().await?;
        tracing::info!(user.id = %user.id, "user signed out");
        Ok(Redirect::to("/"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn our_own_pages_pass_even_with_a_null_origin() {
        let ours = "https://login.example.com";
        for pairs in [
            &[][..],
            &[("origin", "https://login.example.com")],
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
            &[("origin", "null")],
        ] {
            assert!(!from_another_site(&headers(pairs), ours), "{pairs:?}");
        }
    }

    #[test]
    fn other_sites_are_recognised() {
        let ours = "https://login.example.com";
        for pairs in [
            &[("origin", "https://evil.example")][..],
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
            &[("origin", "https://a.example.com"), ("sec-fetch-site", "same-site")],
            &[("origin", "https://evil.example"), ("sec-fetch-site", "same-origin")],
        ] {
            assert!(from_another_site(&headers(pairs), ours), "{pairs:?}");
        }
    }
}
