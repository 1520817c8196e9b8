//! Acting for the person: the grant they made the site at their provider, kept once per (issuer, subject, client)
//! in a [`GrantStore`] that all of their sessions and every instance share, sealed at rest ([`TokenKeys`]), and
//! refreshed once at a time across the fleet.
//!
//! A grant record holds the access token with its expiry and scopes, the refresh token (when offline access is
//! on) with the scopes it covers, and the latest ID token (for `id_token_hint` at sign-out). A sign-in merges its
//! tokens into the record; the grant route adds scopes; [`crate::AccessToken`] hands out a token that is valid
//! for at least `login.tokens.refresh_margin`, refreshing it first when needed:
//!
//! 1. within this process, one request per grant refreshes (a per-grant lock); the others wait for it;
//! 2. across the fleet, the refreshing request first takes a lease on the record's version in the store (a
//!    compare-and-swap); an instance that finds the lease taken reads the record again until its version moves
//!    (the refreshed tokens) or `login.tokens.refresh_wait` has passed (503);
//! 3. the refreshed tokens are written with a compare-and-swap on the leased version, so a refresh token the
//!    provider rotated is never used twice.
//!
//! `invalid_grant` (the person revoked the grant, or it lapsed) deletes the record: the person is sent to grant
//! again. A provider that is down, slow or answers nonsense leaves the record as it was (503). A refreshed ID
//! token naming another issuer or subject drops the record (OpenID Connect Core §12.2).

mod keys;
pub(crate) mod route;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use signin_auth::{AuthErrorKind, Provider, Tokens};
use signin_session::GrantStore;

pub(crate) use keys::TokenKeys;

use crate::settings::TokenSettings;
use crate::{Error, LoginSettings};

/// How long an access token is taken to live when the provider does not say (Google always says: an hour).
const ASSUMED_LIFETIME: Duration = Duration::from_secs(3600);
/// How often a request waiting for another instance's refresh reads the record again.
const POLL: Duration = Duration::from_millis(50);
/// How often a write races another write of the same record before giving up.
const WRITE_ATTEMPTS: usize = 5;
/// How much longer a refresh's lease lasts than the refresh may take.
const LEASE_SLACK: Duration = Duration::from_secs(5);

/// A random id for one lease holder: 16 bytes, base64url (22 characters).
fn holder_id() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// What a grant record holds, sealed.
#[derive(Clone, Serialize, Deserialize)]
struct Record {
    #[serde(rename = "iss")]
    issuer: String,
    #[serde(rename = "sub")]
    subject: String,
    /// The access token and when it expires (Unix seconds).
    #[serde(rename = "at")]
    access_token: String,
    #[serde(rename = "ae")]
    access_expires: i64,
    /// When the access token was issued (Unix seconds; 0 in records written before this was kept).
    #[serde(rename = "ai", default)]
    access_issued: i64,
    /// The scopes the access token has.
    #[serde(rename = "as", default)]
    access_scopes: Vec<String>,
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The scopes a refresh yields.
    #[serde(rename = "rs", default)]
    refresh_scopes: Vec<String>,
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("issuer", &self.issuer)
            .field("access_expires", &self.access_expires)
            .field("access_scopes", &self.access_scopes)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("refresh_scopes", &self.refresh_scopes)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn expiry(expires_in: Option<Duration>) -> i64 {
    let lifetime = expires_in.unwrap_or(ASSUMED_LIFETIME);
    now().saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `scope` is one a grant must have been asked for: not one of the sign-in's own (which every token of the
/// grant has, whatever name the provider gives it in `scope`: Google answers `email` with `…/userinfo.email`), and
/// not `offline_access`, which is no scope of a token.
pub(crate) fn beyond_sign_in(provider: &dyn Provider, scope: &str) -> bool {
    scope != "openid" && scope != "offline_access" && !provider.sign_in_scopes().iter().any(|own| own == scope)
}

/// The scopes of `wanted` that `held` lacks.
fn missing(held: &[String], wanted: &[&str]) -> Vec<String> {
    wanted.iter().filter(|scope| !held.iter().any(|held| held == *scope)).map(|scope| (*scope).to_owned()).collect()
}

impl Record {
    /// The access token, when it has `scopes` and stays valid for `margin`, or for half its lifetime when that is
    /// shorter: a provider whose tokens live no longer than the margin would otherwise have every request refresh
    /// (or, without a refresh token, send the person round the grant route for ever).
    fn usable(&self, scopes: &[&str], margin: Duration) -> Option<Issued> {
        let mut margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
        if self.access_issued > 0 {
            margin = margin.min(self.access_expires.saturating_sub(self.access_issued) / 2);
        }
        let fresh = self.access_expires.saturating_sub(now()) > margin;
        (fresh && missing(&self.access_scopes, scopes).is_empty()).then(|| Issued {
            token: SecretString::from(self.access_token.clone()),
            scopes: self.access_scopes.clone(),
            expires_at: self.access_expires,
        })
    }

    /// Whether a refresh yields a token with `scopes`.
    fn refreshable(&self, scopes: &[&str]) -> bool {
        self.refresh_token.is_some() && missing(&self.refresh_scopes, scopes).is_empty()
    }
}

/// What a person's grant holds, for the grant route.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) refresh_token: bool,
    pub(crate) refresh_scopes: Vec<String>,
    pub(crate) access_scopes: Vec<String>,
}

/// A usable access token of the person's grant.
pub(crate) struct Issued {
    pub(crate) token: SecretString,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: i64,
}

/// Why no access token could be handed out ([`ProviderTokens::access_token_for`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// The person must grant (again): no grant, scopes missing, or the provider ended it. The scopes to ask for
    /// ([`crate::Sessions::grant_url`] makes the link).
    #[error("the person has not granted what is needed ({})", .0.join(" "))]
    Grant(Vec<String>),
    /// The provider or the grant store failed; the grant is as it was. Try again later.
    #[error("the provider or the grant store is unavailable")]
    Unavailable,
}

