//! What every handler can reach.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use serde::Deserialize;
use signin_login::{GOOGLE_ISSUER, Login, ProviderLink, SessionDirectory, issuer_name};

use crate::{HealthCheck, RecordUsers, Templates};

/// Where the person's sessions page is.
pub(crate) const SESSIONS_PATH: &str = "/sessions";

/// Settings of the HTTP layer; deserialises from the `[web]` configuration section. Durations are seconds or forms
/// such as `"30s"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Largest request body accepted, in bytes (default 16 KiB).
    pub max_body_bytes: usize,
    /// How long one request may take before it is answered with an error (default 30 s).
    #[serde(with = "signin_domain::duration")]
    pub request_timeout: Duration,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self { max_body_bytes: 16 * 1024, request_timeout: Duration::from_secs(30) }
    }
}

/// The application's shared parts.
pub struct App {
    /// Sign-in: the provider, the site's sessions and the hook that records users.
    pub login: Login<RecordUsers>,
    /// Page templates.
    pub templates: Templates,
    /// HTTP settings.
    pub settings: WebSettings,
    /// What `/health/ready` checks.
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// The directory of each person's sessions, for the sessions page (`/sessions`); `None`: no such page.
    pub directory: Option<Arc<dyn SessionDirectory>>,
}

/// The state handlers receive: one `App` behind an `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    app: App,
    /// The login page as every signed-out visitor gets it, rendered once.
    login_page: OnceLock<Bytes>,
}

impl AppState {
    /// Wraps an `App`.
    pub fn new(app: App) -> Self {
        Self(Arc::new(Shared { app, login_page: OnceLock::new() }))
    }

    /// The login page without a message: the same for everyone, so rendered on first use and then shared.
    pub(crate) fn login_page(&self) -> Result<Bytes, minijinja::Error> {
        if let Some(page) = self.0.login_page.get() {
            return Ok(page.clone());
        }
        let page = Bytes::from(self.templates.render("login.html", LoginContext { page: self.page(), message: None })?);
        Ok(self.0.login_page.get_or_init(|| page).clone())
    }

    /// Whether the site is served over https (then `Strict-Transport-Security` is sent).
    pub fn is_https(&self) -> bool {
        self.login.sessions().public_url().scheme() == "https"
    }

    /// Origins images may load from besides this site and any `https:` host: a provider served over plain http
    /// (a local development provider) has its pictures there.
    pub fn extra_img_origins(&self) -> Vec<String> {
        self.login
            .providers()
            .filter_map(|provider| url::Url::parse(provider.issuer()).ok())
            .filter(|url| url.scheme() == "http")
            .map(|url| url.origin().ascii_serialization())
            .collect()
    }

    /// The origins of the providers' end-session pages that signing out leads to (`oidc.end_session_at_sign_out`).
    pub fn end_session_origins(&self) -> Vec<String> {
        let home = self.login.sessions().public_url();
        self.login
            .providers()
            .filter(|provider| provider.sign_out_plan().end_session)
            .filter_map(|provider| provider.end_session_url("", home))
            .map(|url| url.origin().ascii_serialization())
            .collect()
    }

    /// What pages say about the provider and where their sign-in and sign-out links point.
    pub(crate) fn page(&self) -> PageContext {
        PageContext { providers: self.login.links(None), ..self.page_signed_in_by(self.login.provider().issuer()) }
    }

    /// The same without the sign-in buttons, for a person whom `issuer` signed in: a session begun with another
    /// provider (before a change of configuration, or by another service on the site) is named after that one,
    /// never after ours.
    pub(crate) fn page_signed_in_by(&self, issuer: &str) -> PageContext {
        let sessions = self.login.sessions();
        let name = match self.login.provider_by_issuer(issuer) {
            Some(provider) => provider.display_name().to_owned(),
            None => issuer_name(issuer),
        };
        PageContext {
            base: sessions.url(""),
            provider: name,
            google: issuer == GOOGLE_ISSUER,
            providers: Vec::new(),
            login_url: sessions.login_url(None),
            logout_url: sessions.logout_url(),
            sessions_url: self.directory.is_some().then(|| sessions.url(SESSIONS_PATH)),
        }
    }
}

/// What the login page shows: the site's parts and, after a failed or cancelled sign-in, why.
#[derive(serde::Serialize)]
pub(crate) struct LoginContext<'a> {
    pub page: PageContext,
    pub message: Option<&'a str>,
}

/// The parts of every page that come from the sign-in configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PageContext {
    /// The public URL's path prefix (`""` at the root), for links to the site's own pages and assets.
    pub base: String,
    /// The provider's name, e.g. "Google".
    pub provider: String,
    /// Google's own branding (the "G" button) applies.
    pub google: bool,
    /// Every provider's sign-in button, the main one first; only on pages that sign in (a signed-in page, served
    /// per request, does without).
    pub providers: Vec<ProviderLink>,
    pub login_url: String,
    pub logout_url: String,
    /// The person's sessions page, when there is one.
    pub sessions_url: Option<String>,
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0.app
    }
}
