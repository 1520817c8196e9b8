//! `notes-api`: serves the example API on `NOTES_ADDR` (default `127.0.0.1:3001`, public URL `NOTES_PUBLIC_URL`)
//! with the signin app's sessions. It reads the app's own configuration — `config/default.toml`,
//! `config/$APP_ENVIRONMENT.toml`, `config/local.toml` (from `SIGNIN_CONFIG_DIR`, default `./config`) and the
//! `APP__…` variables — for the two sections it shares with the app: `[session]` (the cookie, the lifetimes) and
//! `[database]` (where the sessions are).

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Deserialize;
use signin_login::{LoginSettings, MySqlSessionStore, SessionSettings, Sessions};

/// The parts of the app's configuration this service shares.
#[derive(Deserialize)]
struct Shared {
    session: SessionSettings,
    database: Database,
}

#[derive(Deserialize)]
struct Database {
    url: secrecy::SecretString,
    #[serde(with = "signin_domain::duration")]
    connect_timeout: std::time::Duration,
}

fn shared_config() -> anyhow::Result<Shared> {
    let dir = std::env::var_os("SIGNIN_CONFIG_DIR").map_or_else(|| PathBuf::from("config"), PathBuf::from);
    let mut layers = config::Config::builder().add_source(config::File::from(dir.join("default.toml")));
    if let Ok(environment) = std::env::var("APP_ENVIRONMENT") {
        layers = layers.add_source(config::File::from(dir.join(format!("{environment}.toml"))).required(false));
    }
    layers
        .add_source(config::File::from(dir.join("local.toml")).required(false))
        .add_source(config::Environment::with_prefix("APP").prefix_separator("__").separator("__").try_parsing(true))
        .build()
        .and_then(|layers| layers.try_deserialize())
        .context("reading the app's [session] and [database] settings")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("NOTES_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let public_url = std::env::var("NOTES_PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}"));
    let shared = shared_config()?;
    let pool = signin_login::sqlx_pool(&shared.database.url, 4, shared.database.connect_timeout)?;
    let store = MySqlSessionStore::new(pool)?;
    let sessions =
        Sessions::new(public_url.parse().context("NOTES_PUBLIC_URL")?, shared.session, LoginSettings::default())?;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, notes_api::app(&sessions, store)).await?;
    Ok(())
}
