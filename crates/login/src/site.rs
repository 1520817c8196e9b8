//! The site: its public URL, paths and cookies, what every service on it shares.

use std::fmt;
use std::sync::Arc;

use signin_domain::LocalPath;
use url::Url;

use crate::attempts::{AttemptCookies, Attempts};
use crate::settings::{AttemptKeys, ProviderPaths, common_path};
use crate::{Error, LoginSettings, SessionSettings};

/// The site's sign-in settings and its sessions: what every service on the site shares (the cookie, the session
/// store, the paths). Build one, then wrap the router with [`Sessions::layer`]. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(pub(crate) Arc<Site>);

pub(crate) struct Site {
    pub(crate) public_url: Url,
    /// The public URL's path without its trailing slash: `""` at the root, `/auth` under a prefix.
    pub(crate) prefix: String,
    pub(crate) origin: String,
    /// `<public URL><callback path>`.
    pub(crate) redirect_url: Url,
    pub(crate) session: SessionSettings,
    /// The session cookie's name as sent ([`SessionSettings::cookie`]).
    pub(crate) cookie: String,
    pub(crate) login: LoginSettings,
    pub(crate) attempts: Attempts,
    /// The people's grants, once a [`crate::Login`] or [`SessionReader::act_for_people`] set them up.
    pub(crate) tokens: std::sync::OnceLock<crate::ProviderTokens>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("public_url", &self.0.public_url.as_str())
            .field("session", &self.0.session)
            .field("login", &self.0.login)
            .finish()
    }
}

impl Sessions {
    /// The site at `public_url` (scheme, host, port and an optional path prefix, as people reach it; behind a
    /// proxy that strips the prefix, every path and link this crate makes carries it).
    pub fn new(public_url: Url, session: SessionSettings, login: LoginSettings) -> Result<Self, Error> {
        let plain = matches!(public_url.scheme(), "http" | "https")
            && public_url.host().is_some()
            && public_url.query().is_none()
            && public_url.fragment().is_none()
            && public_url.username().is_empty()
            && public_url.password().is_none()
            && !public_url.path().starts_with("//");
        if !plain {
            return Err(Error::Config(
                "server.public_url must be an http(s) URL without credentials, query or fragment, e.g. \
                 https://login.example.com"
                    .into(),
            ));
        }
        if public_url.scheme() == "https" && !session.secure {
            return Err(Error::Config("session.secure must stay on when the site is served over https".into()));
        }
        session.check().map_err(|err| match err {
            signin_session::SessionError::Config(message) => Error::Config(message),
            other => Error::Config(other.to_string()),
        })?;
        login.check()?;
        let prefix = public_url.path().trim_end_matches('/').to_owned();
        let mut redirect_url = public_url.clone();
        redirect_url.set_path(&format!("{prefix}{}", login.callback_path));
        let attempts = Attempts::new(
            AttemptKeys::parse(&login.cookie_keys)?,
            AttemptCookies {
                session_cookie: &session.cookie_name,
                path: format!("{prefix}{}", common_path(&login.login_path, &login.callback_path)),
                secure: session.secure,
                max_age: login.pending_login,
                max: login.max_attempts,
                scope: redirect_url.to_string(),
            },
        );
        let origin = public_url.origin().ascii_serialization();
        let cookie = session.cookie();
        Ok(Self(Arc::new(Site {
            public_url,
            prefix,
            origin,
            redirect_url,
            session,
            cookie,
            login,
            attempts,
            tokens: std::sync::OnceLock::new(),
        })))
    }

    /// The site at `public_url` with the loaded [`crate::SiteSettings`] (`[session]` and `[login]`): what a
    /// service that signs people in builds.
    pub fn from_settings(public_url: Url, site: &crate::SiteSettings) -> Result<Self, Error> {
        Self::new(public_url, site.session.clone(), site.login.clone())
    }

