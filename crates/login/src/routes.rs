//! `GET /login`, `GET /login/callback`, `POST /logout`.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;
use signin_auth::{AuthErrorKind, Callback, LoginFlow};
use signin_domain::LocalPath;
use signin_session::{AuthSession, SessionError, SignInDetails};

use crate::attempts::{NewAttempt, Taken};
use crate::error::LoginError;
use crate::extract::Rejection;
use crate::{Login, SignIn};

/// The request's session, as the layer put it there.
pub(crate) struct Auth(pub(crate) AuthSession);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::extract::context(parts)?.1))
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    login_hint: Option<String>,
    /// `1`: begin a sign-in even for someone signed in (whose session a page could not use).
    again: Option<String>,
}

/// A `login_hint` worth passing on: an email address or an opaque id, printable, not too long.
fn plausible_hint(hint: &str) -> bool {
    !hint.is_empty() && hint.len() <= 254 && hint.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// Characters a `Location` header cannot carry as they are: controls, space and everything beyond ASCII.
const NOT_IN_LOCATION: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

pub(crate) fn see_other(location: &str) -> Response {
    let location = utf8_percent_encode(location, NOT_IN_LOCATION).to_string();
    let location = HeaderValue::from_str(&location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// Sends the browser to the provider. The attempt's secrets go into an encrypted cookie of their own; nothing is
/// written on the server. `next` survives only if it is a local path.
#[tracing::instrument(name = "login", skip_all, fields(attempt = tracing::field::Empty))]
pub(crate) async fn login<H: SignIn>(
    State(login): State<Login<H>>,
    provider: usize,
    Auth(auth): Auth,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, LoginError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let next = LocalPath::parse_or_root(query.next.as_deref());
    let sessions = login.sessions();
    // Signed in as far as this service can tell: a stored user that does not read as its own (a changed shape,
    // another service's) does not count, or the person could never sign in again.
    let again = query.again.as_deref() == Some("1");
    if !again && auth.user::<H::User>().await?.is_some() {
        return Ok(see_other(&sessions.url(next.as_ref())));
    }
    // Don't send anyone to a provider that does not answer: our page says so instead of a browser error.
    let entry = login.entry(provider);
    entry.check.ensure(entry.flow.provider()).await?;
    let hint = query.login_hint.as_deref().filter(|hint| plausible_hint(hint));
    let start = entry.flow.begin(hint, sessions.attempts().signed_out_here(&headers));
    tracing::Span::current()
        .record("attempt", tracing::field::display(crate::attempts::attempt_id(start.pending.state())));
    tracing::info!("sign-in started");
    let attempt = NewAttempt { pending: start.pending, next, provider: entry.flow.provider().id(), again, grant: None };
    let cookies = sessions.attempts().start(&headers, attempt).ok_or(LoginError::NoAttemptKey)?;
    let mut response = see_other(start.authorize_url.as_str());
    for cookie in cookies {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The provider sends the browser back here. The attempt's cookie is cleared whatever happens; a failure leaves
/// no session.
#[tracing::instrument(name = "login_callback", skip_all, fields(attempt = tracing::field::Empty))]
pub(crate) async fn callback<H: SignIn>(
    State(login): State<Login<H>>,
    provider: usize,
    Auth(auth): Auth,
    headers: HeaderMap,
    query: Result<Query<Callback>, QueryRejection>,
) -> Response {
    let Ok(Query(callback)) = query else {
        return LoginError::BadRequest("The sign-in response is malformed.").into_response();
    };
    if !callback.within_limits() {
        return LoginError::BadRequest("The sign-in response is malformed.").into_response();
    }
    if let Some(state) = callback.state.as_deref() {
        tracing::Span::current().record("attempt", tracing::field::display(crate::attempts::attempt_id(state)));
    }
    let attempts = login.sessions().attempts();
    let (taken, clear) = attempts.take(&headers, callback.state.as_deref());
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let finished = finish(&login, provider, &auth, taken, callback, user_agent).await;
    // A completed grant is counted as such (`signin_grants_total`), not as a sign-in.
    if !matches!(finished, Ok(Finished::Granted(_))) {
        let outcome = finished.as_ref().map_or_else(LoginError::reason, |_| "success");
        metrics::counter!("signin_sign_ins_total", "outcome" => outcome).increment(1);
    }
    let mut response = match finished.map(Finished::into_response) {
        Ok(mut response) => {
            if attempts.signed_out_here(&headers) {
                response.headers_mut().append(header::SET_COOKIE, attempts.forget_sign_out());
            }
            response
        }
        Err(err) => err.into_response(),
    };
    if let Some(clear) = clear {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// What a callback completed.
enum Finished {
    /// A sign-in.
    SignedIn(Response),
    /// A grant of the grant route.
    Granted(Response),
}

impl Finished {
    fn into_response(self) -> Response {
        match self {
            Self::SignedIn(response) | Self::Granted(response) => response,
        }
    }
}

async fn finish<H: SignIn>(
    login: &Login<H>,
    provider: usize,
    auth: &AuthSession,
    taken: Taken,
    callback: Callback,
    user_agent: &str,
) -> Result<Finished, LoginError> {
    if let Some(refused) = LoginFlow::refusal(&callback) {
        return Err(refused.into());
    }
    let entry = login.entry(provider);
    let opened = match taken {
        Taken::Found(opened) => {
            // Mix-up defence: only the provider the attempt began with may complete it. An attempt sealed before
            // cookies named their provider belongs to the main one.
            let began = if opened.provider.is_empty() { login.provider().id() } else { opened.provider.as_str() };
            if began != entry.flow.provider().id() {
                return Err(LoginError::MixUp {
                    began: began.to_owned(),
                    arrived: entry.flow.provider().id().to_owned(),
                });
            }
            *opened
        }
        Taken::Missing => return Err(LoginError::NoPendingLogin),
        // This browser has sign-ins under way, and the callback names none of them.
        Taken::Other => return Err(signin_auth::AuthError::StateMismatch.into()),
        Taken::Invalid => return Err(LoginError::BadAttempt),
        // Begun in another browser: planted, perhaps by a sibling subdomain. The provider is not asked.
        Taken::OtherBrowser => return Err(LoginError::OtherBrowser),
    };
    let crate::attempts::Opened { pending, next, again, grant, .. } = opened;
    let claim = attempt_claim(entry.flow.provider().issuer(), pending.state());
    let attempt = crate::attempts::attempt_id(pending.state());
    let signed_in = match entry.flow.complete(pending, callback).await {
        Ok(signed_in) => signed_in,
        Err(err) => {
            if matches!(err.kind(), AuthErrorKind::ProviderUnavailable | AuthErrorKind::ProviderTimeout) {
                entry.check.forget().await;
            }
            return Err(err.into());
        }
    };
    // Once only, on every instance: a provider that redeems a code twice (buggy, hostile or misconfigured), or
    // someone holding the callback URL and a copy of the attempt cookie, gets no second session. Claimed only now
    // that the provider answered with a verified token, so that callbacks with made-up codes write nothing; and
    // before the hook, so that a replay writes no user row either.
    let claim_until = time::OffsetDateTime::now_utc()
        + login.sessions().login_settings().pending_login
        + entry.flow.provider().clock_leeway();
    let first = login
        .claim_once(&claim, claim_until)
        .await
        .map_err(|err| LoginError::Session(SessionError::Unavailable(err)))?;
    if !first {
        return Err(LoginError::Replayed { attempt });
    }
    if let Some(why) = login.inner.domains.refusal(&signed_in.claims) {
        return Err(LoginError::DomainRefused(why));
    }
    let provider = entry.flow.provider();
    let owner = signin_session::owner_key(&signed_in.claims.profile.issuer, &signed_in.claims.profile.subject);
    if let Some(risc) = &login.inner.risc {
        let held =
            risc.holds.is_held(&owner).await.map_err(|err| LoginError::Session(SessionError::Unavailable(err)))?;
        if held {
            return Err(LoginError::AccountHeld(provider.display_name().to_owned()));
        }
    }
    if let Some(grant) = grant {
        return crate::grants::route::finish(login, provider, auth, &signed_in, grant, next)
            .await
            .map(Finished::Granted);
    }
    let user = login.inner.hook.sign_in(&signed_in, provider).await?;
    // The tokens go to the person's grant, shared by their sessions; the session names only the provider.
    let tokens = login.tokens().ok_or(LoginError::NoTokens)?;
    let holds_refresh_token = tokens
        .record(provider, &owner, &signed_in.claims.profile.subject, &signed_in.tokens, provider.sign_in_scopes())
        .await
        .map_err(|_| LoginError::TokensUnavailable)?;
    let sessions = login.sessions();
    // The provider's session (`sid`), for its back-channel logout.
    let provider_session = signed_in
        .claims
        .additional
        .get("sid")
        .and_then(serde_json::Value::as_str)
        .filter(|sid| !sid.is_empty() && sid.len() <= 255)
        .map(|sid| signin_session::provider_session_key(&signed_in.claims.profile.issuer, sid));
    let details = SignInDetails {
        lifetime: sessions.session_settings().absolute_lifetime,
        owner: Some(&owner),
        user_agent,
        provider_session: provider_session.as_deref(),
        sign_out: None,
        again,
        provider: Some(provider.id()),
    };
    auth.sign_in(&user, details).await?;
    tracing::info!(oidc.issuer = %provider.issuer(), "signed in");
    // Offline access needs a refresh token, which a provider issues only with consent: asked for now, once.
    if provider.offline_access() && !holds_refresh_token {
        return Ok(Finished::SignedIn(see_other(&sessions.grant_url(&[], Some(&next)))));
    }
    Ok(Finished::SignedIn(see_other(&sessions.url(next.as_ref()))))
}

/// The used-token record that completes an attempt once: the issuer and the full hash of the attempt's `state`
/// (the state itself never leaves the browser's cookie and the provider's redirect).
fn attempt_claim(issuer: &str, state: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(state.as_bytes()));
    // The hash first: a key longer than the table's is cut at its end.
    format!("attempt {hash} {issuer}")
}

/// The sign-out form: just the CSRF token the page put in it.
#[derive(Debug, Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// A request from a page of another site: the browser says so in `Sec-Fetch-Site`, or its `Origin` is not ours.
///
/// `Origin: null` counts as another site: browsers send it from sandboxed frames, `data:` pages and cross-origin
/// redirects, and from a page of ours only when its referrer policy is `no-referrer` (the pages of a site behind
/// this crate use `same-origin`, so that their own posts name the origin). The CSRF token is checked in every
/// case; this is the second line.
pub(crate) fn from_another_site(headers: &HeaderMap, our_origin: &str) -> bool {
    let fetch_site =
        headers.get("sec-fetch-site").is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
    let origin = headers.get(header::ORIGIN).is_some_and(|origin| origin.as_bytes() != our_origin.as_bytes());
    fetch_site || origin
}

/// A body over the limit sent without a length is only caught while the form is read: refused as such (a body
/// announced too large never gets here), whatever else is wrong with the request.
pub(crate) fn refuse_too_large<T>(form: &Result<T, FormRejection>) -> Result<(), LoginError> {
    match form {
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(LoginError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// The checks of every POST that changes the session: from this site (`Origin`, `Sec-Fetch-Site`), with the
/// session's CSRF token (compared in constant time).
pub(crate) async fn verify_post(
    auth: &AuthSession,
    headers: &HeaderMap,
    origin: &str,
    submitted: &str,
) -> Result<(), LoginError> {
    if from_another_site(headers, origin) || submitted.is_empty() || !auth.verify_csrf(submitted).await? {
        return Err(LoginError::Csrf);
    }
    Ok(())
}

/// Ends the session, on the server too: the row is deleted, so any copy of the cookie is dead.
#[tracing::instrument(name = "logout", skip_all)]
pub(crate) async fn logout<H: SignIn>(
    State(login): State<Login<H>>,
    Auth(auth): Auth,
    control: Option<axum::Extension<crate::Control>>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, LoginError> {
    refuse_too_large(&form)?;
    let sessions = login.sessions();
    let home = sessions.home_url();
    if !auth.is_signed_in().await? {
        // Already signed out (an old tab): nothing to end.
        return Ok(see_other(&home));
    }
    let submitted = form.map(|Form(f)| f.csrf).unwrap_or_default();
    verify_post(&auth, &headers, sessions.origin(), &submitted).await?;
    let kept = auth.sign_out_data().await?;
    let leaving = match auth.signed_in_with().await? {
        Some((owner, provider)) => {
            let others = others_live(control.as_ref().map(|c| &c.0), &owner, auth.stored_id()).await;
            Some(crate::sign_out::Leaving { owner, provider, others })
        }
        None => None,
    };
    auth.sign_out().await?;
    tracing::info!("signed out");
    // At the provider, after the site's own sign-out: the grant ended (its last session), and the end-session page.
    let onward = match (leaving, kept) {
        (Some(leaving), _) => crate::sign_out::at_provider(&login, &leaving).await,
        (None, Some(kept)) => crate::sign_out::at_provider_kept(&login, &kept),
        (None, None) => None,
    };
    let mut response = see_other(onward.as_ref().map_or(home.as_str(), url::Url::as_str));
    response.headers_mut().append(header::SET_COOKIE, sessions.attempts().remember_sign_out());
    Ok(response)
}

/// Whether the person `owner` has live sessions besides `this` one, as far as the directory knows; without a
/// directory, none are known. A directory that fails counts as "yes": the grant is kept rather than revoked under
/// sessions that may still use it.
async fn others_live(control: Option<&crate::Control>, owner: &str, this: Option<tower_sessions::session::Id>) -> bool {
    let Some(control) = control else {
        return false;
    };
    match signin_session::live_sessions(&*control.store, &*control.directory, owner).await {
        Ok(live) => live.iter().any(|session| Some(session.entry.id) != this),
        Err(err) => {
            tracing::warn!(error = %err, "listing the person's sessions failed; their grant is kept");
            true
        }
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
    fn our_own_pages_pass() {
        let ours = "https://login.example.com";
        for pairs in [
            &[][..],
            &[("origin", "https://login.example.com")],
            &[("origin", "https://login.example.com"), ("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
        ] {
            assert!(!from_another_site(&headers(pairs), ours), "{pairs:?}");
        }
    }

    #[test]
    fn attempt_claims_name_the_issuer_and_hide_the_state() {
        let claim = attempt_claim("https://idp.example", "the-state");
        assert!(claim.starts_with("attempt ") && claim.ends_with(" https://idp.example"), "{claim}");
        assert!(!claim.contains("the-state"), "{claim}");
        assert_ne!(claim, attempt_claim("https://other.example", "the-state"));
        assert_eq!(claim.len(), "attempt  https://idp.example".len() + 43, "{claim}");
    }

    #[test]
    fn other_sites_are_recognised() {
        let ours = "https://login.example.com";
        for pairs in [
            &[("origin", "https://evil.example")][..],
            &[("origin", "null"), ("sec-fetch-site", "cross-site")],
            &[("origin", "https://a.example.com"), ("sec-fetch-site", "same-site")],
            &[("origin", "https://evil.example"), ("sec-fetch-site", "same-origin")],
            &[("origin", "null")],
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        ] {
            assert!(from_another_site(&headers(pairs), ours), "{pairs:?}");
        }
    }

    #[test]
    fn login_hints_are_checked() {
        assert!(plausible_hint("ada@example.com"));
        for bad in ["", "a b", "a\nb", &"x".repeat(300)] {
            assert!(!plausible_hint(bad), "{bad:?}");
        }
    }
}
