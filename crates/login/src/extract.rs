//! Extractors: who is signed in, and the session's CSRF token.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use signin_domain::LocalPath;
use signin_session::{AuthSession, SessionError, StoredUser};
use subtle::ConstantTimeEq as _;

use crate::{ErrorPage, Sessions};

/// The signed-in user. A handler that takes it runs only for signed-in requests; for any other request the
/// extractor answers itself: a `303` to the sign-in page with `next=<this path>` for page requests, and a `401`
/// `application/problem+json` body for requests that ask for JSON (`Accept`) or run under the [`Api`] marker.
///
/// `U` is read from the session as the [`crate::SignIn`] hook stored it; another service sharing the sessions
/// may read it as a type of its own with only the fields it needs.
#[derive(Debug, Clone)]
pub struct CurrentUser<U>(pub U);

/// The signed-in user, or `None`: for pages that show something to everyone.
#[derive(Debug, Clone)]
pub struct MaybeUser<U>(pub Option<U>);

/// The CSRF token of the signed-in session, for the service's own forms: put [`CsrfToken::as_str`] in a hidden
/// field and check what comes back with [`CsrfToken::verify`]. Signed-out requests are answered as for
/// [`CurrentUser`].
#[derive(Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token, to put in a form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `submitted` is this token, compared in constant time; never for an empty string.
    pub fn verify(&self, submitted: &str) -> bool {
        !submitted.is_empty() && bool::from(self.0.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken([redacted])")
    }
}

/// Marks routes as an API: a signed-out request gets `401` JSON instead of a redirect to the sign-in page, whatever
/// it accepts. Add it to the routes with `.route_layer(axum::Extension(Api))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Api;

/// Why an extractor answered the request itself.
#[derive(Debug)]
pub struct Rejection(RejectionKind);

