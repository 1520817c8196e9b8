//! [`UserRepository`] on MySQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rand::Rng;
use signin_domain::{
    DisplayName, Email, Identity, Issuer, PictureUrl, RepositoryError, Subject, User, UserId, UserRepository,
};

use crate::schema::users;
use crate::{DbPool, PersistenceError};

/// How many times an upsert that lost a lock race is tried in all.
const UPSERT_ATTEMPTS: u32 = 6;
/// First back-off after a lost lock race; doubled on each further try, with jitter.
const UPSERT_BACKOFF: Duration = Duration::from_millis(5);

/// A user row as stored.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::mysql::Mysql))]
struct UserRow {
    id: u64,
    issuer: String,
    subject: String,
    email: String,
    name: String,
    picture_url: Option<String>,
    created_at: NaiveDateTime,
    last_login_at: NaiveDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = PersistenceError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        let corrupt = |err: signin_domain::DomainError| PersistenceError::CorruptRow(format!("user {}: {err}", row.id));
        Ok(User {
            id: UserId::new(row.id),
            issuer: Issuer::parse(&row.issuer).map_err(corrupt)?,
            subject: Subject::parse(&row.subject).map_err(corrupt)?,
            email: Email::parse(&row.email).map_err(corrupt)?,
            name: DisplayName::parse(&row.name).map_err(corrupt)?,
            picture: row.picture_url.as_deref().map(PictureUrl::parse).transpose().map_err(corrupt)?,
            created_at: row.created_at.and_utc(),
            last_login_at: row.last_login_at.and_utc(),
        })
    }
}

/// A user row to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    issuer: &'a str,
    subject: &'a str,
    email: &'a str,
    name: &'a str,
    picture_url: Option<&'a str>,
    created_at: NaiveDateTime,
    last_login_at: NaiveDateTime,
}

impl<'a> NewUser<'a> {
    fn new(identity: &'a Identity, at: DateTime<Utc>) -> Self {
        let at = at.naive_utc();
        Self {
            issuer: identity.issuer.as_ref(),
            subject: identity.subject.as_ref(),
            email: identity.email.as_ref(),
            name: identity.name.as_ref(),
            picture_url: identity.picture.as_ref().map(AsRef::as_ref),
            created_at: at,
            last_login_at: at,
        }
    }

    /// Inserts the row, or refreshes the profile and last-login time of the row with the same (issuer, subject).
    /// `id` and `created_at` of an existing row are left alone (unlike `REPLACE`, which would delete and re-insert).
    async fn upsert(&self, conn: &mut diesel_async::AsyncMysqlConnection) -> QueryResult<usize> {
        diesel::insert_into(users::table)
            .values(self)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set((
                users::email.eq(self.email),
                users::name.eq(self.name),
                users::picture_url.eq(self.picture_url),
                users::last_login_at.eq(self.last_login_at),
            ))
            .execute(conn)
            .await
    }
}

/// Users in MySQL, through a diesel-async pool.
#[derive(Clone)]
pub struct MySqlUserRepository {
    pool: DbPool,
}

impl std::fmt::Debug for MySqlUserRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlUserRepository").field("pool", &self.pool.status()).finish()
    }
}

impl MySqlUserRepository {
    /// A repository over the pool.
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_and_fetch(&self, identity: &Identity, at: DateTime<Utc>) -> Result<User, PersistenceError> {
        let new = NewUser::new(identity, at);
        let mut attempt = 1;
        loop {
            match self.try_upsert_and_fetch(&new).await {
                Err(err) if err.is_retryable() && attempt < UPSERT_ATTEMPTS => {
                    // Concurrent upserts of one key can deadlock in InnoDB (both take the unique-key lock, then
                    // wait for each other's row lock). The server rolled the statement back; running it again is
                    // safe and the remedy MySQL documents.
                    let base = UPSERT_BACKOFF * 2u32.pow(attempt - 1);
                    let jitter = rand::rng().random_range(0..=base.as_micros() as u64);
                    tracing::debug!(attempt, error = %err, "user upsert lost a lock race; retrying");
                    tokio::time::sleep(base + Duration::from_micros(jitter)).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_upsert_and_fetch(&self, new: &NewUser<'_>) -> Result<User, PersistenceError> {
        let mut conn = self.pool.get().await?;
        new.upsert(&mut conn).await?;
        // MySQL has no RETURNING: read the row back by its natural key.
        let row: UserRow = users::table
            .filter(users::issuer.eq(new.issuer))
            .filter(users::subject.eq(new.subject))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await?;
        row.try_into()
    }

    #[tracing::instrument(skip_all)]
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, PersistenceError> {
        let mut conn = self.pool.get().await?;
        let row: Option<UserRow> =
            users::table.find(id.get()).select(UserRow::as_select()).first(&mut conn).await.optional()?;
        row.map(User::try_from).transpose()
    }

    async fn by_email(&self, email: &str) -> Result<Vec<User>, PersistenceError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<UserRow> =
            users::table.filter(users::email.eq(email)).select(UserRow::as_select()).load(&mut conn).await?;
        rows.into_iter().map(User::try_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_identity(&self, issuer: &str, subject: &str) -> Result<bool, PersistenceError> {
        let mut conn = self.pool.get().await?;
        let deleted = diesel::delete(users::table.filter(users::issuer.eq(issuer)).filter(users::subject.eq(subject)))
            .execute(&mut conn)
            .await?;
        Ok(deleted > 0)
    }

    #[tracing::instrument(skip_all)]
    async fn select_one(&self) -> Result<(), PersistenceError> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}

#[async_trait]
impl UserRepository for MySqlUserRepository {
    async fn record_login(&self, identity: &Identity, at: DateTime<Utc>) -> Result<User, RepositoryError> {
        Ok(self.upsert_and_fetch(identity, at).await?)
    }

    async fn find(&self, id: UserId) -> Result<Option<User>, RepositoryError> {
        Ok(self.find_by_id(id).await?)
    }

    async fn find_by_email(&self, email: &str) -> Result<Vec<User>, RepositoryError> {
        Ok(self.by_email(email).await?)
    }

    async fn forget(&self, issuer: &str, subject: &str) -> Result<bool, RepositoryError> {
        Ok(self.delete_identity(issuer, subject).await?)
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        Ok(self.select_one().await?)
    }
}
