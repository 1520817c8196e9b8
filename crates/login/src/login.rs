//! Sign-in with one or several providers: the site, its providers and the service's hook.

use std::fmt;
use std::sync::Arc;

use signin_auth::LoginFlow;
use signin_domain::LocalPath;
use url::Url;

use crate::provider_check::ProviderCheck;
use crate::settings::{ProviderPaths, plain_id};
use crate::{AccountHolds, Error, GOOGLE_ISSUER, Provider, Sessions, SignIn, UsedTokens, domains, limit};

/// Sign-in with one or several providers: the routes that sign people in and out, around the service's [`SignIn`]
/// hook. Cheap to clone.
pub struct Login<H> {
    pub(crate) inner: Arc<LoginInner<H>>,
}

pub(crate) struct LoginInner<H> {
    pub(crate) sessions: Sessions,
    /// The `jti`s of the logout and security event tokens acted on (per issuer), for refusing a replay.
    pub(crate) used_tokens: Arc<dyn UsedTokens>,
    /// Receiving security events (`login.risc.enabled`).
    pub(crate) risc: Option<Risc>,
    /// The first is the site's main provider (`/login`, `login.callback_path`).
    pub(crate) providers: Vec<Entry>,
    pub(crate) hook: H,
    /// One per-client limit shared by the sign-in routes.
    pub(crate) limit: limit::Limit,
    pub(crate) domains: domains::DomainRules,
}

/// What receiving security events needs.
pub(crate) struct Risc {
    pub(crate) receiver: Arc<signin_auth::RiscReceiver>,
    pub(crate) holds: Arc<dyn AccountHolds>,
}

/// One provider of the site: its attempts, its health check and its routes.
pub(crate) struct Entry {
    pub(crate) flow: LoginFlow,
    pub(crate) check: ProviderCheck,
    pub(crate) paths: ProviderPaths,
}

/// A provider as a page shows it: a sign-in button.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderLink {
    /// The provider's id ([`Provider::id`]).
    pub id: String,
    /// The name people know it by ("Google").
    pub name: String,
    /// Its issuer.
    pub issuer: String,
    /// Google's branding (the "G" button) applies.
    pub google: bool,
    /// Where its sign-in starts, e.g. `/login` for the main provider and `/login/corp` for another.
    pub login_url: String,
}

impl<H> Clone for Login<H> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<H> fmt::Debug for Login<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flows: Vec<&LoginFlow> = self.inner.providers.iter().map(|entry| &entry.flow).collect();
        f.debug_struct("Login").field("sessions", &self.inner.sessions).field("providers", &flows).finish()
    }
}

impl<H: SignIn> Login<H> {
    /// The login of [`crate::LoginBuilder::build`], once its providers are at hand: checks that they can work
    /// together (ids, issuers and paths distinct) and that attempts can be sealed.
    pub(crate) fn assemble(
        sessions: Sessions,
        providers: Vec<Arc<dyn Provider>>,
        hook: H,
        used_tokens: Arc<dyn UsedTokens>,
        risc: Option<Risc>,
    ) -> Result<Self, Error> {
        if providers.is_empty() {
            return Err(Error::Config("no OpenID provider is configured".into()));
        }
        if !sessions.attempts().can_start() {
            return Err(Error::Config(
                "login.cookie_keys is empty: set APP__LOGIN__COOKIE_KEYS to a random key (`signin generate-key` \
                 makes one); every instance needs the same"
                    .into(),
            ));
        }
        let login = &sessions.0.login;
        let mut routes = vec![
            login.logout_path.clone(),
            login.end_session_path.clone(),
            login.end_all_sessions_path.clone(),
            login.risc_path.clone(),
            login.grant_path(),
        ];
        let mut entries: Vec<Entry> = Vec::with_capacity(providers.len());
        for (index, provider) in providers.into_iter().enumerate() {
            let id = provider.id();
            if !plain_id(id) {
                return Err(Error::Config(format!(
                    "provider id `{id}` must be 1 to 32 of a-z, 0-9, - and _ (oidc.id, providers[].id)"
                )));
            }
            if let Some(other) = entries.iter().map(|entry| entry.flow.provider()).find(|other| other.id() == id) {
                return Err(Error::Config(format!(
                    "two providers have the id `{id}` ({} and {}): give each its own id",
                    other.issuer(),
                    provider.issuer()
                )));
            }
            if entries.iter().any(|entry| entry.flow.provider().issuer() == provider.issuer()) {
                return Err(Error::Config(format!("the issuer {} is configured twice", provider.issuer())));
            }
            let paths = if index == 0 { ProviderPaths::main(login, id) } else { ProviderPaths::other(login, id) };
            for path in [&paths.login, &paths.callback, &paths.backchannel] {
                if routes.contains(path) {
                    return Err(Error::Config(format!(
                        "provider `{id}` would serve {path}, which another route already has: choose another id"
                    )));
                }
                routes.push(path.clone());
            }
            entries.push(Entry {
                flow: LoginFlow::new(provider, login.pending_login),
                check: ProviderCheck::new(login.provider_check_interval),
                paths,
            });
        }
        let limit = limit::layer(&login.rate_limit)?;
        let domains = domains::DomainRules::new(&login.hosted_domains, &login.email_domains);
        Ok(Self {
            inner: Arc::new(LoginInner { sessions, used_tokens, risc, providers: entries, hook, limit, domains }),
        })
    }