#[derive(Debug)]
enum RejectionKind {
    /// A page request from someone signed out: go and sign in, then come back.
    SignIn { location: String },
    /// An API request from someone signed out.
    Unauthorized,
    /// Someone is signed in, but the stored user does not read as the type the handler asks for (stored by another
    /// service, or by an older version of this one). Sending them to the sign-in page would bounce them straight
    /// back (they are signed in there), so the answer says so, with a link that signs in again regardless.
    Unusable {
        /// The sign-in page with `again=1` and `next`.
        again: String,
        /// Answer in problem JSON (with the link as `sign_in`).
        json: bool,
    },
    /// Even a fresh sign-in stored a user that does not read as the type asked for: the service is misconfigured.
    Misconfigured {
        /// Answer in problem JSON.
        json: bool,
    },
    /// The session store failed.
    Store(SessionError),
    /// The service did not add [`Sessions::layer`].
    MissingLayer,
    /// Someone signed in asked for their sessions where none are listed (no directory, or a session recorded
    /// without its owner).
    NotListed,
    /// Someone signed in whose grant lacks what the handler needs: a page goes to the grant route.
    Grant {
        /// The grant route, with the scopes and `next`.
        url: String,
        /// The scopes asked for.
        missing: Vec<String>,
        /// Answer in problem JSON.
        json: bool,
        /// A page request that can be sent on (`GET`, `HEAD`); any other gets a page with a link, since a redirect
        /// would come back as a `GET` without its body.
        redirect: bool,
    },
    /// The provider or the grant store failed while a token was fetched or refreshed.
    TokensUnavailable {
        /// Answer in problem JSON.
        json: bool,
    },
    /// An [`AccessToken`] was asked for on a site that keeps no grants.
    NoTokens,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self.0 {
            RejectionKind::SignIn { location } => {
                let location = HeaderValue::from_str(&location).unwrap_or_else(|_| HeaderValue::from_static("/"));
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
            RejectionKind::Unauthorized => problem(StatusCode::UNAUTHORIZED, "Sign in first.", None),
            RejectionKind::Unusable { again, json: true } => problem(
                StatusCode::UNAUTHORIZED,
                "The session cannot be used by this service. Sign in again.",
                Some(again),
            ),
            RejectionKind::Unusable { again: url, json: false } => ErrorPage {
                link: Some(crate::PageLink { label: "Sign in again".into(), url }),
                ..ErrorPage::new(
                    StatusCode::UNAUTHORIZED,
                    "Sign in again",
                    "Your session cannot be used on this page: it was begun elsewhere on the site, or before an \
                     update. Sign in again to continue.",
                )
            }
            .into_response(),
            RejectionKind::Misconfigured { json: true } => {
                problem(StatusCode::INTERNAL_SERVER_ERROR, "This service cannot read its own signed-in user.", None)
            }
            RejectionKind::Misconfigured { json: false } => {
                ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
            RejectionKind::Store(err) => {
                let page = ErrorPage::for_status(match err {
                    SessionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                });
                tracing::error!(error = ?err, status = page.status.as_u16(), "request failed: {err}");
                page.into_response()
            }
            RejectionKind::Grant { url, json: false, redirect: true, .. } => {
                let location = HeaderValue::from_str(&url).unwrap_or_else(|_| HeaderValue::from_static("/"));
                (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
            }
            RejectionKind::Grant { url, json: false, redirect: false, .. } => ErrorPage {
                link: Some(crate::PageLink { label: "Grant access".into(), url }),
                ..ErrorPage::new(
                    StatusCode::FORBIDDEN,
                    "Access needed",
                    "This needs access to your account that you have not granted this site yet. Grant it, then try \
                     again.",
                )
            }
            .into_response(),
            RejectionKind::Grant { url, missing, json: true, .. } => {
                let detail = if missing.is_empty() {
                    "Grant this site access to your account first.".to_owned()
                } else {
                    format!("Grant this site access first: {}.", missing.join(" "))
                };
                problem_with(
                    StatusCode::FORBIDDEN,
                    &detail,
                    Some(serde_json::json!({ "grant": url, "scopes": missing })),
                )
            }
            RejectionKind::TokensUnavailable { json: true } => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in provider is not available right now. Please try again later.",
                None,
            ),
            RejectionKind::TokensUnavailable { json: false } => ErrorPage::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The sign-in provider is not available right now. Please try again in a minute.",
            )
            .into_response(),
            RejectionKind::NoTokens => {
                tracing::error!(
                    "an AccessToken extractor ran on a site that keeps no grants: build a Login, or give a reader \
                     SessionReader::act_for_people"
                );
                ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
            RejectionKind::NotListed => {
                ErrorPage::new(StatusCode::NOT_FOUND, "Not found", "This site does not list sessions.").into_response()
            }
            RejectionKind::MissingLayer => {
                tracing::error!(
                    "a sign-in extractor ran without the session layer: add `Sessions::layer` to the router"
                );
                ErrorPage::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }
        }
    }
}

/// An RFC 9457 problem answer for API clients: the status, its reason as the title, a sentence, and the link that
/// signs in again (`sign_in`) when there is one.
fn problem(status: StatusCode, detail: &str, sign_in: Option<String>) -> Response {
    let extra = sign_in.map(|url| serde_json::json!({ "sign_in": url }));
    problem_with(status, detail, extra)
}

/// A problem answer with more members (`extra`, an object) besides the standard ones.
fn problem_with(status: StatusCode, detail: &str, extra: Option<serde_json::Value>) -> Response {
    let mut body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or_default(),
        "status": status.as_u16(),
        "detail": detail,
    });
    if let (Some(body), Some(serde_json::Value::Object(extra))) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body.to_string())
        .into_response()
}

impl Rejection {
    pub(crate) fn not_listed() -> Self {
        Self(RejectionKind::NotListed)
    }
}

impl From<SessionError> for Rejection {
    fn from(err: SessionError) -> Self {
        Self(RejectionKind::Store(err))
    }
}

/// The site's settings and the request's session, as the layer put them in the request.
pub(crate) fn context(parts: &Parts) -> Result<(Sessions, AuthSession), Rejection> {
    let sessions = parts.extensions.get::<Sessions>().cloned();
    let session = parts.extensions.get::<tower_sessions::Session>().cloned();
    match (sessions, session) {
        (Some(sessions), Some(session)) => Ok((sessions, AuthSession::new(session))),
        _ => Err(Rejection(RejectionKind::MissingLayer)),
    }
}

