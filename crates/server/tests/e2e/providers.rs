//! Two providers at once in the real app: the development provider (`oidc-provider`) as the main one and the
//! hostile provider beside it as `hostile`. Each signs people in at its own paths; the same email from both is two
//! people; an attempt begun with one is refused at the other's callback.

use reqwest::{StatusCode, Url};
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, HostileIdp, Scenario};
use signin_login::ProviderSettings;
use signin_testkit::TestDb;

use crate::helpers::{Browser, LOGIN_BUTTON, TestApp, location};

/// The app with the development provider as its main provider and `idp` as `hostile`.
async fn two_providers(db: &TestDb, idp: &HostileIdp) -> TestApp {
    let issuer = idp.issuer();
    TestApp::spawn_tweaked(&db.url(), move |settings| {
        let mut hostile = ProviderSettings::new(issuer, CLIENT_ID, CLIENT_SECRET.to_owned().into());
        hostile.display_name = Some("Hostile".to_owned());
        settings.providers.insert("hostile".to_owned(), hostile);
    })
    .await
}

/// `url` with its path replaced.
fn at_path(url: &str, path: &str) -> String {
    let mut url = Url::parse(url).expect("url");
    url.set_path(path);
    url.to_string()
}

/// The users table: (issuer, subject, email), oldest first.
async fn users(app: &TestApp) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT CAST(issuer AS CHAR), CAST(subject AS CHAR), CAST(email AS CHAR) FROM users ORDER BY id")
        .fetch_all(&mut app.db().await)
        .await
        .expect("users")
}

#[tokio::test]
async fn two_providers_each_sign_in_at_their_own_paths_and_the_same_email_is_two_people() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let app = two_providers(&db, &idp).await;

    // The login page has one button per provider, the main one first.
    let page = Browser::new().get(&app.url("/")).await.text().await.expect("login page");
    let main = page.find(&format!(">{LOGIN_BUTTON}<")).expect("the main provider's button");
    let other = page.find(">Login with Hostile<").expect("the hostile provider's button");
    assert!(main < other, "the main provider first");
    assert!(page.contains("href=\"/login\"") && page.contains("href=\"/login/hostile\""), "{page}");

    // Alice signs in with the development provider.
    let alice = Browser::new();
    assert_eq!(alice.sign_in(&app, "alice").await.status(), StatusCode::SEE_OTHER);
    let profile = alice.get(&app.url("/")).await.text().await.expect("profile");
    assert!(profile.contains("alice@example.com") && profile.contains("Signed in with DevID"), "{profile}");

    // Someone signs in with the other provider, which asserts the same (verified) email: a different person.
    let other = Browser::new();
    let to_provider = location(&other.get(&app.url("/login/hostile?login_hint=alice")).await);
    assert!(to_provider.starts_with(&idp.issuer()), "{to_provider}");
    let callback = location(&other.get(&to_provider).await);
    assert_eq!(Url::parse(&callback).expect("url").path(), "/login/hostile/callback");
    assert_eq!(location(&other.get(&callback).await), app.url("/"));
    let profile = other.get(&app.url("/")).await.text().await.expect("profile");
    assert!(profile.contains("alice@example.com") && profile.contains("Signed in with Hostile"), "{profile}");

    let alice_me: serde_json::Value = alice.get(&app.url("/api/me")).await.json().await.expect("alice");
    let other_me: serde_json::Value = other.get(&app.url("/api/me")).await.json().await.expect("other");
    assert_ne!(alice_me["id"], other_me["id"], "not signed in as alice: {alice_me} {other_me}");
    let rows = users(&app).await;
    assert_eq!(rows.len(), 2, "two users: {rows:?}");
    assert_eq!(rows[0].2, rows[1].2, "with the same email");
    assert_ne!(rows[0].0, rows[1].0, "from different issuers");
    assert_eq!(rows[1], (idp.issuer(), "alice".to_owned(), "alice@example.com".to_owned()));
}

#[tokio::test]
async fn a_code_and_state_begun_with_one_provider_are_refused_at_the_others_callback() {
    let db = TestDb::create().await.expect("test database");
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile provider");
    let app = two_providers(&db, &idp).await;

    // Begun with the development provider (a real code from it), brought to the hostile provider's callback.
    let browser = Browser::new();
    let callback = browser.through_provider(&app.url("/login"), "alice").await;
    let moved = at_path(&callback, "/login/hostile/callback");
    let reply = browser.get(&moved).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let page = reply.text().await.expect("page");
    assert!(page.contains("different provider"), "{page}");
    assert_eq!(browser.get(&callback).await.status(), StatusCode::BAD_REQUEST, "the attempt is used up");

    // Begun with the hostile provider, brought to the main callback.
    let browser = Browser::new();
    let to_provider = location(&browser.get(&app.url("/login/hostile")).await);
    let callback = location(&browser.get(&to_provider).await);
    let reply = browser.get(&at_path(&callback, "/login/callback")).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert!(reply.text().await.expect("page").contains("different provider"));

    assert_eq!(idp.requests_to("/token"), 0, "no code was redeemed at the hostile provider");
    assert_eq!(app.user_count().await, 0);
    assert_eq!(app.session_count().await, 0);
}
