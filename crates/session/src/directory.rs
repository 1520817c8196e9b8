//! Which sessions a person has: an index from the signed-in identity (the "owner": issuer and subject) to the
//! stored ids of their sessions, so that the person can see and end them, and an operator can end all of someone's
//! sessions. The session records themselves stay in the session store; this holds only what the store cannot be
//! asked ("which sessions are this person's?").

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::MySqlPool;
use time::OffsetDateTime;
use tower_sessions::session::Id;

use crate::BoxError;

/// The owner key of an identity: its issuer and subject, which together name one account at one provider.
pub fn owner_key(issuer: &str, subject: &str) -> String {
    format!("{issuer} {subject}")
}

/// The key of a provider's session: its issuer and the `sid` its ID tokens and logout tokens carry (a `sid` is
/// unique only at its issuer).
pub fn provider_session_key(issuer: &str, sid: &str) -> String {
    format!("{issuer} {sid}")
}

/// One session of a person, as the directory knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The session's id in the store (never its cookie value: see [`crate::HashedIds`]).
    pub id: Id,
    /// When the person signed in.
    pub signed_in_at: OffsetDateTime,
    /// The browser's `User-Agent` at sign-in (at most [`MAX_USER_AGENT`] characters).
    pub user_agent: String,
    /// The provider's session the sign-in belongs to ([`provider_session_key`]), when the ID token named one.
    pub provider_session: Option<String>,
}

/// The longest `User-Agent` kept.
pub const MAX_USER_AGENT: usize = 256;

/// Where the directory lives. Every instance must use the same one.
#[async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// Records a new session of `owner`.
    async fn add(&self, owner: &str, entry: &DirectoryEntry) -> Result<(), BoxError>;
    /// The sessions of `owner` the directory knows (some may have expired since).
    async fn list(&self, owner: &str) -> Result<Vec<DirectoryEntry>, BoxError>;
    /// Forgets a session (signed out, expired, rotated).
    async fn remove(&self, id: &Id) -> Result<(), BoxError>;
    /// The sessions begun in the provider's session `key` ([`provider_session_key`]), with their owners.
    async fn in_provider_session(&self, key: &str) -> Result<Vec<(String, DirectoryEntry)>, BoxError>;
}

/// The directory in MySQL: the `session_owners` table (created by the workspace migrations).
pub struct MySqlSessionDirectory {
    pool: MySqlPool,
}

impl MySqlSessionDirectory {
    /// The directory in the database of `pool`.
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }
}

impl fmt::Debug for MySqlSessionDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MySqlSessionDirectory")
    }
}

fn truncated(agent: &str) -> &str {
    match agent.char_indices().nth(MAX_USER_AGENT) {
        Some((at, _)) => &agent[..at],
        None => agent,
    }
}

#[async_trait]
impl SessionDirectory for MySqlSessionDirectory {
    async fn add(&self, owner: &str, entry: &DirectoryEntry) -> Result<(), BoxError> {
        let at = entry.signed_in_at.to_offset(time::UtcOffset::UTC);
        sqlx::query(
            "REPLACE INTO session_owners (id, owner, signed_in_at, user_agent, provider_session) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(entry.id.to_string())
        .bind(owner)
        .bind(time::PrimitiveDateTime::new(at.date(), at.time()))
        .bind(truncated(&entry.user_agent))
        .bind(entry.provider_session.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list(&self, owner: &str) -> Result<Vec<DirectoryEntry>, BoxError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT CAST(owner AS CHAR), CAST(id AS CHAR), signed_in_at, user_agent, CAST(provider_session AS CHAR) \
             FROM session_owners WHERE owner = ? ORDER BY signed_in_at DESC LIMIT 1000",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(entry).map(|(_, entry)| entry).collect())
    }

    async fn in_provider_session(&self, key: &str) -> Result<Vec<(String, DirectoryEntry)>, BoxError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT CAST(owner AS CHAR), CAST(id AS CHAR), signed_in_at, user_agent, CAST(provider_session AS CHAR) \
             FROM session_owners WHERE provider_session = ? LIMIT 1000",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(entry).collect())
    }

    async fn remove(&self, id: &Id) -> Result<(), BoxError> {
        sqlx::query("DELETE FROM session_owners WHERE id = ?").bind(id.to_string()).execute(&self.pool).await?;
        Ok(())
    }
}

/// A `session_owners` row: owner, id, sign-in time, User-Agent, provider session.
type Row = (String, String, time::PrimitiveDateTime, String, Option<String>);

fn entry((owner, id, at, user_agent, provider_session): Row) -> Option<(String, DirectoryEntry)> {
    Some((owner, DirectoryEntry { id: id.parse().ok()?, signed_in_at: at.assume_utc(), user_agent, provider_session }))
}

/// A directory in memory, for tests and single-process services.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    entries: Mutex<HashMap<String, Vec<DirectoryEntry>>>,
}

