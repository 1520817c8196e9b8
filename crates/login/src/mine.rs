//! The signed-in person's own sessions: the [`MySessions`] extractor that lists them, and the routes that end one
//! or all of them. Needs [`crate::Sessions::layer_with_directory`].

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use signin_session::{AuthSession, SessionError};
use time::OffsetDateTime;
use tower_sessions::session::Id;

use crate::error::LoginError;
use crate::extract::{Rejection, context, signed_out};
use crate::routes::{Auth, refuse_too_large, see_other, verify_post};
use crate::{Control, Login, SignIn};

/// The signed-in person's live sessions, across every browser and instance. Signed-out requests are answered as
/// for [`crate::CurrentUser`]; as `Option<MySessions>`, `None` when signed out or when the layer has no directory.
pub struct MySessions {
    owner: String,
    current: Option<Id>,
    control: Control,
}

/// One live session of the person, for a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSession {
    /// What a form posts back to end it (`session=<handle>` to [`crate::LoginSettings::end_session_path`]). It is
    /// the stored id, which does not work as a cookie.
    pub handle: String,
    /// The browser, e.g. "Chrome 120", from the `User-Agent` at sign-in.
    pub browser: String,
    /// The operating system, e.g. "Mac OSX".
    pub os: String,
    /// When the person signed in, e.g. "2026-12-01 09:30 UTC".
    pub signed_in_at: String,
    /// When the session was last seen (to within `session.touch_interval`).
    pub last_seen: Option<String>,
    /// Whether it is the session of this request.
    pub current: bool,
}

fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{}-{:02}-{:02} {:02}:{:02} UTC", at.year(), u8::from(at.month()), at.day(), at.hour(), at.minute())
}

/// Browser and OS from a `User-Agent`, with woothee (its rules are maintained from the same data as the
/// project's other ports).
fn describe(user_agent: &str) -> (String, String) {
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    match parsed {
        Some(result) if result.name != "UNKNOWN" => {
            let browser = match result.version {
                "" | "UNKNOWN" => result.name.to_owned(),
                version => format!("{} {}", result.name, version.split('.').next().unwrap_or(version)),
            };
            let os = if result.os == "UNKNOWN" { "an unknown system".to_owned() } else { result.os.to_owned() };
            (browser, os)
        }
        _ => ("An unknown browser".to_owned(), "an unknown system".to_owned()),
    }
}

fn unavailable(err: signin_session::BoxError) -> Rejection {
    Rejection::from(SessionError::Unavailable(err))
}

impl MySessions {
    /// The live sessions, newest sign-in first, the current one marked.
    pub async fn list(&self) -> Result<Vec<ActiveSession>, Rejection> {
        let live = signin_session::live_sessions(&*self.control.store, &*self.control.directory, &self.owner)
            .await
            .map_err(unavailable)?;
        Ok(live
            .into_iter()
            .map(|session| {
                let (browser, os) = describe(&session.entry.user_agent);
                ActiveSession {
                    handle: session.entry.id.to_string(),
                    browser,
                    os,
                    signed_in_at: when(session.entry.signed_in_at),
                    last_seen: session.last_seen.map(when),
                    current: Some(session.entry.id) == self.current,
                }
            })
            .collect())
    }
}

async fn mine(parts: &mut Parts) -> Result<Option<MySessions>, Rejection> {
    let (_, auth) = context(parts)?;
    let Some(control) = parts.extensions.get::<Control>().cloned() else {
        return Ok(None);
    };
    let Some(owner) = auth.owner().await? else {
        return Ok(None);
    };
    Ok(Some(MySessions { owner, current: auth.stored_id(), control }))
}

