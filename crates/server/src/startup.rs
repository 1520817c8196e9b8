//! Builds the application from settings and serves it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use signin_domain::UserRepository;
use signin_login::{Login, MySqlSessionStore, ProviderSettings, Sessions};
use signin_persistence::MySqlUserRepository;
use signin_session::{CachedStore, MySqlChangeFeed, MySqlSessionDirectory, SessionDirectory};
use signin_web::{App, HealthCheck, RecordUsers, Templates};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::Settings;
use crate::serve::{ConnectionSettings, Draining, Listener};

/// Runs the embedded migrations (the `migrate` command).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    signin_persistence::run_migrations(&settings.database).await.context("running the database migrations")
}

/// Ends every session of the users with this email address (the `sessions revoke --user` command), on every
/// instance within the cache's coherence bound. Returns how many sessions were ended.
pub async fn revoke_sessions(settings: &Settings, email: &str) -> anyhow::Result<usize> {
    let stores = Stores::open(settings)?;
    let mut ended = 0;
    for user in stores.users.find_by_email(email).await.context("looking the user up")? {
        let owner = signin_session::owner_key(user.issuer.as_ref(), user.subject.as_ref());
        // Through the cache, so that the deletions reach the change feed and every instance drops them.
        ended += signin_session::end_all_sessions(&stores.cached, &*stores.directory, &owner)
            .await
            .map_err(|err| anyhow::anyhow!("ending the sessions failed: {err}"))?;
    }
    Ok(ended)
}

/// The stores of users and sessions, as the server and the operator commands use them.
struct Stores {
    user_pool: signin_persistence::DbPool,
    users: Arc<dyn UserRepository>,
    session_pool: sqlx::MySqlPool,
    store: MySqlSessionStore,
    /// `store` behind the session cache, publishing every change to the change feed.
    cached: CachedStore<MySqlSessionStore>,
    directory: Arc<dyn SessionDirectory>,
}

impl Stores {
    fn open(settings: &Settings) -> anyhow::Result<Self> {
        let user_pool = signin_persistence::pool(&settings.database).context("building the user-store pool")?;
        let users: Arc<dyn UserRepository> = Arc::new(MySqlUserRepository::new(user_pool.clone()));
        let session_pool = signin_login::sqlx_pool(
            &settings.database.url,
            settings.session.pool_size,
            settings.database.connect_timeout,
        )
        .context("building the session-store pool")?;
        let store = MySqlSessionStore::new(session_pool.clone()).context("opening the session store")?;
        let feed = Arc::new(MySqlChangeFeed::new(session_pool.clone()));
        let cached = CachedStore::new(store.clone(), feed, settings.session.cache.clone());
        let directory: Arc<dyn SessionDirectory> = Arc::new(MySqlSessionDirectory::new(session_pool.clone()));
        Ok(Self { user_pool, users, session_pool, store, cached, directory })
    }
}

/// The listening socket this process was handed by its parent, if any: systemd's socket activation (`LISTEN_FDS`,
/// the first socket; `LISTEN_PID`, when set, must be this process). It also clears those variables, so that no
/// child takes the socket for its own: call it once, before other threads start.
pub fn inherited_listener() -> anyhow::Result<Option<std::net::TcpListener>> {
    let mut handed = listenfd::ListenFd::from_env();
    if handed.len() == 0 {
        return Ok(None);
    }
    handed.take_tcp_listener(0).context("the first socket in LISTEN_FDS is not a TCP socket")
}

/// A built application, bound to its port, ready to serve.
pub struct Application {
    listener: Listener,
    router: axum::Router,
    connections: ConnectionSettings,
    draining: Draining,
    /// The metrics endpoint's listener and router, when metrics are served.
    metrics: Option<(TcpListener, axum::Router)>,
    /// Background work that ends with the server: the expired-session sweep and the change-feed reader.
    tasks: Vec<JoinHandle<()>>,
}