    /// The main provider (the first).
    pub fn provider(&self) -> &dyn Provider {
        self.inner.providers[0].flow.provider()
    }

    /// Every provider, the main one first.
    pub fn providers(&self) -> impl Iterator<Item = &dyn Provider> {
        self.inner.providers.iter().map(|entry| entry.flow.provider())
    }

    /// The provider with this issuer, if the site has it.
    pub fn provider_by_issuer(&self, issuer: &str) -> Option<&dyn Provider> {
        self.providers().find(|provider| provider.issuer() == issuer)
    }

    /// The sign-in buttons of a login page, the main provider first; `next` as in [`Sessions::login_url`].
    pub fn links(&self, next: Option<&LocalPath>) -> Vec<ProviderLink> {
        self.inner
            .providers
            .iter()
            .map(|entry| {
                let provider = entry.flow.provider();
                ProviderLink {
                    id: provider.id().to_owned(),
                    name: provider.display_name().to_owned(),
                    issuer: provider.issuer().to_owned(),
                    google: provider.issuer() == GOOGLE_ISSUER,
                    login_url: self.inner.sessions.login_url_at(&entry.paths.login, next),
                }
            })
            .collect()
    }

    /// The position of the provider with this id.
    pub(crate) fn index_of(&self, id: &str) -> Option<usize> {
        self.inner.providers.iter().position(|entry| entry.flow.provider().id() == id)
    }

    /// The site's grants (always kept once built).
    pub(crate) fn tokens(&self) -> Option<&crate::ProviderTokens> {
        self.inner.sessions.provider_tokens()
    }

    pub(crate) fn entry(&self, index: usize) -> &Entry {
        &self.inner.providers[index]
    }

    /// Claims `key` (an issuer and a `jti`) for a token accepted until `accepted_until` (Unix seconds, as the
    /// token's check worked it out): whether it was not used before.
    pub(crate) async fn first_use(&self, key: &str, accepted_until: i64) -> Result<bool, signin_session::BoxError> {
        // Out of range only for a nonsensical `iat`, which the checks refuse; kept the longest, then.
        let until = time::OffsetDateTime::from_unix_timestamp(accepted_until)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc() + signin_auth::SECURITY_EVENT_MAX_AGE);
        self.claim_once(key, until).await
    }

    /// Claims `key` until `until` in the used-token store every instance shares: whether this was its first use.
    pub(crate) async fn claim_once(
        &self,
        key: &str,
        until: time::OffsetDateTime,
    ) -> Result<bool, signin_session::BoxError> {
        self.inner.used_tokens.first_use(key, until).await
    }

    /// Gives up the claim on `key`, for a token that could not be acted on (its sender retries it).
    pub(crate) async fn release_use(&self, key: &str) {
        if let Err(err) = self.inner.used_tokens.release(key).await {
            tracing::warn!(error = %err, "a used token's record could not be released; a retry of it is refused");
        }
    }

    /// Where the provider with this id sends its back-channel logout tokens (to register as its
    /// `backchannel_logout_uri`): `<public URL><login path>/<id>/backchannel-logout`.
    pub fn backchannel_logout_url(&self, provider_id: &str) -> Option<Url> {
        let entry = self.inner.providers.iter().find(|entry| entry.flow.provider().id() == provider_id)?;
        let mut url = self.inner.sessions.public_url().clone();
        url.set_path(&self.inner.sessions.url(&entry.paths.backchannel));
        Some(url)
    }

    /// The site.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }
}