#[async_trait]
impl SessionDirectory for MemoryDirectory {
    async fn add(&self, owner: &str, entry: &DirectoryEntry) -> Result<(), BoxError> {
        let mut entries = self.entries.lock().map_err(|_| "poisoned")?;
        let mut entry = entry.clone();
        entry.user_agent = truncated(&entry.user_agent).to_owned();
        entries.entry(owner.to_owned()).or_default().push(entry);
        Ok(())
    }

    async fn list(&self, owner: &str) -> Result<Vec<DirectoryEntry>, BoxError> {
        let entries = self.entries.lock().map_err(|_| "poisoned")?;
        let mut list = entries.get(owner).cloned().unwrap_or_default();
        list.sort_by_key(|entry| std::cmp::Reverse(entry.signed_in_at));
        Ok(list)
    }

    async fn remove(&self, id: &Id) -> Result<(), BoxError> {
        let mut entries = self.entries.lock().map_err(|_| "poisoned")?;
        for list in entries.values_mut() {
            list.retain(|entry| entry.id != *id);
        }
        entries.retain(|_, list| !list.is_empty());
        Ok(())
    }

    async fn in_provider_session(&self, key: &str) -> Result<Vec<(String, DirectoryEntry)>, BoxError> {
        let entries = self.entries.lock().map_err(|_| "poisoned")?;
        Ok(entries
            .iter()
            .flat_map(|(owner, list)| list.iter().map(move |entry| (owner, entry)))
            .filter(|(_, entry)| entry.provider_session.as_deref() == Some(key))
            .map(|(owner, entry)| (owner.clone(), entry.clone()))
            .collect())
    }
}

/// A session of a person that is still live: its directory entry, and its record from the store.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// What the directory knows.
    pub entry: DirectoryEntry,
    /// When the session was last seen (its `auth.seen`).
    pub last_seen: Option<OffsetDateTime>,
}

/// The live sessions of `owner`, newest first. `store` is the store under [`crate::HashedIds`] (it is asked by
/// stored id). Entries whose session has expired or gone are forgotten on the way.
pub async fn live_sessions(
    store: &dyn tower_sessions::SessionStore,
    directory: &dyn SessionDirectory,
    owner: &str,
) -> Result<Vec<LiveSession>, BoxError> {
    let mut live = Vec::new();
    for entry in directory.list(owner).await? {
        let Some(record) = store.load(&entry.id).await? else {
            directory.remove(&entry.id).await?;
            continue;
        };
        // A record that no longer names this owner (a session signed in again as someone else) is not theirs.
        if record.data.get(crate::AuthSession::OWNER).and_then(|v| v.as_str()) != Some(owner) {
            directory.remove(&entry.id).await?;
            continue;
        }
        let last_seen = record
            .data
            .get("auth.seen")
            .and_then(serde_json::Value::as_i64)
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
        live.push(LiveSession { entry, last_seen });
    }
    Ok(live)
}