/// Whether the client wants JSON rather than a page.
fn wants_json(parts: &Parts) -> bool {
    if parts.extensions.get::<Api>().is_some() {
        return true;
    }
    let accept = parts.headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    let accept = accept.join(",").to_ascii_lowercase();
    (accept.contains("application/json") || accept.contains("+json")) && !accept.contains("text/html")
}

pub(crate) fn signed_out(parts: &Parts, sessions: &Sessions) -> Rejection {
    if wants_json(parts) {
        return Rejection(RejectionKind::Unauthorized);
    }
    Rejection(RejectionKind::SignIn { location: sessions.login_url(here(parts).as_ref()) })
}

/// The answer for a signed-in request whose stored user does not read as `U`.
fn unusable<U>(parts: &Parts, sessions: &Sessions) -> Rejection {
    tracing::warn!(
        expected = std::any::type_name::<U>(),
        "the session's user does not read as the type this handler asks for; asked to sign in again"
    );
    let again = sessions.sign_in_again_url(here(parts).as_ref());
    Rejection(RejectionKind::Unusable { again, json: wants_json(parts) })
}

/// The answer when even a fresh sign-in stored a user that does not read as `U`: the page asks for a type the
/// hook does not store. A configuration error, said once more in the log with the type's name; no link, since
/// signing in again would end here again.
fn misconfigured<U>(parts: &Parts) -> Rejection {
    tracing::error!(
        expected = std::any::type_name::<U>(),
        "a handler asks for a user type the sign-in hook does not store (CurrentUser<U> with U other than the \
         hook's User): fix the handler's type"
    );
    Rejection(RejectionKind::Misconfigured { json: wants_json(parts) })
}

/// This request's path and query, as a `next` for the sign-in page.
fn here(parts: &Parts) -> Option<LocalPath> {
    // Inside a nested router `parts.uri` has lost the nest's prefix; the original URI has it.
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |original| &original.0);
    LocalPath::parse(uri.path_and_query().map_or("/", |pq| pq.as_str())).ok()
}

/// Left in the request by [`CurrentUser`] and [`MaybeUser`] when they found a user, so that a [`CsrfToken`]
/// extracted after them need not read the user again.
#[derive(Clone, Copy)]
struct SignedInRequest;

/// The user of a signed-in request, refreshing the session's last-seen time when it is stale.
async fn signed_in_user<U: DeserializeOwned>(
    parts: &mut Parts,
    sessions: &Sessions,
    auth: &AuthSession,
) -> Result<StoredUser<U>, Rejection> {
    let user = auth.current_user::<U>(sessions.session_settings().touch_interval).await?;
    if matches!(user, StoredUser::User(_)) {
        parts.extensions.insert(SignedInRequest);
    }
    Ok(user)
}

/// The CSRF token of a signed-in session.
async fn signed_in_csrf(parts: &Parts, auth: &AuthSession) -> Result<Option<CsrfToken>, Rejection> {
    if parts.extensions.get::<SignedInRequest>().is_none() && !auth.is_signed_in().await? {
        return Ok(None);
    }
    Ok(auth.csrf_token().await?.map(CsrfToken))
}

impl<S, U> FromRequestParts<S> for CurrentUser<U>
where
    S: Send + Sync,
    U: DeserializeOwned + Send,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (sessions, auth) = context(parts)?;
        match signed_in_user(parts, &sessions, &auth).await? {
            StoredUser::User(user) => Ok(Self(user)),
            StoredUser::SignedOut => Err(signed_out(parts, &sessions)),
            StoredUser::Unreadable { signed_in_again: false } => Err(unusable::<U>(parts, &sessions)),
            StoredUser::Unreadable { signed_in_again: true } => Err(misconfigured::<U>(parts)),
            _ => Err(signed_out(parts, &sessions)),
        }
    }
}

impl<S, U> FromRequestParts<S> for MaybeUser<U>
where
    S: Send + Sync,
    U: DeserializeOwned + Send,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (sessions, auth) = context(parts)?;
        Ok(Self(signed_in_user(parts, &sessions, &auth).await?.into_user()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (sessions, auth) = context(parts)?;
        signed_in_csrf(parts, &auth).await?.ok_or_else(|| signed_out(parts, &sessions))
    }
}

