//! Builds the application from settings and serves it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use signin_auth::{OidcClient, ProviderSettings};
use signin_domain::UserRepository;
use signin_persistence::{DatabaseSettings, MySqlUserRepository};
use signin_session::{MySqlSessionStore, SessionSettings};
use signin_web::{App, AppState, HealthCheck, Templates, WebSettings};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use crate::Settings;

fn database_settings(settings: &Settings) -> DatabaseSettings {
    DatabaseSettings {
        url: settings.database.url.clone(),
        pool_size: settings.database.pool_size,
        connect_timeout: Settings::secs(settings.database.connect_timeout_secs),
    }
}

/// Runs the embedded migrations (the `migrate` command).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    signin_persistence::run_migrations(&database_settings(settings)).await.context("running the database migrations")
}

/// A built application, bound to its port, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    cleanup: JoinHandle<()>,
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
        settings.check()?;
        let db = database_settings(&settings);
        if settings.server.run_migrations {
            signin_persistence::run_migrations(&db).await.context("running the database migrations")?;
        }
        let users: Arc<dyn UserRepository> =
            Arc::new(MySqlUserRepository::new(signin_persistence::pool(&db).context("building the user-store pool")?));

        let session_pool = signin_session::sqlx_pool(
            &settings.database.url,
            settings.database.session_pool_size,
            Settings::secs(settings.database.connect_timeout_secs),
        )
        .context("building the session-store pool")?;
        let store = MySqlSessionStore::new(session_pool).context("opening the session store")?;
        let session_settings = SessionSettings {
            cookie_name: settings.session.cookie_name.clone(),
            secure: settings.session.secure,
            inactivity: Settings::secs(settings.session.inactivity_secs),
            touch_interval: Settings::secs(settings.session.touch_interval_secs),
            cleanup_interval: Settings::secs(settings.session.cleanup_interval_secs),
        };
        let cleanup = signin_session::spawn_expired_cleanup(store.clone(), session_settings.cleanup_interval);

        let oidc = &settings.oidc;
        let mut provider = ProviderSettings::new(
            oidc.issuer.clone(),
            oidc.client_id.clone(),
            oidc.client_secret.clone(),
            settings.redirect_url()?,
        );
        provider.scopes = oidc.scopes.clone();
        provider.http_timeout = Settings::secs(oidc.http_timeout_secs);
        provider.clock_leeway = Settings::secs(oidc.clock_leeway_secs);
        provider.max_response_bytes = oidc.max_response_bytes;
        let identity = OidcClient::discover(provider)
            .await
            .with_context(|| format!("OpenID Connect discovery at {} failed", oidc.issuer))?;

        let mut web = WebSettings::new(settings.server.public_url.clone());
        web.touch_interval = session_settings.touch_interval;
        web.session_inactivity = session_settings.inactivity;
        web.pending_login_ttl = Settings::secs(settings.session.pending_login_secs);
        web.max_body_bytes = settings.server.max_body_bytes;
        web.provider_check_interval = Settings::secs(oidc.check_interval_secs);
        web.request_timeout = Settings::secs(settings.server.request_timeout_secs);
        web.extra_img_origins = plain_http_origin(&oidc.issuer).into_iter().collect();

        let health: Vec<Arc<dyn HealthCheck>> =
            vec![Arc::new(UserStoreCheck(users.clone())), Arc::new(SessionStoreCheck(store.clone()))];
        let state = AppState::new(App {
            users,
            identity: Arc::new(identity),
            templates: Templates::new().context("loading the templates")?,
            settings: web,
            health,
        });
        let router = signin_web::router(state, signin_session::session_layer(store, &session_settings));
        Ok(Self { listener, router, cleanup })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes, then finishes the requests in flight.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self { listener, router, cleanup } = self;
        let served = axum::serve(listener, router).with_graceful_shutdown(signal).await;
        cleanup.abort();
        served
    }
}

/// Pictures from a provider served over plain http (a local development provider) must be allowed by the CSP.
fn plain_http_origin(issuer: &str) -> Option<String> {
    let url = Url::parse(issuer).ok()?;
    (url.scheme() == "http").then(|| url.origin().ascii_serialization())
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
    tracing::info!("shutting down");
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
