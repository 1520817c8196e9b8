//! What anyone can send at will — garbage or duplicated session cookies, callbacks with no sign-in under way — is
//! logged at debug per request and summed up in one line per interval, so that it cannot flood the log. A real
//! sign-in failure still gets its own line (see `LoginError`).

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use signin_domain::Tally;
use tower_sessions::session::Id;

/// How often each kind of noise is summed up in the log.
const EVERY: Duration = Duration::from_secs(10);

static MALFORMED: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));
static DUPLICATED: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));
static REFUSED: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));
static UNKNOWN: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));
static LIMITED: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));

/// What the request's session cookies looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionCookies {
    /// None, or one well-formed.
    Fine,
    /// Several: one may have been planted (by a sibling subdomain, over plain http). None is used.
    Duplicated,
    /// One that is not a session id at all.
    Malformed,
}

/// Looks at the request's cookies named `name`; when there are several, or one is malformed, removes them all
/// from the request (the session layer then sees a signed-out request) and says so.
pub(crate) fn scrub(headers: &mut HeaderMap, name: &str) -> SessionCookies {
    let mut count = 0;
    let mut malformed = false;
    // A name that only decodes to ours (`%5F%5FHost-…`) is a plant: the session layer decodes cookie names, and a
    // browser accepts such a cookie from a sibling subdomain, since it does not start with `__Host-` as sent.
    let mut encoded = false;
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((key, value)) = pair.trim().split_once('=')
                && names(key, name)
            {
                count += 1;
                encoded |= key != name;
                malformed |= value.parse::<Id>().is_err();
            }
        }
    }
    let found = match (count, malformed, encoded) {
        (0, _, _) => return SessionCookies::Fine,
        (1, false, false) => return SessionCookies::Fine,
        (1, true, false) => SessionCookies::Malformed,
        _ => SessionCookies::Duplicated,
    };
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').is_none_or(|(key, _)| !names(key, name)))
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(COOKIE, value);
    }
    match found {
        SessionCookies::Duplicated => {
            tracing::debug!("several session cookies: treated as signed out, all cleared");
            if let Some(count) = DUPLICATED.add() {
                tracing::info!(count, "requests with several session cookies, treated as signed out and cleared");
            }
        }
        _ => {
            tracing::debug!("a malformed session cookie: ignored and cleared");
            if let Some(count) = MALFORMED.add() {
                tracing::info!(count, "requests with a malformed session cookie, ignored and cleared");
            }
        }
    }
    found
}

/// Whether the cookie called `key` (as sent) is, once percent-decoded, the one called `name`.
fn names(key: &str, name: &str) -> bool {
    key == name || (key.contains('%') && percent_encoding::percent_decode_str(key).decode_utf8_lossy() == name)
}

/// After a scrubbed request: clears the session cookie in the browser, unless the response sets one itself.
pub(crate) fn clear_cookie(headers: &mut HeaderMap, name: &str, secure: bool) {
    let sets_its_own = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.split_once('=').is_some_and(|(key, _)| key.trim() == name));
    if sets_its_own {
        return;
    }
    headers.append(SET_COOKIE, removal(name, secure));
}

/// The removal of the session cookie, with the attributes it was set with (`Path=/`, `HttpOnly`, `SameSite=Lax`,
/// `Secure` over https), so that a browser honours it for a `__Host-` name.
fn removal(name: &str, secure: bool) -> HeaderValue {
    let removal = Cookie::build((name.to_owned(), ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
        .build();
    HeaderValue::from_str(&removal.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a `Set-Cookie` value removes the cookie called `name`.
fn removes(value: &HeaderValue, name: &str) -> bool {
    value.to_str().ok().and_then(|value| Cookie::parse(value).ok()).is_some_and(|cookie| {
        cookie.name() == name && cookie.max_age().is_some_and(|age| age.is_zero() || age.is_negative())
    })
}

/// Takes every removal of the cookie called `name` out of a response; whether there was one.
fn take_removals(headers: &mut HeaderMap, name: &str) -> bool {
    if !headers.get_all(SET_COOKIE).iter().any(|value| removes(value, name)) {
        return false;
    }
    let kept: Vec<HeaderValue> =
        headers.get_all(SET_COOKIE).iter().filter(|value| !removes(value, name)).cloned().collect();
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
    true
}

/// Rewrites every removal of the session cookie in a response as [`removal`] makes it.
pub(crate) fn secure_removals(headers: &mut HeaderMap, name: &str, secure: bool) {
    if take_removals(headers, name) {
        headers.append(SET_COOKIE, removal(name, secure));
    }
}

/// Takes the removal of a dead session cookie out of the answer to a request that is not a navigation: a fetch
/// still carrying the id a sign-in has just replaced may be answered after that sign-in, and its removal would
/// then delete the new cookie. The next navigation clears it.
pub(crate) fn keep_cookie(headers: &mut HeaderMap, name: &str) {
    take_removals(headers, name);
}

/// A refused request that any passer-by can send (a callback with no sign-in under way, a forged sign-out, …).
pub(crate) fn refused(reason: &dyn std::fmt::Display, status: u16) {
    tracing::debug!(status, "request refused: {reason}");
    if let Some(count) = REFUSED.add() {
        tracing::info!(count, "sign-in requests refused with no sign-in under way (last: {reason})");
    }
}

/// A session cookie that names no stored session: expired and swept, signed out elsewhere, or made up. (tower-sessions
/// also logs each at WARN; services keep its `tower_sessions_core::session` target to errors, see the README.)
pub(crate) fn unknown_session() {
    tracing::debug!("the session cookie names no stored session");
    if let Some(count) = UNKNOWN.add() {
        tracing::info!(count, "requests whose session cookie names no stored session (expired, signed out or made up)");
    }
}

/// A sign-in request over the client's rate limit (answered 429).
pub(crate) fn limited(retry_after_secs: u64) {
    metrics::counter!("signin_rate_limited_total").increment(1);
    tracing::debug!(retry_after_secs, "sign-in request over the rate limit");
    if let Some(count) = LIMITED.add() {
        tracing::warn!(count, "sign-in requests over the per-client rate limit, answered 429");
    }
}

static BAD_LOGOUT_TOKENS: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));

/// A back-channel logout POST whose token failed a check (anyone can POST there).
pub(crate) fn bad_logout_token(reason: &dyn std::fmt::Display) {
    tracing::debug!("back-channel logout refused: {reason}");
    if let Some(count) = BAD_LOGOUT_TOKENS.add() {
        tracing::info!(count, "back-channel logout requests refused (last: {reason})");
    }
}

static BAD_SECURITY_EVENTS: LazyLock<Tally> = LazyLock::new(|| Tally::new(EVERY));

/// A pushed security event token that failed a check (anyone can POST there).
pub(crate) fn bad_security_event(reason: &dyn std::fmt::Display) {
    tracing::debug!("security event refused: {reason}");
    if let Some(count) = BAD_SECURITY_EVENTS.add() {
        tracing::info!(count, "security event tokens refused (last: {reason})");
    }
}
