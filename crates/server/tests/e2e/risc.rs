//! The RISC receiver against the hostile provider acting as the transmitter (its own configuration document and
//! keys): forged tokens refused, and each event type acted on as the README says.

use reqwest::StatusCode;
use serde_json::Value;
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, HostileIdp, SUBJECT, Scenario, Signer};
use signin_login::risc_event as event;
use signin_testkit::TestDb;

use crate::helpers::{Browser, RegisteredClient, TestApp, location};

struct Case {
    idp: HostileIdp,
    app: TestApp,
    _db: TestDb,
}

impl Case {
    /// The app with the hostile provider as its provider and as its RISC transmitter.
    async fn start() -> Self {
        let db = TestDb::create().await.expect("test database");
        let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
        let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
        let configuration = format!("{}/.well-known/risc-configuration", idp.issuer());
        let app = TestApp::try_spawn_with_provider(&db, &idp.issuer(), client, |settings| {
            settings.login.risc.enabled = true;
            settings.login.risc.configuration_url = configuration;
        })
        .await
        .expect("app");
        Self { idp, app, _db: db }
    }

    /// A browser that has just signed in (or the sign-in's answer when it did not).
    async fn sign_in(&self) -> (Browser, reqwest::Response) {
        let browser = Browser::new();
        let to_provider = location(&browser.get(&self.app.url("/login")).await);
        let callback = location(&browser.get(&to_provider).await);
        let answer = browser.get(&callback).await;
        (browser, answer)
    }

    async fn signed_in(&self, browser: &Browser) -> bool {
        browser.get(&self.app.url("/")).await.text().await.expect("page").contains("ada@example.com")
    }