    /// The site as a service that only reads its sessions sees it (no sign-in routes of its own): the shared
    /// `[session]` settings and the paths of `[login]` (so that its sign-in links follow the site's), without the
    /// attempt-cookie keys a reader never uses. A [`SessionReader`] has the layer and the links of a
    /// [`Sessions`], and cannot be handed to [`crate::Login::builder`]:
    ///
    /// ```compile_fail
    /// # fn f(site: &signin_login::SiteSettings) -> Result<(), signin_login::Error> {
    /// let reader = signin_login::Sessions::reader("https://notes.example.com".parse().unwrap(), site)?;
    /// let login = signin_login::Login::builder(reader, signin_login::KeepClaims);
    /// # Ok(()) }
    /// ```
    pub fn reader(public_url: Url, site: &crate::SiteSettings) -> Result<SessionReader, Error> {
        // A reader that acts for people opens their grants with the site's token keys: derived from the cookie
        // keys unless given, so those are kept as token keys (and the attempt keys dropped).
        let mut tokens = site.login.tokens.clone();
        if tokens.keys.is_empty() {
            // The same derivation either way: the sealing keys are HKDF's, never the configured bytes themselves.
            tokens.keys.clone_from(&site.login.cookie_keys);
        }
        let login = LoginSettings { cookie_keys: Vec::new(), tokens, ..site.login.clone() };
        Self::new(public_url, site.session.clone(), login).map(SessionReader)
    }

    /// How long what one instance read may be served before a change elsewhere must be honoured: the session
    /// cache's `coherence`, or zero without a cache (every request reads the store).
    pub(crate) fn coherence(&self) -> std::time::Duration {
        let cache = &self.0.session.cache;
        if cache.active() { cache.coherence } else { std::time::Duration::ZERO }
    }

    /// The people's grants, once a [`crate::Login`] is built on these sessions (or a reader acts for people): for
    /// work done while the person is away ([`crate::ProviderTokens::access_token_for`]).
    pub fn provider_tokens(&self) -> Option<&crate::ProviderTokens> {
        self.0.tokens.get()
    }

    /// Keeps the people's grants in `store`, refreshed with `providers`, sealed with this site's keys and held in
    /// memory within its coherence bound; refused when it keeps some already (one [`crate::Login`] per site).
    pub(crate) fn keep_grants(
        &self,
        providers: Vec<Arc<dyn crate::Provider>>,
        store: Arc<dyn signin_session::GrantStore>,
    ) -> Result<(), Error> {
        let tokens = crate::ProviderTokens::new(&self.0.login, providers, store, self.coherence())?;
        self.0.tokens.set(tokens).map_err(|_| {
            Error::Config("these Sessions serve a Login (or act for people) already: make one Sessions each".into())
        })
    }

    /// Where a signed-in person grants `scopes` (the grant route, [`LoginSettings::grant_path`]), coming back to
    /// `next`: `/login/grant?scope=a%20b&next=%2Fcalendar`.
    pub fn grant_url(&self, scopes: &[&str], next: Option<&LocalPath>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !scopes.is_empty() {
            query.append_pair("scope", &scopes.join(" "));
        }
        if let Some(next) = next.filter(|next| next.as_ref() != "/") {
            query.append_pair("next", next.as_ref());
        }
        let query = query.finish();
        let path = self.url(&self.0.login.grant_path());
        if query.is_empty() { path } else { format!("{path}?{query}") }
    }

    /// The public URL.
    pub fn public_url(&self) -> &Url {
        &self.0.public_url
    }

