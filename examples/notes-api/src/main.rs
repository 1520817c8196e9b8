//! `notes-api`: serves the example API on `NOTES_ADDR` (default `127.0.0.1:3001`, public URL `NOTES_PUBLIC_URL`)
//! with the signin app's sessions. It reads the site's configuration as the app does (`SiteSettings::load`: the
//! files in `SIGNIN_CONFIG_DIR`, `APP_ENVIRONMENT`'s, the `APP__…` variables) for what it shares with the app:
//! `[session]` (the cookie, the lifetimes), the paths of `[login]`, `[oidc]` (to refresh people's tokens),
//! `login.cookie_keys` or `login.tokens.keys` (to open their grants) and `[database]`.

use std::time::Duration;

use anyhow::Context as _;
use signin_login::{MySqlSessionStore, Sessions, SiteSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("NOTES_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let public_url = std::env::var("NOTES_PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}"));
    let site = SiteSettings::load()?;
    let pool = signin_login::sqlx_pool(&site.database.url, 4, site.database.connect_timeout)?;
    let sessions = Sessions::reader(public_url.parse().context("NOTES_PUBLIC_URL")?, &site)?
        .act_for_people_in(&pool, site.all_providers())
        .await?;
    let provider = provider_api(&site).await?;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, notes_api::app(&sessions, MySqlSessionStore::new(pool)?, provider)).await?;
    Ok(())
}

/// The main provider's userinfo endpoint, from its discovery document.
async fn provider_api(site: &SiteSettings) -> anyhow::Result<notes_api::ProviderApi> {
    let issuer = &site.oidc.as_ref().context("[oidc] is not configured")?.issuer;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let discovery = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let document: serde_json::Value = http.get(&discovery).send().await?.error_for_status()?.json().await?;
    let url = document["userinfo_endpoint"].as_str().context("the provider has no userinfo endpoint")?.parse()?;
    Ok(notes_api::ProviderApi { url, http })
}
