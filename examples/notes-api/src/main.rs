//! `notes-api`: serves the example API on `NOTES_ADDR` (default `127.0.0.1:3001`) with the sessions of the signin
//! app in the database at `NOTES_DATABASE_URL` (default the signin app's), under the cookie `NOTES_COOKIE_NAME`
//! (default `signin_session`; `NOTES_COOKIE_SECURE=false` for plain-http development).

use std::time::Duration;

use anyhow::Context as _;
use signin_login::{LoginSettings, MySqlSessionStore, SessionSettings, Sessions};

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = var("NOTES_ADDR", "127.0.0.1:3001");
    let public_url = var("NOTES_PUBLIC_URL", &format!("http://{addr}")).parse().context("NOTES_PUBLIC_URL")?;
    let database = var("NOTES_DATABASE_URL", "mysql://root@127.0.0.1:3306/signin").into();
    let session = SessionSettings {
        cookie_name: var("NOTES_COOKIE_NAME", "signin_session"),
        secure: var("NOTES_COOKIE_SECURE", "true") != "false",
        ..SessionSettings::default()
    };
    let store = MySqlSessionStore::new(signin_login::sqlx_pool(&database, 4, Duration::from_secs(3))?)?;
    let sessions = Sessions::new(public_url, session, LoginSettings::default())?;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, notes_api::app(&sessions, store)).await?;
    Ok(())
}
