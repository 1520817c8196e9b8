//! The `[login]` settings and the keys of the sign-in attempt cookies.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::Error;

/// How sign-in behaves; deserialises from the `[login]` configuration section. Durations are seconds (`600`) or
/// forms such as `"10m"`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    /// Where sign-in starts (default `/login`).
    pub login_path: String,
    /// Where the provider sends the browser back (default `/login/callback`); register
    /// `<public URL><callback_path>` with the provider.
    pub callback_path: String,
    /// Where the sign-out form posts (default `/logout`).
    pub logout_path: String,
    /// Where the person's "Sign out" of one of their sessions posts (default `/sessions/end`).
    pub end_session_path: String,
    /// Where "Sign out everywhere" posts (default `/sessions/end-all`).
    pub end_all_sessions_path: String,
    /// Where a sign-out, and a sign-in without `next`, lead (default `/`).
    pub home_path: String,
    /// How long a started sign-in may take until the provider sends the browser back (default 10 minutes). The
    /// attempt cookie expires with it, and the callback refuses an older attempt.
    #[serde(with = "signin_domain::duration")]
    pub pending_login: Duration,
    /// Sign-ins one browser may have under way at once (default 5, e.g. in several tabs); a further one drops
    /// the oldest.
    pub max_attempts: usize,
    /// Keys of the attempt cookies: base64 of at least 32 random bytes each. The first encrypts; all decrypt, so
    /// a new key goes first and an old one stays until its cookies have expired. Every instance behind a balancer
    /// needs the same keys. Give them as a secret (`APP__LOGIN__COOKIE_KEYS=key1,key2`), never in a file.
    pub cookie_keys: Vec<SecretString>,
    /// How long a successful check that the provider answers lets `/login` send people there without checking
    /// again (default 10 s); zero turns the check off.
    #[serde(with = "signin_domain::duration")]
    pub provider_check_interval: Duration,
    /// Google Workspace domains whose accounts may sign in, checked against the `hd` claim of the verified ID
    /// token (default empty: any account).
    pub hosted_domains: Vec<String>,
    /// Email domains whose accounts may sign in, checked against the verified email address (default empty: any).
    pub email_domains: Vec<String>,
    /// Per-client rate limits of the sign-in routes (`[login.rate_limit]`).
    pub rate_limit: crate::limit::RateLimitSettings,
    /// Where a RISC transmitter pushes security events (default `/login/risc`), when `[login.risc]` is enabled.
    pub risc_path: String,
    /// Receiving security events from a RISC transmitter, e.g. Google's Cross-Account Protection (`[login.risc]`).
    pub risc: signin_auth::RiscSettings,
    /// The grants kept for acting for people: their keys and when tokens are refreshed (`[login.tokens]`).
    pub tokens: TokenSettings,
}

/// How the tokens of people's grants are kept and refreshed; deserialises from `[login.tokens]`.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Keys that seal the grants at rest (AES-256-GCM): base64 of at least 32 random bytes each; the first seals,
    /// all open, so a new key goes first and an old one stays until every grant has been written again. Empty (the
    /// default): keys derived from `login.cookie_keys` for this use alone. Give them as a secret
    /// (`APP__LOGIN__TOKENS__KEYS=key1,key2`).
    pub keys: Vec<SecretString>,
    /// An access token expiring within this long is refreshed before it is handed out (default 60 s).
    #[serde(with = "signin_domain::duration")]
    pub refresh_margin: Duration,
    /// How long a request waits for a refresh another request or instance has under way (default 15 s); a
    /// refresh's claim on the grant lasts as long, so that an instance that dies while refreshing does not hold
    /// the grant for longer.
    #[serde(with = "signin_domain::duration")]
    pub refresh_wait: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self { keys: Vec::new(), refresh_margin: Duration::from_secs(60), refresh_wait: Duration::from_secs(15) }
    }
}

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("refresh_margin", &self.refresh_margin)
            .field("refresh_wait", &self.refresh_wait)
            .finish()
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            login_path: "/login".to_owned(),
            callback_path: "/login/callback".to_owned(),
            logout_path: "/logout".to_owned(),
            end_session_path: "/sessions/end".to_owned(),
            end_all_sessions_path: "/sessions/end-all".to_owned(),
            risc_path: "/login/risc".to_owned(),
            risc: signin_auth::RiscSettings::default(),
            tokens: TokenSettings::default(),
            home_path: "/".to_owned(),
            pending_login: Duration::from_secs(10 * 60),
            max_attempts: 5,
            cookie_keys: Vec::new(),
            provider_check_interval: Duration::from_secs(10),
            hosted_domains: Vec::new(),
            email_domains: Vec::new(),
            rate_limit: crate::limit::RateLimitSettings::default(),
        }
    }
}

