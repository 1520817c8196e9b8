//! Sign-in attempts kept in the browser: one short-lived, encrypted and authenticated cookie per attempt, so an
//! anonymous `/login` writes nothing on the server and several tabs can each sign in.
//!
//! Each cookie is sealed with AES-256-GCM by the `cookie` crate's private jar (the cookie's name is the associated
//! data, so a value moved to another name does not open), and names the deployment it belongs to (its redirect
//! URI), so a deployment sharing the key does not accept it. Its name carries a short hash of the attempt's
//! `state`, which lets the callback find its own attempt among several. The cookies go only to the sign-in paths
//! and expire with the pending-login lifetime.
//!
//! A cookie on the sign-in paths can still be set by a sibling subdomain (`Domain=example.com`: only `__Host-`
//! names are safe from that, and they need `Path=/`). So every attempt is also bound to the browser: a random
//! `__Host-` binding cookie made at `/login` when missing, whose hash each sealed attempt carries. A callback whose
//! attempt names another binding than the request's cookie is refused before the provider is asked, so an attempt
//! planted from elsewhere (login CSRF: the victim signed in as the attacker) never completes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use signin_auth::PendingLogin;
use signin_domain::LocalPath;
use subtle::ConstantTimeEq as _;

use crate::settings::AttemptKeys;

/// Longest attempt cookie value accepted or written (a browser keeps about 4 KB per cookie).
const MAX_VALUE_BYTES: usize = 3800;

/// What one attempt cookie holds.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "p")]
    pending: PendingLogin,
    #[serde(rename = "n")]
    next: LocalPath,
    /// When the attempt started, in Unix nanoseconds: orders attempts begun within the same second (the pending
    /// login's own start time has whole seconds), so the cap drops the oldest.
    #[serde(rename = "o")]
    started: i64,
    /// The deployment that sealed it ([`Attempts::scope`]).
    #[serde(rename = "d")]
    scope: String,
    /// The id of the provider the attempt began with: only that provider's callback may complete it (mix-up
    /// defence). Empty in cookies sealed before there were several: the first provider's.
    #[serde(rename = "i", default)]
    provider: String,
    /// The hash of the browser's binding cookie when the attempt began ([`Attempts::binding_hash`]); empty in
    /// cookies sealed before attempts were bound, which therefore complete nowhere.
    #[serde(rename = "b", default)]
    browser: String,
    /// Begun from the "Sign in again" link of a page that could not read the session's user (`/login?again=1`).
    #[serde(rename = "a", default)]
    again: bool,
    /// Begun by the grant route for a signed-in person: not a sign-in.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    grant: Option<GrantAttempt>,
}

/// What an attempt of the grant route remembers: whom it asks, and what.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct GrantAttempt {
    /// The signed-in person ([`signin_session::owner_key`]): the provider must send the same one back.
    #[serde(rename = "o")]
    pub(crate) owner: String,
    /// The scopes asked for on top of sign-in: those the page wanted and those granted before.
    #[serde(rename = "s")]
    pub(crate) scopes: Vec<String>,
    /// The scopes the page wanted (a person who does not grant one of them is told).
    #[serde(rename = "w", default)]
    pub(crate) wanted: Vec<String>,
}

/// An attempt the callback found, opened and authenticated.
pub(crate) struct Opened {
    pub(crate) pending: PendingLogin,
    pub(crate) next: LocalPath,
    /// The id of the provider it began with (empty: the first).
    pub(crate) provider: String,
    /// Begun to sign in again.
    pub(crate) again: bool,
    /// Begun by the grant route.
    pub(crate) grant: Option<GrantAttempt>,
}

/// What a new attempt is for.
pub(crate) struct NewAttempt<'a> {
    pub(crate) pending: PendingLogin,
    pub(crate) next: LocalPath,
    pub(crate) provider: &'a str,
    pub(crate) again: bool,
    pub(crate) grant: Option<GrantAttempt>,
}

/// Now, in Unix nanoseconds.
fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

/// What the callback found for its `state`.
pub(crate) enum Taken {
    /// The attempt, opened and authenticated.
    Found(Box<Opened>),
    /// No attempt cookie at all: expired, already used, or begun in another browser.
    Missing,
    /// Attempt cookies, but none for this state: a forged or stale link.
    Other,
    /// The attempt opens, but it was begun in another browser (its binding is not this request's).
    OtherBrowser,
    /// A cookie that does not open: tampered with, sealed with a key we do not have, or oversized.
    Invalid,
}

/// The id of the attempt with this `state`, for the logs of `/login` and of its callback (on whatever instance
/// each runs) and in its cookie's name: 12 characters of the state's hash, which tell nothing about the state.
pub(crate) fn attempt_id(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..9])
}