/// The grants of a site's people, and the providers that refresh them. Cheap to clone; made by
/// [`crate::LoginBuilder::build`], or for a service that only reads sessions by
/// [`crate::SessionReader::act_for_people`]; [`crate::Sessions::provider_tokens`] hands it out, for work done while
/// the person is away ([`ProviderTokens::access_token_for`]). In a request, [`crate::AccessToken`] is the way.
#[derive(Clone)]
pub struct ProviderTokens(Arc<Inner>);

struct Inner {
    store: Arc<dyn GrantStore>,
    keys: TokenKeys,
    providers: Vec<Arc<dyn Provider>>,
    settings: TokenSettings,
    /// One refresh per grant in this process: a per-grant async lock, dropped when no one holds it, holding when a
    /// refresh of it last failed. (A map of locks by key: small enough to keep here rather than take a crate for.)
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>>>,
    /// Grants read within `hold` (the site's `session.cache.coherence`), so that a request whose token is still
    /// good costs a lookup, not a database round trip; `None` without a session cache. Only a usable token is
    /// served from here; anything else reads the store.
    recent: Option<quick_cache::sync::Cache<String, Arc<Recent>>>,
    hold: Duration,
}

/// A grant as it was read, without its refresh and ID tokens (no request needs them).
struct Recent {
    read_at: std::time::Instant,
    record: Record,
}

/// How many grants are kept in memory at most (a few hundred bytes each).
const RECENT_GRANTS: usize = 10_000;

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let providers: Vec<&str> = self.0.providers.iter().map(|provider| provider.id()).collect();
        f.debug_struct("ProviderTokens").field("providers", &providers).field("settings", &self.0.settings).finish()
    }
}

impl ProviderTokens {
    /// The grants in `store`, sealed with the keys of `login` and refreshed with `providers`; a grant read is
    /// served from memory for `hold` (zero: never), the bound within which every instance honours a change.
    pub(crate) fn new(
        login: &LoginSettings,
        providers: Vec<Arc<dyn Provider>>,
        store: Arc<dyn GrantStore>,
        hold: Duration,
    ) -> Result<Self, Error> {
        let keys = TokenKeys::from_settings(login)?;
        if !keys.can_seal() {
            return Err(Error::Config(
                "keeping people's grants needs a key: set login.tokens.keys (or login.cookie_keys, from which one is \
                 derived)"
                    .into(),
            ));
        }
        Ok(Self(Arc::new(Inner {
            store,
            keys,
            providers,
            settings: login.tokens.clone(),
            refreshing: Mutex::new(HashMap::new()),
            recent: (!hold.is_zero()).then(|| quick_cache::sync::Cache::new(RECENT_GRANTS)),
            hold,
        })))
    }

