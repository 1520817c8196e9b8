//! The whole app against a misbehaving OpenID provider: one test per fault of [`HostileIdp`], plus the ways a
//! callback's `state` and `code` can be wrong.
//!
//! Each test starts a hostile provider, the real app (real MariaDB, real sessions) configured for it, and a
//! browser-like client that goes `/login` → the provider's `/authorize` → our `/login/callback`. A bad case must
//! end on our HTML error page with the exact status, with no users row and no session row left, and with exactly one
//! WARN or ERROR log line that says why; neither the page nor the log may show the code, the state, the nonce, the
//! session cookie or the client secret. A good case must end signed in.
//!
//! Logs are captured per test with a thread-local subscriber: each test runs on a current-thread runtime, so the
//! app, the provider and the client all log on the test's thread (under nextest and under `cargo test` alike).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::cookie::CookieStore as _;
use reqwest::{StatusCode, Url, header};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use signin::Settings;
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, Fault, HostileIdp, Scenario};
use signin_testkit::TestDb;
use signin_testkit::logs::Logs;
use tracing::subscriber::DefaultGuard;

use crate::helpers::{Browser, RegisteredClient, TestApp, location};

// ---- one app against one hostile provider ----

struct Case {
    idp: HostileIdp,
    app: TestApp,
    browser: Browser,
    logs: Logs,
    /// The nonces and PKCE challenges sent to the provider so far.
    sent: Mutex<Vec<String>>,
    _db: TestDb,
    _guard: DefaultGuard,
}

/// What a callback answered, and what was logged while it was handled.
struct Outcome {
    status: StatusCode,
    location: Option<String>,
    content_type: String,
    body: String,
    logs: Vec<String>,
}

fn hostile_client() -> RegisteredClient {
    RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() }
}

/// The values of the named query parameters of `url`.
fn params(url: &str, names: &[&str]) -> Vec<String> {
    let url = Url::parse(url).expect("url");
    url.query_pairs().filter(|(name, _)| names.contains(&name.as_ref())).map(|(_, value)| value.into_owned()).collect()
}

/// `url` with query parameter `name` replaced by `value`, or removed when `value` is `None`.
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url = Url::parse(url).expect("url");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(n, _)| n != name).collect();
    let mut query = url.query_pairs_mut();
    query.clear();
    for (n, v) in &pairs {
        query.append_pair(n, v);
    }
    if let Some(value) = value {
        query.append_pair(name, value);
    }
    drop(query);
    url.to_string()
}

impl Case {
    async fn start(scenario: Scenario) -> Self {
        Self::start_with(scenario, |_| {}).await
    }

    async fn start_with(scenario: Scenario, tweak: impl FnOnce(&mut Settings)) -> Self {
        let (logs, guard) = Logs::capture("warn");
        let idp = HostileIdp::start(scenario).await.expect("hostile provider starts");
        let db = TestDb::create().await.expect("test database");
        // These cases are about the callback; /login's own provider check is covered by the outage tests, and its
        // extra fetches of the keys would blur the counts asserted here.
        let app = TestApp::try_spawn_with_provider(&db, &idp.issuer(), hostile_client(), |s| {
            s.login.provider_check_interval = Duration::ZERO;
            tweak(s);
        })
        .await
        .expect("the app builds against the hostile provider");
        Self { idp, app, browser: Browser::new(), logs, sent: Mutex::default(), _db: db, _guard: guard }
    }