/// How long a browser remembers an explicit sign-out (see [`Attempts::remember_sign_out`]).
const SIGNED_OUT_MEMORY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How long a binding cookie lives; each `/login` sets it again, so it lapses only in a browser that has not begun
/// a sign-in for this long.
const BINDING_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The length of a binding cookie's value: 32 random bytes, base64url.
const BINDING_CHARS: usize = 43;

/// What the request says about the browser's binding cookie.
enum Binding {
    /// None, or none that is well-formed.
    Missing,
    /// Exactly one.
    One(String),
    /// More than one under the name: one may have been planted (over plain http, or under another path).
    Several,
}

/// The attempt cookies of one site.
#[derive(Clone)]
pub(crate) struct Attempts {
    keys: AttemptKeys,
    /// `<session cookie name>_login_`, with `__Secure-` in front when the cookies are `Secure`.
    prefix: String,
    /// The cookie that remembers an explicit sign-out in this browser: `<session cookie name>_signed_out`, with
    /// the same `__Secure-`.
    signed_out: String,
    /// The browser's binding cookie: `__Host-<session cookie name>_browser` over https (no sibling can set it),
    /// the base name over plain http.
    binding: String,
    /// The cookies' `Path`: the longest common path of the login and callback paths.
    path: String,
    secure: bool,
    max_age: Duration,
    max: usize,
    /// The deployment's redirect URI: an attempt opens only where it was sealed.
    scope: String,
}

/// Where a site keeps its attempt cookies and how long they live.
pub(crate) struct AttemptCookies<'a> {
    pub session_cookie: &'a str,
    pub path: String,
    pub secure: bool,
    pub max_age: Duration,
    pub max: usize,
    pub scope: String,
}

impl Attempts {
    pub(crate) fn new(keys: AttemptKeys, cookies: AttemptCookies<'_>) -> Self {
        Self {
            keys,
            // `__Secure-`: over https, only a secure origin can set them (`__Host-` needs `Path=/`).
            prefix: format!("{}{}_login_", if cookies.secure { "__Secure-" } else { "" }, cookies.session_cookie),
            signed_out: format!(
                "{}{}_signed_out",
                if cookies.secure { "__Secure-" } else { "" },
                cookies.session_cookie
            ),
            binding: format!("{}{}_browser", if cookies.secure { "__Host-" } else { "" }, cookies.session_cookie),
            path: cookies.path,
            secure: cookies.secure,
            max_age: cookies.max_age,
            max: cookies.max.max(1),
            scope: cookies.scope,
        }
    }

    /// Seals `plain`, a value kept on the server (what sessions begun before grants were kept hold for signing out;
    /// only [`Attempts::open_at_rest`] is still needed outside tests), with AES-256-GCM
    /// under a key derived from the current attempt key for this use alone (`purpose` is authenticated too), so a
    /// row copied out of the session table is useless without the site's keys.
    #[cfg(test)]
    pub(crate) fn seal_at_rest(&self, purpose: &str, plain: &str) -> Option<String> {
        let key = cookie::Key::derive_from(self.keys.current()?.master());
        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(Cookie::new(purpose.to_owned(), plain.to_owned()));
        jar.get(purpose).map(|cookie| cookie.value().to_owned())
    }

    /// Opens what [`Attempts::seal_at_rest`] sealed, with any of the keys.
    pub(crate) fn open_at_rest(&self, purpose: &str, sealed: &str) -> Option<String> {
        let jar = CookieJar::new();
        self.keys.all().iter().find_map(|key| {
            let key = cookie::Key::derive_from(key.master());
            jar.private(&key).decrypt(Cookie::new(purpose.to_owned(), sealed.to_owned())).map(|c| c.value().to_owned())
        })
    }

    /// Whether a key to seal new attempts is configured.
    pub(crate) fn can_start(&self) -> bool {
        self.keys.current().is_some()
    }

    /// The cookie name of the attempt with this `state`.
    fn name_for(&self, state: &str) -> String {
        format!("{}{}", self.prefix, attempt_id(state))
    }

