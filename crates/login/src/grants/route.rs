//! `GET <login_path>/grant?scope=…&next=…`: a signed-in person grants the site more (incremental authorization),
//! and the callback of such an attempt.
//!
//! The attempt is a sign-in attempt in every respect (state, nonce, PKCE, the browser binding, once only) that also
//! remembers whom it asks and what. The provider is asked with `login_hint` set to the person and, for scopes,
//! `include_granted_scopes=true`; for offline access with `prompt=consent` when no refresh token is held. The
//! callback refuses a different account (nothing is merged), and stores what was actually granted: the token
//! response's `scope`, since people can untick scopes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use signin_auth::SignedIn;
use signin_domain::LocalPath;
use signin_session::AuthSession;

use crate::attempts::{GrantAttempt, NewAttempt};
use crate::error::LoginError;
use crate::routes::{Auth, see_other};
use crate::{ErrorPage, Login, PageLink, SignIn};

/// The most scopes one grant asks for, and the longest scope.
const MAX_SCOPES: usize = 20;
const MAX_SCOPE: usize = 256;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GrantQuery {
    /// Space-separated scopes, as in OAuth.
    scope: Option<String>,
    next: Option<String>,
}

/// The scopes of `raw` (space-separated), each one the provider may be asked for: a sign-in scope, or one of its
/// grantable scopes. A scope anyone could put in a link is not one the site asks for.
fn requested(raw: &str, provider: &dyn signin_auth::Provider) -> Result<Vec<String>, LoginError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split(' ').filter(|scope| !scope.is_empty()) {
        let plain = scope.len() <= MAX_SCOPE && scope.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !plain {
            return Err(LoginError::BadRequest("The access asked for is malformed."));
        }
        let known = provider.sign_in_scopes().iter().any(|known| known == scope)
            || provider.grantable_scopes().iter().any(|grantable| grantable == scope);
        if !known {
            return Err(LoginError::UngrantableScope(scope.to_owned()));
        }
        if !scopes.iter().any(|held| held == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.len() > MAX_SCOPES {
        return Err(LoginError::BadRequest("Too much access was asked for at once."));
    }
    Ok(scopes)
}

/// The subject in an owner key (`<issuer> <subject>`) of a person signed in with `issuer`.
fn subject_of<'a>(owner: &'a str, issuer: &str) -> Option<&'a str> {
    owner.strip_prefix(issuer)?.strip_prefix(' ').filter(|subject| !subject.is_empty())
}

