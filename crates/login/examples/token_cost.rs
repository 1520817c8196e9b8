//! What handing a handler the person's access token costs, beside a plain signed-in request, in one run:
//! `GET /me` (`CurrentUser`) and `GET /token` (`AccessToken`), interleaved, through the whole router (session
//! layer, extractors). Sessions are in memory; the grants in MariaDB (`SIGNIN_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`), in a database of its own. Twice: at the default configuration (a grant read is
//! served from memory within `session.cache.coherence`), and with the session cache off (every request reads its
//! grant from MySQL and opens it).
//!
//! `cargo run --release -p signin-login --example token_cost [rounds]`
#![allow(clippy::print_stdout)] // a benchmark's output is its figures

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use signin_auth::fake::FakeProvider;
use signin_login::{AccessToken, Claims, CurrentUser, KeepClaims, Login, LoginSettings, SessionSettings, Sessions};
use tower::ServiceExt as _;

async fn me(CurrentUser(user): CurrentUser<Claims>) -> String {
    user.profile.subject
}

async fn token(token: AccessToken) -> String {
    token.scopes().len().to_string()
}

async fn call(app: &Router, uri: &str, cookie: &str) -> StatusCode {
    let request = Request::get(uri).header(header::COOKIE, cookie).body(Body::empty()).expect("a request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let _ = axum::body::to_bytes(response.into_body(), 1 << 16).await;
    status
}

/// The `Set-Cookie` pairs of a response.
fn set_cookies(response: &axum::response::Response) -> Vec<String> {
    let values = response.headers().get_all(header::SET_COOKIE).iter();
    values.filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned)).collect()
}

/// A site whose grants are in `pool`, with the session cache on or off, and a signed-in session cookie.
async fn site(pool: &sqlx::MySqlPool, cache: bool) -> anyhow::Result<(Router, String)> {
    // A person of each site's own: the two sites have keys of their own, and share the table.
    let person = if cache { "ada" } else { "bob" };
    let mut claims = Claims::new("https://idp.example", person);
    claims.profile.email = Some(format!("{person}@example.com"));
    let idp = Arc::new(FakeProvider::new("oidc", "https://idp.example", "Example", claims).with_offline_access(&[]));
    let login_settings =
        LoginSettings { cookie_keys: vec![signin_login::generate_cookie_key().into()], ..LoginSettings::default() };
    let mut session = SessionSettings { secure: true, ..SessionSettings::default() };
    session.cache.enabled = cache;
    let sessions = Sessions::new("https://example.com".parse()?, session, login_settings)?;
    // Only the grants in MySQL: the measured difference is theirs.
    let login = Login::builder(sessions.clone(), KeepClaims)
        .providers(vec![idp.clone()])
        .stores(
            Arc::new(signin_login::MemoryUsedTokens::default()),
            Arc::new(signin_login::MemoryAccountHolds::default()),
            Arc::new(signin_login::MySqlGrants::new(pool.clone())),
        )
        .build()?;
    let app = Router::new()
        .route("/me", get(me))
        .route("/token", get(token))
        .merge(login.routes())
        .layer(sessions.layer(tower_sessions::MemoryStore::default()));

    // A sign-in through the routes, with the fake provider.
    let start = app.clone().oneshot(Request::get("/login").body(Body::empty())?).await?;
    let location: url::Url = start.headers()[header::LOCATION].to_str()?.parse()?;
    let state = location.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let callback = format!("/login/callback?code={}&state={state}", idp.good_code());
    let request = Request::get(callback).header(header::COOKIE, set_cookies(&start).join("; ")).body(Body::empty())?;
    let signed_in = app.clone().oneshot(request).await?;
    anyhow::ensure!(signed_in.status() == StatusCode::SEE_OTHER, "the sign-in answered {}", signed_in.status());
    let session = set_cookies(&signed_in)
        .into_iter()
        .find(|c| c.starts_with("__Host-signin_session="))
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?;
    anyhow::ensure!(call(&app, "/me", &session).await == StatusCode::OK, "/me refused");
    anyhow::ensure!(call(&app, "/token", &session).await == StatusCode::OK, "/token refused");
    Ok((app, session))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Warnings only: the figures are for the extractors, not for writing log lines.
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(5);
    let db = signin_testkit::TestDb::create().await?;
    create_grants_table(&db.url()).await?;
    let pool = signin_login::sqlx_pool(&db.url().into(), 4, Duration::from_secs(3))?;
    let cached = site(&pool, true).await?;
    let uncached = site(&pool, false).await?;

    const PER_ROUND: u32 = 2000;
    let runs = [
        ("signed-in request (CurrentUser)", &cached, "/me"),
        ("token-using request (AccessToken)", &cached, "/token"),
        ("signed-in request, no cache", &uncached, "/me"),
        ("token-using request, no cache", &uncached, "/token"),
    ];
    let mut totals = [Duration::ZERO; 4];
    for _ in 0..rounds {
        for ((_, (app, cookie), uri), total) in runs.iter().zip(totals.iter_mut()) {
            let started = Instant::now();
            for _ in 0..PER_ROUND {
                anyhow::ensure!(call(app, uri, cookie).await == StatusCode::OK, "{uri} refused");
            }
            *total += started.elapsed();
        }
    }
    for ((name, _, _), total) in runs.iter().zip(totals) {
        let micros = total.as_secs_f64() * 1e6 / f64::from(PER_ROUND) / rounds as f64;
        println!("{name:<36} {micros:>8.1} µs");
    }
    Ok(())
}

/// The `provider_grants` table, as the workspace migration creates it.
async fn create_grants_table(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut conn = sqlx::MySqlConnection::connect(url).await?;
    let up = include_str!("../../../migrations/2026-12-08-000009_create_provider_grants/up.sql");
    let statement: Vec<&str> = up.lines().filter(|line| !line.trim_start().starts_with("--")).collect();
    sqlx::query(&statement.join("\n")).execute(&mut conn).await?;
    Ok(())
}
