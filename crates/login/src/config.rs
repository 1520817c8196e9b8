//! The site's configuration, layered once for every service on the site: the same files, the same environment
//! variables and the same error messages, whether the signin binary reads them or a service of its own does.
//!
//! The layers, each overriding the one before: settings compiled into the program ([`ConfigSource::with_defaults`],
//! the binary's `config/default.toml`), then `<dir>/default.toml`, `<dir>/<APP_ENVIRONMENT>.toml` and
//! `<dir>/local.toml` (each optional), then `APP__SECTION__KEY` variables (`APP__OIDC__CLIENT_SECRET`;
//! `oidc.scopes`, `oidc.grantable_scopes`, `login.cookie_keys`, `login.tokens.keys`, `login.hosted_domains`, `login.email_domains` and
//! `login.rate_limit.trusted_proxies` take comma-separated lists). The settings types' own defaults fill in what no
//! layer sets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use signin_domain::DatabaseSettings;

use crate::{Error, LoginSettings, ProviderSettings, SessionSettings};

/// Where a site's configuration comes from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    dir: PathBuf,
    environment: Option<String>,
    variables: bool,
    /// Variables to read instead of the process's (tests).
    given: Option<std::collections::HashMap<String, String>>,
    defaults: Option<&'static str>,
}

impl ConfigSource {
    /// What the process was started with: the directory `SIGNIN_CONFIG_DIR` (default `./config`), the environment
    /// `APP_ENVIRONMENT`, and the `APP__…` variables.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("SIGNIN_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from);
        Self::new(dir).environment(std::env::var("APP_ENVIRONMENT").ok().as_deref())
    }

    /// The files in `dir` and the `APP__…` variables, with no environment's file.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), environment: None, variables: true, given: None, defaults: None }
    }

    /// Reads `<dir>/<name>.toml` too (`development`, `production`); an empty name reads none.
    #[must_use]
    pub fn environment(mut self, name: Option<&str>) -> Self {
        self.environment = name.filter(|name| !name.is_empty()).map(str::to_owned);
        self
    }

    /// Leaves the `APP__…` variables out (tests).
    #[must_use]
    pub fn without_variables(mut self) -> Self {
        self.variables = false;
        self
    }

    /// Reads these `APP__…` variables instead of the process's (tests).
    #[must_use]
    pub fn variables_from(mut self, variables: std::collections::HashMap<String, String>) -> Self {
        self.variables = true;
        self.given = Some(variables);
        self
    }

    /// Puts this TOML below every file, so that a program runs from any directory.
    #[must_use]
    pub fn with_defaults(mut self, toml: &'static str) -> Self {
        self.defaults = Some(toml);
        self
    }

    /// The environment whose file is read, if any.
    pub fn environment_name(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// Reads the layers into `T`: [`SiteSettings`], or a service's own settings type with the sections it needs.
    /// An error names the key and the file or variable at fault.
    pub fn load<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let mut builder = config::Config::builder();
        if let Some(defaults) = self.defaults {
            builder = builder.add_source(config::File::from_str(defaults, config::FileFormat::Toml));
        }
        builder = builder.add_source(config::File::from(self.dir.join("default.toml")).required(false));
        if let Some(env) = &self.environment {
            if !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::Config(
                    "APP_ENVIRONMENT must be a plain name such as development or production".into(),
                ));
            }
            builder = builder.add_source(config::File::from(self.dir.join(format!("{env}.toml"))).required(false));
        }
        builder = builder.add_source(config::File::from(self.dir.join("local.toml")).required(false));
        if self.variables {
            builder = builder.add_source(app_variables().source(self.given.clone()));
        }
        builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|err| Error::Config(format!("reading the configuration: {err}")))
    }
}

/// The `APP__SECTION__KEY` variables.
fn app_variables() -> config::Environment {
    config::Environment::with_prefix("APP")
        .prefix_separator("__")
        .separator("__")
        .list_separator(",")
        .with_list_parse_key("oidc.scopes")
        .with_list_parse_key("login.cookie_keys")
        .with_list_parse_key("login.tokens.keys")
        .with_list_parse_key("oidc.grantable_scopes")
        .with_list_parse_key("login.rate_limit.trusted_proxies")
        .with_list_parse_key("login.hosted_domains")
        .with_list_parse_key("login.email_domains")
        .try_parsing(true)
}

