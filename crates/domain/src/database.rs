//! Where the database is and how to connect to it: one section, `[database]`, for every crate that opens a pool.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Where the database is and how to connect to it.
///
/// Deserialises from the `[database]` configuration section; `connect_timeout` is seconds (`3`, `0.5`) or a form
/// such as `"3s"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `mysql://user:password@host:port/database`.
    pub url: SecretString,
    /// Most connections the pool opens (default 8).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long to wait for a connection before reporting the database unavailable (default 3 s).
    #[serde(default = "default_connect_timeout", with = "crate::duration")]
    pub connect_timeout: Duration,
}

impl DatabaseSettings {
    /// Settings for a URL with the default pool size and timeout.
    pub fn new(url: SecretString) -> Self {
        Self { url, pool_size: default_pool_size(), connect_timeout: default_connect_timeout() }
    }
}

fn default_pool_size() -> usize {
    8
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