    /// `/login` in `browser`, then the provider's `/authorize`: the URL the provider sends the browser back to.
    async fn callback_url_in(&self, browser: &Browser) -> String {
        let login = browser.get(&self.app.url("/login")).await;
        assert_eq!(login.status(), StatusCode::SEE_OTHER, "/login");
        let authorize = location(&login);
        assert!(authorize.starts_with(&format!("{}/authorize?", self.idp.issuer())), "{authorize}");
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(params(&authorize, &["nonce", "code_challenge"]));
        let back = browser.get(&authorize).await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER, "/authorize");
        let callback = location(&back);
        assert!(callback.starts_with(&self.app.url("/login/callback?")), "{callback}");
        callback
    }

    async fn callback_url(&self) -> String {
        self.callback_url_in(&self.browser).await
    }

    /// Everything the page and the log must never show: the authorization code, the state, the nonces and PKCE
    /// challenges sent to the provider, the session cookie and the client secret.
    fn secrets_in(&self, browser: &Browser, callback: &str) -> Vec<String> {
        let mut secrets = params(callback, &["code", "state"]);
        secrets.extend(self.sent.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned());
        secrets.extend(browser.session_cookie(&self.app.base));
        secrets.push(CLIENT_SECRET.to_owned());
        secrets.retain(|s| s.len() >= 8);
        secrets
    }

    /// GETs `url` in `browser`, with the log lines written while it was handled.
    async fn visit_in(&self, browser: &Browser, url: &str) -> Outcome {
        self.logs.take();
        let response = browser.get(url).await;
        let status = response.status();
        let location = response.status().is_redirection().then(|| location(&response));
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let body = response.text().await.expect("body");
        Outcome { status, location, content_type, body, logs: self.logs.take() }
    }

    /// Asserts a refusal with `status`, a page saying `page`, nothing stored, and one log line saying `why`.
    async fn assert_refused_in(&self, browser: &Browser, callback: &str, status: StatusCode, page: &str, why: &str) {
        self.refused_in(browser, callback, status, page, Some(why)).await;
    }

    /// Like [`Case::assert_refused_in`] for a callback anyone could send without a sign-in under way in the browser:
    /// it gets no log line of its own (the login library sums such requests up at info, once per 10 s).
    async fn assert_refused_quietly_in(&self, browser: &Browser, callback: &str, status: StatusCode, page: &str) {
        self.refused_in(browser, callback, status, page, None).await;
    }

    async fn refused_in(&self, browser: &Browser, callback: &str, status: StatusCode, page: &str, why: Option<&str>) {
        let mut secrets = self.secrets_in(browser, callback);
        let users_before = self.app.user_count().await;
        let sessions_before =
            self.app.session_count().await - i64::from(browser.session_cookie(&self.app.base).is_some());
        let outcome = self.visit_in(browser, callback).await;

        assert_eq!(outcome.status, status, "status; page: {}; logs: {:?}", outcome.body, outcome.logs);
        assert!(outcome.content_type.starts_with("text/html"), "our HTML page, not {}", outcome.content_type);
        assert!(outcome.body.contains(page), "the page should say {page:?}: {}", outcome.body);
        assert!(outcome.body.contains("</html>"), "a whole page: {}", outcome.body);
        secrets.extend(self.secrets_in(browser, callback));
        for secret in &secrets {
            assert!(!outcome.body.contains(secret.as_str()), "the page shows a secret: {}", outcome.body);
        }
        for fragment in ["pwned", "<script>alert"] {
            assert!(!outcome.body.contains(fragment), "the page echoes the provider's description");
        }

        assert_eq!(self.app.user_count().await, users_before, "no users row is written");
        assert_eq!(self.app.session_count().await, sessions_before, "no session is left for this browser");
        assert_eq!(browser.session_cookie(&self.app.base), None, "the browser keeps no session cookie");

        let Some(why) = why else {
            let loud: Vec<_> = outcome.logs.iter().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            assert!(loud.is_empty(), "no line of its own: {loud:#?}");
            return;
        };
        let level = if status.is_server_error() { "ERROR" } else { "WARN" };
        assert_eq!(outcome.logs.len(), 1, "exactly one log line, got {:#?}", outcome.logs);
        let line = &outcome.logs[0];
        assert!(line.contains(level), "logged at {level}: {line}");
        assert!(line.contains(why), "the log line should say {why:?}: {line}");
        assert!(line.contains(&format!("status={}", status.as_u16())), "the line names the status: {line}");
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "the log shows a secret: {line}");
        }
        assert!(!line.contains("pwned"), "the log echoes the provider's description: {line}");
    }

    async fn assert_refused(&self, callback: &str, status: StatusCode, page: &str, why: &str) {
        self.assert_refused_in(&self.browser, callback, status, page, why).await;
    }

    /// Asserts that the callback signs the browser in and the profile shows the provider's user.
    async fn assert_signed_in(&self, callback: &str) {
        let outcome = self.visit_in(&self.browser, callback).await;
        assert_eq!(outcome.status, StatusCode::SEE_OTHER, "page: {}; logs: {:?}", outcome.body, outcome.logs);
        assert_eq!(outcome.location.as_deref(), Some(self.app.url("/").as_str()));
        assert_eq!(outcome.logs, Vec::<String>::new(), "a good sign-in logs no warning");
        assert!(self.browser.session_cookie(&self.app.base).is_some(), "a session cookie");

        let profile = self.visit_in(&self.browser, &self.app.url("/")).await;
        assert_eq!(profile.status, StatusCode::OK);
        assert!(profile.body.contains("Ada Lovelace"), "name on the profile: {}", profile.body);
        assert!(profile.body.contains("ada@example.com"), "email on the profile");
        assert!(profile.body.contains("Logout"), "the profile page");
        assert_eq!(self.app.user_count().await, 1, "one users row");
        assert_eq!(self.app.session_count().await, 1, "one session row");
    }
}

