//! One fresh database per test.

use anyhow::Context;
use sqlx::{Connection, MySqlConnection};

/// A database made for one test and dropped when the value is dropped.
///
/// On MySQL DDL commits implicitly, so tests cannot hide migrations in a rolled-back transaction; a database each
/// keeps tests apart and lets them run in parallel.
#[derive(Debug)]
pub struct TestDb {
    server_url: String,
    name: String,
}

impl TestDb {
    /// Creates an empty database with a unique name on the test server.
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&crate::mysql_server_url()).await
    }

    /// Creates an empty database with a unique name on the given server (`mysql://user:pw@host:port`).
    pub async fn create_on(server_url: &str) -> anyhow::Result<Self> {
        let name = format!("signin_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = MySqlConnection::connect(server_url)
            .await
            .with_context(|| format!("connecting to the test MySQL server at {server_url}"))?;
        sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .execute(&mut conn)
            .await
            .context("creating the test database")?;
        conn.close().await.ok();
        Ok(Self { server_url: server_url.trim_end_matches('/').to_owned(), name })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL for the database: `mysql://…/name`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside or outside a runtime; a thread of its own with its own small runtime works in both.
        let url = self.server_url.clone();
        let name = std::mem::take(&mut self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async move {
                let mut conn = MySqlConnection::connect(&url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: a test database was left behind; `scripts/test` removes leftovers");
        }
    }
}
