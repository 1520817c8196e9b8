//! The product in a real browser: Debian's headless Chromium, driven over WebDriver, against the app, the real
//! OpenID provider and MariaDB. It signs in the way a person does, checks what they see, closes the browser and
//! opens it again on the same profile, signs out, and saves screenshots of the pages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use signin_testkit::TestDb;
use signin_testkit::webdriver::{BrowserOptions, ChromeDriver, Client as Browser, Element, Locator};

use crate::helpers::{LOGIN_BUTTON, TestApp, issuer};

const WAIT: Duration = Duration::from_secs(10);

/// A directory removed when dropped (the browser's profile).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where screenshots go: `SIGNIN_SCREENSHOT_DIR`, else `target/screenshots/`.
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIGNIN_SCREENSHOT_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"), PathBuf::from);
    target.join("screenshots")
}

/// The first element matching a CSS selector.
async fn find(browser: &Browser, css: &str) -> Element {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element,
        Err(err) => panic!("no `{css}` on {}: {err}", url(browser).await),
    }
}

/// The text of the first element matching a CSS selector.
async fn text_of(browser: &Browser, css: &str) -> String {
    find(browser, css).await.text().await.expect("text")
}

/// The current URL.
async fn url(browser: &Browser) -> String {
    browser.current_url().await.expect("url").to_string()
}

/// Waits for an element matching `css`.
async fn wait_for(browser: &Browser, css: &str) -> Element {
    browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|err| panic!("no `{css}`: {err}"))
}