    /// The attempt cookies the request carries.
    fn present(&self, headers: &HeaderMap) -> Vec<Cookie<'static>> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| Cookie::split_parse(value.to_owned()))
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name().starts_with(&self.prefix))
            .map(Cookie::into_owned)
            .collect()
    }

    fn open(&self, cookie: &Cookie<'static>) -> Option<Sealed> {
        if cookie.value().len() > MAX_VALUE_BYTES {
            return None;
        }
        let jar = CookieJar::new();
        self.keys
            .all()
            .iter()
            .find_map(|key| jar.private(key).decrypt(cookie.clone()))
            .and_then(|opened| serde_json::from_str::<Sealed>(opened.value()).ok())
            .filter(|sealed| sealed.scope == self.scope)
    }

    /// Seals an attempt into its cookie, unless the result is too large to keep.
    fn seal(&self, key: &cookie::Key, name: &str, sealed: &Sealed) -> Option<Cookie<'static>> {
        let plain = serde_json::to_string(sealed).ok()?;
        let mut jar = CookieJar::new();
        jar.private_mut(key).add(Cookie::new(name.to_owned(), plain));
        jar.get(name).filter(|cookie| cookie.value().len() <= MAX_VALUE_BYTES).cloned()
    }

    /// The `Set-Cookie` value of a live attempt cookie.
    fn live(&self, cookie: Cookie<'static>) -> HeaderValue {
        self.header(cookie, |cookie, max_age| cookie.set_max_age(max_age))
    }

    /// Removes an attempt cookie: empty, `Max-Age=0` and an `Expires` in the past (some clients honour only that).
    fn removal(&self, name: &str) -> HeaderValue {
        self.header(Cookie::new(name.to_owned(), ""), |cookie, _| cookie.make_removal())
    }

    /// Every attempt cookie's attributes (path, `HttpOnly`, `SameSite=Lax`, `Secure`), then its lifetime.
    fn header(
        &self,
        mut cookie: Cookie<'static>,
        lifetime: impl FnOnce(&mut Cookie<'static>, cookie::time::Duration),
    ) -> HeaderValue {
        self.attributes(&mut cookie, self.path.clone());
        lifetime(&mut cookie, cookie::time::Duration::try_from(self.max_age).unwrap_or(cookie::time::Duration::ZERO));
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The attributes every cookie of this module carries: `path`, `HttpOnly`, `SameSite=Lax`, `Secure` like the
    /// session cookie.
    fn attributes(&self, cookie: &mut Cookie<'static>, path: String) {
        cookie.set_path(path);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(self.secure);
    }

    /// The values of the request's cookies called `name`, as sent.
    fn sent<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(move |(sent, _)| *sent == name)
            .map(|(_, value)| value)
    }

    /// Whether this browser signed out explicitly since its last sign-in.
    pub(crate) fn signed_out_here(&self, headers: &HeaderMap) -> bool {
        Self::sent(headers, &self.signed_out).next().is_some()
    }

    /// Remembers an explicit sign-out, for [`SIGNED_OUT_MEMORY`]: the next sign-in asks the provider to let the
    /// person choose (or confirm) the account, so that on a shared computer the next person does not become the
    /// previous one. It goes only to the sign-in paths and holds nothing but the fact.
    pub(crate) fn remember_sign_out(&self) -> HeaderValue {
        self.header(Cookie::new(self.signed_out.clone(), "1"), |cookie, _| {
            cookie.set_max_age(cookie::time::Duration::try_from(SIGNED_OUT_MEMORY).unwrap_or_default());
        })
    }

    /// Forgets the sign-out, after a sign-in.
    pub(crate) fn forget_sign_out(&self) -> HeaderValue {
        self.removal(&self.signed_out.clone())
    }

    /// The `Set-Cookie` values that record a new attempt: its own cookie, and the removal of attempts that do not
    /// open, and of the oldest ones beyond the cap. A `next` too long to fit in a cookie is replaced by the root.
    /// `None` without a key (the caller refuses to start).
    pub(crate) fn start(&self, headers: &HeaderMap, attempt: NewAttempt<'_>) -> Option<Vec<HeaderValue>> {
        let NewAttempt { pending, next, provider, again, grant } = attempt;
        let key = self.keys.current()?;
        let mut out = Vec::new();
        let binding = match self.binding(headers) {
            Binding::One(value) => value,
            Binding::Missing | Binding::Several => URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        };
        out.push(self.binding_cookie(&binding));
        // By name: a name may come more than once (a copy left under another path, or planted); it counts as
        // open when any copy opens, and only a name none of whose copies opens is removed.
        let mut open: Vec<(i64, String)> = Vec::new();
        let mut unopened: Vec<String> = Vec::new();
        for cookie in self.present(headers) {
            match self.open(&cookie) {
                Some(sealed) => open.push((sealed.started, cookie.name().to_owned())),
                None => unopened.push(cookie.name().to_owned()),
            }
        }
        unopened.retain(|name| !open.iter().any(|(_, open)| open == name));
        unopened.dedup();
        out.extend(unopened.iter().map(|name| self.removal(name)));
        open.sort();
        open.dedup_by(|a, b| a.1 == b.1);
        let excess = (open.len() + 1).saturating_sub(self.max);
        out.extend(open.iter().take(excess).map(|(_, name)| self.removal(name)));

        let name = self.name_for(pending.state());
        let mut sealed = Sealed {
            pending,
            next,
            started: now_nanos(),
            scope: self.scope.clone(),
            provider: provider.to_owned(),
            browser: Self::binding_hash(&binding),
            again,
            grant,
        };
        let cookie = match self.seal(key, &name, &sealed) {
            Some(cookie) => cookie,
            None => {
                sealed.next = LocalPath::root();
                self.seal(key, &name, &sealed)?
            }
        };
        out.push(self.live(cookie));
        Some(out)
    }

    /// Finds and opens the attempt that sent `state`; the second value clears its cookie (whatever the outcome, an
    /// attempt is used once by the browser). Of several cookies under the attempt's name, the first that opens
    /// counts.
    pub(crate) fn take(&self, headers: &HeaderMap, state: Option<&str>) -> (Taken, Option<HeaderValue>) {
        let present = self.present(headers);
        let nothing = if present.is_empty() { Taken::Missing } else { Taken::Other };
        let Some(state) = state.filter(|state| !state.is_empty() && state.len() <= 512) else {
            return (nothing, None);
        };
        let name = self.name_for(state);
        let mut copies = present.iter().filter(|cookie| cookie.name() == name).peekable();
        if copies.peek().is_none() {
            return (nothing, None);
        }
        let clear = Some(self.removal(&name));
        match copies.find_map(|cookie| self.open(cookie)) {
            Some(sealed) if !self.bound_here(headers, &sealed) => (Taken::OtherBrowser, clear),
            Some(Sealed { pending, next, provider, again, grant, .. }) => {
                (Taken::Found(Box::new(Opened { pending, next, provider, again, grant })), clear)
            }
            None => (Taken::Invalid, clear),
        }
    }

    /// The request's binding cookie.
    fn binding(&self, headers: &HeaderMap) -> Binding {
        let mut found = Self::sent(headers, &self.binding);
        match (found.next(), found.next()) {
            (None, _) => Binding::Missing,
            (Some(_), Some(_)) => Binding::Several,
            (Some(value), None) => {
                let plain = value.len() == BINDING_CHARS
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if plain { Binding::One(value.to_owned()) } else { Binding::Missing }
            }
        }
    }

    /// What a sealed attempt keeps of a binding: its SHA-256, so that the attempt cookie (which the callback URL's
    /// holder may see in logs) does not carry the binding itself.
    fn binding_hash(binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(binding.as_bytes()))
    }

    /// Whether the attempt was begun in the browser that sent this request: exactly one binding cookie, whose hash
    /// the attempt carries (compared in constant time).
    fn bound_here(&self, headers: &HeaderMap, sealed: &Sealed) -> bool {
        let Binding::One(binding) = self.binding(headers) else {
            return false;
        };
        let hash = Self::binding_hash(&binding);
        !sealed.browser.is_empty() && bool::from(hash.as_bytes().ct_eq(sealed.browser.as_bytes()))
    }

    /// The `Set-Cookie` of the binding cookie: `Path=/` (as `__Host-` requires), `HttpOnly`, `SameSite=Lax`,
    /// `Secure` over https.
    fn binding_cookie(&self, value: &str) -> HeaderValue {
        let mut cookie = Cookie::new(self.binding.clone(), value.to_owned());
        self.attributes(&mut cookie, "/".to_owned());
        cookie.set_max_age(cookie::time::Duration::try_from(BINDING_LIFETIME).unwrap_or_default());
        HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempts(keys: &[String]) -> Attempts {
        let keys: Vec<secrecy::SecretString> = keys.iter().cloned().map(Into::into).collect();
        let cookies = AttemptCookies {
            session_cookie: "s",
            path: "/login".into(),
            secure: true,
            max_age: Duration::from_secs(600),
            max: 5,
            scope: "https://example.com/login/callback".into(),
        };
        Attempts::new(AttemptKeys::parse(&keys).expect("keys"), cookies)
    }

    #[test]
    fn values_sealed_at_rest_open_with_any_key_of_the_site_and_only_for_their_purpose() {
        let (old, new) = (crate::generate_cookie_key(), crate::generate_cookie_key());
        let before = attempts(std::slice::from_ref(&old));
        let sealed = before.seal_at_rest("signin.sign_out", "the-token").expect("sealed");
        assert!(!sealed.contains("the-token"));
        let rotated = attempts(&[new.clone(), old]);
        assert_eq!(rotated.open_at_rest("signin.sign_out", &sealed).as_deref(), Some("the-token"), "after rotation");
        assert_eq!(rotated.open_at_rest("another.purpose", &sealed), None, "the purpose is authenticated");
        assert_eq!(attempts(&[new]).open_at_rest("signin.sign_out", &sealed), None, "without the key");
        let mut tampered = sealed.clone().into_bytes();
        tampered[10] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(rotated.open_at_rest("signin.sign_out", &tampered), None);
    }
}
