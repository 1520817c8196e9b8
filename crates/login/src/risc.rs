//! `POST` the RISC path (`login.risc_path`): Security Event Tokens pushed by a RISC transmitter (RFC 8935), e.g.
//! Google's Cross-Account Protection. A verified token's events are acted on once (its `jti`):
//!
//! - `sessions-revoked`, `tokens-revoked`, `account-credential-change-required`: the person's sessions end, on
//!   every instance;
//! - `account-disabled`: the sessions end and the account is put on hold: no sign-in until `account-enabled`;
//! - `account-purged`: the sessions end, the hold (if any) goes, and the service's hook forgets the user
//!   ([`SignIn::forget`]: the app deletes the row);
//! - `verification`: logged;
//! - any other type: accepted and ignored, as RFC 8417 asks.
//!
//! Answers 202 once acted on; 400 with RFC 8935's JSON error (`invalid_request`, `invalid_key`,
//! `invalid_issuer`, `invalid_audience`) when refused; 503 when the stores fail (the transmitter retries).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use signin_auth::{SecurityEvent, event};

use crate::{Control, Login, SignIn, noise};

/// Longer than a sign-in callback can take (the request timeout, 30 s by default, and then some).
const IN_FLIGHT_SIGN_IN: std::time::Duration = std::time::Duration::from_secs(60);

/// RFC 8935 §2.3: 202, or 400 with `{"err", "description"}`.
fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let body = error.map(|(err, description)| serde_json::json!({ "err": err, "description": description }));
    crate::error::machine_answer(status, body)
}

fn counted(outcome: &'static str) {
    metrics::counter!("signin_security_events_total", "outcome" => outcome).increment(1);
}

/// RFC 8935 §2.3's error code for a refusal.
fn error_code(reason: &str) -> &'static str {
    if reason.contains("signature") || reason.contains("key") || reason.contains("algorithm") {
        "invalid_key"
    } else if reason.contains("iss ") {
        "invalid_issuer"
    } else if reason.contains("aud ") {
        "invalid_audience"
    } else {
        "invalid_request"
    }
}

#[tracing::instrument(name = "risc", skip_all)]
pub(crate) async fn receive<H: SignIn>(
    State(login): State<Login<H>>,
    control: Option<axum::Extension<Control>>,
    body: axum::body::Bytes,
) -> Response {
    let Some(risc) = login.inner.risc.as_ref() else {
        return answer(StatusCode::NOT_FOUND, None);
    };
    let Some(axum::Extension(control)) = control else {
        counted("no_directory");
        return answer(StatusCode::NOT_IMPLEMENTED, Some(("invalid_request", "this site keeps no session directory")));
    };
    // The body is the token itself (`application/secevent+jwt`).
    let raw = std::str::from_utf8(&body).unwrap_or_default().trim();
    let token = match risc.receiver.verify(raw).await {
        Ok(token) => token,
        Err(err) => {
            noise::bad_security_event(&err);
            counted("invalid");
            let reason = match &err {
                signin_auth::AuthError::InvalidSecurityEvent { reason } => reason.clone(),
                other => other.to_string(),
            };
            return answer(StatusCode::BAD_REQUEST, Some((error_code(&reason), &reason)));
        }
    };
    let key = format!("risc {} {}", risc.receiver.issuer(), token.jti);
    match login.first_use(&key, token.accepted_until).await {
        Ok(true) => {}
        Ok(false) => {
            noise::bad_security_event(&"a replayed jti");
            counted("replayed");
            return answer(StatusCode::BAD_REQUEST, Some(("invalid_request", "this token was received already")));
        }
        Err(err) => {
            // The record may have been written all the same: forget it, so that the transmitter's retry counts.
            login.release_use(&key).await;
            counted("store_error");
            tracing::error!(error = %err, "a security event could not be recorded");
            return answer(StatusCode::SERVICE_UNAVAILABLE, Some(("invalid_request", "try again")));
        }
    }
    for event in &token.events {
        if let Err(err) = act(&login, risc, &control, event).await {
            // The transmitter sends it again: let it.
            login.release_use(&key).await;
            counted("store_error");
            tracing::error!(error = %err, event = %event.kind, "a security event could not be acted on");
            return answer(StatusCode::SERVICE_UNAVAILABLE, Some(("invalid_request", "try again")));
        }
    }
    counted("accepted");
    answer(StatusCode::ACCEPTED, None)
}