/// Waits until the current URL satisfies `done`; returns it.
async fn wait_for_url(browser: &Browser, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = url(browser).await;
        if done(&now) {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "still on {now} after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a script in the page with no arguments.
async fn execute(browser: &Browser, script: &str) -> Value {
    browser.execute(script, vec![]).await.expect("script")
}

async fn screenshot(browser: &Browser, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// The origin (`scheme://host:port`) of a URL.
fn origin(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap_or_else(|_| panic!("a URL: {url}"));
    url.origin().ascii_serialization()
}

/// Every URL the current page loaded (itself and its resources: styles, scripts, images) is on one of `allowed`.
async fn assert_no_third_party_requests(browser: &Browser, allowed: &[String]) {
    let urls =
        execute(browser, "return [location.href].concat(performance.getEntriesByType('resource').map((e) => e.name));")
            .await;
    let urls: Vec<&str> = urls.as_array().expect("a list").iter().filter_map(Value::as_str).collect();
    assert!(urls.len() > 1, "the page loaded its stylesheet and script: {urls:?}");
    for url in &urls {
        assert!(allowed.contains(&origin(url)), "{} requested {url}, outside {allowed:?}", urls[0]);
    }
}

/// The rendered text of the page.
async fn page_text(browser: &Browser) -> String {
    text_of(browser, "body").await
}

/// Clicks and waits until the browser has left the current URL.
async fn click_and_leave(browser: &Browser, css: &str) {
    let before = url(browser).await;
    find(browser, css).await.click().await.expect("click");
    wait_for_url(browser, |now| now != before).await;
}

/// Waits until Chromium has let go of its profile (it removes `SingletonLock` when it exits), so the next browser
/// on the same profile is a new process that reads cookies from disk.
async fn wait_for_browser_exit(profile: &Path) {
    let lock = profile.join("SingletonLock");
    for _ in 0..200 {
        if std::fs::symlink_metadata(&lock).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Chromium did not exit within 10 s of quitting");
}

/// From the provider's pages (login, then consent) back to the app.
async fn sign_in_at_the_provider(browser: &Browser, app: &TestApp, login: &str) {
    for _ in 0..4 {
        let now = url(browser).await;
        if now.starts_with(&app.base) {
            return;
        }
        assert!(now.starts_with(&issuer()), "at the provider: {now}");
        let field = wait_for(browser, "input[name=login], input[name=prompt][value=consent]").await;
        if field.attr("name").await.expect("name").as_deref() == Some("login") {
            field.send_keys(login).await.expect("type the login");
            find(browser, "input[name=password]").await.send_keys("any password").await.expect("type");
        }
        click_and_leave(browser, "button[type=submit]").await;
    }
    wait_for_url(browser, |now| now.starts_with(&app.base)).await;
}

/// Waits for the profile picture to load; returns `[naturalWidth, width, height, borderRadius, currentSrc]`.
async fn loaded_picture(browser: &Browser) -> Value {
    let img = wait_for(browser, "img.avatar").await;
    let img = serde_json::to_value(&img).expect("an element reference");
    for _ in 0..100 {
        let state = browser
            .execute(
                "const i = arguments[0], s = getComputedStyle(i), r = i.getBoundingClientRect();
                 return i.complete ? [i.naturalWidth, r.width, r.height, s.borderTopLeftRadius, i.currentSrc] : null;",
                vec![img.clone()],
            )
            .await
            .expect("picture state");
        if !state.is_null() {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the profile picture never finished loading");
}

/// At phone width the page fits: nothing scrolls sideways.
async fn assert_fits_a_phone(browser: &Browser, name: &str) {
    browser.set_window_size(390, 844).await.expect("resize");
    let fits = execute(browser, "return document.documentElement.scrollWidth <= window.innerWidth;").await;
    assert_eq!(fits, Value::Bool(true), "{name}: the page scrolls sideways at 390 px");
    screenshot(browser, &format!("{name}-phone")).await;
    browser.set_window_size(1280, 900).await.expect("resize back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_stays_signed_in_and_signs_out_in_chromium() {
    // Arrange: the app, the provider, a browser.
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn(&db).await;
    let allowed = [origin(&app.base), origin(&issuer())];
    // Declared before the driver, so it is removed after the driver has closed the browser (drop runs in reverse).
    let profile = TempDir::new("signin-chromium");
    let driver = ChromeDriver::start().await.expect("the browser test needs chromedriver");
    let options = BrowserOptions::headless(&profile.0);
    let browser = driver.open(&options).await.expect("Chromium starts");

    // The login page.
    browser.goto(&app.url("/")).await.expect("open /");
    assert_eq!(text_of(&browser, "h1").await, "Login to continue");
    assert_eq!(text_of(&browser, "a[href='/login']").await, LOGIN_BUTTON);
    assert_eq!(find(&browser, "html").await.attr("lang").await.expect("lang").as_deref(), Some("en"));
    assert_no_third_party_requests(&browser, &allowed).await;
    screenshot(&browser, "login").await;
    assert_fits_a_phone(&browser, "login").await;
    let focus = execute(
        &browser,
        "const a = document.querySelector(\"a[href='/login']\"); a.focus();
         const s = getComputedStyle(a); const ring = [s.outlineStyle, s.outlineWidth]; a.blur(); return ring;",
    )
    .await;
    assert_eq!(focus, serde_json::json!(["solid", "3px"]), "a visible focus ring on the sign-in button");

    // Act: sign in as a person would.
    click_and_leave(&browser, "a[href='/login']").await;
    sign_in_at_the_provider(&browser, &app, "alice").await;

    // The profile: picture, name, email, Logout.
    wait_for_url(&browser, |now| now == app.url("/")).await;
    assert_eq!(text_of(&browser, "h1").await, "Alice Example");
    let email = find(&browser, ".email").await;
    assert!(email.is_displayed().await.expect("displayed"));
    assert!(email.text().await.expect("text").contains("alice@example.com"));
    let picture = loaded_picture(&browser).await;
    assert!(picture[0].as_f64().is_some_and(|w| w > 0.0), "the picture loaded: {picture}");
    assert_eq!(picture[4].as_str(), Some(format!("{}/avatars/alice.svg", issuer()).as_str()), "not the placeholder");
    let (width, height) = (picture[1].as_f64().expect("width"), picture[2].as_f64().expect("height"));
    assert!(width >= 64.0 && (width - height).abs() < 0.5, "a square picture: {picture}");
    let radius = picture[3].as_str().expect("radius");
    let round = radius == "50%" || radius.trim_end_matches("px").parse::<f64>().is_ok_and(|r| r >= width / 2.0);
    assert!(round, "a round picture: border-radius {radius}");
    let img = find(&browser, "img.avatar").await;
    assert_eq!(img.attr("alt").await.expect("alt").as_deref(), Some("Profile picture of Alice Example"));
    assert_eq!(img.attr("referrerpolicy").await.expect("policy").as_deref(), Some("no-referrer"));
    assert!(find(&browser, "form[action='/logout'] button").await.is_displayed().await.expect("shown"));
    assert_no_third_party_requests(&browser, &allowed).await;
    screenshot(&browser, "profile").await;
    assert_fits_a_phone(&browser, "profile").await;

    // Quit the browser and start it again on the same profile: still signed in.
    browser.close().await.expect("quit");
    wait_for_browser_exit(&profile.0).await;
    let browser = driver.open(&options).await.expect("Chromium starts again");
    browser.goto(&app.url("/")).await.expect("open / again");
    assert_eq!(text_of(&browser, "h1").await, "Alice Example", "still signed in");

    // The sessions page, with a second session of Alice's elsewhere: this browser marked, the other one's button.
    const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                         Version/17.5 Mobile/15E148 Safari/604.1";
    crate::helpers::Browser::with_user_agent(PHONE).sign_in(&app, "alice").await;
    browser.goto(&app.url("/sessions")).await.expect("open /sessions");
    assert_eq!(text_of(&browser, "h1").await, "Your sessions");
    assert_eq!(browser.find_all(Locator::Css("li.session")).await.expect("sessions").len(), 2);
    assert!(text_of(&browser, "li.session.current").await.contains("This browser"));
    let other = text_of(&browser, "li.session:not(.current)").await;
    assert!(other.contains("Safari 17 on iPhone"), "the other one, parsed: {other}");
    assert!(find(&browser, "li.session:not(.current) button").await.is_displayed().await.expect("shown"));
    assert_no_third_party_requests(&browser, &allowed).await;
    screenshot(&browser, "sessions").await;
    assert_fits_a_phone(&browser, "sessions").await;
    browser.goto(&app.url("/")).await.expect("back to the profile");

    // Logout: back on the login page; the back button does not bring the profile back.
    click_logout(&browser).await;
    assert_eq!(text_of(&browser, "h1").await, "Login to continue");
    browser.back().await.expect("back");
    wait_for(&browser, "h1").await;
    let text = page_text(&browser).await;
    assert!(!text.contains("alice@example.com") && !text.contains("Alice Example"), "the profile came back: {text}");
    assert!(text.contains(LOGIN_BUTTON), "{text}");

    // An error page, in the same card.
    browser.goto(&app.url("/login/callback?state=x&code=y")).await.expect("open a stale callback");
    assert_eq!(text_of(&browser, "h1").await, "Sign-in expired");
    assert_eq!(text_of(&browser, ".status").await, "Error 400");
    assert!(find(&browser, "a[href='/']").await.is_displayed().await.expect("shown"));
    assert_no_third_party_requests(&browser, &allowed).await;
    screenshot(&browser, "error").await;

    browser.close().await.expect("quit");
}

/// Clicks Logout. The answer is a redirect to `/`, the URL the profile already had, so wait for the login page
/// rather than for a new URL.
async fn click_logout(browser: &Browser) {
    find(browser, "form[action='/logout'] button").await.click().await.expect("click Logout");
    wait_for(browser, "a[href='/login']").await;
}

/// The names of the cookies the browser holds for the current page.
async fn cookie_names(browser: &Browser) -> Vec<String> {
    browser.get_all_cookies().await.expect("cookies").iter().map(|cookie| cookie.name().to_owned()).collect()
}

/// Over https the cookies are `__Host-`, and a browser ignores a `__Host-` cookie set without `Secure`, removal or
/// not: after Logout the session cookie must be gone from the browser, not only dead on the server. (Chromium
/// treats 127.0.0.1 as a secure origin, so the secure cookies work over plain http here.)
#[tokio::test(flavor = "multi_thread")]
async fn after_logout_the_secure_session_cookie_is_gone_from_chromium() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn_tweaked(&db.url(), |settings| settings.session.secure = true).await;
    let profile = TempDir::new("signin-chromium-secure");
    let driver = ChromeDriver::start().await.expect("the browser test needs chromedriver");
    let browser = driver.open(&BrowserOptions::headless(&profile.0)).await.expect("Chromium starts");

    browser.goto(&app.url("/")).await.expect("open /");
    click_and_leave(&browser, "a[href='/login']").await;
    sign_in_at_the_provider(&browser, &app, "carol").await;
    wait_for_url(&browser, |now| now == app.url("/")).await;
    let held = cookie_names(&browser).await;
    for name in ["__Host-signin_session", "__Host-signin_session_browser"] {
        assert!(held.iter().any(|held| held == name), "{name} in {held:?}");
    }

    click_logout(&browser).await;
    let held = cookie_names(&browser).await;
    assert!(!held.iter().any(|held| held == "__Host-signin_session"), "the session cookie is gone: {held:?}");
    assert_eq!(app.session_count().await, 0);
    browser.close().await.expect("quit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_page_with_two_providers_shows_one_button_each_in_chromium() {
    let db = TestDb::create().await.expect("test database");
    let idp = signin_hostile_idp::HostileIdp::start(signin_hostile_idp::Scenario::default()).await.expect("idp");
    let issuer = idp.issuer();
    let app = TestApp::spawn_tweaked(&db.url(), move |settings| {
        let secret = signin_hostile_idp::CLIENT_SECRET.to_owned().into();
        let mut other = signin_login::ProviderSettings::new(issuer, signin_hostile_idp::CLIENT_ID, secret);
        other.display_name = Some("Example SSO".to_owned());
        settings.providers.insert("sso".to_owned(), other);
    })
    .await;
    let profile = TempDir::new("signin-chromium-providers");
    let driver = ChromeDriver::start().await.expect("the browser test needs chromedriver");
    let browser = driver.open(&BrowserOptions::headless(&profile.0)).await.expect("Chromium starts");

    browser.goto(&app.url("/")).await.expect("open /");
    let buttons = browser.find_all(Locator::Css("ul.providers a")).await.expect("buttons");
    let mut seen = Vec::new();
    for button in &buttons {
        assert!(button.is_displayed().await.expect("shown"));
        seen.push((button.attr("href").await.expect("href").unwrap_or_default(), button.text().await.expect("text")));
    }
    let expected = [
        ("/login".to_owned(), LOGIN_BUTTON.to_owned()),
        ("/login/sso".to_owned(), "Login with Example SSO".to_owned()),
    ];
    assert_eq!(seen, expected);
    screenshot(&browser, "login-two-providers").await;
    assert_fits_a_phone(&browser, "login-two-providers").await;

    // The second button signs in with the second provider (which has no login page: straight back to `/`).
    find(&browser, "a[href='/login/sso']").await.click().await.expect("click");
    wait_for(&browser, ".provider").await;
    assert!(text_of(&browser, ".provider").await.contains("Signed in with Example SSO"));
    browser.close().await.expect("quit");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_grants_more_access_at_the_providers_consent_page_in_chromium() {
    let db = TestDb::create().await.expect("test database");
    let app =
        TestApp::spawn_tweaked(&db.url(), |settings| settings.oidc.grantable_scopes = vec!["api.read".into()]).await;
    let profile = TempDir::new("signin-chromium-grant");
    let driver = ChromeDriver::start().await.expect("the browser test needs chromedriver");
    let browser = driver.open(&BrowserOptions::headless(&profile.0)).await.expect("Chromium starts");

    browser.goto(&app.url("/")).await.expect("open /");
    click_and_leave(&browser, "a[href='/login']").await;
    sign_in_at_the_provider(&browser, &app, "gwen").await;
    wait_for_url(&browser, |now| now == app.url("/")).await;

    // Asking for api.read: the provider asks the person (already signed in there) about that scope alone.
    browser.goto(&app.url("/login/grant?scope=api.read&next=/")).await.expect("open the grant route");
    wait_for(&browser, "input[name=prompt][value=consent]").await;
    let at = url(&browser).await;
    assert!(at.starts_with(&issuer()), "at the provider's consent page: {at}");
    let consent = page_text(&browser).await;
    assert!(consent.contains("api.read"), "the consent page names the scope: {consent}");
    screenshot(&browser, "grant-consent").await;

    // Continue: back on the profile page.
    click_and_leave(&browser, "button[type=submit]").await;
    let back = wait_for_url(&browser, |now| now.starts_with(&app.base)).await;
    assert_eq!(reqwest::Url::parse(&back).expect("url").path(), "/", "back on the profile page: {back}");
    wait_for(&browser, "h1").await;
    assert_eq!(text_of(&browser, "h1").await, "Gwen Example");
    assert!(text_of(&browser, ".email").await.contains("gwen@example.com"));
    browser.close().await.expect("quit");
}