// ---- every fault, through the real callback ----

/// One test per case: the provider misbehaves from the start; the sign-in must be refused with `status`, the page
/// saying `page` and the one log line saying `why`.
macro_rules! refused {
    (@settings) => { |_: &mut Settings| {} };
    (@settings $tweak:expr) => { $tweak };
    ($($name:ident: $scenario:expr => $status:ident, $page:expr, $why:expr $(, settings: $tweak:expr)?;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let case = Case::start_with($scenario, refused!(@settings $($tweak)?)).await;
            let callback = case.callback_url().await;
            case.assert_refused(&callback, StatusCode::$status, $page, $why).await;
        }
    )*};
}

/// One test per case: the provider deviates in a way that is allowed; the sign-in must succeed.
macro_rules! signed_in {
    ($($name:ident: $scenario:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let case = Case::start($scenario).await;
            let callback = case.callback_url().await;
            case.assert_signed_in(&callback).await;
        }
    )*};
}

fn fault(fault: Fault) -> Scenario {
    Scenario::fault(fault)
}

const SIGN_IN_FAILED: &str = "The sign-in could not be completed";
const PROVIDER_ERROR: &str = "Sign-in provider error";
const REJECTED: &str = "the ID token was rejected";

refused! {
    hostile_rejects_authorize_denied: fault(Fault::AuthorizeDenied)
        => FORBIDDEN, "Sign-in was cancelled", "the provider refused the sign-in (access_denied)";
    hostile_rejects_id_token_issuer_mismatch: fault(Fault::IdTokenIssuerMismatch)
        => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_callback_iss_mismatch: fault(Fault::CallbackIssMismatch)
        => BAD_REQUEST, SIGN_IN_FAILED, "the callback's iss parameter does not name the configured issuer";
    hostile_rejects_aud_missing: fault(Fault::AudMissing) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_aud_of_another_client: fault(Fault::AudNotClient) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_extra_untrusted_aud: fault(Fault::AudExtraUntrusted) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_wrong_azp: fault(Fault::AzpWrong) => BAD_REQUEST, SIGN_IN_FAILED, "azp";
    hostile_rejects_sub_missing: fault(Fault::SubMissing) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_iat_missing: fault(Fault::IatMissing) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_expired_beyond_leeway: fault(Fault::ExpiredBy(Duration::from_secs(120)))
        => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_iat_in_the_future: fault(Fault::IatInFuture(Duration::from_secs(300)))
        => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_nbf_in_the_future: fault(Fault::NbfInFuture(Duration::from_secs(300)))
        => BAD_REQUEST, SIGN_IN_FAILED, "nbf";
    hostile_rejects_alg_none: fault(Fault::AlgNone) => BAD_REQUEST, SIGN_IN_FAILED, "signature";
    hostile_rejects_bad_signature: fault(Fault::BadSignature) => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_hs256_signed_with_the_public_key: fault(Fault::Hs256WithPublicKey)
        => BAD_REQUEST, SIGN_IN_FAILED, "HS256";
    hostile_rejects_no_kid_with_several_keys: fault(Fault::NoKidSeveralKeys)
        => BAD_REQUEST, SIGN_IN_FAILED, "Ambiguous key";
    hostile_rejects_wrong_nonce: fault(Fault::NonceWrong) => BAD_REQUEST, SIGN_IN_FAILED, "nonce";
    hostile_rejects_missing_nonce: fault(Fault::NonceMissing) => BAD_REQUEST, SIGN_IN_FAILED, "nonce";
    hostile_rejects_userinfo_sub_mismatch: fault(Fault::UserinfoSubMismatch)
        => BAD_REQUEST, SIGN_IN_FAILED, "the userinfo subject does not match";
    hostile_rejects_wrong_at_hash: fault(Fault::AtHashWrong) => BAD_REQUEST, SIGN_IN_FAILED, "at_hash";
    hostile_rejects_email_verified_false: Scenario::default().with_claim("email_verified", json!(false))
        => BAD_REQUEST, "Email not verified", "not verified by DevID";
    hostile_rejects_email_verified_string_false: Scenario::default().with_claim("email_verified", json!("false"))
        => BAD_REQUEST, SIGN_IN_FAILED, REJECTED;
    hostile_rejects_email_verified_missing: Scenario::default().without_claim("email_verified")
        => BAD_REQUEST, "Email not verified", "not verified by DevID";
    hostile_rejects_hanging_token_endpoint_with_504: fault(Fault::TokenHangs(Duration::from_secs(5)))
        => GATEWAY_TIMEOUT, "took too long", "the provider did not answer in time",
        settings: |s: &mut Settings| s.oidc.http_timeout = Duration::from_secs(1);
    hostile_rejects_oversized_token_response: fault(Fault::TokenOversized(200 * 1024))
        => BAD_GATEWAY, PROVIDER_ERROR, "larger than 65536 bytes",
        settings: |s: &mut Settings| s.oidc.max_response_bytes = 64 * 1024;
    hostile_rejects_oversized_chunked_token_response: fault(Fault::TokenOversizedChunked(200 * 1024))
        => BAD_GATEWAY, PROVIDER_ERROR, "larger than 65536 bytes",
        settings: |s: &mut Settings| s.oidc.max_response_bytes = 64 * 1024;
    hostile_rejects_non_json_token_response: fault(Fault::TokenNotJson)
        => BAD_GATEWAY, PROVIDER_ERROR, "not a token response";
    hostile_rejects_token_endpoint_5xx: fault(Fault::TokenServerError)
        => BAD_GATEWAY, PROVIDER_ERROR, "HTTP status 503";
}

