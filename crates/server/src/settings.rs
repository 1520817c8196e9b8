//! Configuration: the embedded defaults, then `config/default.toml`, `config/{APP_ENVIRONMENT}.toml`,
//! `config/local.toml` (each optional), then `APP__SECTION__KEY` environment variables.
//!
//! Each section deserialises straight into the settings type of the crate it configures: `[database]` into
//! persistence's, `[oidc]` into auth's, `[session]` into the session crate's, `[login]` into the login library's,
//! `[web]` into the web crate's. Only `[server]` and `[log]` belong to this binary.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use signin_login::{ConfigSource, LoginSettings, ProviderSettings, SessionSettings};
use signin_persistence::DatabaseSettings;
use signin_web::WebSettings;
use url::Url;

/// The defaults, compiled in so the binary runs from any directory.
const DEFAULTS: &str = include_str!("../../../config/default.toml");

/// All settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[server]`: where to listen.
    pub server: ServerSettings,
    /// `[database]`: MySQL.
    pub database: DatabaseSettings,
    /// `[oidc]`: the main OpenID provider (`/login`; Google by default).
    pub oidc: ProviderSettings,
    /// `[providers.<id>]`: more OpenID providers beside the main one, by id (`/login/<id>`), in the order of their
    /// ids. `APP__PROVIDERS__<ID>__CLIENT_SECRET` sets one's secret.
    #[serde(default)]
    pub providers: std::collections::BTreeMap<String, ProviderSettings>,
    /// `[session]`: the session cookie and lifetimes.
    pub session: SessionSettings,
    /// `[login]`: the sign-in routes and attempt cookies.
    pub login: LoginSettings,
    /// `[web]`: the HTTP layer.
    pub web: WebSettings,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// The environment the settings were read for (`APP_ENVIRONMENT`), if any.
    #[serde(skip)]
    pub environment: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind. Not used when the process is handed a listening socket (systemd's socket activation,
    /// `LISTEN_FDS`): it then serves on that one.
    pub host: String,
    /// Port to bind; 0 picks a free one. Not used with a handed-down socket, like `host`.
    pub port: u16,
    /// The URL people reach the site by (scheme, host, port, optional path prefix).
    pub public_url: Url,
    /// Run migrations at `serve`.
    pub run_migrations: bool,
    /// How long a connection may take to send a whole request head, counted from when the server starts waiting
    /// for one: right after it is accepted, and after each response. A slow or stalled header and an idle
    /// keep-alive connection are both closed after it.
    #[serde(with = "signin_domain::duration")]
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, counted from its head. A body still incomplete then is
    /// answered 408 Request Timeout and its connection closed; such requests are summed up in the log once per
    /// 10 s. Keep it below `web.request_timeout`.
    #[serde(with = "signin_domain::duration")]
    pub body_read_timeout: Duration,
    /// Most connections open at once. When they are all taken, the connection that has waited longest for a
    /// request (idle keep-alive, or never used) is closed to make room for a new one; only when every one has a
    /// request in progress is the new connection closed at once (and the log says so at most once per 10 s, with
    /// a count). Keep it below the process's file-descriptor limit.
    pub max_connections: usize,
    /// Most connections one client address may hold at once (at most `max_connections`; 128, an eighth of the
    /// default `max_connections`): beyond it the client's own longest-waiting connection is closed to make room,
    /// or, when all of them have a request in progress, the new one is. The proxies of
    /// `login.rate_limit.trusted_proxies` carry many clients each and are not held to it.
    pub max_connections_per_client: usize,
    /// After SIGTERM, how long the server keeps serving while `/health/ready` answers 503 and every response says
    /// `Connection: close`, so that a load balancer takes it out.
    #[serde(with = "signin_domain::duration")]
    pub drain: Duration,
    /// After the drain, how long the requests already read have to finish before the process exits anyway.
    #[serde(with = "signin_domain::duration")]
    pub shutdown_timeout: Duration,
    /// Where Prometheus metrics are served (`GET /metrics`), apart from the site; empty: not served. Keep it on
    /// loopback or a private network.
    pub metrics_address: String,
    /// A bearer token `/metrics` requires when set (`APP__SERVER__METRICS_TOKEN`).
    #[serde(default)]
    pub metrics_token: Option<SecretString>,
}