/// Sends a signed-in person to their provider to grant `scope` (and offline access, when configured and no
/// refresh token is held), coming back to `next`. Someone signed out signs in first and comes back here.
#[tracing::instrument(name = "grant", skip_all, fields(attempt = tracing::field::Empty))]
pub(crate) async fn begin<H: SignIn>(
    State(login): State<Login<H>>,
    Auth(auth): Auth,
    headers: HeaderMap,
    query: Result<Query<GrantQuery>, QueryRejection>,
) -> Result<Response, LoginError> {
    let Ok(Query(query)) = query else {
        return Err(LoginError::BadRequest("The access asked for is malformed."));
    };
    let next = LocalPath::parse_or_root(query.next.as_deref());
    let sessions = login.sessions();
    let scope = query.scope.unwrap_or_default();
    let Some((owner, provider_id)) = auth.signed_in_with().await? else {
        // Signed out: sign in, then back here. Signed in before sessions named their provider: sign in again
        // (`/login` alone would send them straight back).
        let scopes: Vec<&str> = scope.split(' ').filter(|scope| !scope.is_empty()).collect();
        let back = LocalPath::parse(&sessions.grant_url(&scopes, Some(&next))).ok();
        if auth.is_signed_in().await? {
            return Ok(see_other(&sessions.sign_in_again_url(back.as_ref())));
        }
        return Ok(see_other(&sessions.login_url(back.as_ref())));
    };
    let index = login.index_of(&provider_id).ok_or(LoginError::BadRequest(
        "You signed in with a provider this site no longer offers. Sign out and sign in again.",
    ))?;
    let entry = login.entry(index);
    let provider = entry.flow.provider();
    let scopes = requested(&scope, provider)?;
    let subject = subject_of(&owner, provider.issuer())
        .ok_or(LoginError::BadRequest("Your session does not say who you are. Sign out and sign in again."))?;
    let tokens = sessions.provider_tokens().ok_or(LoginError::NoTokens)?;
    let held = tokens.held(provider, &owner).await.map_err(|_| LoginError::TokensUnavailable)?;
    entry.check.ensure(provider).await?;
    let beyond = |scope: &&String| crate::grants::beyond_sign_in(provider, scope);
    let wanted: Vec<String> = scopes.iter().filter(beyond).cloned().collect();
    // What was granted before is asked for again: a provider that does not keep earlier grants by itself (Google
    // does, with `include_granted_scopes`) issues its new tokens for everything.
    let mut extra = wanted.clone();
    for scope in held.refresh_scopes.iter().chain(&held.access_scopes).filter(beyond) {
        if !extra.contains(scope) {
            extra.push(scope.clone());
        }
    }
    // A refresh token is issued only with consent: asked for when none is held, and when the scopes grow, so that
    // the refresh token covers them too.
    let grows = wanted.iter().any(|scope| !held.refresh_scopes.contains(scope));
    let consent = provider.offline_access() && (!held.refresh_token || grows);
    let start = entry.flow.begin_grant(subject, &extra, consent);
    tracing::Span::current()
        .record("attempt", tracing::field::display(crate::attempts::attempt_id(start.pending.state())));
    tracing::info!(scopes = extra.len(), consent, "grant started");
    let attempt = NewAttempt {
        pending: start.pending,
        next,
        provider: provider.id(),
        again: false,
        grant: Some(GrantAttempt { owner, scopes: extra, wanted }),
    };
    // With a key (a built login has one), only a request too large for its cookie is refused here.
    let cookies = sessions
        .attempts()
        .start(&headers, attempt)
        .ok_or(LoginError::BadRequest("Too much access was asked for at once."))?;
    let mut response = see_other(start.authorize_url.as_str());
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The callback of a grant attempt, once the provider answered with a verified ID token and the attempt was
/// claimed: the same person must come back, still signed in here; what they granted is stored.
pub(crate) async fn finish<H: SignIn>(
    login: &Login<H>,
    provider: &dyn signin_auth::Provider,
    auth: &AuthSession,
    signed_in: &SignedIn,
    grant: GrantAttempt,
    next: LocalPath,
) -> Result<Response, LoginError> {
    let profile = &signed_in.claims.profile;
    let owner = signin_session::owner_key(&profile.issuer, &profile.subject);
    if owner != grant.owner {
        tracing::warn!("a grant came back for another account than the one signed in; nothing was kept");
        return Err(LoginError::GrantOtherAccount(provider.display_name().to_owned()));
    }
    let signed_in_here = auth.signed_in_with().await?.is_some_and(|(here, _)| here == owner);
    if !signed_in_here {
        return Err(LoginError::GrantOtherAccount(provider.display_name().to_owned()));
    }
    let sessions = login.sessions();
    let tokens = sessions.provider_tokens().ok_or(LoginError::NoTokens)?;
    let mut asked = provider.sign_in_scopes().to_vec();
    asked.extend(grant.scopes.iter().cloned());
    tokens
        .record(provider, &owner, &profile.subject, &signed_in.tokens, &asked)
        .await
        .map_err(|_| LoginError::TokensUnavailable)?;
    let granted = signed_in.tokens.scopes.clone().unwrap_or_else(|| asked.clone());
    let declined: Vec<&str> =
        grant.wanted.iter().filter(|scope| !granted.contains(scope)).map(String::as_str).collect();
    metrics::counter!("signin_grants_total", "outcome" => if declined.is_empty() { "granted" } else { "partial" })
        .increment(1);
    if declined.is_empty() {
        tracing::info!("access granted");
        return Ok(see_other(&sessions.url(next.as_ref())));
    }
    // The page that asked would ask again at once: say what is missing instead, with a way to try again.
    tracing::info!(declined = declined.len(), "access granted in part");
    Ok(ErrorPage {
        link: Some(PageLink { label: "Grant access".into(), url: sessions.grant_url(&declined, Some(&next)) }),
        ..ErrorPage::new(
            StatusCode::FORBIDDEN,
            "Not all access was granted",
            format!(
                "You did not grant everything this page needs from {}: {}. It works once you grant it.",
                provider.display_name(),
                declined.join(", ")
            ),
        )
    }
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_name_the_subject_after_the_issuer() {
        assert_eq!(subject_of("https://idp.example 1234", "https://idp.example"), Some("1234"));
        assert_eq!(subject_of("https://idp.example.evil 1234", "https://idp.example"), None);
        assert_eq!(subject_of("https://idp.example ", "https://idp.example"), None);
    }
}