signed_in! {
    hostile_accepts_a_correct_provider: Scenario::default();
    hostile_accepts_callback_without_iss: fault(Fault::CallbackIssOmitted);
    hostile_accepts_expired_within_leeway: fault(Fault::ExpiredBy(Duration::from_secs(30)));
    hostile_accepts_nbf_within_leeway: fault(Fault::NbfInFuture(Duration::from_secs(20)));
    hostile_accepts_no_kid_with_one_key: fault(Fault::NoKid);
    hostile_accepts_profile_only_in_userinfo: fault(Fault::ProfileOnlyInUserinfo);
}

// ---- keys: attacker-supplied key URLs, rotation ----

#[tokio::test]
async fn hostile_rejects_jku_header_and_never_fetches_it() {
    let case = Case::start(fault(Fault::JkuHeader)).await;
    let callback = case.callback_url().await;
    case.assert_refused(&callback, StatusCode::BAD_REQUEST, SIGN_IN_FAILED, REJECTED).await;
    assert_eq!(case.idp.requests_to("/attacker/jwks"), 0, "jku is never fetched");
    assert_eq!(case.idp.requests_to("/jwks"), 2, "the provider's own keys are fetched again once, no more");
}

#[tokio::test]
async fn hostile_rejects_x5u_header_and_never_fetches_it() {
    let case = Case::start(fault(Fault::X5uHeader)).await;
    let callback = case.callback_url().await;
    case.assert_refused(&callback, StatusCode::BAD_REQUEST, SIGN_IN_FAILED, REJECTED).await;
    assert_eq!(case.idp.requests_to("/attacker/cert.pem"), 0, "x5u is never fetched");
}

