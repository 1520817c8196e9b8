//! A small W3C WebDriver client for browser tests: starts `chromedriver`, opens headless Chromium sessions and
//! drives them (navigate, find, click, type, run a script, take a screenshot).
//!
//! It speaks the [WebDriver protocol](https://www.w3.org/TR/webdriver2/) as JSON over HTTP with `reqwest`, which
//! covers what the tests need without a heavy client library.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which WebDriver returns element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's `chromium-driver` package puts the driver.
pub const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` package puts the browser.
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// A running `chromedriver`, killed when dropped (after closing any browser a failed test left open).
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    url: String,
    http: reqwest::Client,
    open: OpenSessions,
}

/// The ids of the sessions not yet quit.
type OpenSessions = Arc<Mutex<Vec<String>>>;

impl ChromeDriver {
    /// Starts `chromedriver` (`SIGNIN_CHROMEDRIVER`, else `/usr/bin/chromedriver`) on a free local port and waits
    /// until it answers. Fails with a clear message when the driver is not installed.
    pub async fn start() -> anyhow::Result<Self> {
        let path =
            std::env::var_os("SIGNIN_CHROMEDRIVER").map_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER), PathBuf::from);
        if !path.exists() {
            bail!(
                "{} is missing: the browser test needs Debian's `chromium` and `chromium-driver` packages \
                 (scripts/test installs them)",
                path.display()
            );
        }
        let port = free_port()?;
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("http client")?;
        let driver = Self { child, port, url: format!("http://127.0.0.1:{port}"), http, open: OpenSessions::default() };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = driver.http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(response) = ready
                && let Ok(status) = response.json::<Value>().await
                && status["value"]["ready"] == Value::Bool(true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a browser: a new WebDriver session.
    pub async fn open(&self, options: &BrowserOptions) -> anyhow::Result<Browser> {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {
                        "binary": options.binary,
                        "args": options.args(),
                    },
                },
            },
        });
        let response = self.http.post(format!("{}/session", self.url)).json(&capabilities).send().await;
        let value = unwrap_response(response.context("POST /session"), "new session").await?;
        let id = value["sessionId"].as_str().context("no sessionId in the new-session response")?.to_owned();
        lock(&self.open).push(id.clone());
        Ok(Browser {
            http: self.http.clone(),
            session: format!("{}/session/{id}", self.url),
            id,
            open: self.open.clone(),
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // A test that failed half-way leaves its browser open; killing only the driver would orphan Chromium.
        // Drop cannot await, so these last requests are written by hand over a blocking socket.
        for id in lock(&self.open).drain(..) {
            let _ = delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start Chromium.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// The browser binary (`SIGNIN_CHROMIUM`, else `/usr/bin/chromium`).
    pub binary: PathBuf,
    /// The profile directory: cookies and history live here, so a browser opened again on it is the same browser.
    pub user_data_dir: PathBuf,
    /// Window size in CSS pixels.
    pub window: (u32, u32),
    /// Whether to run without a display (always, in tests).
    pub headless: bool,
}

impl BrowserOptions {
    /// A headless 1280×900 browser with its profile in `user_data_dir`.
    pub fn headless(user_data_dir: &Path) -> Self {
        let binary = std::env::var_os("SIGNIN_CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
        Self { binary, user_data_dir: user_data_dir.to_owned(), window: (1280, 900), headless: true }
    }

    /// The command line: quiet (no background networking, updates, sync or first-run pages, so the only requests
    /// are the ones the pages make), sandbox off (containers run as root), a profile of its own.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--password-store=basic",
            "--use-mock-keychain",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        if self.headless {
            args.push("--headless".to_owned());
        }
        args.push(format!("--user-data-dir={}", self.user_data_dir.display()));
        args.push(format!("--window-size={},{}", self.window.0, self.window.1));
        args
    }
}

/// One WebDriver session: a browser window.
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    session: String,
    id: String,
    open: OpenSessions,
}

/// An element of the current page.
#[derive(Debug, Clone)]
pub struct Element {
    browser: Browser,
    id: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method.clone(), &url);
        // WebDriver wants a JSON body on every POST, even an empty one.
        if method == reqwest::Method::POST {
            request = request.json(&body.unwrap_or_else(|| json!({})));
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"));
        unwrap_response(response, &format!("{method} {path}")).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.post("/url", json!({ "url": url })).await.map(drop)
    }

    /// The current page's URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.get("/url").await?.as_str().context("url is not a string")?.to_owned())
    }

    /// The current page's title.
    pub async fn title(&self) -> anyhow::Result<String> {
        Ok(self.get("/title").await?.as_str().unwrap_or_default().to_owned())
    }

    /// The browser's back button.
    pub async fn back(&self) -> anyhow::Result<()> {
        self.post("/back", json!({})).await.map(drop)
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height })).await.map(drop)
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        match self.post("/element", json!({ "using": "css selector", "value": css })).await {
            Ok(value) => self.element(&value),
            Err(err) => Err(err.context(format!("finding `{css}` on {}", self.url().await.unwrap_or_default()))),
        }
    }

    /// Every element matching a CSS selector (maybe none).
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let value = self.post("/elements", json!({ "using": "css selector", "value": css })).await?;
        value.as_array().context("elements is not a list")?.iter().map(|v| self.element(v)).collect()
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find_all(css).await?.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() > deadline {
                bail!("no `{css}` within {timeout:?} on {}", self.url().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `timeout` until the current URL satisfies `done`; returns it.
    pub async fn wait_for_url(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.url().await?;
            if done(&url) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                bail!("still on {url} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn element(&self, value: &Value) -> anyhow::Result<Element> {
        let id = value[ELEMENT_KEY].as_str().with_context(|| format!("not an element reference: {value}"))?.to_owned();
        Ok(Element { browser: self.clone(), id })
    }

    /// Runs a script in the page (`return …` gives a value back); `args` are its `arguments`.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let encoded = self.get("/screenshot").await?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().context("screenshot is not a string")?)
            .context("screenshot is not base64")
    }

    /// Ends the session: the browser closes (and writes its profile, cookies included, to disk).
    pub async fn quit(self) -> anyhow::Result<()> {
        lock(&self.open).retain(|id| *id != self.id);
        self.call(reqwest::Method::DELETE, "", None).await.map(drop)
    }
}

impl Element {
    /// Clicks it.
    pub async fn click(&self) -> anyhow::Result<()> {
        self.browser.post(&format!("/element/{}/click", self.id), json!({})).await.map(drop)
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) -> anyhow::Result<()> {
        self.browser.post(&format!("/element/{}/value", self.id), json!({ "text": text })).await.map(drop)
    }

    /// Its rendered (visible) text.
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self.browser.get(&format!("/element/{}/text", self.id)).await?.as_str().unwrap_or_default().to_owned())
    }

    /// Whether it is displayed.
    pub async fn is_displayed(&self) -> anyhow::Result<bool> {
        Ok(self.browser.get(&format!("/element/{}/displayed", self.id)).await?.as_bool().unwrap_or(false))
    }

    /// An attribute's value, if set.
    pub async fn attribute(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.browser.get(&format!("/element/{}/attribute/{name}", self.id)).await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Runs a script with this element as `arguments[0]`.
    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.browser.execute(script, vec![json!({ ELEMENT_KEY: self.id })]).await
    }
}

/// The `value` of a WebDriver response, or its error as an `anyhow::Error`.
async fn unwrap_response(response: anyhow::Result<reqwest::Response>, what: &str) -> anyhow::Result<Value> {
    let response = response?;
    let status = response.status();
    let mut body: Value = response.json().await.with_context(|| format!("{what}: the answer is not JSON"))?;
    let value = body.get_mut("value").map(Value::take).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let error = value["error"].as_str().unwrap_or("unknown error");
    let message = value["message"].as_str().unwrap_or_default();
    bail!("{what}: WebDriver {status} {error}: {message}")
}

fn lock(open: &OpenSessions) -> std::sync::MutexGuard<'_, Vec<String>> {
    open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `DELETE /session/{id}` without a runtime, for `Drop`.
fn delete_session_blocking(port: u16, id: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map(drop)
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}
