//! Sign-out that reaches further than this site: back-channel logout from the real development provider
//! (`oidc-provider`'s Back-Channel Logout 1.0) and logout tokens forged against the hostile provider; token
//! revocation at sign-out; RP-initiated logout at the development provider.

use reqwest::StatusCode;
use serde_json::{Value, json};
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, Fault, HostileIdp, SUBJECT, Scenario, Signer};
use signin_testkit::TestDb;

use crate::helpers::{Browser, RegisteredClient, TestApp, csrf_from, issuer, location};

/// Signs out at the development provider, as a person on its "sign out" page would: `GET /session/end`, then
/// "Yes, sign me out". The provider sends its logout tokens before it answers.
async fn sign_out_at_the_provider(browser: &Browser) {
    let page = browser.get(&format!("{}/session/end", issuer())).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("the provider's sign-out page");
    let at = html.find("name=\"xsrf\" value=\"").expect("the sign-out form's xsrf field") + 19;
    let xsrf = html[at..].split('"').next().expect("xsrf value").to_owned();
    let confirmed =
        browser.post_form(&format!("{}/session/end/confirm", issuer()), &[("xsrf", &xsrf), ("logout", "yes")]).await;
    assert!(confirmed.status().is_redirection(), "the provider signed out: {}", confirmed.status());
}

/// The profile page answers with the person's email, or the login page.
async fn signed_in(browser: &Browser, app: &TestApp, email: &str) -> bool {
    let page = browser.get(&app.url("/")).await.text().await.expect("page");
    page.contains(email)
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_at_the_provider_ends_the_sessions_begun_in_that_provider_session() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn_registered(&db, |base| {
        serde_json::json!({
            "backchannel_logout_uri": format!("{base}/login/oidc/backchannel-logout"),
            "backchannel_logout_session_required": true,
        })
    })
    .await;

    // Alice signs in twice: in this browser, and in another one (another session at the provider too).
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&app, "alice").await.status(), StatusCode::SEE_OTHER);
    let elsewhere = Browser::new();
    assert_eq!(elsewhere.sign_in(&app, "alice").await.status(), StatusCode::SEE_OTHER);
    assert!(signed_in(&browser, &app, "alice@example.com").await);
    let recorded: Vec<Option<String>> = sqlx::query_scalar("SELECT CAST(provider_session AS CHAR) FROM session_owners")
        .fetch_all(&mut app.db().await)
        .await
        .expect("directory");
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|key| key.as_deref().is_some_and(|key| key.starts_with(&issuer()))), "{recorded:?}");
    assert_ne!(recorded[0], recorded[1], "two provider sessions");

    // A second instance of the deployment serves her too.
    let other = app.another_instance().await;
    assert!(signed_in(&browser, &other, "alice@example.com").await);

    // She signs out at the provider in this browser: the provider tells the app, which ends that session, on
    // both instances (the other within the cache's coherence bound).
    sign_out_at_the_provider(&browser).await;
    assert!(!signed_in(&browser, &app, "alice@example.com").await, "the session begun there has ended");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while signed_in(&browser, &other, "alice@example.com").await {
        assert!(std::time::Instant::now() < deadline, "the other instance still serves the ended session");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(signed_in(&elsewhere, &app, "alice@example.com").await, "the other browser's session is another one");
    assert_eq!(app.session_count().await, 1);
}

/// The app with the hostile provider as its provider, and a browser signed in with it; the provider's ID tokens
/// name the provider session `op-session-1`.
async fn signed_in_with_the_hostile_provider(db: &TestDb) -> (HostileIdp, TestApp, Browser) {
    let scenario = Scenario::default().with_claim("sid", json!("op-session-1"));
    let idp = HostileIdp::start(scenario).await.expect("hostile provider");
    let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    let app = TestApp::try_spawn_with_provider(db, &idp.issuer(), client, |_| {}).await.expect("app");
    let browser = Browser::new();
    let to_provider = location(&browser.get(&app.url("/login")).await);
    let callback = location(&browser.get(&to_provider).await);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    (idp, app, browser)
}