impl Application {
    /// Binds `server.host:server.port` and builds the application.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
        Self::build_with_listener(settings, listener).await
    }

    /// Builds the application on a listener the caller already bound (tests bind port 0 first, so the public URL
    /// and the provider's redirect URI can name the real port).
    pub async fn build_with_listener(settings: Settings, listener: TcpListener) -> anyhow::Result<Self> {
        Self::build_on(settings, Listener::Own(listener)).await
    }

    /// Builds the application on a listening socket other processes hold too ([`inherited_listener`]: systemd's,
    /// or one shared between an old and a new instance). It serves there instead of binding `server.host` and
    /// `server.port`; at shutdown it stops accepting and lets go of its copy without taking what is queued, so
    /// the next process gets those connections.
    pub async fn build_inherited(settings: Settings, listener: std::net::TcpListener) -> anyhow::Result<Self> {
        listener.set_nonblocking(true).context("making the inherited socket non-blocking")?;
        let listener = TcpListener::from_std(listener).context("serving on the inherited socket")?;
        Self::build_on(settings, Listener::Inherited(listener)).await
    }

    async fn build_on(mut settings: Settings, listener: Listener) -> anyhow::Result<Self> {
        settings.check()?;
        // Before anything registers a metric: handles made without a recorder record nothing.
        let recorder = if settings.server.metrics_address.is_empty() { None } else { crate::metrics::recorder() };
        if settings.login.cookie_keys.is_empty() {
            // Only in development (`check` refuses it elsewhere): sign-ins started before a restart, or on another
            // instance, will not finish.
            tracing::warn!("login.cookie_keys is empty: using a key made for this process only (development)");
            settings.login.cookie_keys.push(signin_login::generate_cookie_key().into());
        }
        if settings.server.run_migrations {
            migrate(&settings).await?;
        }
        let Stores { user_pool, users, session_pool, store, cached, directory } = Stores::open(&settings)?;
        let cleanup = signin_session::spawn_expired_cleanup(store.clone(), settings.session.cleanup_interval);
        let feed_reader = cached.spawn_feed_reader();

        let providers: Vec<ProviderSettings> = settings.all_providers().map(|(_, provider)| provider).collect();
        let connections = settings.server.connections(&settings.login.rate_limit);
        let sessions = Sessions::new(settings.server.public_url.clone(), settings.session, settings.login)?;
        let issuers: Vec<&str> = providers.iter().map(|provider| provider.issuer.as_str()).collect();
        let issuers = issuers.join(", ");
        let login = Login::builder(sessions, RecordUsers::new(users.clone()))
            .discover(providers)
            .await
            .with_context(|| format!("discovering the OpenID providers failed (providers: {issuers})"))?
            .shared_in(&session_pool)
            .build()?;

        let draining = Draining::default();
        let health: Vec<Arc<dyn HealthCheck>> = vec![
            Arc::new(draining.clone()),
            Arc::new(UserStoreCheck(users)),
            Arc::new(SessionStoreCheck(store.clone())),
        ];
        let app = App {
            login,
            templates: Templates::new().context("loading the templates")?,
            settings: settings.web,
            health,
            directory: Some(directory),
        };
        let router = signin_web::router(app, cached);
        let mut tasks = vec![cleanup, feed_reader];
        let mut metrics = None;
        if let Some(handle) = recorder {
            let address = &settings.server.metrics_address;
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding server.metrics_address {address}"))?;
            tasks.push(crate::metrics::spawn_sampler(handle.clone(), user_pool, session_pool));
            metrics = Some((listener, crate::metrics::router(handle, settings.server.metrics_token.clone())));
        }
        Ok(Self { listener, router, connections, draining, metrics, tasks })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether it serves on a socket it was handed ([`Application::build_inherited`]).
    pub fn is_inherited(&self) -> bool {
        matches!(self.listener, Listener::Inherited(_))
    }

    /// Where metrics are served, when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until Ctrl-C or SIGTERM, then drains and finishes the requests in flight (`server.drain`,
    /// `server.shutdown_timeout`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then drains and finishes the requests in flight.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { listener, router, connections, draining, metrics, mut tasks } = self;
        if let Some((listener, router)) = metrics {
            tasks.push(tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(error = %err, "the metrics endpoint stopped");
                }
            }));
        }
        crate::serve::serve(listener, router, connections, draining, signal).await;
        tasks.iter().for_each(JoinHandle::abort);
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}

struct UserStoreCheck(Arc<dyn UserRepository>);

#[async_trait]
impl HealthCheck for UserStoreCheck {
    fn name(&self) -> &'static str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct SessionStoreCheck(MySqlSessionStore);

#[async_trait]
impl HealthCheck for SessionStoreCheck {
    fn name(&self) -> &'static str {
        "sessions"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}