/// Acts on one event.
async fn act<H: SignIn>(
    login: &Login<H>,
    risc: &crate::login::Risc,
    control: &Control,
    event: &SecurityEvent,
) -> Result<(), signin_session::BoxError> {
    if event.kind == event::VERIFICATION {
        tracing::info!("RISC verification token received");
        return Ok(());
    }
    let known = [
        event::SESSIONS_REVOKED,
        event::TOKENS_REVOKED,
        event::CREDENTIAL_CHANGE_REQUIRED,
        event::ACCOUNT_DISABLED,
        event::ACCOUNT_ENABLED,
        event::ACCOUNT_PURGED,
    ];
    if !known.contains(&event.kind.as_str()) {
        tracing::debug!(event = %event.kind, "a security event of a type not acted on; ignored");
        return Ok(());
    }
    // The subject names an account of the transmitter's own (a transmitter speaks for its accounts only) at one of
    // the site's providers; Google writes its issuer with a trailing slash here.
    let Some((iss, sub)) = &event.subject else {
        tracing::debug!(event = %event.kind, "a security event without a subject; ignored");
        return Ok(());
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    if !same(iss, risc.receiver.issuer()) {
        tracing::debug!(event = %event.kind, "a security event about another issuer's account; ignored");
        return Ok(());
    }
    let Some(provider) = login.providers().find(|p| same(p.issuer(), iss)) else {
        tracing::debug!(event = %event.kind, "a security event about an account of no provider of this site; ignored");
        return Ok(());
    };
    let issuer = provider.issuer().to_owned();
    let owner = signin_session::owner_key(&issuer, sub);
    if event.kind == event::ACCOUNT_ENABLED {
        risc.holds.release(&owner).await?;
        tracing::info!(event = %event.kind, "account enabled again by its provider; sign-in allowed");
        return Ok(());
    }
    if event.kind == event::ACCOUNT_DISABLED {
        // The hold first: a sign-in checking it from now on is refused.
        risc.holds.hold(&owner, event.reason.as_deref().unwrap_or("disabled")).await?;
    }
    let ended = signin_session::end_all_sessions(&*control.store, &*control.directory, &owner).await?;
    // The grant ends with the sessions: revoked at the provider too, unless the provider says it revoked the
    // tokens itself.
    if let Some(tokens) = login.tokens() {
        tokens.end_all(&owner, event.kind != event::TOKENS_REVOKED).await;
    }
    if event.kind == event::ACCOUNT_DISABLED {
        // A sign-in that passed the check just before the hold saves its session only as it answers: end the
        // sessions once more after any such request has finished.
        let (holds, store, directory, owner) =
            (risc.holds.clone(), control.store.clone(), control.directory.clone(), owner.clone());
        tokio::spawn(async move {
            tokio::time::sleep(IN_FLIGHT_SIGN_IN).await;
            if holds.is_held(&owner).await.unwrap_or(true)
                && let Err(err) = signin_session::end_all_sessions(&*store, &*directory, &owner).await
            {
                tracing::warn!(error = %err, "ending a held account's sessions again failed");
            }
        });
    }
    if event.kind == event::ACCOUNT_PURGED {
        risc.holds.release(&owner).await?;
        login.inner.hook.forget(&issuer, sub).await.map_err(|err| Box::new(err) as signin_session::BoxError)?;
    }
    tracing::info!(event = %event.kind, sessions = ended, "security event acted on");
    Ok(())
}