/// `Option<CsrfToken>`: the token when signed in, `None` otherwise.
impl<S: Send + Sync> OptionalFromRequestParts<S> for CsrfToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let (_, auth) = context(parts)?;
        signed_in_csrf(parts, &auth).await
    }
}

/// The scopes an [`AccessToken`] must have, as a type: a route that needs a Google API says so in its signature.
///
/// ```
/// struct CalendarRead;
/// impl signin_login::Scopes for CalendarRead {
///     const SCOPES: &'static [&'static str] = &["https://www.googleapis.com/auth/calendar.readonly"];
/// }
/// async fn events(token: signin_login::AccessToken<CalendarRead>) -> String {
///     format!("{} scopes", token.scopes().len())
/// }
/// ```
pub trait Scopes: Send + Sync + 'static {
    /// The scopes, as the provider names them.
    const SCOPES: &'static [&'static str];
}

/// No scope beyond the sign-in's: the access token a sign-in got (e.g. for the provider's userinfo endpoint).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInScopes;

impl Scopes for SignInScopes {
    const SCOPES: &'static [&'static str] = &[];
}

/// A valid access token of the signed-in person at the provider they signed in with, with the scopes `S`: the
/// stored one, or refreshed first when it expires within `login.tokens.refresh_margin` (once across the fleet).
///
/// A person without a grant that has `S` (none yet, scopes not granted, or ended by the provider) is sent to the
/// grant route for them and comes back to this page; an API request (as for [`CurrentUser`]) gets `403` problem
/// JSON naming the missing scopes and the grant URL (`grant`); a signed-out one is answered as by
/// [`CurrentUser`]. A provider that is down gives `503`. `Debug` never shows the token.
pub struct AccessToken<S: Scopes = SignInScopes> {
    token: secrecy::SecretString,
    scopes: Vec<String>,
    expires_at: i64,
    marker: std::marker::PhantomData<fn() -> S>,
}

impl<S: Scopes> AccessToken<S> {
    pub(crate) fn issued(issued: crate::grants::Issued) -> Self {
        Self {
            token: issued.token,
            scopes: issued.scopes,
            expires_at: issued.expires_at,
            marker: std::marker::PhantomData,
        }
    }

    /// The token, to send as `Authorization: Bearer <token>` ([`AccessToken::authorization`] does).
    pub fn secret(&self) -> &secrecy::SecretString {
        &self.token
    }

    /// The `Authorization` header value for the provider's APIs: `Bearer <token>`, marked sensitive (kept out of
    /// HTTP/2 header compression tables and of `Debug` output).
    pub fn authorization(&self) -> HeaderValue {
        use secrecy::ExposeSecret as _;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }

    /// Every scope the token has (at least `S`).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// When the token expires (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl<S: Scopes> std::fmt::Debug for AccessToken<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl<St: Send + Sync, S: Scopes> FromRequestParts<St> for AccessToken<S> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        let (sessions, auth) = context(parts)?;
        let Some((owner, provider)) = auth.signed_in_with().await? else {
            if auth.is_signed_in().await? {
                // Begun before sessions named their provider: sending them to sign in would bring them straight
                // back; a fresh sign-in (`again=1`) records it.
                tracing::info!("a session that names no provider asked for an access token; asked to sign in again");
                let again = sessions.sign_in_again_url(here(parts).as_ref());
                return Err(Rejection(RejectionKind::Unusable { again, json: wants_json(parts) }));
            }
            return Err(signed_out(parts, &sessions));
        };
        let tokens = sessions.provider_tokens().ok_or(Rejection(RejectionKind::NoTokens))?;
        match tokens.access_token(&owner, &provider, S::SCOPES).await {
            Ok(issued) => Ok(Self::issued(issued)),
            Err(crate::grants::TokenRefusal::Grant(missing)) => {
                let scopes: Vec<&str> = missing.iter().map(String::as_str).collect();
                let url = sessions.grant_url(&scopes, here(parts).as_ref());
                let redirect = matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
                Err(Rejection(RejectionKind::Grant { url, missing, json: wants_json(parts), redirect }))
            }
            Err(crate::grants::TokenRefusal::Unavailable) => {
                Err(Rejection(RejectionKind::TokensUnavailable { json: wants_json(parts) }))
            }
        }
    }
}
