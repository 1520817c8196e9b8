//! The session store and middleware against a real MySQL/MariaDB server: one fresh database per test, with the
//! workspace's migrations applied (they create the `sessions` table).

mod feed;
mod grants;
mod middleware;
mod store;

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use signin_session::MySqlSessionStore;
use signin_testkit::TestDb;
use sqlx::MySqlPool;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};

/// A fresh, migrated database with a session store over it. Keep the `TestDb` alive for the test's length.
pub struct Fixture {
    pub _db: TestDb,
    pub pool: MySqlPool,
    pub store: MySqlSessionStore,
}

impl Fixture {
    pub async fn new() -> Self {
        let db = TestDb::create().await.expect("a test database");
        let url = SecretString::from(db.url());
        signin_persistence::run_migrations(&signin_persistence::DatabaseSettings::new(url.clone()))
            .await
            .expect("migrations run");
        let pool = signin_session::sqlx_pool(&url, 4, Duration::from_secs(3)).expect("a pool");
        let store = MySqlSessionStore::new(pool.clone()).expect("a store");
        Self { _db: db, pool, store }
    }

    /// Rows in the `sessions` table, expired or not.
    pub async fn rows(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions").fetch_one(&self.pool).await.expect("counted")
    }
}

/// A record with one value, expiring `ttl` from now (negative: already expired).
pub fn record(value: &str, ttl: time::Duration) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("k".to_owned(), serde_json::Value::from(value))]),
        expiry_date: OffsetDateTime::now_utc() + ttl,
    }
}
