//! Configuration: the embedded defaults, then `config/default.toml`, `config/{APP_ENVIRONMENT}.toml`,
//! `config/local.toml` (each optional), then `APP__SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// All settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// MySQL.
    pub database: DatabaseConfig,
    /// The OpenID provider.
    pub oidc: OidcConfig,
    /// Sessions.
    pub session: SessionConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// The URL people reach the site by.
    pub public_url: Url,
    /// Run migrations at `serve`.
    pub run_migrations: bool,
    /// Longest time one request may take.
    pub request_timeout_secs: u64,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseConfig {
    /// `mysql://user:password@host:port/database`.
    pub url: SecretString,
    /// Connections for the user store.
    pub pool_size: usize,
    /// Connections for the session store.
    pub session_pool_size: u32,
    /// How long to wait for a connection.
    pub connect_timeout_secs: u64,
}

/// `[oidc]`.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcConfig {
    /// Issuer identifier.
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: SecretString,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// Per provider call.
    pub http_timeout_secs: u64,
    /// Clock leeway for token times.
    pub clock_leeway_secs: u64,
    /// Largest provider response.
    pub max_response_bytes: usize,
    /// How often `/login` checks that the provider answers; 0 turns it off.
    pub check_interval_secs: u64,
}

/// `[session]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionConfig {
    /// Cookie name.
    pub cookie_name: String,
    /// `Secure` cookie attribute.
    pub secure: bool,
    /// Inactivity before a session ends.
    pub inactivity_secs: u64,
    /// Granularity of expiry refreshes.
    pub touch_interval_secs: u64,
    /// Period of the expired-session cleanup.
    pub cleanup_interval_secs: u64,
    /// Lifetime of an unfinished sign-in.
    pub pending_login_secs: u64,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// Filter directives.
    pub filter: String,
}

/// `APP__SECTION__KEY` variables, e.g. `APP__OIDC__CLIENT_SECRET`; `oidc.scopes` takes a comma-separated list.
fn app_environment() -> config::Environment {
    config::Environment::with_prefix("APP")
        .prefix_separator("__")
        .separator("__")
        .list_separator(",")
        .with_list_parse_key("oidc.scopes")
        .try_parsing(true)
}

impl Settings {
    /// Loads the settings from `SIGNIN_CONFIG_DIR` (default `./config`), the environment named by
    /// `APP_ENVIRONMENT`, and `APP__…` variables, and checks them.
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var_os("SIGNIN_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("config"));
        let environment = std::env::var("APP_ENVIRONMENT").ok();
        Self::load_from(&dir, environment.as_deref(), true)
    }

    /// Loads from the given directory and checks the result; `with_env` adds the `APP__…` variables.
    pub fn load_from(dir: &Path, environment: Option<&str>, with_env: bool) -> anyhow::Result<Self> {
        let settings = Self::read(dir, environment, with_env)?;
        settings.check()?;
        Ok(settings)
    }

    /// Reads the layers without checking them, for callers that fill in the rest themselves (tests).
    pub fn read(dir: &Path, environment: Option<&str>, with_env: bool) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("default.toml")).required(false));
        if let Some(env) = environment.filter(|e| !e.is_empty()) {
            if !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                bail!("APP_ENVIRONMENT must be a plain name such as development or production");
            }
            builder = builder.add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false));
        }
        builder = builder.add_source(config::File::from(dir.join("local.toml")).required(false));
        if with_env {
            builder = builder.add_source(app_environment());
        }
        builder.build().and_then(|c| c.try_deserialize()).context("reading the configuration")
    }

    /// Fails fast on settings that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        let public = &self.server.public_url;
        if !matches!(public.scheme(), "http" | "https") || public.host().is_none() || public.query().is_some() {
            bail!("server.public_url must be an http(s) URL without a query, e.g. https://login.example.com");
        }
        if self.oidc.client_id.trim().is_empty() {
            bail!("oidc.client_id is empty: set APP__OIDC__CLIENT_ID (see the README for how to get one)");
        }
        if self.oidc.client_secret.expose_secret().is_empty() {
            bail!("oidc.client_secret is empty: set APP__OIDC__CLIENT_SECRET");
        }
        signin_domain::Issuer::parse(&self.oidc.issuer).context("oidc.issuer is not a valid issuer URL")?;
        let name = &self.session.cookie_name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            bail!("session.cookie_name must be letters, digits, '-' or '_'");
        }
        if self.session.inactivity_secs == 0 || self.session.pending_login_secs == 0 {
            bail!("session lifetimes must be positive");
        }
        if public.scheme() == "https" && !self.session.secure {
            bail!("session.secure must stay on when the site is served over https");
        }
        Ok(())
    }

    /// The redirect URI registered with the provider: `<public_url>/login/callback`.
    pub fn redirect_url(&self) -> anyhow::Result<Url> {
        let base = self.server.public_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/login/callback")).context("building the redirect URI from server.public_url")
    }

    /// Seconds as a `Duration`.
    pub fn secs(value: u64) -> Duration {
        Duration::from_secs(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        let mut s: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("defaults parse");
        s.oidc.client_id = "id".into();
        s.oidc.client_secret = "secret".into();
        s
    }

    #[test]
    fn defaults_point_at_google_and_need_credentials() {
        let s = base();
        assert_eq!(s.oidc.issuer, "https://accounts.google.com");
        assert!(s.session.secure);
        assert!(s.check().is_ok());
        let mut missing = base();
        missing.oidc.client_id.clear();
        assert!(missing.check().expect_err("no client id").to_string().contains("client_id"));
    }

    #[test]
    fn redirect_uri_is_built_from_the_public_url() {
        let mut s = base();
        s.server.public_url = Url::parse("https://example.com/auth/").expect("url");
        assert_eq!(s.redirect_url().expect("url").as_str(), "https://example.com/auth/login/callback");
    }

    #[test]
    fn insecure_cookie_on_https_and_bad_cookie_names_are_refused() {
        let mut s = base();
        s.server.public_url = Url::parse("https://example.com").expect("url");
        s.session.secure = false;
        assert!(s.check().is_err());
        let mut s = base();
        s.session.cookie_name = "bad name;".into();
        assert!(s.check().is_err());
    }

    #[test]
    fn environment_variables_override_the_files() {
        let vars: std::collections::HashMap<String, String> = [
            ("APP__SERVER__PORT", "8081"),
            ("APP__SERVER__PUBLIC_URL", "https://login.example.com"),
            ("APP__OIDC__CLIENT_ID", "123-abc.apps.googleusercontent.com"),
            ("APP__OIDC__CLIENT_SECRET", "9876543210"),
            ("APP__OIDC__SCOPES", "email,profile,openid"),
            ("APP__SESSION__SECURE", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s: Settings = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .add_source(app_environment().source(Some(vars)))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("layers parse");
        assert_eq!(s.server.port, 8081);
        assert_eq!(s.server.public_url.as_str(), "https://login.example.com/");
        assert_eq!(s.oidc.client_id, "123-abc.apps.googleusercontent.com");
        assert_eq!(s.oidc.client_secret.expose_secret(), "9876543210");
        assert_eq!(s.oidc.scopes, ["email", "profile", "openid"]);
        assert!(s.check().is_ok());
    }

    #[test]
    fn the_secret_never_prints() {
        let mut s = base();
        s.oidc.client_secret = "super-secret-value".into();
        s.database.url = "mysql://u:db-password@h/db".into();
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret-value"));
        assert!(!printed.contains("db-password"));
    }
}
