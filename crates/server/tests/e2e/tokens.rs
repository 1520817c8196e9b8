//! Acting for the person, end to end: the grants the app keeps in `provider_grants` (with offline access at the
//! development provider, whose access tokens live a few seconds here), used and refreshed by the example service
//! (`examples/notes-api`, `GET /provider/me`) on two instances, ended by the provider, widened by the grant route,
//! sealed at rest, and ended by sign-out.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use signin_testkit::TestDb;

use crate::helpers::{ActingFor, Browser, TestApp, csrf_from, issuer, series, spawn_notes_api};

/// How long the provider's access tokens live for these tests' clients (seconds).
const TOKEN_TTL: u64 = 5;
/// The example service's `login.tokens.refresh_margin`: below the lifetime, so a fresh token is used as it is.
const REFRESH_MARGIN: Duration = Duration::from_secs(1);
/// A little more than `session.cache.coherence` (1 s): within it, a service may still use a grant as it read it,
/// when the token in it is good for what the request needs.
const COHERENCE: Duration = Duration::from_millis(1100);

/// The app with offline access and the grantable scopes `api.read` and `api.write`, its client registered for
/// refresh tokens and short-lived access tokens.
async fn offline_app(db: &TestDb) -> TestApp {
    TestApp::spawn_registered_tweaked(
        db,
        |_| json!({ "grant_types": ["authorization_code", "refresh_token"], "access_token_ttl": TOKEN_TTL }),
        |settings| {
            settings.oidc.offline_access = true;
            settings.oidc.grantable_scopes = vec!["api.read".into(), "api.write".into()];
        },
    )
    .await
}

/// An instance of the example service acting for the people of `app`.
async fn notes_api_for(app: &TestApp) -> String {
    spawn_notes_api(&app.db_url, Some(ActingFor::app(app, REFRESH_MARGIN))).await
}

/// A whole offline sign-in: the login page, consent, the callback, the grant route's second trip to the provider
/// for offline access, and back to the profile page.
async fn sign_in_offline(browser: &Browser, app: &TestApp, login: &str) {
    let landed = browser.walk(&app.url("/login"), login).await;
    assert_eq!(landed.url().as_str(), app.url("/"), "the sign-in ends on the profile page");
    assert_eq!(landed.status(), StatusCode::OK);
    let html = landed.text().await.expect("profile");
    assert!(html.contains(&format!("{login}@example.com")), "{html}");
}