impl fmt::Debug for LoginSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginSettings")
            .field("login_path", &self.login_path)
            .field("callback_path", &self.callback_path)
            .field("logout_path", &self.logout_path)
            .field("end_session_path", &self.end_session_path)
            .field("end_all_sessions_path", &self.end_all_sessions_path)
            .field("home_path", &self.home_path)
            .field("pending_login", &self.pending_login)
            .field("max_attempts", &self.max_attempts)
            .field("cookie_keys", &format_args!("[{} redacted]", self.cookie_keys.len()))
            .field("provider_check_interval", &self.provider_check_interval)
            .field("hosted_domains", &self.hosted_domains)
            .field("email_domains", &self.email_domains)
            .field("rate_limit", &self.rate_limit)
            .field("risc_path", &self.risc_path)
            .field("risc", &self.risc)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl LoginSettings {
    /// Where a signed-in person is sent to grant more (`?scope=…&next=…`): `<login_path>/grant`, under the
    /// sign-in paths, so that its attempt cookies reach the callback.
    pub fn grant_path(&self) -> String {
        format!("{}/grant", self.login_path.trim_end_matches('/'))
    }

    /// Fails on settings that cannot work, naming the key.
    pub fn check(&self) -> Result<(), Error> {
        for (key, path) in [
            ("login.login_path", &self.login_path),
            ("login.callback_path", &self.callback_path),
            ("login.logout_path", &self.logout_path),
            ("login.end_session_path", &self.end_session_path),
            ("login.end_all_sessions_path", &self.end_all_sessions_path),
            ("login.risc_path", &self.risc_path),
            ("login.home_path", &self.home_path),
        ] {
            // `{`, `}` and `*` would be route parameters and wildcards to the router.
            let plain = path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| {
                    b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'\\' | b';' | b',' | b'{' | b'}' | b'*')
                });
            if !plain {
                return Err(Error::Config(format!("{key} must be a plain absolute path such as /login")));
            }
        }
        let routes = [
            &self.login_path,
            &self.callback_path,
            &self.logout_path,
            &self.end_session_path,
            &self.end_all_sessions_path,
            &self.risc_path,
        ];
        if routes.iter().enumerate().any(|(i, a)| routes[i + 1..].contains(a)) {
            return Err(Error::Config(
                "login.login_path, callback_path, logout_path, end_session_path, end_all_sessions_path and \
                 risc_path must differ"
                    .into(),
            ));
        }
        if self.tokens.refresh_wait.is_zero() {
            return Err(Error::Config("login.tokens.refresh_wait must be positive".into()));
        }
        crate::grants::TokenKeys::parse(&self.tokens.keys, "login.tokens.keys")?;
        if common_path(&self.login_path, &self.callback_path) == "/" {
            return Err(Error::Config(
                "login.callback_path must share a first path segment with login.login_path (e.g. /login and \
                 /login/callback), so that attempt cookies go only to the sign-in paths"
                    .into(),
            ));
        }
        if self.pending_login.is_zero() {
            return Err(Error::Config("login.pending_login must be positive".into()));
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("login.max_attempts must be at least 1".into()));
        }
        AttemptKeys::parse(&self.cookie_keys)?;
        Ok(())
    }
}

/// A provider's sign-in routes, without the public URL's prefix.
#[derive(Debug, Clone)]
pub(crate) struct ProviderPaths {
    pub(crate) login: String,
    pub(crate) callback: String,
    /// Where its back-channel logout tokens arrive: `<login path>/<id>/backchannel-logout` for every provider.
    pub(crate) backchannel: String,
}

impl ProviderPaths {
    /// The main provider's: `login.login_path` and `login.callback_path`.
    pub(crate) fn main(login: &LoginSettings, id: &str) -> Self {
        Self {
            login: login.login_path.clone(),
            callback: login.callback_path.clone(),
            backchannel: Self::other(login, id).backchannel,
        }
    }

    /// Any other provider's: `<login path>/<id>` and `<login path>/<id>/callback`.
    pub(crate) fn other(login: &LoginSettings, id: &str) -> Self {
        let base = format!("{}/{id}", login.login_path.trim_end_matches('/'));
        Self { callback: format!("{base}/callback"), backchannel: format!("{base}/backchannel-logout"), login: base }
    }
}

