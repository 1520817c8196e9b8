//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use signin_auth::IdentityProvider;
use signin_domain::UserRepository;
use url::Url;

use crate::provider_check::ProviderCheck;
use crate::{HealthCheck, Templates};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The public base URL (scheme, host, port, optional path prefix) people reach the site by.
    pub public_url: Url,
    /// How stale a signed-in session's last-seen time may get before a request refreshes it (and so its expiry).
    pub touch_interval: Duration,
    /// How long a signed-in session lives without activity (the session layer's expiry).
    pub session_inactivity: Duration,
    /// How long an unfinished sign-in (between `/login` and the callback) is kept.
    pub pending_login_ttl: Duration,
    /// Extra origins images may load from, besides this site and any `https:` host (e.g. a local provider).
    pub extra_img_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a successful check of the provider lets `/login` send people there without checking again;
    /// zero turns the check off.
    pub provider_check_interval: Duration,
    /// How long one request may take before it is answered with an error.
    pub request_timeout: Duration,
}

impl WebSettings {
    /// Defaults for a site at `public_url`.
    pub fn new(public_url: Url) -> Self {
        Self {
            public_url,
            touch_interval: Duration::from_secs(3600),
            session_inactivity: Duration::from_secs(7 * 24 * 3600),
            pending_login_ttl: Duration::from_secs(15 * 60),
            extra_img_origins: Vec::new(),
            max_body_bytes: 16 * 1024,
            provider_check_interval: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Whether the site is served over https (then `Strict-Transport-Security` is sent).
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The site's origin, e.g. `https://login.example.com`.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }
}

/// The application's shared parts.
pub struct App {
    /// Where users are stored.
    pub users: Arc<dyn UserRepository>,
    /// The OpenID provider.
    pub identity: Arc<dyn IdentityProvider>,
    /// Page templates.
    pub templates: Templates,
    /// HTTP settings.
    pub settings: WebSettings,
    /// What `/health/ready` checks.
    pub health: Vec<Arc<dyn HealthCheck>>,
}

/// The state handlers receive: one `App` behind an `Arc`, with the bookkeeping the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    app: App,
    provider_check: ProviderCheck,
}

impl AppState {
    /// Wraps an `App`.
    pub fn new(app: App) -> Self {
        let provider_check = ProviderCheck::new(app.settings.provider_check_interval);
        Self(Arc::new(Shared { app, provider_check }))
    }

    /// Whether the provider answered lately; see [`ProviderCheck`].
    pub(crate) fn provider_check(&self) -> &ProviderCheck {
        &self.0.provider_check
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0.app
    }
}

impl FromRef<AppState> for Templates {
    fn from_ref(state: &AppState) -> Self {
        state.templates.clone()
    }
}