/// The sections every service of a site shares: `[session]`, `[login]`, `[oidc]`, `[providers.<id>]` and
/// `[database]`. Other sections (a program's own) are left to it.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteSettings {
    /// `[session]`: the cookie, the lifetimes, the cache.
    #[serde(default)]
    pub session: SessionSettings,
    /// `[login]`: the sign-in paths and attempt cookies (a service that only reads the sessions uses the paths).
    #[serde(default)]
    pub login: LoginSettings,
    /// `[oidc]`: the main provider, for a service that signs people in.
    #[serde(default)]
    pub oidc: Option<ProviderSettings>,
    /// `[providers.<id>]`: the further providers, by id.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSettings>,
    /// `[database]`: where the sessions (and the users) are.
    pub database: DatabaseSettings,
}

impl SiteSettings {
    /// The site's settings as the process was started with them ([`ConfigSource::from_env`]).
    pub fn load() -> Result<Self, Error> {
        ConfigSource::from_env().load()
    }

    /// The main provider, then the others in the order of their ids, each with its id (a `[providers.<id>]`
    /// table's id is its name).
    pub fn all_providers(&self) -> Vec<ProviderSettings> {
        Self::providers_of(self.oidc.as_ref(), &self.providers)
    }

    /// The same for a program that keeps the two sections in a settings type of its own.
    pub fn providers_of(
        main: Option<&ProviderSettings>,
        others: &BTreeMap<String, ProviderSettings>,
    ) -> Vec<ProviderSettings> {
        providers_in_order(main, others)
    }
}

/// The main provider, then `others` in the order of their ids, each with its id.
fn providers_in_order(
    main: Option<&ProviderSettings>,
    others: &BTreeMap<String, ProviderSettings>,
) -> Vec<ProviderSettings> {
    main.cloned()
        .into_iter()
        .chain(others.iter().map(|(id, provider)| ProviderSettings { id: Some(id.clone()), ..provider.clone() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of configuration files, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn with(files: &[(&str, &str)]) -> Self {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!("signin-config-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory");
            for (name, text) in files {
                std::fs::write(dir.join(name), text).expect("a file");
            }
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn each_layer_overrides_the_one_before_and_the_types_fill_in_the_rest() {
        let dir = Dir::with(&[
            (
                "default.toml",
                "[database]\nurl = \"mysql://db/a\"\n[login]\nlogin_path = \"/signin\"\ncallback_path = \"/signin/back\"\n",
            ),
            ("staging.toml", "[database]\nurl = \"mysql://db/b\"\n"),
            ("local.toml", "[session]\ncookie_name = \"local\"\n"),
        ]);
        let site: SiteSettings =
            ConfigSource::new(&dir.0).environment(Some("staging")).without_variables().load().expect("loads");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&site.database.url), "mysql://db/b");
        assert_eq!(site.login.login_path, "/signin", "the paths a reader shares");
        assert_eq!(site.session.cookie_name, "local");
        assert_eq!(site.login.logout_path, LoginSettings::default().logout_path, "a default where no layer says");
        assert!(site.oidc.is_none() && site.providers.is_empty());

        let defaults = ConfigSource::new(&dir.0).without_variables().with_defaults("[session]\ncookie_name = \"x\"\n");
        let site: SiteSettings = defaults.load().expect("loads");
        assert_eq!(site.session.cookie_name, "local", "files override the compiled-in defaults");
    }

    #[test]
    fn errors_name_the_key() {
        let dir = Dir::with(&[("default.toml", "[database]\nurl = \"mysql://db/a\"\npool_size = \"many\"\n")]);
        let err = ConfigSource::new(&dir.0).without_variables().load::<SiteSettings>().expect_err("refused");
        assert!(err.to_string().contains("database.pool_size"), "{err}");
        let err = ConfigSource::new(&dir.0).environment(Some("../etc")).load::<SiteSettings>().expect_err("refused");
        assert!(err.to_string().contains("APP_ENVIRONMENT"), "{err}");
        let empty = Dir::with(&[]);
        let err = ConfigSource::new(&empty.0).without_variables().load::<SiteSettings>().expect_err("no database");
        assert!(err.to_string().contains("database"), "{err}");
    }
}