/// `GET /provider/me` at the example service: the status and the JSON body.
async fn provider_me(browser: &Browser, api: &str) -> (StatusCode, Value) {
    let response = browser.get(&format!("{api}/provider/me")).await;
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

/// The provider's count of this client's token-endpoint calls: `(refresh, refresh_failed, authorization_code)`.
async fn token_calls(client_id: &str) -> (u64, u64, u64) {
    let url = format!("{}/_test/token-calls?client_id={client_id}", issuer());
    let calls: Value = reqwest::get(&url).await.expect("token calls").json().await.expect("JSON");
    let count = |field: &str| calls[field].as_u64().unwrap_or_else(|| panic!("{field} in {calls}"));
    (count("refresh"), count("refresh_failed"), count("authorization_code"))
}

/// The owner key of a development-provider account: its issuer and subject (the login name).
fn owner(login: &str) -> String {
    format!("{} {login}", issuer())
}

/// How many grant rows `login` has.
async fn grant_rows(app: &TestApp, login: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM provider_grants WHERE owner = ?")
        .bind(owner(login))
        .fetch_one(&mut app.db().await)
        .await
        .expect("count grants")
}

/// The sealed bytes of `login`'s grant row.
async fn sealed_of(app: &TestApp, login: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT sealed FROM provider_grants WHERE owner = ?")
        .bind(owner(login))
        .fetch_one(&mut app.db().await)
        .await
        .expect("the grant row")
}

/// The value of one series on the app's metrics page. The example service runs in this test's process, whose
/// metrics recorder (one per process) the app installed, so its counters show there too.
async fn metric(app: &TestApp, name_and_labels: &str) -> f64 {
    let url = format!("http://{}/metrics", app.metrics.expect("metrics are served"));
    series(&reqwest::get(&url).await.expect("scraped").text().await.expect("text"), name_and_labels)
}

/// Waits until every access token handed out so far is within the refresh margin of expiring.
async fn wait_past_the_token_lifetime() {
    tokio::time::sleep(Duration::from_secs(TOKEN_TTL)).await;
}

/// Whether the token `/provider/me` used has `scope`.
fn has(me: &Value, scope: &str) -> bool {
    me["scopes"].as_array().unwrap_or_else(|| panic!("scopes in {me}")).iter().any(|s| s.as_str() == Some(scope))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Whether `bytes` hold a JWT as text: `eyJ…` (base64url of `{"`), a dot, and `eyJ` again.
fn holds_a_jwt(bytes: &[u8]) -> bool {
    let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    (0..bytes.len()).any(|at| {
        let Some(rest) = bytes[at..].strip_prefix(b"eyJ") else {
            return false;
        };
        let run = rest.iter().take_while(|b| base64url(b)).count();
        rest[run..].starts_with(b".eyJ")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_grant_is_refreshed_once_for_twenty_requests_on_two_instances() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let (a, b) = (notes_api_for(&app).await, notes_api_for(&app).await);
    let browser = Browser::new();
    sign_in_offline(&browser, &app, "rhea").await;

    // The token the sign-in got is used as it is.
    let (status, me) = provider_me(&browser, &a).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((me["sub"].as_str(), me["email"].as_str()), (Some("rhea"), Some("rhea@example.com")), "{me}");
    let after_sign_in = token_calls(&app.client.id).await;
    eprintln!("token calls after the sign-in (refresh, refresh_failed, authorization_code): {after_sign_in:?}");
    assert_eq!(after_sign_in, (0, 0, 2), "two code redemptions (sign-in, then offline access), no refresh");

    // Once it expires, the next request refreshes it.
    wait_past_the_token_lifetime().await;
    let (status, me) = provider_me(&browser, &a).await;
    assert_eq!((status, me["sub"].as_str()), (StatusCode::OK, Some("rhea")), "{me}");
    let after_first = token_calls(&app.client.id).await;
    eprintln!("token calls after the first expiry: {after_first:?}");
    assert_eq!(after_first, (1, 0, 2), "one refresh");

    // Expired again: twenty requests at once, half on each instance, with the same cookie.
    wait_past_the_token_lifetime().await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..20 {
        let http = browser.http.clone();
        let url = format!("{}/provider/me", if i % 2 == 0 { &a } else { &b });
        requests.spawn(async move {
            let response = http.get(&url).send().await.expect("GET /provider/me");
            (response.status(), response.json::<Value>().await.expect("a JSON body"))
        });
    }
    let answers = requests.join_all().await;
    assert_eq!(answers.len(), 20);
    for (status, me) in &answers {
        assert_eq!((*status, me["sub"].as_str()), (StatusCode::OK, Some("rhea")), "{me}");
    }
    let after_burst = token_calls(&app.client.id).await;
    eprintln!("token calls after twenty concurrent requests on two instances: {after_burst:?}");
    assert_eq!(after_burst, (2, 0, 2), "exactly one more refresh, none failed (a rotated token used twice fails)");
    assert_eq!(metric(&app, "signin_token_refreshes_total{outcome=\"refreshed\"}").await, 2.0);
    assert_eq!(metric(&app, "signin_token_refreshes_total{outcome=\"failed\"}").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_revoked_at_the_provider_sends_the_person_to_grant_again() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let api = notes_api_for(&app).await;
    let browser = Browser::new();
    sign_in_offline(&browser, &app, "otto").await;
    assert_eq!(provider_me(&browser, &api).await.0, StatusCode::OK);
    assert_eq!(grant_rows(&app, "otto").await, 1);

    // Otto removes the app's access in his account at the provider.
    let revoke = format!("{}/_test/revoke-access?client_id={}&account=otto", issuer(), app.client.id);
    let revoked: Value = reqwest::Client::new().post(&revoke).send().await.expect("revoke").json().await.expect("JSON");
    assert!(revoked["revoked"].as_u64().is_some_and(|n| n >= 1), "{revoked}");

    // The next refresh is refused: the grant is gone, and the service says where to grant again.
    wait_past_the_token_lifetime().await;
    let (status, problem) = provider_me(&browser, &api).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["status"], 403, "{problem}");
    let grant = problem["grant"].as_str().unwrap_or_else(|| panic!("a grant URL: {problem}")).to_owned();
    assert!(grant.starts_with("/login/grant"), "{grant}");
    assert_eq!(grant_rows(&app, "otto").await, 0, "the ended grant was deleted");
    assert_eq!(token_calls(&app.client.id).await, (0, 1, 2), "one refused refresh");
    assert_eq!(metric(&app, "signin_token_refreshes_total{outcome=\"ended\"}").await, 1.0);

    // He follows it (the grant route is the app's), consents again and comes back to the page that asked.
    let landed = browser.walk(&app.url(&grant), "otto").await;
    assert_eq!(landed.url().path(), "/provider/me", "back to the page that sent him");
    assert_eq!(grant_rows(&app, "otto").await, 1);
    let (status, me) = provider_me(&browser, &api).await;
    assert_eq!((status, me["sub"].as_str()), (StatusCode::OK, Some("otto")), "{me}");
}

#[tokio::test(flavor = "multi_thread")]
async fn more_scopes_are_granted_incrementally_and_a_partial_grant_is_said() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let api = notes_api_for(&app).await;
    let grant = app.url("/login/grant?scope=api.read%20api.write&next=/");

    // Gus grants both and comes back to the profile page; the token has them.
    let gus = Browser::new();
    sign_in_offline(&gus, &app, "gus").await;
    let (_, me) = provider_me(&gus, &api).await;
    assert!(!has(&me, "api.read") && !has(&me, "api.write"), "not granted yet: {me}");
    let landed = gus.walk(&grant, "gus").await;
    assert_eq!((landed.url().as_str(), landed.status()), (app.url("/").as_str(), StatusCode::OK));
    // The service read Gus's grant just now; what the app wrote since shows within the coherence bound.
    tokio::time::sleep(COHERENCE).await;
    let (status, me) = provider_me(&gus, &api).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(has(&me, "api.read") && has(&me, "api.write"), "{me}");

    // Pia declines api.write at consent: the app says what is missing instead of sending her on.
    let pia = Browser::new();
    sign_in_offline(&pia, &app, "partial-pia").await;
    let landed = pia.walk(&grant, "partial-pia").await;
    assert_eq!(landed.status(), StatusCode::FORBIDDEN, "at {}", landed.url());
    let page = landed.text().await.expect("page");
    assert!(page.contains("Not all access was granted") && page.contains("api.write"), "{page}");
    let (status, me) = provider_me(&pia, &api).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(has(&me, "api.read") && !has(&me, "api.write"), "{me}");

    // A scope the site does not list is never asked for.
    let refused = gus.get(&app.url("/login/grant?scope=https%3A%2F%2Fmail.google.com%2F")).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_granted_later_are_kept_when_the_token_is_refreshed() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let api = notes_api_for(&app).await;
    let browser = Browser::new();
    sign_in_offline(&browser, &app, "ida").await;
    let landed = browser.walk(&app.url("/login/grant?scope=api.read%20api.write&next=/"), "ida").await;
    assert_eq!((landed.url().as_str(), landed.status()), (app.url("/").as_str(), StatusCode::OK));
    let (_, me) = provider_me(&browser, &api).await;
    assert!(has(&me, "api.read") && has(&me, "api.write"), "{me}");

    // The access token the grant brought expires: the refreshed one has what was granted too.
    wait_past_the_token_lifetime().await;
    let (status, me) = provider_me(&browser, &api).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(token_calls(&app.client.id).await.0, 1, "refreshed");
    assert!(has(&me, "api.read") && has(&me, "api.write"), "after a refresh: {me}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stored_grant_is_ciphertext_bound_to_its_row() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let api = notes_api_for(&app).await;
    let (sela, tomas) = (Browser::new(), Browser::new());
    sign_in_offline(&sela, &app, "sela").await;
    sign_in_offline(&tomas, &app, "tomas").await;
    assert_eq!(provider_me(&tomas, &api).await.1["sub"], "tomas");

    // At rest, the record tells nothing: no token, no name, no field of the record.
    let sealed = sealed_of(&app, "sela").await;
    assert!(sealed.len() > 100, "a whole record: {} bytes", sealed.len());
    assert!(!holds_a_jwt(&sealed), "the ID token is not there as text");
    assert!(!contains(&sealed, b"sela"), "nor the subject");
    assert!(!contains(&sealed, b"\"at\"") && !contains(&sealed, b"\"rt\""), "nor the record's JSON");

    // Copied into Tomas's row, it opens for no one: Tomas has no token, and never Sela's.
    let copied = sqlx::query("UPDATE provider_grants SET sealed = ? WHERE owner = ?")
        .bind(&sealed)
        .bind(owner("tomas"))
        .execute(&mut app.db().await)
        .await
        .expect("copy the row");
    assert_eq!(copied.rows_affected(), 1);
    // The service read Tomas's grant just now; a change of the row is honoured within the coherence bound.
    tokio::time::sleep(COHERENCE).await;
    let (status, answer) = provider_me(&tomas, &api).await;
    assert_ne!(answer["sub"], "sela", "another person's token: {answer}");
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["grant"].as_str().is_some_and(|url| url.starts_with("/login/grant")), "{answer}");
    let (status, me) = provider_me(&sela, &api).await;
    assert_eq!((status, me["sub"].as_str()), (StatusCode::OK, Some("sela")), "Sela's own row still opens: {me}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_out_leaves_the_grant_to_the_other_sessions_and_signing_out_everywhere_ends_it() {
    let db = TestDb::create().await.expect("test database");
    let app = offline_app(&db).await;
    let api = notes_api_for(&app).await;
    let (laptop, phone) = (Browser::new(), Browser::new());
    sign_in_offline(&laptop, &app, "sam").await;
    sign_in_offline(&phone, &app, "sam").await;
    assert_eq!(app.session_count().await, 2);
    assert_eq!(grant_rows(&app, "sam").await, 1, "one grant for both sessions");
    for browser in [&laptop, &phone] {
        assert_eq!(provider_me(browser, &api).await.0, StatusCode::OK);
    }

    // Signing out on the laptop leaves the grant to the phone, unrevoked: its next refresh works.
    let html = laptop.get(&app.url("/")).await.text().await.expect("profile");
    let logout = laptop.post_form(&app.url("/logout"), &[("csrf", &csrf_from(&html))]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.session_count().await, 1);
    assert_eq!(grant_rows(&app, "sam").await, 1, "the phone's session still uses the grant");
    wait_past_the_token_lifetime().await;
    let (status, me) = provider_me(&phone, &api).await;
    assert_eq!((status, me["sub"].as_str()), (StatusCode::OK, Some("sam")), "{me}");
    assert_eq!(token_calls(&app.client.id).await.0, 1, "the phone's token was refreshed");

    // Signing out everywhere ends the grant.
    let page = phone.get(&app.url("/sessions")).await.text().await.expect("sessions page");
    let all = phone.post_form(&app.url("/sessions/end-all"), &[("csrf", &csrf_from(&page))]).await;
    assert_eq!(all.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.session_count().await, 0);
    assert_eq!(grant_rows(&app, "sam").await, 0, "signing out everywhere deletes the grant");
}

/// Refreshes against the hostile provider, through the app and the example service: every failure of the
/// provider leaves the grant as it was (503), a refresh for another person drops it (the person grants again). The
/// provider's tokens live a second, so a request after a second's wait refreshes.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_providers_refresh_answers_keep_the_grant_or_drop_it_as_they_must() {
    use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, Fault, HostileIdp, Scenario};
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    idp.set_token_lifetime(1);
    let client = crate::helpers::RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    let app = TestApp::try_spawn_with_provider(&db, &idp.issuer(), client, |settings| {
        settings.oidc.offline_access = true;
    })
    .await
    .expect("app");
    let acting = ActingFor {
        app: &app,
        refresh_margin: REFRESH_MARGIN,
        issuer: idp.issuer(),
        http_timeout: Duration::from_secs(2),
    };
    let api = spawn_notes_api(&app.db_url, Some(acting)).await;
    // The hostile provider signs in at once (no pages); offline access gives a refresh token straight away.
    let browser = Browser::new();
    let to_provider = crate::helpers::location(&browser.get(&app.url("/login")).await);
    let callback = crate::helpers::location(&browser.get(&to_provider).await);
    let signed_in = browser.get(&callback).await;
    let landing = crate::helpers::location(&signed_in);
    assert_eq!((signed_in.status(), landing), (StatusCode::SEE_OTHER, app.url("/")), "signed in, no grant trip");
    let rows = |app: &TestApp| {
        let db = app.db_url.clone();
        async move {
            let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&db).await.expect("db");
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM provider_grants").fetch_one(&mut conn).await.expect("n")
        }
    };

    let expired = || tokio::time::sleep(Duration::from_millis(1100));
    expired().await;
    let (status, body) = provider_me(&browser, &api).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(idp.refresh_calls(), 1);

    for fault in [
        Fault::TokenServerError,
        Fault::TokenNotJson,
        Fault::RefreshWithoutAccessToken,
        Fault::TokenOversized(2 << 20),
        Fault::TokenHangs(Duration::from_secs(10)),
    ] {
        idp.set_scenario(Scenario::fault(fault.clone()));
        expired().await;
        let started = std::time::Instant::now();
        let (status, body) = provider_me(&browser, &api).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}: {body}");
        assert!(started.elapsed() < Duration::from_secs(5), "{fault:?} took {:?}", started.elapsed());
        assert_eq!(rows(&app).await, 1, "{fault:?}: the grant is kept");
    }
    // Well again: the refresh token held all along works.
    idp.set_scenario(Scenario::default());
    assert_eq!(provider_me(&browser, &api).await.0, StatusCode::OK);

    // A refresh whose ID token names someone else: refused, the grant dropped, the person asked to grant again.
    idp.set_scenario(Scenario::fault(Fault::RefreshSubjectChanged));
    expired().await;
    let (status, body) = provider_me(&browser, &api).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["grant"].as_str().is_some_and(|url| url.starts_with("/login/grant")), "{body}");
    assert_eq!(rows(&app).await, 0, "the grant is gone");
    assert!(!body.to_string().contains("someone-else"), "{body}");
}