    /// The token of grant `id` as read within `hold`, when it is usable for `scopes`.
    fn recently_read(&self, id: &str, scopes: &[&str]) -> Option<Issued> {
        let recent = self.0.recent.as_ref()?.get(id)?;
        if recent.read_at.elapsed() >= self.0.hold {
            return None;
        }
        recent.record.usable(scopes, self.0.settings.refresh_margin)
    }

    /// Keeps `record` of grant `id` as read now.
    fn remember(&self, id: &str, record: &Record) {
        if let Some(recent) = &self.0.recent {
            // Only what a request needs: never the refresh token or the ID token.
            let record = Record { id_token: None, refresh_token: None, ..record.clone() };
            recent.insert(id.to_owned(), Arc::new(Recent { read_at: std::time::Instant::now(), record }));
        }
    }

    /// Forgets what this process read of grant `id` (it is being written or deleted).
    fn forget(&self, id: &str) {
        if let Some(recent) = &self.0.recent {
            recent.remove(id);
        }
    }

    /// For work done while the person is away (a background job, with `oidc.offline_access`): a valid access token
    /// of the grant of the person `subject` at the provider with this `issuer`, with `scopes`, refreshed first when
    /// needed, once across the fleet, exactly as [`crate::AccessToken`] in a request.
    pub async fn access_token_for(
        &self,
        issuer: &str,
        subject: &str,
        scopes: &[&str],
    ) -> Result<crate::AccessToken, TokenRefusal> {
        let provider = self.0.providers.iter().find(|provider| provider.issuer() == issuer);
        let provider = provider.ok_or_else(|| TokenRefusal::all(scopes))?.id().to_owned();
        let owner = signin_session::owner_key(issuer, subject);
        self.access_token(&owner, &provider, scopes).await.map(crate::AccessToken::issued)
    }

    pub(crate) fn provider(&self, id: &str) -> Option<&Arc<dyn Provider>> {
        self.0.providers.iter().find(|provider| provider.id() == id)
    }

