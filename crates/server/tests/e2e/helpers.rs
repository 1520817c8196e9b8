//! Starting the real app against the real provider and a fresh database, and a cookie-keeping HTTP client that
//! walks the provider's login and consent pages like a person would.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode, Url, header};
use signin::{Application, Settings};
use signin_testkit::TestDb;
use sqlx::{Connection, MySqlConnection};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The session cookie's name in these tests.
pub const COOKIE: &str = "signin_session";
/// What the pages call the development provider in these tests (`oidc.display_name`).
pub const PROVIDER_NAME: &str = "DevID";
/// The sign-in button's text.
pub const LOGIN_BUTTON: &str = "Login with DevID";

/// The attempt-cookie key of every app these tests start: one deployment's secret, shared by its instances.
pub fn cookie_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(signin_login::generate_cookie_key).clone()
}

/// The development provider `scripts/test` started.
pub fn issuer() -> String {
    std::env::var("SIGNIN_TEST_ISSUER")
        .expect("SIGNIN_TEST_ISSUER is not set: run the tests with scripts/test, which starts the OpenID provider")
}

/// A client registered with the provider for one app instance.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub id: String,
    pub secret: String,
}

/// Registers a confidential web client for `redirect_uri` (OpenID Connect Dynamic Client Registration).
pub async fn register_client(redirect_uri: &str) -> RegisteredClient {
    register_client_with(redirect_uri, serde_json::json!({})).await
}

/// Like [`register_client`], with more client metadata (e.g. `backchannel_logout_uri`).
pub async fn register_client_with(redirect_uri: &str, extra: serde_json::Value) -> RegisteredClient {
    let mut body = serde_json::json!({
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = reqwest::Client::new()
        .post(format!("{}/reg", issuer()))
        .json(&body)
        .send()
        .await
        .expect("registration request");
    assert_eq!(response.status(), StatusCode::CREATED, "client registration failed");
    let json: serde_json::Value = response.json().await.expect("registration response");
    RegisteredClient {
        id: json["client_id"].as_str().expect("client_id").to_owned(),
        secret: json["client_secret"].as_str().expect("client_secret").to_owned(),
    }
}

/// Settings for one test app: the repo's config files, then the test's database, the development provider and
/// the address.
pub fn settings(db_url: &str, public_url: &str, client: &RegisteredClient) -> Settings {
    settings_for_provider(db_url, public_url, &issuer(), client)
}

/// The app, running in this test's runtime on a port of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: RegisteredClient,
    pub db_url: String,
    /// Where this instance serves its metrics.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts the app on a free port against `db`, with a client registered for that port.
    pub async fn spawn(db: &TestDb) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let client = register_client(&format!("{base}/login/callback")).await;
        Self::start(listener, base, client, db.url()).await
    }

    /// Starts the app on a free port against `db`, with a client registered for that port with this metadata
    /// besides the redirect URI; `metadata` gets the app's base URL.
    pub async fn spawn_registered(db: &TestDb, metadata: impl FnOnce(&str) -> serde_json::Value) -> Self {
        Self::spawn_registered_tweaked(db, metadata, |_| {}).await
    }

    /// Like [`TestApp::spawn_registered`], with `tweak` applied to the settings.
    pub async fn spawn_registered_tweaked(
        db: &TestDb,
        metadata: impl FnOnce(&str) -> serde_json::Value,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let client = register_client_with(&format!("{base}/login/callback"), metadata(&base)).await;
        Self::start_tweaked(listener, base, client, db.url(), tweak).await
    }

    /// Starts the app again on the same port, database and client, as after a restart.
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind the same port");
        Self::start(listener, self.base.clone(), self.client.clone(), self.db_url.clone()).await
    }

    async fn start(listener: TcpListener, base: String, client: RegisteredClient, db_url: String) -> Self {
        Self::start_tweaked(listener, base, client, db_url, |_| {}).await
    }

    /// Serves `settings` on `listener`; `base` is where requests go (the public URL may name another instance).
    pub async fn launch(
        listener: TcpListener,
        base: String,
        client: RegisteredClient,
        db_url: String,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let app = Application::build_with_listener(settings, listener).await?;
        Ok(Self::run(addr, base, client, db_url, app))
    }

    /// Like [`TestApp::launch`], on a listening socket other processes hold too (as systemd hands one down): at
    /// shutdown the instance leaves what is queued on it to the others.
    pub async fn launch_inherited(
        listener: std::net::TcpListener,
        base: String,
        client: RegisteredClient,
        db_url: String,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let app = Application::build_inherited(settings, listener).await?;
        assert!(app.is_inherited());
        Ok(Self::run(addr, base, client, db_url, app))
    }

    fn run(addr: SocketAddr, base: String, client: RegisteredClient, db_url: String, app: Application) -> Self {
        let metrics = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self { addr, base, client, db_url, metrics, stop: Some(stop), task: Some(task) }
    }

    /// Another instance of the same deployment: same database, client and public URL (this instance's, as if a
    /// load balancer stood there), on a port of its own.
    pub async fn another_instance(&self) -> Self {
        self.another_instance_tweaked(|_| {}).await
    }

    /// Like [`TestApp::another_instance`], with `tweak` applied to its settings.
    pub async fn another_instance_tweaked(&self, tweak: impl FnOnce(&mut Settings)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut settings = settings(&self.db_url, &self.base, &self.client);
        tweak(&mut settings);
        Self::launch(listener, base, self.client.clone(), self.db_url.clone(), settings).await.expect("app builds")
    }

    /// Kills the server at once, as a crash would: its connections are dropped mid-request.
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn db(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.db_url).await.expect("db connection")
    }

    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&mut self.db().await).await.expect("count users")
    }

    pub async fn session_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&mut self.db().await)
            .await
            .expect("count sessions")
    }
}