impl ServerSettings {
    /// The connection settings, as the server uses them; `proxies` names the peers not held to the per-client
    /// share (`login.rate_limit`).
    pub fn connections(&self, proxies: &signin_login::RateLimitSettings) -> crate::serve::ConnectionSettings {
        crate::serve::ConnectionSettings {
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
            drain: self.drain,
            shutdown_timeout: self.shutdown_timeout,
            proxies: proxies.clone(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// Filter directives.
    pub filter: String,
}

impl Settings {
    /// Loads the settings from `SIGNIN_CONFIG_DIR` (default `./config`), the environment named by
    /// `APP_ENVIRONMENT`, and `APP__…` variables, and checks them.
    pub fn load() -> anyhow::Result<Self> {
        Self::from_source(ConfigSource::from_env())
    }

    /// Loads from the given directory and checks the result; `with_env` adds the `APP__…` variables.
    pub fn load_from(dir: &Path, environment: Option<&str>, with_env: bool) -> anyhow::Result<Self> {
        Self::from_source(Self::source(dir, environment, with_env))
    }

    /// Reads the layers without checking them, for callers that fill in the rest themselves (tests).
    pub fn read(dir: &Path, environment: Option<&str>, with_env: bool) -> anyhow::Result<Self> {
        Self::read_source(Self::source(dir, environment, with_env))
    }

    fn source(dir: &Path, environment: Option<&str>, with_env: bool) -> ConfigSource {
        let source = ConfigSource::new(dir).environment(environment);
        if with_env { source } else { source.without_variables() }
    }

    fn from_source(source: ConfigSource) -> anyhow::Result<Self> {
        let settings = Self::read_source(source)?;
        settings.check()?;
        Ok(settings)
    }

    /// The login library's layering (the same for every service on the site) over the defaults compiled in.
    fn read_source(source: ConfigSource) -> anyhow::Result<Self> {
        let source = source.with_defaults(DEFAULTS);
        let mut settings: Self = source.load()?;
        settings.environment = source.environment_name().map(str::to_owned);
        Ok(settings)
    }

    /// The main provider, then the others in the order of their ids, each with its id (a `[providers.<id>]`
    /// table's id is its name).
    pub fn all_providers(&self) -> impl Iterator<Item = (String, ProviderSettings)> + '_ {
        signin_login::SiteSettings::providers_of(Some(&self.oidc), &self.providers)
            .into_iter()
            .map(|provider| (provider.id(), provider))
    }

    /// Whether these are development settings (`APP_ENVIRONMENT=development`).
    pub fn is_development(&self) -> bool {
        self.environment.as_deref() == Some("development")
    }

    /// Fails fast on settings that cannot work. The crates check their own sections when they are built; this
    /// covers what only the binary knows.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.oidc.client_id.trim().is_empty() {
            bail!("oidc.client_id is empty: set APP__OIDC__CLIENT_ID (see the README for how to get one)");
        }
        if self.oidc.client_secret.expose_secret().is_empty() {
            bail!("oidc.client_secret is empty: set APP__OIDC__CLIENT_SECRET");
        }
        signin_domain::Issuer::parse(&self.oidc.issuer).context("oidc.issuer is not a valid issuer URL")?;
        for (id, provider) in self.all_providers().skip(1) {
            let id = id.to_ascii_uppercase();
            if provider.client_id.trim().is_empty() {
                bail!("providers.{}.client_id is empty: set APP__PROVIDERS__{id}__CLIENT_ID", id.to_lowercase());
            }
            if provider.client_secret.expose_secret().is_empty() {
                bail!(
                    "providers.{}.client_secret is empty: set APP__PROVIDERS__{id}__CLIENT_SECRET",
                    id.to_lowercase()
                );
            }
            signin_domain::Issuer::parse(&provider.issuer)
                .with_context(|| format!("providers.{}.issuer is not a valid issuer URL", id.to_lowercase()))?;
        }
        if self.server.max_connections == 0 || self.server.max_connections_per_client == 0 {
            bail!("server.max_connections and server.max_connections_per_client must be at least 1");
        }
        if self.server.body_read_timeout.is_zero() || self.server.body_read_timeout >= self.web.request_timeout {
            bail!(
                "server.body_read_timeout must be above 0 and below web.request_timeout (else a slow body is \
                 answered 503 when the request times out, rather than 408)"
            );
        }
        signin_login::Sessions::new(self.server.public_url.clone(), self.session.clone(), self.login.clone())?;
        if self.login.cookie_keys.is_empty() && !self.is_development() {
            bail!(
                "login.cookie_keys is empty: set APP__LOGIN__COOKIE_KEYS to a key made by `signin generate-key` \
                 (the same on every instance)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The compiled-in defaults alone (no files: the directory does not exist), with these variables.
    fn source(vars: &[(&str, &str)]) -> ConfigSource {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ConfigSource::new("/nonexistent").variables_from(vars).with_defaults(DEFAULTS)
    }

    fn base() -> Settings {
        let mut s: Settings = source(&[]).load().expect("defaults parse");
        s.oidc.client_id = "id".into();
        s.oidc.client_secret = "secret".into();
        s.login.cookie_keys = vec![signin_login::generate_cookie_key().into()];
        s
    }

    fn with_vars(vars: &[(&str, &str)]) -> Result<Settings, signin_login::Error> {
        source(vars).load()
    }

    /// The defaults exist once, in the settings types; `config/default.toml` documents them, and this proves it
    /// says what the types would do anyway (so a service that loads the shared sections without the app's file
    /// behaves as the app does).
    #[test]
    fn the_files_defaults_of_the_shared_sections_are_the_types_own() {
        let file = base();
        let same = |what: &str, from_file: String, from_type: String| {
            assert_eq!(from_file, from_type, "config/default.toml's [{what}] differs from the type's defaults");
        };
        same("session", format!("{:?}", file.session), format!("{:?}", SessionSettings::default()));
        let keyless = LoginSettings { cookie_keys: Vec::new(), ..file.login.clone() };
        same("login", format!("{keyless:?}"), format!("{:?}", LoginSettings::default()));
        same("web", format!("{:?}", file.web), format!("{:?}", WebSettings::default()));
        let google = ProviderSettings::new(signin_login::GOOGLE_ISSUER, "", "".into());
        let oidc = ProviderSettings { client_id: String::new(), client_secret: "".into(), ..file.oidc.clone() };
        same("oidc", format!("{oidc:?}"), format!("{google:?}"));
        let database = signin_login::DatabaseSettings::new(file.database.url.clone());
        same("database", format!("{:?}", file.database), format!("{database:?}"));
    }

    #[test]
    fn defaults_point_at_google_and_need_credentials() {
        let s = base();
        assert_eq!(s.oidc.issuer, "https://accounts.google.com");
        assert!(s.session.secure);
        assert_eq!(s.login.pending_login, Duration::from_secs(600));
        assert!(s.check().is_ok());
        let mut missing = base();
        missing.oidc.client_id.clear();
        assert!(missing.check().expect_err("no client id").to_string().contains("client_id"));
    }

    #[test]
    fn further_providers_come_from_tables_or_the_environment_and_need_credentials() {
        let mut s = with_vars(&[
            ("APP__PROVIDERS__CORP__ISSUER", "https://sso.example.com/realms/corp"),
            ("APP__PROVIDERS__CORP__CLIENT_ID", "signin"),
            ("APP__PROVIDERS__CORP__CLIENT_SECRET", "corp-secret"),
            ("APP__PROVIDERS__ALPHA__ISSUER", "https://alpha.example"),
            ("APP__PROVIDERS__ALPHA__CLIENT_ID", "a"),
            ("APP__PROVIDERS__ALPHA__CLIENT_SECRET", "alpha-secret"),
        ])
        .expect("layers parse");
        s.oidc.client_id = "id".into();
        s.oidc.client_secret = "secret".into();
        s.login.cookie_keys = vec![signin_login::generate_cookie_key().into()];
        let all: Vec<(String, String)> = s.all_providers().map(|(id, p)| (id, p.issuer)).collect();
        assert_eq!(
            all,
            [
                ("google".to_owned(), "https://accounts.google.com".to_owned()),
                ("alpha".to_owned(), "https://alpha.example".to_owned()),
                ("corp".to_owned(), "https://sso.example.com/realms/corp".to_owned()),
            ],
            "the main provider first, then by id"
        );
        assert!(s.all_providers().skip(1).all(|(id, p)| p.id() == id), "a table's id is its name");
        assert!(s.check().is_ok());
        s.providers.get_mut("corp").expect("corp").client_secret = "".into();
        let refused = s.check().expect_err("no secret").to_string();
        assert!(refused.contains("APP__PROVIDERS__CORP__CLIENT_SECRET"), "{refused}");
    }

    #[test]
    fn connection_limits_and_the_body_timeout_are_checked() {
        let s = base();
        assert_eq!(s.server.max_connections_per_client, 128);
        assert_eq!(s.server.body_read_timeout, Duration::from_secs(10));
        let mut none = base();
        none.server.max_connections_per_client = 0;
        assert!(none.check().expect_err("no share").to_string().contains("max_connections_per_client"));
        let mut slow = base();
        slow.server.body_read_timeout = slow.web.request_timeout;
        assert!(slow.check().expect_err("not below").to_string().contains("body_read_timeout"));
        let vars =
            with_vars(&[("APP__SERVER__MAX_CONNECTIONS_PER_CLIENT", "16"), ("APP__SERVER__BODY_READ_TIMEOUT", "5s")]);
        let vars = vars.expect("layers parse");
        assert_eq!(
            (vars.server.max_connections_per_client, vars.server.body_read_timeout),
            (16, Duration::from_secs(5))
        );
    }

    #[test]
    fn production_needs_an_attempt_cookie_key_and_development_does_not() {
        let mut s = base();
        s.login.cookie_keys.clear();
        assert!(s.check().expect_err("no key").to_string().contains("login.cookie_keys"));
        s.environment = Some("development".into());
        assert!(s.check().is_ok());
    }

    #[test]
    fn insecure_cookie_on_https_and_bad_cookie_names_are_refused() {
        let mut s = base();
        s.server.public_url = Url::parse("https://example.com").expect("url");
        s.session.secure = false;
        assert!(s.check().is_err());
        let mut s = base();
        s.session.cookie_name = "bad name;".into();
        assert!(s.check().expect_err("bad name").to_string().contains("session.cookie_name"));
    }

    #[test]
    fn environment_variables_override_the_files() {
        let key = signin_login::generate_cookie_key();
        let old = signin_login::generate_cookie_key();
        let keys = format!("{key},{old}");
        let mut s = with_vars(&[
            ("APP__SERVER__PORT", "8081"),
            ("APP__SERVER__PUBLIC_URL", "https://login.example.com"),
            ("APP__OIDC__CLIENT_ID", "123-abc.apps.googleusercontent.com"),
            ("APP__OIDC__CLIENT_SECRET", "9876543210"),
            ("APP__OIDC__SCOPES", "email,profile,openid"),
            ("APP__SESSION__SECURE", "true"),
            ("APP__SESSION__INACTIVITY", "2days"),
            ("APP__LOGIN__COOKIE_KEYS", &keys),
            ("APP__LOGIN__PENDING_LOGIN", "15m"),
        ])
        .expect("layers parse");
        assert_eq!(s.server.port, 8081);
        assert_eq!(s.server.public_url.as_str(), "https://login.example.com/");
        assert_eq!(s.oidc.client_id, "123-abc.apps.googleusercontent.com");
        assert_eq!(s.oidc.client_secret.expose_secret(), "9876543210");
        assert_eq!(s.oidc.scopes, ["email", "profile", "openid"]);
        assert_eq!(s.session.inactivity, Duration::from_secs(2 * 86400));
        assert_eq!(s.login.pending_login, Duration::from_secs(900));
        assert_eq!(s.login.cookie_keys.iter().map(|k| k.expose_secret().to_owned()).collect::<Vec<_>>(), [key, old]);
        s.environment = None;
        assert!(s.check().is_ok());
    }

    #[test]
    fn a_bad_duration_names_its_key() {
        let err = with_vars(&[("APP__SESSION__INACTIVITY", "soon")]).expect_err("not a duration").to_string();
        assert!(err.contains("session.inactivity") && err.contains("not a duration"), "{err}");
        let err = with_vars(&[("APP__LOGIN__PENDING_LOGIN", "-5")]).expect_err("negative").to_string();
        assert!(err.contains("login.pending_login"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = with_vars(&[("APP__SESSION__INACTIVITY_SECS", "60")]).expect_err("old key").to_string();
        assert!(err.contains("inactivity_secs"), "{err}");
    }

    #[test]
    fn the_secret_never_prints() {
        let mut s = base();
        s.oidc.client_secret = "super-secret-value".into();
        s.database.url = "mysql://u:db-password@h/db".into();
        let key = signin_login::generate_cookie_key();
        s.login.cookie_keys = vec![key.clone().into()];
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret-value"));
        assert!(!printed.contains("db-password"));
        assert!(!printed.contains(&key));
    }
}