    /// The id of the grant of `owner` ([`signin_session::owner_key`]) to the client `client_id`: SHA-256 of both,
    /// base64url, so that the key tells nothing and fits the table.
    pub(crate) fn grant_id(owner: &str, client_id: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest([owner.as_bytes(), b"\0", client_id.as_bytes()].concat());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    /// The version of grant `id` and its record, if it has one: a record that does not open (sealed with a key the
    /// site no longer has) reads as `None`, so that the person simply grants again and it is written over.
    async fn read(&self, id: &str) -> Result<Option<(u64, Option<Record>)>, TokenRefusal> {
        let stored = self.0.store.get(id).await.map_err(|err| {
            tracing::warn!(error = %err, "reading a grant failed");
            TokenRefusal::Unavailable
        })?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let record = self.open(id, &stored.sealed);
        if record.is_none() {
            tracing::warn!("a stored grant does not open with the configured keys; the person will grant again");
        }
        Ok(Some((stored.version, record)))
    }

    /// The record sealed as grant `id`, if it opens.
    fn open(&self, id: &str, sealed: &[u8]) -> Option<Record> {
        self.0.keys.open(id, sealed).and_then(|plain| serde_json::from_slice(&plain).ok())
    }

    /// The record of grant `id` and its version, when there is one that opens.
    async fn load(&self, id: &str) -> Result<Option<(u64, Record)>, TokenRefusal> {
        Ok(self.read(id).await?.and_then(|(version, record)| record.map(|record| (version, record))))
    }

    /// Writes `record` as grant `id` of `owner`, if the store is still at `expected`.
    async fn write(&self, id: &str, owner: &str, record: &Record, expected: Option<u64>) -> Result<bool, TokenRefusal> {
        self.forget(id);
        let plain = serde_json::to_vec(record).map_err(|_| TokenRefusal::Unavailable)?;
        let sealed = self.0.keys.seal(id, &plain).ok_or(TokenRefusal::Unavailable)?;
        self.0.store.put(id, owner, &sealed, expected).await.map_err(|err| {
            tracing::warn!(error = %err, "writing a grant failed");
            TokenRefusal::Unavailable
        })
    }

    /// Merges what a sign-in or a grant (asking `asked`) brought into the person's grant with `provider`: the new
    /// access token and the scopes it has, a new refresh token or the one held, the new ID token. Whether a
    /// refresh token is held now.
    pub(crate) async fn record(
        &self,
        provider: &dyn Provider,
        owner: &str,
        subject: &str,
        tokens: &Tokens,
        asked: &[String],
    ) -> Result<bool, TokenRefusal> {
        let id = Self::grant_id(owner, provider.client_id());
        // RFC 6749 §5.1: no `scope` in the answer means exactly the scopes asked for.
        let granted = tokens.scopes.clone().unwrap_or_else(|| asked.to_vec());
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.read(&id).await?;
            let expected = current.as_ref().map(|(version, _)| *version);
            let held = current.and_then(|(_, record)| record);
            let new_refresh = tokens.refresh_token.as_ref().filter(|token| !token.expose_secret().is_empty());
            let (refresh_token, refresh_scopes) = match (new_refresh, held) {
                (Some(new), _) => (Some(new.expose_secret().to_owned()), granted.clone()),
                // A sign-in or grant without a new refresh token keeps the one held (Google issues one only at
                // consent), with the scopes it was issued for: a refresh yields those, not the ones granted since
                // (the grant route asks for consent, and so a new refresh token, whenever it adds scopes).
                (None, Some(held)) if provider.offline_access() && held.refresh_token.is_some() => {
                    (held.refresh_token, held.refresh_scopes)
                }
                (None, _) => (None, Vec::new()),
            };
            let record = Record {
                issuer: provider.issuer().to_owned(),
                subject: subject.to_owned(),
                access_token: tokens.access_token.expose_secret().to_owned(),
                access_expires: expiry(tokens.expires_in),
                access_issued: now(),
                access_scopes: granted.clone(),
                refresh_token,
                refresh_scopes,
                id_token: Some(tokens.id_token.expose_secret().to_owned()).filter(|token| !token.is_empty()),
            };
            if self.write(&id, owner, &record, expected).await? {
                return Ok(record.refresh_token.is_some());
            }
        }
        tracing::warn!("a grant kept changing while a sign-in wrote it");
        Err(TokenRefusal::Unavailable)
    }

    /// What the grant of `owner` with `provider` holds: whether a refresh token, and the scopes granted (of the
    /// refresh token, and of the access token).
    pub(crate) async fn held(&self, provider: &dyn Provider, owner: &str) -> Result<Held, TokenRefusal> {
        let id = Self::grant_id(owner, provider.client_id());
        Ok(self.load(&id).await?.map_or_else(Held::default, |(_, record)| Held {
            refresh_token: record.refresh_token.is_some(),
            refresh_scopes: record.refresh_scopes,
            access_scopes: record.access_scopes,
        }))
    }

    /// The latest ID token of the grant of `owner` with `provider`, for `id_token_hint`.
    pub(crate) async fn id_token(&self, provider: &dyn Provider, owner: &str) -> Option<String> {
        let id = Self::grant_id(owner, provider.client_id());
        self.load(&id).await.ok().flatten().and_then(|(_, record)| record.id_token)
    }