impl<S: Send + Sync> FromRequestParts<S> for MySessions {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match mine(parts).await? {
            Some(mine) => Ok(mine),
            None => {
                let (sessions, auth) = context(parts)?;
                if auth.is_signed_in().await? {
                    // Not a sign-in away: sending them to sign in would bring them straight back.
                    return Err(Rejection::not_listed());
                }
                Err(signed_out(parts, &sessions))
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for MySessions {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        mine(parts).await
    }
}

/// The end-session form: the CSRF token and, for one session, its handle.
#[derive(Debug, Deserialize)]
pub(crate) struct EndForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    session: Option<String>,
}

/// A session-ending POST that passed its checks: someone signed in whose sessions the layer can list, from this
/// site, with the session's CSRF token.
struct Ending {
    form: EndForm,
    owner: String,
    control: Control,
}

/// The checks every session-ending POST passes; `None` when nobody is signed in (an old tab: nothing to end).
async fn checked(
    auth: &AuthSession,
    control: Option<axum::Extension<Control>>,
    headers: &HeaderMap,
    origin: &str,
    form: Result<Form<EndForm>, FormRejection>,
) -> Result<Option<Ending>, LoginError> {
    refuse_too_large(&form)?;
    let Some(owner) = auth.owner().await? else {
        return Ok(None);
    };
    let form = form.map(|Form(f)| f).map_err(|_| LoginError::Csrf)?;
    verify_post(auth, headers, origin, &form.csrf).await?;
    let axum::Extension(control) = control.ok_or(LoginError::BadRequest("This site does not list sessions."))?;
    Ok(Some(Ending { form, owner, control }))
}

/// `POST` the end-session path: ends one of the person's sessions (this one too, if named), on every instance.
#[tracing::instrument(name = "end_session", skip_all)]
pub(crate) async fn end_one<H: SignIn>(
    axum::extract::State(login): axum::extract::State<Login<H>>,
    Auth(auth): Auth,
    control: Option<axum::Extension<Control>>,
    headers: HeaderMap,
    form: Result<Form<EndForm>, FormRejection>,
) -> Result<Response, LoginError> {
    let sessions = login.sessions();
    let Some(Ending { form, owner, control }) = checked(&auth, control, &headers, sessions.origin(), form).await?
    else {
        return Ok(see_other(&sessions.home_url()));
    };
    let id: Id = form
        .session
        .as_deref()
        .and_then(|handle| handle.parse().ok())
        .ok_or(LoginError::BadRequest("No session was named."))?;
    let ended = signin_session::end_session(&*control.store, &*control.directory, &owner, &id)
        .await
        .map_err(|err| LoginError::Session(SessionError::Unavailable(err)))?;
    if !ended {
        return Err(LoginError::BadRequest("That session is not one of yours, or has ended already."));
    }
    if auth.stored_id() == Some(id) {
        auth.sign_out().await?;
    }
    tracing::info!("a session ended by its owner");
    Ok(see_other(&sessions.home_url()))
}

/// `POST` the end-all path: ends every session of the person, this one included, on every instance.
#[tracing::instrument(name = "end_all_sessions", skip_all)]
pub(crate) async fn end_all<H: SignIn>(
    axum::extract::State(login): axum::extract::State<Login<H>>,
    Auth(auth): Auth,
    control: Option<axum::Extension<Control>>,
    headers: HeaderMap,
    form: Result<Form<EndForm>, FormRejection>,
) -> Result<Response, LoginError> {
    let sessions = login.sessions();
    let Some(Ending { owner, control, .. }) = checked(&auth, control, &headers, sessions.origin(), form).await? else {
        return Ok(see_other(&sessions.home_url()));
    };
    let ended = signin_session::end_all_sessions(&*control.store, &*control.directory, &owner)
        .await
        .map_err(|err| LoginError::Session(SessionError::Unavailable(err)))?;
    auth.sign_out().await?;
    // Signing out everywhere ends the person's grants too: revoked at the provider, deleted here.
    if let Some(tokens) = login.tokens() {
        tokens.end_all(&owner, true).await;
    }
    tracing::info!(sessions = ended, "signed out everywhere");
    Ok(see_other(&sessions.home_url()))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_a_browser_and_a_system() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(describe(chrome), ("Chrome 120".to_owned(), "Linux".to_owned()));
        assert_eq!(describe(""), ("An unknown browser".to_owned(), "an unknown system".to_owned()));
        assert!(describe("curl/8.0").0.contains("curl"), "{:?}", describe("curl/8.0"));
        assert_eq!(describe("\u{1}garbage"), ("An unknown browser".to_owned(), "an unknown system".to_owned()));
    }
}