    /// Pushes a token (RFC 8935): the status and the JSON error, if any.
    async fn push(&self, token: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(self.app.url("/login/risc"))
            .header("content-type", "application/secevent+jwt")
            .body(token.to_owned())
            .send()
            .await
            .expect("POST");
        let status = response.status();
        let body = response.text().await.expect("body");
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// A correct token with one event about Ada.
    fn event(&self, kind: &str) -> String {
        self.idp
            .sign(&self.idp.security_event_claims(kind, Some(SUBJECT)), "secevent+jwt", Signer::Provider)
            .expect("signed")
    }
}

#[tokio::test]
async fn forged_and_replayed_security_events_are_refused_and_change_nothing() {
    let case = Case::start().await;
    let (browser, answer) = case.sign_in().await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let claims = case.idp.security_event_claims(event::SESSIONS_REVOKED, Some(SUBJECT));

    let forged = case.idp.sign(&claims, "secevent+jwt", Signer::Attacker).expect("signed");
    let (status, error) = case.push(&forged).await;
    assert_eq!((status, error["err"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_key")), "{error}");
    let mut other = claims.clone();
    other["aud"] = "someone-else".into();
    let (status, error) = case.push(&case.idp.sign(&other, "secevent+jwt", Signer::Provider).expect("signed")).await;
    assert_eq!((status, error["err"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_audience")), "{error}");
    let mut other = claims.clone();
    other["iss"] = "https://evil.example/".into();
    let (status, error) = case.push(&case.idp.sign(&other, "secevent+jwt", Signer::Provider).expect("signed")).await;
    assert_eq!((status, error["err"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_issuer")), "{error}");
    assert_eq!(case.push("garbage").await.0, StatusCode::BAD_REQUEST);
    // Another kind of JWT signed by the same keys (an ID token's `typ`) does not pass for an event token.
    let untyped = case.idp.sign(&claims, "JWT", Signer::Provider).expect("signed");
    assert_eq!(case.push(&untyped).await.0, StatusCode::BAD_REQUEST);

    assert!(case.signed_in(&browser).await, "no forged token ended the session");

    // The genuine token works once; the same token again is refused.
    let genuine = case.idp.sign(&claims, "secevent+jwt", Signer::Provider).expect("signed");
    assert_eq!(case.push(&genuine).await.0, StatusCode::ACCEPTED);
    assert!(!case.signed_in(&browser).await, "sessions-revoked ended the session");
    let (again, _) = case.sign_in().await;
    let (status, error) = case.push(&genuine).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(case.signed_in(&again).await, "the replay ended nothing");
}

#[tokio::test]
async fn a_disabled_account_is_signed_out_and_kept_out_until_enabled_again() {
    let case = Case::start().await;
    let (browser, _) = case.sign_in().await;
    assert_eq!(case.push(&case.event(event::ACCOUNT_DISABLED)).await.0, StatusCode::ACCEPTED);
    assert!(!case.signed_in(&browser).await);

    let (_, refused) = case.sign_in().await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("page").contains("Account disabled"));
    assert_eq!(case.app.session_count().await, 0, "no session for a held account");

    assert_eq!(case.push(&case.event(event::ACCOUNT_ENABLED)).await.0, StatusCode::ACCEPTED);
    let (browser, answer) = case.sign_in().await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(case.signed_in(&browser).await);
}

#[tokio::test]
async fn token_and_credential_events_sign_out_a_purged_account_loses_its_row_and_others_are_accepted() {
    let case = Case::start().await;
    for kind in [event::TOKENS_REVOKED, event::CREDENTIAL_CHANGE_REQUIRED] {
        let (browser, _) = case.sign_in().await;
        assert_eq!(case.push(&case.event(kind)).await.0, StatusCode::ACCEPTED);
        assert!(!case.signed_in(&browser).await, "{kind}");
    }

    // Verification and an unknown type: accepted, nothing ends.
    let (browser, _) = case.sign_in().await;
    let verification = case.idp.security_event_claims(event::VERIFICATION, None);
    let verification = case.idp.sign(&verification, "secevent+jwt", Signer::Provider).expect("signed");
    assert_eq!(case.push(&verification).await.0, StatusCode::ACCEPTED);
    assert_eq!(case.push(&case.event("https://schemas.example/event/something-new")).await.0, StatusCode::ACCEPTED);
    assert!(case.signed_in(&browser).await);

    // Purged: signed out and the user row is gone.
    assert_eq!(case.app.user_count().await, 1);
    assert_eq!(case.push(&case.event(event::ACCOUNT_PURGED)).await.0, StatusCode::ACCEPTED);
    assert!(!case.signed_in(&browser).await);
    assert_eq!(case.app.user_count().await, 0, "the row went with the account");
}

#[tokio::test]
async fn a_transmitter_speaks_for_its_own_accounts_only() {
    // The site has two providers; the transmitter is the main one. An event it sends about an account of the
    // other provider changes nothing there.
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let other = HostileIdp::start(Scenario::default()).await.expect("another provider");
    let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    let (configuration, other_issuer) = (format!("{}/.well-known/risc-configuration", idp.issuer()), other.issuer());
    let app = TestApp::try_spawn_with_provider(&db, &idp.issuer(), client, |settings| {
        settings.login.risc.enabled = true;
        settings.login.risc.configuration_url = configuration;
        let secret = CLIENT_SECRET.to_owned().into();
        settings
            .providers
            .insert("other".to_owned(), signin_login::ProviderSettings::new(other_issuer, CLIENT_ID, secret));
    })
    .await
    .expect("app");
    let case = Case { idp, app, _db: db };
    let browser = Browser::new();
    let to_provider = location(&browser.get(&case.app.url("/login/other")).await);
    let callback = location(&browser.get(&to_provider).await);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    assert!(case.signed_in(&browser).await);

    let mut claims = case.idp.security_event_claims(event::ACCOUNT_PURGED, Some(SUBJECT));
    claims["events"][event::ACCOUNT_PURGED]["subject"]["iss"] = format!("{}/", other.issuer()).into();
    let token = case.idp.sign(&claims, "secevent+jwt", Signer::Provider).expect("signed");
    assert_eq!(case.push(&token).await.0, StatusCode::ACCEPTED);
    assert!(case.signed_in(&browser).await, "the other provider's account was not the transmitter's to end");
    assert_eq!(case.app.user_count().await, 1, "nor to delete");
}