    /// An access token of the grant of `owner` with the provider of id `provider` that has `scopes` and stays
    /// valid for the refresh margin: the stored one, or a refreshed one.
    pub(crate) async fn access_token(
        &self,
        owner: &str,
        provider: &str,
        scopes: &[&str],
    ) -> Result<Issued, TokenRefusal> {
        // Signed in with a provider the configuration no longer has: there is nobody to ask.
        let provider = self.provider(provider).cloned().ok_or_else(|| TokenRefusal::all(scopes))?;
        let scopes: Vec<&str> =
            scopes.iter().copied().filter(|scope| beyond_sign_in(provider.as_ref(), scope)).collect();
        let scopes = scopes.as_slice();
        let id = Self::grant_id(owner, provider.client_id());
        let margin = self.0.settings.refresh_margin;
        if let Some(issued) = self.recently_read(&id, scopes) {
            return Ok(issued);
        }
        let record = self.load(&id).await?.map(|(_, record)| record);
        if let Some(record) = &record {
            self.remember(&id, record);
        }
        if let Some(settled) = Self::settled(record.as_ref(), scopes, margin) {
            return settled;
        }
        // The wait for this process's turn counts against `refresh_wait` too: behind a provider that hangs, the
        // requests queued here answer 503 together rather than one refresh attempt after another.
        let waiting = tokio::time::Instant::now();
        let deadline = waiting + self.0.settings.refresh_wait;
        let lock = self.lock_for(&id);
        let Ok(mut turn) = tokio::time::timeout_at(deadline, lock.lock()).await else {
            return Err(TokenRefusal::Unavailable);
        };
        if turn.is_some_and(|failed| failed >= waiting) {
            // The refresh this request waited for failed: so would this one.
            return Err(TokenRefusal::Unavailable);
        }
        loop {
            // Read again, once this request's turn has come and after each wait: a refresh may have landed.
            let loaded = self.load(&id).await?;
            if let Some(settled) = Self::settled(loaded.as_ref().map(|(_, record)| record), scopes, margin) {
                return settled;
            }
            let Some((version, record)) = loaded else {
                return Err(TokenRefusal::all(scopes));
            };
            let holder = holder_id();
            let leased = self.0.store.lease(&id, version, self.lease(), &holder).await.map_err(|err| {
                tracing::warn!(error = %err, "taking a grant's refresh lease failed");
                TokenRefusal::Unavailable
            })?;
            if leased {
                // In a task of its own: a refresh the provider has answered is written even when the request that
                // began it goes away, so a rotated refresh token is not lost with it.
                let (this, id, owner) = (self.clone(), id.clone(), owner.to_owned());
                let wanted: Vec<String> = scopes.iter().map(|scope| (*scope).to_owned()).collect();
                let refresh = tokio::spawn(async move {
                    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
                    this.refresh(provider.as_ref(), &id, &owner, version, &holder, record, &wanted).await
                });
                let outcome = refresh.await.unwrap_or(Err(TokenRefusal::Unavailable));
                if matches!(outcome, Err(TokenRefusal::Unavailable)) {
                    *turn = Some(tokio::time::Instant::now());
                }
                return outcome;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("a refresh under way elsewhere did not finish in time");
                return Err(TokenRefusal::Unavailable);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How long a refresh's lease lasts: longer than the refresh may take (it is cut off at `refresh_wait`).
    fn lease(&self) -> Duration {
        self.0.settings.refresh_wait + LEASE_SLACK
    }

    /// The answer a record gives without a refresh, if it gives one: its token when usable, a refusal when it has
    /// no grant or no refresh token for `scopes`; `None` when it must be refreshed.
    fn settled(record: Option<&Record>, scopes: &[&str], margin: Duration) -> Option<Result<Issued, TokenRefusal>> {
        let Some(record) = record else {
            return Some(Err(TokenRefusal::all(scopes)));
        };
        if let Some(issued) = record.usable(scopes, margin) {
            return Some(Ok(issued));
        }
        if !record.refreshable(scopes) {
            return Some(Err(TokenRefusal::Grant(missing(&record.refresh_scopes, scopes)).or_all(scopes)));
        }
        None
    }

    /// The lock of grant `id` in this process; it holds when a refresh of it last failed here.
    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>> {
        let mut refreshing = self.0.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks no one holds or waits for go, so the map stays as small as the refreshes under way.
        refreshing.retain(|_, lock| Arc::strong_count(lock) > 1);
        refreshing.entry(id.to_owned()).or_default().clone()
    }

    /// Refreshes grant `id` at `version`, whose lease `holder` (this caller) holds, and gives the lease up.
    #[allow(clippy::too_many_arguments)]
    async fn refresh(
        &self,
        provider: &dyn Provider,
        id: &str,
        owner: &str,
        version: u64,
        holder: &str,
        record: Record,
        scopes: &[&str],
    ) -> Result<Issued, TokenRefusal> {
        let outcome = self.refresh_leased(provider, id, owner, version, record, scopes).await;
        if let Err(err) = self.0.store.release(id, holder).await {
            tracing::debug!(error = %err, "releasing a refresh lease failed; it runs out by itself");
        }
        outcome
    }

    async fn refresh_leased(
        &self,
        provider: &dyn Provider,
        id: &str,
        owner: &str,
        version: u64,
        record: Record,
        scopes: &[&str],
    ) -> Result<Issued, TokenRefusal> {
        let Some(refresh_token) = record.refresh_token.clone().map(SecretString::from) else {
            return Err(TokenRefusal::all(scopes));
        };
        let asked = provider.refresh(&refresh_token, &record.issuer, &record.subject);
        let refreshed = match tokio::time::timeout(self.0.settings.refresh_wait, asked).await {
            Ok(Ok(refreshed)) => refreshed,
            Ok(Err(err)) if err.kind() == AuthErrorKind::GrantEnded => {
                let outcome = if matches!(err, signin_auth::AuthError::RefreshIdentityChanged) {
                    tracing::warn!(error = %err, "a refresh answered for another person; the grant is dropped");
                    "identity_changed"
                } else {
                    tracing::info!(error = %err, "the provider ended the grant; the person will grant again");
                    "ended"
                };
                metrics::counter!("signin_token_refreshes_total", "outcome" => outcome).increment(1);
                self.forget(id);
                if let Err(err) = self.0.store.delete(id, Some(version)).await {
                    tracing::warn!(error = %err, "deleting an ended grant failed");
                }
                return Err(TokenRefusal::all(scopes));
            }
            // A provider that cannot refresh at all (a `Provider` without `refresh`): the person grants again.
            Ok(Err(signin_auth::AuthError::Configuration { reason })) => {
                tracing::warn!(%reason, "the provider cannot refresh tokens; the person is asked to grant again");
                metrics::counter!("signin_token_refreshes_total", "outcome" => "failed").increment(1);
                return Err(TokenRefusal::all(scopes));
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "refreshing an access token failed; the grant is kept as it was");
                metrics::counter!("signin_token_refreshes_total", "outcome" => "failed").increment(1);
                return Err(TokenRefusal::Unavailable);
            }
            Err(_) => {
                tracing::warn!("refreshing an access token took longer than login.tokens.refresh_wait; kept as it was");
                metrics::counter!("signin_token_refreshes_total", "outcome" => "failed").increment(1);
                return Err(TokenRefusal::Unavailable);
            }
        };
        let refreshed_scopes = refreshed.scopes.clone().unwrap_or_else(|| record.refresh_scopes.clone());
        let updated = Record {
            access_token: refreshed.access_token.expose_secret().to_owned(),
            access_expires: expiry(refreshed.expires_in),
            access_issued: now(),
            access_scopes: refreshed_scopes.clone(),
            refresh_token: refreshed
                .refresh_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned())
                .or(record.refresh_token.clone()),
            refresh_scopes: if refreshed.scopes.is_some() { refreshed_scopes } else { record.refresh_scopes.clone() },
            id_token: refreshed
                .id_token
                .as_ref()
                .map(|token| token.expose_secret().to_owned())
                .or_else(|| record.id_token.clone()),
            ..record.clone()
        };
        if self.keep_refreshed(id, owner, version, &record, &updated).await? {
            self.remember(id, &updated);
        }
        metrics::counter!("signin_token_refreshes_total", "outcome" => "refreshed").increment(1);
        tracing::info!("access token refreshed");
        updated
            .usable(scopes, Duration::ZERO)
            .ok_or_else(|| TokenRefusal::Grant(missing(&updated.access_scopes, scopes)))
    }

    /// Writes the refreshed record `updated` of grant `id`, leased at `version` as `leased`; whether `updated`
    /// itself is what is stored now. When the grant was written meanwhile (a sign-in merged new tokens), those
    /// stay, but a refresh token the provider rotated must not be lost: if the record still holds the one this
    /// refresh used up, the new one goes in.
    async fn keep_refreshed(
        &self,
        id: &str,
        owner: &str,
        version: u64,
        leased: &Record,
        updated: &Record,
    ) -> Result<bool, TokenRefusal> {
        let rotated = updated.refresh_token != leased.refresh_token;
        let (mut expected, mut record) = (version, updated.clone());
        for _ in 0..WRITE_ATTEMPTS {
            if self.write(id, owner, &record, Some(expected)).await? {
                return Ok(true);
            }
            // Gone meanwhile (signed out everywhere): nothing is written back.
            let Some((now, current)) = self.load(id).await? else {
                return Ok(false);
            };
            if !rotated || current.refresh_token != leased.refresh_token {
                tracing::debug!("a grant changed while it was refreshed; the newer record stays");
                return Ok(false);
            }
            record = Record {
                refresh_token: updated.refresh_token.clone(),
                refresh_scopes: updated.refresh_scopes.clone(),
                ..current
            };
            expected = now;
        }
        tracing::warn!("a grant kept changing while a refresh wrote it");
        Err(TokenRefusal::Unavailable)
    }

    /// Ends every grant of `owner`: revoked at its provider when `revoke` (in the background, bounded by the
    /// provider's sign-out timeout), deleted here. Best effort: a failure is logged.
    pub(crate) async fn end_all(&self, owner: &str, revoke: bool) {
        let grants = match self.0.store.owned_by(owner).await {
            Ok(grants) => grants,
            Err(err) => {
                tracing::warn!(error = %err, "listing a person's grants failed; they stay");
                return;
            }
        };
        for (id, stored) in grants {
            let record = self.open(&id, &stored.sealed);
            self.drop_grant(&id, record, revoke).await;
        }
    }

    /// Ends the grant of `owner` with `provider`, as [`ProviderTokens::end_all`] does; its latest ID token, for
    /// the `id_token_hint` of a sign-out that follows.
    pub(crate) async fn end(&self, provider: &dyn Provider, owner: &str, revoke: bool) -> Option<String> {
        let id = Self::grant_id(owner, provider.client_id());
        let (_, mut record) = self.load(&id).await.ok()??;
        let id_token = record.id_token.take();
        self.drop_grant(&id, Some(record), revoke).await;
        id_token
    }

    /// Deletes grant `id`, and then, when `revoke`, revokes `record` (its tokens, when it opened) at its provider.
    async fn drop_grant(&self, id: &str, record: Option<Record>, revoke: bool) {
        self.forget(id);
        if let Err(err) = self.0.store.delete(id, None).await {
            tracing::warn!(error = %err, "deleting a grant failed");
            return;
        }
        let Some(record) = record.filter(|_| revoke) else {
            return;
        };
        let Some(provider) = self.0.providers.iter().find(|provider| provider.issuer() == record.issuer).cloned()
        else {
            return;
        };
        // Its refresh token when there is one (which ends the whole grant, RFC 7009 §2.1), else its access token.
        match record.refresh_token {
            Some(refresh) => revoke_in_background(provider, SecretString::from(refresh), true),
            None => revoke_in_background(provider, SecretString::from(record.access_token), false),
        }
    }
}

/// Revokes `token` (a refresh token when `refresh`) at `provider` in the background, bounded by the provider's
/// sign-out timeout, never delaying the caller; counted in `signin_token_revocations_total`. Nothing for a
/// provider without a revocation endpoint.
pub(crate) fn revoke_in_background(provider: Arc<dyn Provider>, token: SecretString, refresh: bool) {
    tokio::spawn(async move {
        let outcome = match provider.revoke(&token, refresh).await {
            Ok(()) => "success",
            Err(signin_auth::AuthError::Configuration { .. }) => return,
            Err(err) => {
                tracing::warn!(error = %err, "revoking the grant at the provider failed");
                "failed"
            }
        };
        metrics::counter!("signin_token_revocations_total", "outcome" => outcome).increment(1);
    });
}

impl TokenRefusal {
    /// The person must grant all of `scopes`.
    fn all(scopes: &[&str]) -> Self {
        Self::Grant(scopes.iter().map(|scope| (*scope).to_owned()).collect())
    }

    /// A grant refusal that names no scope asks again for all of `scopes` (a grant with no refresh token).
    fn or_all(self, scopes: &[&str]) -> Self {
        match self {
            Self::Grant(missing) if missing.is_empty() => Self::all(scopes),
            other => other,
        }
    }
}

/// A scope as a page may show it: printable, cut short.
pub(crate) fn shown_scope(scope: &str) -> String {
    scope.chars().filter(|c| c.is_ascii_graphic()).take(100).collect()
}