    /// The site's origin, e.g. `https://login.example.com`.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// A site path as people reach it: with the public URL's prefix (`/login` → `/auth/login`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0.prefix)
    }

    /// Where a sign-in link points, with `next` when given: `/login?next=%2Fnotes` (the main provider's).
    pub fn login_url(&self, next: Option<&LocalPath>) -> String {
        self.login_url_at(&self.0.login.login_path, next)
    }

    pub(crate) fn login_url_at(&self, path: &str, next: Option<&LocalPath>) -> String {
        let login = self.url(path);
        match next {
            Some(next) if next.as_ref() != "/" => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_ref().as_bytes()).collect();
                format!("{login}?next={next}")
            }
            _ => login,
        }
    }

    /// The sign-in page that begins a new sign-in even for someone signed in (`again=1`), with `next` as in
    /// [`Sessions::login_url`]: for a session this service cannot use.
    pub fn sign_in_again_url(&self, next: Option<&LocalPath>) -> String {
        let url = self.login_url(next);
        let glue = if url.contains('?') { '&' } else { '?' };
        format!("{url}{glue}again=1")
    }

    /// Where the sign-out form posts.
    pub fn logout_url(&self) -> String {
        self.url(&self.0.login.logout_path)
    }

    /// Where a sign-out, and a sign-in without `next`, lead.
    pub(crate) fn home_url(&self) -> String {
        self.url(&self.0.login.home_path)
    }

    /// The redirect URI to register with the provider: the public URL and the callback path. With several
    /// providers, this is the first one's; each other has its own ([`Sessions::redirect_url_for`]).
    pub fn redirect_url(&self) -> &Url {
        &self.0.redirect_url
    }

    /// The redirect URI of a provider after the first, with id `provider_id`:
    /// `<public URL><login path>/<id>/callback`, e.g. `https://login.example.com/login/corp/callback`.
    pub fn redirect_url_for(&self, provider_id: &str) -> Url {
        let mut url = self.0.public_url.clone();
        url.set_path(&self.url(&ProviderPaths::other(&self.0.login, provider_id).callback));
        url
    }

    /// The session settings.
    pub fn session_settings(&self) -> &SessionSettings {
        &self.0.session
    }

    /// The sign-in settings.
    pub fn login_settings(&self) -> &LoginSettings {
        &self.0.login
    }

    pub(crate) fn attempts(&self) -> &Attempts {
        &self.0.attempts
    }
}

/// The site's sessions as a service that only reads them has them ([`Sessions::reader`]): everything of a
/// [`Sessions`] (the layer, the links) through `Deref`, but not a site that can sign people in.
#[derive(Clone, Debug)]
pub struct SessionReader(Sessions);

impl SessionReader {
    /// Lets this service's handlers act for people ([`crate::AccessToken`]): their grants in `store` (the one the
    /// site's sign-in service writes), refreshed with `providers` (the site's, with their client secrets). The
    /// grants open with `login.tokens.keys`, or the keys derived from `login.cookie_keys`: the reader needs the
    /// same secret as the service that signs people in.
    pub fn act_for_people(
        self,
        providers: Vec<Arc<dyn crate::Provider>>,
        store: Arc<dyn signin_session::GrantStore>,
    ) -> Result<Self, Error> {
        self.0.keep_grants(providers, store)?;
        Ok(self)
    }

    /// [`SessionReader::act_for_people`] with the providers of `settings` (discovered now) and the grants in the
    /// site's MySQL database.
    #[cfg(feature = "mysql")]
    pub async fn act_for_people_in(
        self,
        pool: &sqlx::MySqlPool,
        settings: impl IntoIterator<Item = crate::ProviderSettings>,
    ) -> Result<Self, Error> {
        let mut providers: Vec<Arc<dyn crate::Provider>> = Vec::new();
        for (index, settings) in settings.into_iter().enumerate() {
            // Refreshing never uses the redirect URI; it is the one the site registered, all the same.
            let redirect = if index == 0 { self.redirect_url().clone() } else { self.redirect_url_for(&settings.id()) };
            providers.push(Arc::new(crate::OidcClient::discover(settings, redirect).await?));
        }
        self.act_for_people(providers, Arc::new(signin_session::MySqlGrants::new(pool.clone())))
    }
}

impl std::ops::Deref for SessionReader {
    type Target = Sessions;

    fn deref(&self) -> &Sessions {
        &self.0
    }
}
