//! Bulk-inserts signed-in sessions into the app's `sessions` table, for the load benchmark (scripts/bench).
//!
//! ```text
//! cargo run --release -p signin-session --example seed_sessions -- <mysql-url> <count> <cookie-file> [issuer]
//! ```
//!
//! Each row is what a real sign-in stores (see `AuthSession::sign_in` and `HashedIds`): a tower-sessions `Record`
//! under the stored id (SHA-256 of the cookie's id), holding `auth.user` (a `SessionUser`-shaped object),
//! `auth.csrf` (43 base64url characters) and `auth.seen` (now, Unix milliseconds), `auth.until` (30 days on), MessagePack-encoded as
//! `MySqlSessionStore` encodes it, expiring a week ahead. The cookie values (tower-sessions' `Id` as text), one a
//! line, go to `<cookie-file>` (line n is user n). `issuer` (default `http://127.0.0.1:4400`) is the users' issuer.
//!
//! Rows are inserted in the order of their primary key, so InnoDB appends to the table instead of splitting pages
//! all over a table larger than its buffer pool; 1,000,000 rows take some seconds.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::{BufWriter, Write as _};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use signin_session::HashedIds;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions as _, MySqlPool};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Attaches what was being done to an error.
fn context<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> Result<T, Error> {
    result.map_err(|err| format!("{what}: {err}").into())
}

/// Rows per `INSERT`.
const BATCH: usize = 1000;
/// `INSERT`s in flight at once.
const CONCURRENCY: usize = 4;

struct Row {
    stored_id: String,
    data: Vec<u8>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, count, cookie_file, rest @ ..] = args.as_slice() else {
        return Err("usage: seed_sessions <mysql-url> <count> <cookie-file> [issuer]".into());
    };
    let count: u64 = context(count.parse(), "count must be a number")?;
    let issuer = rest.first().map_or("http://127.0.0.1:4400", String::as_str);
    if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
        return Err("the issuer must be an http(s) URL".into());
    }
    let options: MySqlConnectOptions = context(url.parse(), "not a mysql:// URL")?;
    let pool = context(
        MySqlPoolOptions::new()
            .max_connections(u32::try_from(CONCURRENCY).unwrap_or(4))
            .connect_with(options.disable_statement_logging())
            .await,
        "connecting to the database",
    )?;

    let started = Instant::now();
    let expiry_date = OffsetDateTime::now_utc() + time::Duration::weeks(1);
    let seen = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let until = seen + 30 * 24 * 3600 * 1000; // the default absolute lifetime

    let mut rng = rand::rng();
    let mut cookies = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut rows = Vec::with_capacity(cookies.capacity());
    for n in 1..=count {
        let cookie_id = Id(i128::from_le_bytes({
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            bytes
        }));
        let stored_id = HashedIds::<()>::stored_id(&cookie_id);
        let mut csrf = [0u8; 32];
        rng.fill_bytes(&mut csrf);
        let mut data = HashMap::new();
        data.insert(
            "auth.user".to_owned(),
            serde_json::json!({
                "id": n,
                "issuer": issuer,
                "email": format!("bench{n}@example.com"),
                "name": format!("Bench {n}"),
                "picture": null,
            }),
        );
        data.insert("auth.csrf".to_owned(), serde_json::Value::String(URL_SAFE_NO_PAD.encode(csrf)));
        data.insert("auth.seen".to_owned(), serde_json::Value::from(seen));
        data.insert("auth.until".to_owned(), serde_json::Value::from(until));
        let record = Record { id: stored_id, data, expiry_date };
        rows.push(Row { stored_id: stored_id.to_string(), data: rmp_serde::to_vec(&record)? });
        cookies.push(cookie_id.to_string());
    }
    // The column is ascii_bin: byte order is the index order.
    rows.sort_unstable_by(|a, b| a.stored_id.cmp(&b.stored_id));
    let built = started.elapsed();

    let mut out = BufWriter::new(context(std::fs::File::create(cookie_file), "creating the cookie file")?);
    for cookie in &cookies {
        writeln!(out, "{cookie}")?;
    }
    out.flush()?;
    drop(cookies);

    // Sorted rows cut into batches; CONCURRENCY batches in flight, each an append to the end of the key range
    // already written (batches are handed out in key order).
    let batches: Vec<Vec<Row>> = {
        let mut batches = Vec::new();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            batches.push(rows.by_ref().take(BATCH).collect());
        }
        batches
    };
    let mut in_flight = tokio::task::JoinSet::new();
    for batch in batches {
        if in_flight.len() >= CONCURRENCY
            && let Some(done) = in_flight.join_next().await
        {
            done??;
        }
        in_flight.spawn(insert(pool.clone(), batch, expiry_date));
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    println!(
        "seeded {count} sessions in {:.1} s (records built in {:.1} s); cookies in {cookie_file}",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64()
    );
    Ok(())
}

async fn insert(pool: MySqlPool, batch: Vec<Row>, expiry_date: OffsetDateTime) -> Result<(), Error> {
    let mut sql = String::from("INSERT INTO sessions (id, data, expiry_date) VALUES ");
    sql.push_str(&vec!["(?,?,?)"; batch.len()].join(","));
    let mut query = sqlx::query(&sql);
    for row in batch {
        query = query.bind(row.stored_id).bind(row.data).bind(expiry_date);
    }
    context(query.execute(&pool).await, "inserting sessions")?;
    Ok(())
}
