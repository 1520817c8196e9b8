//! `notes-api`: serves the example API on `NOTES_ADDR` (default `127.0.0.1:3001`, public URL `NOTES_PUBLIC_URL`)
//! with the signin app's sessions. It reads the site's configuration as the app does (`SiteSettings::load`: the
//! files in `SIGNIN_CONFIG_DIR`, `APP_ENVIRONMENT`'s, the `APP__…` variables) for what it shares with the app:
//! `[session]` (the cookie, the lifetimes), the paths of `[login]` and `[database]` (where the sessions are).

use anyhow::Context as _;
use signin_login::{MySqlSessionStore, Sessions, SiteSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("NOTES_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let public_url = std::env::var("NOTES_PUBLIC_URL").unwrap_or_else(|_| format!("http://{addr}"));
    let site = SiteSettings::load()?;
    let pool = signin_login::sqlx_pool(&site.database.url, 4, site.database.connect_timeout)?;
    let sessions = Sessions::reader(public_url.parse().context("NOTES_PUBLIC_URL")?, &site)?;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, notes_api::app(&sessions, MySqlSessionStore::new(pool)?)).await?;
    Ok(())
}