#[tokio::test]
async fn hostile_accepts_rotated_key_after_refetch() {
    let case = Case::start(Scenario::default()).await;
    assert_eq!(case.idp.requests_to("/jwks"), 1, "keys fetched at start-up");
    case.idp.set_scenario(fault(Fault::KeyRotated));
    let callback = case.callback_url().await;
    case.assert_signed_in(&callback).await;
    assert_eq!(case.idp.requests_to("/jwks"), 2, "keys fetched again once for the new kid");
}

#[tokio::test]
async fn hostile_rejects_rotated_key_when_keys_endpoint_down() {
    let case = Case::start(Scenario::default()).await;
    case.idp.set_scenario(fault(Fault::KeyRotatedJwksDown));
    let callback = case.callback_url().await;
    case.assert_refused(&callback, StatusCode::BAD_GATEWAY, PROVIDER_ERROR, "HTTP status 502").await;
    assert_eq!(case.idp.requests_to("/jwks"), 2);
}

// ---- state and code ----

#[tokio::test]
async fn hostile_rejects_wrong_state() {
    let case = Case::start(Scenario::default()).await;
    let callback = with_param(&case.callback_url().await, "state", Some("forged-state-value"));
    case.assert_refused(&callback, StatusCode::BAD_REQUEST, "no longer valid", "the login state is missing").await;
    assert_eq!(case.idp.requests_to("/token"), 0, "the code is never exchanged");
}

#[tokio::test]
async fn hostile_rejects_missing_state() {
    let case = Case::start(Scenario::default()).await;
    let callback = with_param(&case.callback_url().await, "state", None);
    case.assert_refused(&callback, StatusCode::BAD_REQUEST, "no longer valid", "the login state is missing").await;
    assert_eq!(case.idp.requests_to("/token"), 0, "the code is never exchanged");
}

#[tokio::test]
async fn hostile_rejects_missing_code() {
    let case = Case::start(Scenario::default()).await;
    let callback = with_param(&case.callback_url().await, "code", None);
    case.assert_refused(&callback, StatusCode::BAD_REQUEST, SIGN_IN_FAILED, "no authorization code").await;
}

/// A callback URL that reaches another browser (a link sent to a victim, login CSRF) finds no sign-in there.
#[tokio::test]
async fn hostile_rejects_state_from_another_browser() {
    let case = Case::start(Scenario::default()).await;
    let callback = case.callback_url().await;
    let other = Browser::new();
    case.assert_refused_quietly_in(&other, &callback, StatusCode::BAD_REQUEST, "Sign-in expired").await;
    assert_eq!(case.idp.requests_to("/token"), 0, "the code is never exchanged");
    assert_eq!(case.app.session_count().await, 0, "an unfinished sign-in stores nothing on the server");
}

/// Login CSRF by a sibling subdomain: the attacker's own attempt cookie planted into the victim's browser (which
/// has a binding of its own), and the victim sent to the attacker's callback URL. Refused before the provider is
/// asked; the victim is not signed in as the attacker.
#[tokio::test]
async fn hostile_rejects_an_attempt_cookie_planted_into_another_browser() {
    let case = Case::start(Scenario::default()).await;
    let attackers = case.callback_url().await;
    let url = Url::parse(&attackers).expect("url");
    let theirs = case.browser.jar.cookies(&url).expect("cookies").to_str().expect("ascii").to_owned();
    let attempt = theirs.split("; ").find(|pair| pair.contains("_login_")).expect("the attempt cookie").to_owned();

    let victim = Browser::new();
    let own = victim.get(&case.app.url("/login")).await;
    assert_eq!(own.status(), StatusCode::SEE_OTHER, "the victim's browser has begun a sign-in: it has a binding");
    victim.jar.add_cookie_str(&format!("{attempt}; Path=/login"), &url);
    case.assert_refused_quietly_in(&victim, &attackers, StatusCode::BAD_REQUEST, "started in another browser").await;
    assert_eq!(case.idp.requests_to("/token"), 0, "the provider is not asked");

    // The attacker's own browser still completes its sign-in.
    case.assert_signed_in(&attackers).await;
}

