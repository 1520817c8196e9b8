//! [`Login::builder`]: the one way to make a [`Login`], in steps whose order and completeness the compiler checks.
//! A builder consumes itself at each step, so there is no shared state to change after a clone, and
//! [`LoginBuilder::build`] exists only once the providers and the stores are chosen.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::{
    AccountHolds, Error, GrantStore, Login, MemoryAccountHolds, MemoryGrants, MemoryUsedTokens, OidcClient, Provider,
    ProviderSettings, RiscReceiver, Sessions, SignIn, UsedTokens,
};

/// The steps of a [`LoginBuilder`] still to take, as types: a step taken changes the builder's type.
pub mod step {
    /// The providers are not chosen yet ([`super::LoginBuilder::discover`], [`super::LoginBuilder::providers`]).
    #[derive(Debug)]
    pub struct NoProviders;
    /// The providers are chosen.
    #[derive(Debug)]
    pub struct Providers;
    /// Where once-only records live is not chosen yet ([`super::LoginBuilder::shared_in`],
    /// [`super::LoginBuilder::per_instance`], [`super::LoginBuilder::stores`]).
    #[derive(Debug)]
    pub struct NoStores;
    /// The stores are chosen.
    #[derive(Debug)]
    pub struct Stores;
}

/// The providers, and the RISC receiver when `login.risc.enabled` (discovered with them).
struct ProviderChoice {
    providers: Vec<Arc<dyn Provider>>,
    risc: Option<RiscReceiver>,
    /// One given with [`LoginBuilder::risc`].
    given_risc: Option<RiscReceiver>,
}

/// What every instance must share: the used-token records (completed sign-in attempts, logout and security event
/// tokens), the account holds of security events, and the people's grants.
struct StoreChoice {
    used_tokens: Arc<dyn UsedTokens>,
    holds: Arc<dyn AccountHolds>,
    grants: Arc<dyn GrantStore>,
}

/// Builds a [`Login`]: `Login::builder(sessions, hook)`, the providers ([`LoginBuilder::discover`] or
/// [`LoginBuilder::providers`]) and the stores ([`LoginBuilder::shared_in`], [`LoginBuilder::per_instance`] or
/// [`LoginBuilder::stores`]), in either order, then [`LoginBuilder::build`].
///
/// A step left out does not compile. Without the stores (where once-only records live):
///
/// ```compile_fail
/// # fn f(sessions: signin_login::Sessions, p: std::sync::Arc<dyn signin_login::Provider>) {
/// let login = signin_login::Login::builder(sessions, signin_login::KeepClaims).providers(vec![p]).build();
/// # }
/// ```
///
/// Without the providers:
///
/// ```compile_fail
/// # fn f(sessions: signin_login::Sessions) {
/// let login = signin_login::Login::builder(sessions, signin_login::KeepClaims).per_instance().build();
/// # }
/// ```
///
/// With both, in either order:
///
/// ```
/// # fn f(sessions: signin_login::Sessions, p: std::sync::Arc<dyn signin_login::Provider>) {
/// let login = signin_login::Login::builder(sessions, signin_login::KeepClaims).per_instance().providers(vec![p]).build();
/// # }
/// ```
#[must_use = "a builder does nothing until it is built"]
pub struct LoginBuilder<H, P = step::NoProviders, S = step::NoStores> {
    sessions: Sessions,
    hook: H,
    providers: Option<ProviderChoice>,
    stores: Option<StoreChoice>,
    /// The stores are this process's own ([`LoginBuilder::per_instance`]).
    per_instance: bool,
    steps: PhantomData<(P, S)>,
}

impl<H: SignIn> Login<H> {
    /// Begins a login for the site `sessions` around the service's `hook`.
    pub fn builder(sessions: Sessions, hook: H) -> LoginBuilder<H> {
        LoginBuilder { sessions, hook, providers: None, stores: None, per_instance: false, steps: PhantomData }
    }
}

impl<H, P, S> LoginBuilder<H, P, S> {
    fn step<P2, S2>(self) -> LoginBuilder<H, P2, S2> {
        LoginBuilder {
            sessions: self.sessions,
            hook: self.hook,
            providers: self.providers,
            stores: self.stores,
            per_instance: self.per_instance,
            steps: PhantomData,
        }
    }
}

impl<H, S> LoginBuilder<H, step::NoProviders, S> {
    /// Discovers these providers now (discovery document and keys, once: build at start-up) and signs people in
    /// with them. The first is the main one (`/login`, its callback at [`Sessions::redirect_url`]); every other has
    /// `/login/<id>` and its callback at [`Sessions::redirect_url_for`] its id. When `login.risc.enabled`, the
    /// RISC transmitter is read too, addressed to the providers' client ids.
    pub async fn discover(
        self,
        providers: impl IntoIterator<Item = ProviderSettings>,
    ) -> Result<LoginBuilder<H, step::Providers, S>, Error> {
        let settings: Vec<ProviderSettings> = providers.into_iter().collect();
        let audiences: Vec<String> = settings.iter().map(|provider| provider.client_id.clone()).collect();
        let sessions = &self.sessions;
        let discoveries = settings.into_iter().enumerate().map(|(index, settings)| {
            let redirect =
                if index == 0 { sessions.redirect_url().clone() } else { sessions.redirect_url_for(&settings.id()) };
            async move {
                let client = OidcClient::discover(settings, redirect).await?;
                Ok::<_, Error>(Arc::new(client) as Arc<dyn Provider>)
            }
        });
        let providers = futures_util::future::try_join_all(discoveries).await?;
        let risc = self.discover_risc(audiences).await?;
        Ok(LoginBuilder { providers: Some(ProviderChoice { providers, risc, given_risc: None }), ..self }.step())
    }