/// POSTs a logout token to the app's back-channel logout endpoint: the status and the body.
async fn post_logout_token(app: &TestApp, token: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(app.url("/login/oidc/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.headers().get("cache-control").map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    (response.status(), response.text().await.expect("body"))
}

#[tokio::test]
async fn forged_logout_tokens_are_refused_and_a_good_one_ends_the_session_once() {
    let db = TestDb::create().await.expect("test database");
    let (idp, app, browser) = signed_in_with_the_hostile_provider(&db).await;
    let email = "ada@example.com";
    assert!(signed_in(&browser, &app, email).await);

    let good = || idp.logout_claims(Some(SUBJECT), Some("op-session-1"));
    let changed = |name: &str, value: Value| {
        let mut claims = good();
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value;
        }
        claims
    };
    let mut neither = changed("sub", Value::Null);
    neither.as_object_mut().expect("object").remove("sid");
    let forged = [
        ("a bad signature", idp.sign(&good(), "logout+jwt", Signer::Attacker), "signature"),
        ("another audience", idp.sign(&changed("aud", json!("someone-else")), "logout+jwt", Signer::Provider), "aud"),
        (
            "another audience too",
            idp.sign(&changed("aud", json!([CLIENT_ID, "someone-else"])), "logout+jwt", Signer::Provider),
            "another audience",
        ),
        ("no exp", idp.sign(&changed("exp", Value::Null), "logout+jwt", Signer::Provider), "exp is missing"),
        ("a nonce", idp.sign(&changed("nonce", json!("n-1")), "logout+jwt", Signer::Provider), "nonce"),
        ("no events", idp.sign(&changed("events", Value::Null), "logout+jwt", Signer::Provider), "events"),
        ("neither sid nor sub", idp.sign(&neither, "logout+jwt", Signer::Provider), "neither"),
        (
            "another issuer",
            idp.sign(&changed("iss", json!("https://evil.example")), "logout+jwt", Signer::Provider),
            "iss",
        ),
        ("an old iat", idp.sign(&changed("iat", json!(0)), "logout+jwt", Signer::Provider), "iat"),
        ("an ID token's typ", idp.sign(&good(), "JWT", Signer::Provider), "typ"),
    ];
    for (what, token, why) in forged {
        let (status, body) = post_logout_token(&app, &token.expect("signed")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert_eq!(error["error"], "invalid_request", "{what}");
        assert!(error["error_description"].as_str().is_some_and(|d| d.contains(why)), "{what}: {body}");
        assert!(signed_in(&browser, &app, email).await, "{what} ended the session");
    }
    let (status, _) = post_logout_token(&app, "not-a-jwt").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The provider's own token ends the session; the same token again is refused.
    let token = idp.sign(&good(), "logout+jwt", Signer::Provider).expect("signed");
    assert_eq!(post_logout_token(&app, &token).await.0, StatusCode::OK);
    assert!(!signed_in(&browser, &app, email).await, "the session has ended");
    let (status, body) = post_logout_token(&app, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("used already"), "{body}");

    // Another instance of the deployment (same database) refuses it too.
    let client = RegisteredClient { id: CLIENT_ID.to_owned(), secret: CLIENT_SECRET.to_owned() };
    let other = TestApp::try_spawn_with_provider(&db, &idp.issuer(), client, |_| {}).await.expect("app");
    let (status, body) = post_logout_token(&other, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed to another instance: {body}");
    assert!(body.contains("used already"), "{body}");
}

#[tokio::test]
async fn a_logout_token_naming_only_the_subject_ends_every_session_of_theirs() {
    let db = TestDb::create().await.expect("test database");
    let (idp, app, browser) = signed_in_with_the_hostile_provider(&db).await;
    let token = idp.sign(&idp.logout_claims(Some(SUBJECT), None), "logout+jwt", Signer::Provider).expect("signed");
    assert_eq!(post_logout_token(&app, &token).await.0, StatusCode::OK);
    assert!(!signed_in(&browser, &app, "ada@example.com").await);
    assert_eq!(app.session_count().await, 0);
}

/// Signs out with the profile page's form; returns the answer.
async fn click_logout(browser: &Browser, app: &TestApp) -> reqwest::Response {
    let profile = browser.get(&app.url("/")).await.text().await.expect("profile");
    let csrf = csrf_from(&profile);
    browser.post_form(&app.url("/logout"), &[("csrf", &csrf)]).await
}

#[tokio::test]
async fn signing_out_revokes_the_token_at_the_provider_and_a_hanging_provider_does_not_delay_it() {
    let db = TestDb::create().await.expect("test database");
    let (idp, app, browser) = signed_in_with_the_hostile_provider(&db).await;
    let issued = idp.access_tokens();
    assert_eq!(issued.len(), 1);
    // What signing out needs is kept in the person's grant, sealed: the token is in neither table.
    let sessions: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM sessions").fetch_all(&mut app.db().await).await.expect("rows");
    assert_eq!(sessions.len(), 1);
    assert!(!String::from_utf8_lossy(&sessions[0]).contains(issued[0].as_str()), "no token in the session");
    let grants: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT sealed FROM provider_grants").fetch_all(&mut app.db().await).await.expect("rows");
    assert_eq!(grants.len(), 1, "the grant keeps what signing out needs");
    assert!(!String::from_utf8_lossy(&grants[0]).contains(issued[0].as_str()), "the access token is sealed at rest");

    // Signing out revokes the sign-in's access token (it has no refresh token), in the background.
    assert_eq!(click_logout(&browser, &app).await.status(), StatusCode::SEE_OTHER);
    assert!(!signed_in(&browser, &app, "ada@example.com").await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while idp.revoked().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the token was never revoked");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(idp.revoked(), issued);

    // With the revocation endpoint hanging, the sign-out answers at once all the same.
    let browser = Browser::new();
    let to_provider = location(&browser.get(&app.url("/login")).await);
    let callback = location(&browser.get(&to_provider).await);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER);
    idp.set_scenario(Scenario::fault(Fault::RevocationHangs(std::time::Duration::from_secs(30))));
    let started = std::time::Instant::now();
    let answer = click_logout(&browser, &app).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(!signed_in(&browser, &app, "ada@example.com").await);
}

#[tokio::test]
async fn with_rp_initiated_logout_signing_out_ends_the_session_at_the_provider_too() {
    let db = TestDb::create().await.expect("test database");
    let app = TestApp::spawn_registered_tweaked(
        &db,
        |base| serde_json::json!({ "post_logout_redirect_uris": [format!("{base}/")] }),
        |settings| settings.oidc.end_session_at_sign_out = true,
    )
    .await;
    let browser = Browser::new();
    assert_eq!(browser.sign_in(&app, "alice").await.status(), StatusCode::SEE_OTHER);
    let profile = browser.get(&app.url("/")).await;
    let csp = profile.headers().get("content-security-policy").expect("csp").to_str().expect("ascii").to_owned();
    assert!(csp.contains(&format!("form-action 'self' {}", issuer())), "the form may lead to the provider: {csp}");

    // The site's sign-out sends the browser on to the provider, with the ID token as the hint.
    let answer = click_logout(&browser, &app).await;
    let to = location(&answer);
    let url = reqwest::Url::parse(&to).expect("url");
    assert!(to.starts_with(&format!("{}/session/end", issuer())), "{to}");
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(params.get("post_logout_redirect_uri").map(String::as_str), Some(app.url("/").as_str()));
    assert!(params.get("id_token_hint").is_some_and(|hint| hint.split('.').count() == 3), "{params:?}");
    assert!(!signed_in(&browser, &app, "alice@example.com").await, "the site's session ended first");

    // At the provider: its confirmation, then back to the site.
    let page = browser.get(&to).await.text().await.expect("the provider's sign-out page");
    let at = page.find("name=\"xsrf\" value=\"").expect("xsrf") + 19;
    let xsrf = page[at..].split('"').next().expect("xsrf").to_owned();
    let done =
        browser.post_form(&format!("{}/session/end/confirm", issuer()), &[("xsrf", &xsrf), ("logout", "yes")]).await;
    assert_eq!(location(&done), app.url("/"), "back at the site");

    // Signed out at the provider too: the next sign-in asks for the login again.
    let to_provider = location(&browser.get(&app.url("/login")).await);
    let mut next = location(&browser.get(&to_provider).await);
    while next.starts_with(&issuer()) && !next.contains("/interaction/") {
        next = location(&browser.get(&next).await);
    }
    let page = browser.get(&next).await.text().await.expect("the provider's page");
    assert!(page.contains("name=\"login\""), "the provider asks who is signing in");
}

/// Anyone can POST logout tokens: 2,000 forged ones, each with a key id of its own, fetch the provider's keys again once (the
/// re-fetch throttle, in a budget of posted tokens' own) and write a few summed-up log lines, not one per token;
/// right after them, a key rotation at the provider still signs the next person in.
#[tokio::test]
async fn a_flood_of_forged_logout_tokens_with_unknown_kids_costs_one_key_fetch_and_a_few_log_lines() {
    let (logs, _guard) = signin_testkit::logs::Logs::capture("info");
    let db = TestDb::create().await.expect("test database");
    let (idp, app, _browser) = signed_in_with_the_hostile_provider(&db).await;
    let fetches = idp.requests_to("/jwks");
    logs.take();

    let http = reqwest::Client::new();
    let url = app.url("/login/oidc/backchannel-logout");
    for n in 0..2_000 {
        let kid = format!("forged-{n}");
        let token = idp.sign_with_unknown_kid(&idp.logout_claims(Some(SUBJECT), None), "logout+jwt", &kid);
        let response = http.post(&url).form(&[("logout_token", token.expect("signed"))]).send().await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(idp.requests_to("/jwks"), fetches + 1, "one re-fetch for 2,000 unknown key ids");
    let lines = logs.take();
    assert!(lines.len() <= 6, "{} lines for 2,000 forged tokens: {lines:#?}", lines.len());
    assert!(lines.iter().any(|line| line.contains("unknown key")), "summed up, not hidden: {lines:#?}");

    idp.set_scenario(Scenario::fault(Fault::KeyRotated));
    let browser = Browser::new();
    let to_provider = location(&browser.get(&app.url("/login")).await);
    let callback = location(&browser.get(&to_provider).await);
    assert_eq!(browser.get(&callback).await.status(), StatusCode::SEE_OTHER, "the rotated key signs in at once");
    assert_eq!(idp.requests_to("/jwks"), fetches + 2);
}