/// The same callback twice: the first signs in, the second finds the sign-in already taken.
#[tokio::test]
async fn hostile_rejects_replayed_state() {
    let case = Case::start(Scenario::default()).await;
    let callback = case.callback_url().await;
    case.assert_signed_in(&callback).await;

    let replay = case.visit_in(&case.browser, &callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("Sign-in expired"), "{}", replay.body);
    assert!(
        replay.logs.iter().all(|l| !l.contains("WARN")),
        "noise anyone can send: no line of its own: {:?}",
        replay.logs
    );
    assert_eq!(case.idp.requests_to("/token"), 1, "the replay never reaches the provider");
    assert_eq!((case.app.user_count().await, case.app.session_count().await), (1, 1), "nothing new is stored");
    let profile = case.visit_in(&case.browser, &case.app.url("/")).await;
    assert!(profile.body.contains("Ada Lovelace"), "a replay does not sign the person out");

    // Replayed from another browser (a URL from the history): refused, nothing stored.
    case.assert_refused_quietly_in(&Browser::new(), &callback, StatusCode::BAD_REQUEST, "Sign-in expired").await;
}

/// Another instance of `app`'s deployment against the hostile provider: same database, keys and public URL, on a
/// port of its own.
async fn second_instance(app: &TestApp, idp: &HostileIdp) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut settings = crate::helpers::settings_for_provider(&app.db_url, &app.base, &idp.issuer(), &hostile_client());
    settings.login.provider_check_interval = Duration::ZERO;
    TestApp::launch(listener, base, hostile_client(), app.db_url.clone(), settings).await.expect("the second instance")
}

/// A provider that redeems a code as often as it is shown, and someone who holds the callback URL (logs, Referer,
/// history) and a copy of the attempt cookie: the replay is refused on this instance and on another, though the
/// provider answers it with a good token each time. One session, one users row.
#[tokio::test]
async fn hostile_replay_that_the_provider_redeems_again_signs_in_nowhere() {
    let case = Case::start(fault(Fault::CodeReusable)).await;
    let callback = case.callback_url().await;
    let url = Url::parse(&callback).expect("url");
    let copied = case.browser.jar.cookies(&url).expect("the attempt's cookies").to_str().expect("ascii").to_owned();
    case.assert_signed_in(&callback).await;
    assert_eq!(case.idp.requests_to("/token"), 1);

    // A second instance of the deployment: same database, keys and public URL.
    let other = second_instance(&case.app, &case.idp).await;

    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    for (n, target) in [callback.clone(), callback.replacen(&case.app.base, &other.base, 1)].iter().enumerate() {
        case.logs.take();
        let replay = raw.get(target).header(header::COOKIE, &copied).send().await.expect("replayed");
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "{target}");
        let sets_session =
            replay.headers().get_all(header::SET_COOKIE).iter().any(|set| {
                set.to_str().is_ok_and(|set| set.starts_with("signin_session=") && !set.contains("Max-Age=0"))
            });
        assert!(!sets_session, "no session for the replay");
        let body = replay.text().await.expect("body");
        assert!(body.contains("Sign-in expired"), "{body}");
        assert_eq!(case.idp.requests_to("/token"), 2 + n, "the provider redeemed the code again");
        let logs = case.logs.take();
        let line = logs.iter().find(|l| l.contains("completed already")).unwrap_or_else(|| panic!("{logs:#?}"));
        let state = params(&callback, &["state"]).pop().expect("a state");
        let attempt = URL_SAFE_NO_PAD.encode(&Sha256::digest(state.as_bytes())[..9]);
        assert!(line.contains("WARN") && line.contains(&format!("attempt {attempt} ")), "names the attempt: {line}");
    }
    assert_eq!((case.app.user_count().await, case.app.session_count().await), (1, 1), "nothing new is stored");
}