    /// Signs people in with providers the caller made (an [`OidcClient`], or a fake in tests); the first is the
    /// main one. Their ids and issuers must be distinct: an attempt is completed only by the callback of the
    /// provider it began with, and an RFC 9207 `iss` names one provider. With `login.risc.enabled`, give the
    /// receiver too ([`LoginBuilder::risc`]).
    pub fn providers(self, providers: Vec<Arc<dyn Provider>>) -> LoginBuilder<H, step::Providers, S> {
        LoginBuilder { providers: Some(ProviderChoice { providers, risc: None, given_risc: None }), ..self }.step()
    }

    /// The RISC transmitter's configuration and keys, when `login.risc.enabled`.
    async fn discover_risc(&self, mut audiences: Vec<String>) -> Result<Option<RiscReceiver>, Error> {
        let settings = &self.sessions.login_settings().risc;
        if !settings.enabled {
            return Ok(None);
        }
        audiences.retain(|audience| !audience.is_empty());
        let receiver = RiscReceiver::discover(settings, audiences).await.map_err(|err| {
            Error::Config(format!(
                "login.risc.enabled: reading the RISC configuration at {} failed: {err}",
                settings.configuration_url
            ))
        })?;
        Ok(Some(receiver))
    }
}

impl<H, S> LoginBuilder<H, step::Providers, S> {
    /// Receives security events with this receiver (for providers made elsewhere: [`LoginBuilder::discover`]
    /// reads the transmitter itself when `login.risc.enabled`).
    pub fn risc(mut self, receiver: RiscReceiver) -> Self {
        if let Some(choice) = self.providers.as_mut() {
            choice.given_risc = Some(receiver);
        }
        self
    }
}

impl<H, P> LoginBuilder<H, P, step::NoStores> {
    /// Keeps what every instance must share in the site's MySQL database (tables `used_tokens`, `account_holds`
    /// and `provider_grants`, created by the workspace migrations), so that a replay to another instance is refused
    /// there too and a grant is refreshed once for the fleet: the choice for any site with more than one instance.
    #[cfg(feature = "mysql")]
    pub fn shared_in(self, pool: &sqlx::MySqlPool) -> LoginBuilder<H, P, step::Stores> {
        let used_tokens = Arc::new(crate::MySqlUsedTokens::new(pool.clone()));
        let holds = Arc::new(crate::MySqlAccountHolds::new(pool.clone()));
        let grants = Arc::new(crate::MySqlGrants::new(pool.clone()));
        self.stores(used_tokens, holds, grants)
    }

    /// Keeps those records in this process only: right for a single instance (and tests), wrong behind a load
    /// balancer, where a replay to another instance would be acted on again. Said in the log at build.
    pub fn per_instance(self) -> LoginBuilder<H, P, step::Stores> {
        let builder = self.stores(
            Arc::new(MemoryUsedTokens::default()),
            Arc::new(MemoryAccountHolds::default()),
            Arc::new(MemoryGrants::default()),
        );
        LoginBuilder { per_instance: true, ..builder }
    }

    /// Keeps those records in stores of the caller's (every instance must share them).
    pub fn stores(
        self,
        used_tokens: Arc<dyn UsedTokens>,
        holds: Arc<dyn AccountHolds>,
        grants: Arc<dyn GrantStore>,
    ) -> LoginBuilder<H, P, step::Stores> {
        LoginBuilder { stores: Some(StoreChoice { used_tokens, holds, grants }), per_instance: false, ..self }.step()
    }
}

impl<H: SignIn> LoginBuilder<H, step::Providers, step::Stores> {
    /// The login, once everything is checked together: provider ids, issuers and paths distinct, an
    /// attempt-cookie key configured. Its [`Sessions`] keep the people's grants from then on ([`crate::AccessToken`]
    /// works in every handler under [`Sessions::layer`]).
    pub fn build(self) -> Result<Login<H>, Error> {
        let Self { sessions, hook, providers, stores, per_instance, .. } = self;
        if per_instance {
            tracing::warn!(
                "once-only records (completed sign-ins, logout and security event tokens) are kept in this process \
                 only: right for a single instance; behind a load balancer use LoginBuilder::shared_in"
            );
        }
        // Both are set by the steps the type says were taken.
        let ProviderChoice { providers, risc, given_risc } =
            providers.ok_or_else(|| Error::Config("no providers".into()))?;
        let StoreChoice { used_tokens, holds, grants } = stores.ok_or_else(|| Error::Config("no stores".into()))?;
        // The setting means the same to every service: a receiver given while it is off, or besides the one
        // discovery read, is a mistake said now rather than a receiver quietly on or replaced.
        let enabled = sessions.login_settings().risc.enabled;
        if given_risc.is_some() && (!enabled || risc.is_some()) {
            return Err(Error::Config(
                "LoginBuilder::risc: login.risc.enabled is off, or LoginBuilder::discover has read the transmitter \
                 already"
                    .into(),
            ));
        }
        let risc = risc.or(given_risc);
        if enabled && risc.is_none() {
            return Err(Error::Config(
                "login.risc.enabled, but no RISC receiver: LoginBuilder::discover reads the transmitter; with \
                 providers made elsewhere, give one with LoginBuilder::risc"
                    .into(),
            ));
        }
        let risc = risc.map(|receiver| crate::login::Risc { receiver: Arc::new(receiver), holds });
        let login = Login::assemble(sessions, providers.clone(), hook, used_tokens, risc)?;
        login.sessions().keep_grants(providers, grants)?;
        Ok(login)
    }
}
