//! The persistence crate against a real MySQL/MariaDB server: one fresh database per test.

mod migrations;
mod unavailable;
mod users;

use chrono::{DateTime, SubsecRound, Utc};
use secrecy::SecretString;
use signin_domain::{Identity, ProfileClaims};
use signin_persistence::{DatabaseSettings, DbPool, MySqlUserRepository};
use signin_testkit::TestDb;

/// A fresh, migrated database with a repository over it. Keep the `TestDb` alive for the test's length.
pub struct Fixture {
    pub db: TestDb,
    pub settings: DatabaseSettings,
    pub pool: DbPool,
    pub repo: MySqlUserRepository,
}

impl Fixture {
    pub async fn new() -> Self {
        let db = TestDb::create().await.expect("a test database");
        let settings = DatabaseSettings::new(SecretString::from(db.url()));
        signin_persistence::run_migrations(&settings).await.expect("migrations run");
        let pool = signin_persistence::pool(&settings).expect("a pool");
        let repo = MySqlUserRepository::new(pool.clone());
        Self { db, settings, pool, repo }
    }
}

/// An identity as the provider would state it.
pub fn identity(issuer: &str, subject: &str, email: &str, name: &str, picture: Option<&str>) -> Identity {
    Identity::from_claims(ProfileClaims {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        email_verified: Some(true),
        name: Some(name.to_owned()),
        given_name: None,
        picture: picture.map(ToOwned::to_owned),
    })
    .expect("a valid identity")
}

pub const GOOGLE: &str = "https://accounts.google.com";

/// Now, at the precision `DATETIME(6)` keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