/// Whether a provider id can be part of a path and a cookie: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
pub(crate) fn plain_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The longest common path of two absolute paths, on segment boundaries (`/login` and `/login/callback` give
/// `/login`; `/signin` and `/auth/cb` give `/`).
pub(crate) fn common_path(a: &str, b: &str) -> String {
    let mut common = Vec::new();
    for (x, y) in a.split('/').skip(1).zip(b.split('/').skip(1)) {
        if x != y {
            break;
        }
        common.push(x);
    }
    format!("/{}", common.join("/"))
}

/// The decoded attempt-cookie keys; the first encrypts.
#[derive(Clone)]
pub(crate) struct AttemptKeys(Vec<cookie::Key>);

/// The bytes of configured keys (`setting`, e.g. `login.cookie_keys`): base64 of at least 32 random bytes each.
pub(crate) fn decode_keys(raw: &[SecretString], setting: &str) -> Result<Vec<Vec<u8>>, Error> {
    raw.iter()
        .enumerate()
        .map(|(at, key)| {
            let text = key.expose_secret().trim();
            let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
                .iter()
                .find_map(|engine| engine.decode(text.trim_end_matches('=')).ok().or_else(|| engine.decode(text).ok()))
                .ok_or_else(|| Error::Config(format!("{setting}[{at}] is not base64")))?;
            if bytes.len() < 32 {
                return Err(Error::Config(format!(
                    "{setting}[{at}] is {} bytes; it needs at least 32 random bytes",
                    bytes.len()
                )));
            }
            Ok(bytes)
        })
        .collect()
}

impl AttemptKeys {
    pub(crate) fn parse(raw: &[SecretString]) -> Result<Self, Error> {
        let keys = decode_keys(raw, "login.cookie_keys")?;
        Ok(Self(keys.iter().map(|bytes| cookie::Key::derive_from(bytes)).collect()))
    }

    /// The key that encrypts new cookies.
    pub(crate) fn current(&self) -> Option<&cookie::Key> {
        self.0.first()
    }

    pub(crate) fn all(&self) -> &[cookie::Key] {
        &self.0
    }
}

/// A fresh key for `login.cookie_keys`: 32 random bytes, base64url (what `scripts/run` uses for development).
pub fn generate_cookie_key() -> String {
    URL_SAFE_NO_PAD.encode(&cookie::Key::generate().master()[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_path_follows_segments() {
        assert_eq!(common_path("/login", "/login/callback"), "/login");
        assert_eq!(common_path("/auth/login", "/auth/login/callback"), "/auth/login");
        assert_eq!(common_path("/signin", "/auth/cb"), "/");
        assert_eq!(common_path("/log", "/login/callback"), "/");
    }

    #[test]
    fn defaults_are_usable_and_keys_are_checked() {
        assert!(LoginSettings::default().check().is_ok());
        let mut s = LoginSettings { cookie_keys: vec![generate_cookie_key().into()], ..LoginSettings::default() };
        assert!(s.check().is_ok());
        s.cookie_keys.push("c2hvcnQ".to_owned().into());
        assert!(s.check().expect_err("short").to_string().contains("login.cookie_keys[1]"));
        s.cookie_keys = vec!["not base64 at all!".to_owned().into()];
        assert!(s.check().expect_err("garbage").to_string().contains("not base64"));
    }

    #[test]
    fn bad_paths_name_their_key() {
        for bad in ["login", "//evil.example", "/a?b", "/a b", "/a\\b", "/{id}", "/*rest"] {
            let s = LoginSettings { callback_path: bad.into(), ..LoginSettings::default() };
            assert!(s.check().expect_err(bad).to_string().contains("login.callback_path"), "{bad}");
        }
    }

    #[test]
    fn the_sign_in_paths_must_differ_and_nest() {
        let same = LoginSettings { callback_path: "/login".into(), ..LoginSettings::default() };
        assert!(same.check().expect_err("same path").to_string().contains("must differ"));
        let apart =
            LoginSettings { login_path: "/signin".into(), callback_path: "/auth/cb".into(), ..Default::default() };
        assert!(apart.check().expect_err("apart").to_string().contains("first path segment"));
        let siblings =
            LoginSettings { login_path: "/auth/login".into(), callback_path: "/auth/cb".into(), ..Default::default() };
        assert!(siblings.check().is_ok());
    }

    #[test]
    fn debug_hides_the_keys() {
        let key = generate_cookie_key();
        let s = LoginSettings { cookie_keys: vec![key.clone().into()], ..LoginSettings::default() };
        let out = format!("{s:?}");
        assert!(!out.contains(&key) && out.contains("1 redacted"), "{out}");
    }
}