/// The value of one series (`name{labels}`) in a Prometheus page (0 when absent).
pub fn series(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

impl TestApp {
    /// Waits (10 s at most) until a series of this instance's metrics reaches `at_least`.
    pub async fn wait_for_metric(&self, name_and_labels: &str, at_least: f64) {
        let metrics = format!("http://{}/metrics", self.metrics.expect("metrics are served"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let page = reqwest::get(&metrics).await.expect("scraped").text().await.expect("text");
            if series(&page, name_and_labels) >= at_least {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{name_and_labels} never reached {at_least}: {page}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A browser: keeps cookies, never follows redirects by itself (tests look at every hop).
pub struct Browser {
    pub jar: Arc<Jar>,
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new() -> Self {
        Self::build(reqwest::Client::builder())
    }

    /// A browser that says it is `user_agent` (what the sessions page shows of it).
    pub fn with_user_agent(user_agent: &str) -> Self {
        Self::build(reqwest::Client::builder().user_agent(user_agent))
    }

    fn build(builder: reqwest::ClientBuilder) -> Self {
        let jar = Arc::new(Jar::default());
        let http =
            builder.cookie_provider(jar.clone()).redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { jar, http }
    }

    /// A browser that holds only the given session cookie for `base` (another browser, or the same one reopened).
    pub fn with_session_cookie(base: &str, value: &str) -> Self {
        let browser = Self::new();
        let url = Url::parse(base).expect("base");
        browser.jar.add_cookie_str(&format!("{COOKIE}={value}; Path=/"), &url);
        browser
    }

    /// The value of our session cookie for `base`, if any.
    pub fn session_cookie(&self, base: &str) -> Option<String> {
        let url = Url::parse(base).expect("base");
        let header = self.jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
    }

    pub async fn get(&self, url: &str) -> Response {
        self.http.get(url).send().await.expect("GET")
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Response {
        self.http.post(url).form(form).send().await.expect("POST")
    }

    /// From `/login`, through the provider's login and consent pages, up to (not including) our callback.
    /// Returns the callback URL the provider sent the browser to.
    pub async fn through_provider(&self, login_url: &str, login: &str) -> String {
        let to_provider = location(&self.get(login_url).await);
        let mut next = location(&self.get(&to_provider).await);
        for _ in 0..6 {
            if !next.starts_with(&issuer()) {
                return next;
            }
            let page = self.get(&next).await;
            if page.status().is_redirection() {
                next = location(&page);
                continue;
            }
            let html = page.text().await.expect("provider page");
            let response = if html.contains("name=\"login\"") {
                self.post_form(&next, &[("prompt", "login"), ("login", login), ("password", "x")]).await
            } else {
                self.post_form(&next, &[("prompt", "consent")]).await
            };
            next = location(&response);
            while next.starts_with(&issuer()) && next.contains("/auth/") {
                next = location(&self.get(&next).await);
            }
        }
        panic!("the provider never sent the browser back");
    }

    /// A whole sign-in: returns our callback's response.
    pub async fn sign_in(&self, app: &TestApp, login: &str) -> Response {
        let callback = self.through_provider(&app.url("/login"), login).await;
        self.get(&callback).await
    }

    /// Follows the whole redirect chain from `start` through our app (or any service of the site) and the
    /// provider, answering the provider's login form as `login` and its consent forms as a person would, and
    /// returns the first answer that is neither a redirect nor a provider page: its URL is where the chain ended.
    pub async fn walk(&self, start: &str, login: &str) -> Response {
        let mut next = start.to_owned();
        for _ in 0..30 {
            let response = self.get(&next).await;
            if response.status().is_redirection() {
                next = location(&response);
                continue;
            }
            if !next.starts_with(&issuer()) {
                return response;
            }
            let status = response.status();
            let html = response.text().await.expect("provider page");
            let answered = if html.contains("name=\"login\"") {
                self.post_form(&next, &[("prompt", "login"), ("login", login), ("password", "x")]).await
            } else if html.contains("name=\"prompt\" value=\"consent\"") {
                self.post_form(&next, &[("prompt", "consent")]).await
            } else {
                panic!("the provider answered {status} at {next} with neither a login nor a consent form: {html}");
            };
            next = location(&answered);
        }
        panic!("the redirect chain from {start} never ended");
    }
}

/// The CSRF token the profile page puts in its logout form.
pub fn csrf_from(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field on the profile page") + 19;
    html[at..].split('"').next().expect("csrf value").to_owned()
}

/// The `Location` header of a redirect, resolved against the request URL.
pub fn location(response: &Response) -> String {
    assert!(
        response.status().is_redirection(),
        "expected a redirect from {}, got {}",
        response.url(),
        response.status()
    );
    let raw = response.headers().get(header::LOCATION).expect("Location").to_str().expect("ascii");
    response.url().join(raw).expect("location url").to_string()
}

/// Settings for one test app against any provider: the repo's config files, then the test's database, the given
/// issuer and client, and the address. Unlike [`settings`], it needs no development provider.
pub fn settings_for_provider(db_url: &str, public_url: &str, issuer: &str, client: &RegisteredClient) -> Settings {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut settings = Settings::read(&dir, None, false).expect("defaults");
    settings.server.public_url = Url::parse(public_url).expect("public url");
    settings.server.port = 0;
    settings.database.url = db_url.to_owned().into();
    settings.database.pool_size = 4;
    settings.session.pool_size = 4;
    settings.login.cookie_keys = vec![cookie_key().into()];
    settings.oidc.issuer = issuer.to_owned();
    settings.oidc.display_name = Some(PROVIDER_NAME.to_owned());
    settings.oidc.client_id = client.id.clone();
    settings.oidc.client_secret = client.secret.clone().into();
    settings.session.secure = false;
    // Tests stop instances often; the drain test sets its own.
    settings.server.drain = std::time::Duration::ZERO;
    // Every test client is 127.0.0.1, and some sign in hundreds of times; the rate-limit tests set their own.
    settings.login.rate_limit.burst = 1_000_000;
    // Likewise some hold hundreds of connections at once (one per browser); the connection tests set their own.
    settings.server.max_connections_per_client = settings.server.max_connections;
    // Many instances on one machine: each its own metrics port.
    settings.server.metrics_address = "127.0.0.1:0".to_owned();
    settings
}

impl TestApp {
    /// Starts the app on a free port against `db` and the provider at `issuer` with a client it already knows (a
    /// scripted provider); `tweak` adjusts the settings first. Fails when the app does not build (e.g. discovery
    /// refused the provider).
    pub async fn try_spawn_with_provider(
        db: &TestDb,
        issuer: &str,
        client: RegisteredClient,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let db_url = db.url();
        let mut settings = settings_for_provider(&db_url, &base, issuer, &client);
        tweak(&mut settings);
        Self::launch(listener, base, client, db_url, settings).await
    }
}

impl TestApp {
    /// Starts the app on a free port against the database at `db_url` (on any server, e.g. a private one), with a
    /// client registered with the development provider; `tweak` adjusts the settings first (timeouts, pools).
    pub async fn spawn_tweaked(db_url: &str, tweak: impl FnOnce(&mut Settings)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let client = register_client(&format!("{base}/login/callback")).await;
        Self::start_tweaked(listener, base, client, db_url.to_owned(), tweak).await
    }

    /// Like [`TestApp::restart`], with `tweak` applied to the settings again.
    pub async fn restart_tweaked(mut self, tweak: impl FnOnce(&mut Settings)) -> Self {
        self.shutdown().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind the same port");
        Self::start_tweaked(listener, self.base.clone(), self.client.clone(), self.db_url.clone(), tweak).await
    }

    async fn start_tweaked(
        listener: TcpListener,
        base: String,
        client: RegisteredClient,
        db_url: String,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = settings(&db_url, &base, &client);
        tweak(&mut settings);
        Self::launch(listener, base, client, db_url, settings).await.expect("app builds")
    }
}

/// What the example service needs to act for the people of an app ([`spawn_notes_api`]).
pub struct ActingFor<'a> {
    /// The app whose provider client the service refreshes people's tokens with.
    pub app: &'a TestApp,
    /// `login.tokens.refresh_margin`: a token expiring within it is refreshed first.
    pub refresh_margin: std::time::Duration,
    /// The app's provider (the development provider, or a hostile one).
    pub issuer: String,
    /// `oidc.http_timeout` of the service's calls to that provider.
    pub http_timeout: std::time::Duration,
}

impl<'a> ActingFor<'a> {
    /// For the people of `app` at the development provider.
    pub fn app(app: &'a TestApp, refresh_margin: std::time::Duration) -> Self {
        Self { app, refresh_margin, issuer: issuer(), http_timeout: std::time::Duration::from_secs(10) }
    }
}

/// The example service (`examples/notes-api`) on a port of its own, over the sessions in the database at
/// `db_url`, with the site's configuration as the service would load it and the tests' cookie; its provider API
/// is the development provider's userinfo endpoint. With `acting_for`, it also acts for that app's people
/// (`AccessToken`): the app's issuer and client, the tests' cookie key (from which the grants' keys derive) and the
/// given refresh margin.
pub async fn spawn_notes_api(db_url: &str, acting_for: Option<ActingFor<'_>>) -> String {
    use signin_login::{ConfigSource, MySqlSessionStore, ProviderSettings, SessionSettings, Sessions, SiteSettings};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let timeout = std::time::Duration::from_secs(3);
    let pool = signin_login::sqlx_pool(&db_url.to_owned().into(), 4, timeout).expect("pool");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut site: SiteSettings = ConfigSource::new(config).without_variables().load().expect("the site's settings");
    site.session = SessionSettings { cookie_name: COOKIE.to_owned(), secure: false, ..site.session };
    let provider_issuer = acting_for.as_ref().map_or_else(issuer, |acting| acting.issuer.clone());
    let reader = match acting_for {
        None => Sessions::reader(base.parse().expect("url"), &site).expect("sessions"),
        Some(ActingFor { app, refresh_margin, issuer, http_timeout }) => {
            let mut oidc = ProviderSettings::new(issuer, app.client.id.clone(), app.client.secret.clone().into());
            oidc.display_name = Some(PROVIDER_NAME.to_owned());
            oidc.http_timeout = http_timeout;
            site.oidc = Some(oidc);
            site.providers.clear();
            site.login.cookie_keys = vec![cookie_key().into()];
            site.login.tokens.refresh_margin = refresh_margin;
            Sessions::reader(base.parse().expect("url"), &site)
                .expect("sessions")
                .act_for_people_in(&pool, site.all_providers())
                .await
                .expect("the service acts for people")
        }
    };
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("client");
    let discovery: serde_json::Value = http
        .get(format!("{provider_issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery document");
    let userinfo = discovery["userinfo_endpoint"].as_str().expect("a userinfo endpoint").parse().expect("url");
    let provider = notes_api::ProviderApi { url: userinfo, http };
    let app = notes_api::app(&reader, MySqlSessionStore::new(pool).expect("store"), provider);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}