/// Eight copies of one callback at once, on two instances of one deployment (MariaDB's `used_tokens` between them),
/// against a provider that redeems the code every time: exactly one signs in.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_eight_concurrent_replays_on_two_instances_make_one_session() {
    let idp = HostileIdp::start(fault(Fault::CodeReusable)).await.expect("hostile provider starts");
    let db = TestDb::create().await.expect("test database");
    let a = TestApp::try_spawn_with_provider(&db, &idp.issuer(), hostile_client(), |s| {
        s.login.provider_check_interval = Duration::ZERO;
    })
    .await
    .expect("the app builds");
    let b = second_instance(&a, &idp).await;

    let browser = Browser::new();
    let authorize = location(&browser.get(&a.url("/login")).await);
    let callback = location(&browser.get(&authorize).await);
    let url = Url::parse(&callback).expect("url");
    let cookies = browser.jar.cookies(&url).expect("cookies").to_str().expect("ascii").to_owned();

    let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut racing = Vec::new();
    for n in 0..8 {
        let target = if n % 2 == 0 { callback.clone() } else { callback.replacen(&a.base, &b.base, 1) };
        let (raw, cookies) = (raw.clone(), cookies.clone());
        racing.push(tokio::spawn(async move {
            raw.get(&target).header(header::COOKIE, cookies).send().await.expect("sent").status()
        }));
    }
    let mut statuses = Vec::new();
    for race in racing {
        statuses.push(race.await.expect("joined"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    assert_eq!((a.user_count().await, a.session_count().await), (1, 1));
}

/// A code that was already exchanged, pasted into another browser's own sign-in (valid state there): the provider
/// refuses it, and so do we.
#[tokio::test]
async fn hostile_rejects_replayed_code() {
    let case = Case::start(Scenario::default()).await;
    let first = case.callback_url().await;
    case.assert_signed_in(&first).await;
    let used_code = params(&first, &["code"]).pop().expect("a code");

    let attacker = Browser::new();
    let own = case.callback_url_in(&attacker).await;
    let replay = with_param(&own, "code", Some(&used_code));
    case.assert_refused_in(
        &attacker,
        &replay,
        StatusCode::BAD_REQUEST,
        SIGN_IN_FAILED,
        "the provider rejected the authorization code (invalid_grant)",
    )
    .await;
    assert_eq!(case.idp.requests_to("/token"), 2);
}

/// A fresh code of one browser, injected into another browser's sign-in: PKCE binds the code to the browser that
/// started it, so the exchange fails.
#[tokio::test]
async fn hostile_rejects_code_injected_from_another_sign_in() {
    let case = Case::start(Scenario::default()).await;
    let victim = case.callback_url().await;
    let stolen = params(&victim, &["code"]).pop().expect("a code");

    let attacker = Browser::new();
    let own = case.callback_url_in(&attacker).await;
    let injected = with_param(&own, "code", Some(&stolen));
    case.assert_refused_in(&attacker, &injected, StatusCode::BAD_REQUEST, SIGN_IN_FAILED, "invalid_grant").await;
}

// ---- discovery: a provider that cannot be trusted stops the app from starting ----

async fn refuses_to_start(scenario: Scenario) -> (HostileIdp, String) {
    let idp = HostileIdp::start(scenario).await.expect("hostile provider starts");
    let db = TestDb::create().await.expect("test database");
    let Err(err) = TestApp::try_spawn_with_provider(&db, &idp.issuer(), hostile_client(), |_| {}).await else {
        panic!("the app must refuse to start against this provider");
    };
    let message = format!("{err:#}");
    assert!(message.contains("discovery"), "{message}");
    assert!(!message.contains(CLIENT_SECRET), "{message}");
    (idp, message)
}

#[tokio::test]
async fn hostile_refuses_to_start_when_discovery_names_another_issuer() {
    refuses_to_start(fault(Fault::DiscoveryIssuerMismatch)).await;
}

#[tokio::test]
async fn hostile_refuses_to_start_when_discovery_redirects() {
    let (idp, _) = refuses_to_start(fault(Fault::DiscoveryRedirect)).await;
    assert_eq!(idp.requests_to("/attacker/openid-configuration"), 0, "the redirect is never followed");
}

#[tokio::test]
async fn hostile_refuses_to_start_when_keys_endpoint_down() {
    refuses_to_start(fault(Fault::KeyRotatedJwksDown)).await;
}