/// Ends one session of `owner` (deleted from the store, so every instance refuses it); `false` when `id` is not one
/// of theirs.
pub async fn end_session(
    store: &dyn tower_sessions::SessionStore,
    directory: &dyn SessionDirectory,
    owner: &str,
    id: &Id,
) -> Result<bool, BoxError> {
    if !directory.list(owner).await?.iter().any(|entry| entry.id == *id) {
        return Ok(false);
    }
    store.delete(id).await?;
    directory.remove(id).await?;
    Ok(true)
}

/// Ends the sessions begun in the provider's session `key` ([`provider_session_key`]); only `owner`'s when given
/// (a logout token that names both a subject and a session), and then also `owner`'s sessions whose sign-in named
/// no provider session, which cannot be told apart from that one's. Returns how many it ended.
pub async fn end_provider_session(
    store: &dyn tower_sessions::SessionStore,
    directory: &dyn SessionDirectory,
    key: &str,
    owner: Option<&str>,
) -> Result<usize, BoxError> {
    let mut ending: Vec<DirectoryEntry> = directory
        .in_provider_session(key)
        .await?
        .into_iter()
        .filter(|(of, _)| owner.is_none_or(|owner| owner == of))
        .map(|(_, entry)| entry)
        .collect();
    if let Some(owner) = owner {
        ending.extend(directory.list(owner).await?.into_iter().filter(|entry| entry.provider_session.is_none()));
    }
    for entry in &ending {
        store.delete(&entry.id).await?;
        directory.remove(&entry.id).await?;
    }
    Ok(ending.len())
}

/// Ends every session of `owner`; returns how many the directory listed.
pub async fn end_all_sessions(
    store: &dyn tower_sessions::SessionStore,
    directory: &dyn SessionDirectory,
    owner: &str,
) -> Result<usize, BoxError> {
    // A listing is capped (1,000 in MySQL); list again until nothing is left.
    let mut ended = 0;
    for _ in 0..10_000 {
        let entries = directory.list(owner).await?;
        if entries.is_empty() {
            break;
        }
        for entry in &entries {
            store.delete(&entry.id).await?;
            directory.remove(&entry.id).await?;
        }
        ended += entries.len();
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use tower_sessions::MemoryStore;
    use tower_sessions::session::Record;
    use tower_sessions::session_store::SessionStore as _;

    use super::*;

    /// A directory whose listings are capped, as MySQL's are (at 1,000).
    #[derive(Default)]
    struct Capped(MemoryDirectory);

    #[async_trait]
    impl SessionDirectory for Capped {
        async fn add(&self, owner: &str, entry: &DirectoryEntry) -> Result<(), BoxError> {
            self.0.add(owner, entry).await
        }
        async fn list(&self, owner: &str) -> Result<Vec<DirectoryEntry>, BoxError> {
            Ok(self.0.list(owner).await?.into_iter().take(2).collect())
        }
        async fn remove(&self, id: &Id) -> Result<(), BoxError> {
            self.0.remove(id).await
        }
        async fn in_provider_session(&self, key: &str) -> Result<Vec<(String, DirectoryEntry)>, BoxError> {
            self.0.in_provider_session(key).await
        }
    }

    #[tokio::test]
    async fn ending_every_session_goes_past_a_capped_listing() {
        let store = MemoryStore::default();
        let directory = Capped::default();
        for _ in 0..5 {
            let mut record = Record {
                id: Id::default(),
                data: std::collections::HashMap::from([(
                    crate::AuthSession::OWNER.to_owned(),
                    serde_json::Value::from("owner"),
                )]),
                expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
            };
            store.create(&mut record).await.expect("created");
            let entry = DirectoryEntry {
                id: record.id,
                signed_in_at: OffsetDateTime::now_utc(),
                user_agent: String::new(),
                provider_session: None,
            };
            directory.add("owner", &entry).await.expect("added");
        }

        let ended = end_all_sessions(&store, &directory, "owner").await.expect("ended");

        assert_eq!(ended, 5);
        assert!(directory.0.list("owner").await.expect("listed").is_empty());
    }
}
