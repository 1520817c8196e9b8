//! Acting for the person, with the fake provider keeping refresh tokens: tokens handed out, refreshed once for
//! many requests on two instances, kept when the provider is down, dropped when it ends the grant, and more scopes
//! granted through the grant route.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use signin_auth::fake::RefreshAnswer;
use signin_login::{AccessToken, Api, GrantStore, Login, MemoryDirectory, MemoryGrants, Scopes, Sessions};

use crate::support::{FakeIdp, FakeProvider, Hook, ISSUER, Options, Site, Store};

struct ApiWrite;
impl Scopes for ApiWrite {
    const SCOPES: &'static [&'static str] = &["api.write"];
}

async fn token(token: AccessToken) -> String {
    use secrecy::ExposeSecret as _;
    format!("{} {}", token.secret().expose_secret(), token.scopes().join(","))
}

struct Email;
impl Scopes for Email {
    const SCOPES: &'static [&'static str] = &["email"];
}

async fn email(token: AccessToken<Email>) -> String {
    token.scopes().join(",")
}

async fn write(token: AccessToken<ApiWrite>) -> String {
    token.scopes().join(",")
}

/// The fake provider with refresh tokens, `api.read` and `api.write` grantable.
fn offline_idp() -> Arc<FakeProvider> {
    let idp = FakeProvider::new("oidc", ISSUER, "Example IdP", FakeIdp::claims());
    Arc::new(idp.with_offline_access(&["api.read", "api.write"]).revoking())
}

/// A login on `sessions` with the fake provider `idp`, its grants in `grants` (the other stores its own).
fn login_on(sessions: &Sessions, idp: &Arc<FakeProvider>, grants: Arc<dyn GrantStore>) -> Login<Hook> {
    Login::builder(sessions.clone(), Hook::Keep)
        .providers(vec![idp.clone()])
        .stores(
            Arc::new(signin_login::MemoryUsedTokens::default()),
            Arc::new(signin_login::MemoryAccountHolds::default()),
            grants,
        )
        .build()
        .expect("a login")
}

/// One instance of a site whose instances share `store`, `grants` and `directory`.
fn instance(
    idp: &Arc<FakeProvider>,
    store: &Store,
    grants: &Arc<MemoryGrants>,
    directory: &Arc<MemoryDirectory>,
    keys: &[String],
) -> Site {
    instance_waiting(idp, store, grants, directory, keys, Duration::from_secs(15))
}

/// The same, with `login.tokens.refresh_wait` = `wait`.
fn instance_waiting(
    idp: &Arc<FakeProvider>,
    store: &Store,
    grants: &Arc<MemoryGrants>,
    directory: &Arc<MemoryDirectory>,
    keys: &[String],
    wait: Duration,
) -> Site {
    let options = Options { keys: keys.to_vec(), ..Options::default() };
    let mut login_settings = options.login_settings();
    login_settings.tokens.refresh_wait = wait;
    let sessions = Sessions::new(options.public_url.parse().expect("url"), options.session_settings(), login_settings)
        .expect("valid settings");
    let login = login_on(&sessions, idp, grants.clone());
    let api = Router::new().route("/api/token", get(token)).route_layer(Extension(Api));
    let app = crate::support::routes(&login)
        .route("/token", get(token).post(token))
        .route("/email", get(email))
        .route("/write", get(write).post(write))
        .merge(api)
        .layer(sessions.layer_with_directory(store.clone(), directory.clone()));
    Site { app, store: store.clone(), idp: idp.clone(), sessions }
}

/// Waits until a token of the fake provider's shortest lifetime (1 s) has run out.
async fn run_out() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// The grants stored for the person `subject` at the fake provider.
async fn held(grants: &MemoryGrants, subject: &str) -> Vec<String> {
    let owned = grants.owned_by(&format!("{ISSUER} {subject}")).await.expect("listed");
    owned.into_iter().map(|(id, _)| id).collect()
}

struct Fleet {
    idp: Arc<FakeProvider>,
    grants: Arc<MemoryGrants>,
    a: Site,
    b: Site,
}

impl Fleet {
    /// Signed in on instance A with a token (of a second's life) that has run out; the session cookie.
    async fn signed_in_run_out(&self) -> String {
        self.idp.set_token_lifetime(Duration::from_secs(1));
        let cookie = self.a.sign_in().await;
        run_out().await;
        cookie
    }
}

/// `GET uri` on `app` with `cookie`, in a task of its own (so that many run at once): the status and the body.
fn spawn_get(app: &Router, uri: &'static str, cookie: &str) -> tokio::task::JoinHandle<(StatusCode, String)> {
    let (app, cookie) = (app.clone(), cookie.to_owned());
    tokio::spawn(async move {
        let request =
            crate::support::request(axum::http::Method::GET, uri, Some(&cookie), &[], axum::body::Body::empty());
        let response = tower::ServiceExt::oneshot(app, request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

fn new_fleet() -> Fleet {
    let idp = offline_idp();
    let (store, grants, directory) = (Store::default(), Arc::new(MemoryGrants::default()), Arc::default());
    let keys = vec![signin_login::generate_cookie_key()];
    let a = instance(&idp, &store, &grants, &directory, &keys);
    let b = instance(&idp, &store, &grants, &directory, &keys);
    Fleet { idp, grants, a, b }
}

#[tokio::test]
async fn twenty_requests_on_two_instances_refresh_an_expiring_token_once() {
    let fleet = new_fleet();
    let cookie = fleet.signed_in_run_out().await;
    fleet.idp.set_token_lifetime(Duration::from_secs(3600));
    fleet.idp.set_refresh(RefreshAnswer::Fresh, Duration::from_millis(200));

    let calls: Vec<_> =
        (0..20).map(|n| spawn_get(if n % 2 == 0 { &fleet.a.app } else { &fleet.b.app }, "/token", &cookie)).collect();
    let mut tokens = Vec::new();
    for call in calls {
        let (status, body) = call.await.expect("joined");
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.push(body.split(' ').next().unwrap_or_default().to_owned());
    }
    assert_eq!(fleet.idp.refreshes(), 1, "one refresh for twenty requests");
    assert!(!fleet.idp.saw_reused_refresh_token(), "the rotated refresh token was never used twice");
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "every request got the refreshed token: {tokens:?}");
    assert!(tokens[0].starts_with("at-"), "{tokens:?}");
}

#[tokio::test]
async fn a_provider_that_is_down_gives_503_and_leaves_the_grant_as_it_was() {
    let fleet = new_fleet();
    let cookie = fleet.signed_in_run_out().await;
    fleet.idp.set_refresh(RefreshAnswer::Down, Duration::ZERO);

    let page = fleet.a.get("/token", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    let api = fleet.b.get("/api/token", Some(&cookie)).await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.header("content-type"), Some("application/problem+json"));

    // The provider is back: the refresh token held all along still works.
    fleet.idp.set_token_lifetime(Duration::from_secs(3600));
    fleet.idp.set_refresh(RefreshAnswer::Fresh, Duration::ZERO);
    assert_eq!(fleet.b.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(fleet.idp.refreshes(), 3);
}

#[tokio::test]
async fn a_grant_the_provider_ended_sends_the_person_to_grant_again() {
    for answer in [RefreshAnswer::Ended, RefreshAnswer::OtherPerson] {
        let fleet = new_fleet();
        let cookie = fleet.signed_in_run_out().await;
        fleet.idp.set_refresh(answer, Duration::ZERO);

        let page = fleet.a.get("/token?x=1", Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{answer:?}: {}", page.body);
        assert_eq!(page.location(), "/login/grant?next=%2Ftoken%3Fx%3D1", "{answer:?}");
        let api = fleet.b.get("/api/token", Some(&cookie)).await;
        assert_eq!(api.status, StatusCode::FORBIDDEN, "{answer:?}");
        let problem: serde_json::Value = serde_json::from_str(&api.body).expect("problem JSON");
        assert_eq!(problem["grant"], "/login/grant?next=%2Fapi%2Ftoken", "{problem}");
        assert!(held(&fleet.grants, "ada").await.is_empty(), "{answer:?}: the grant is gone");
    }
}

#[tokio::test]
async fn more_scopes_are_granted_through_the_grant_route_and_a_partial_grant_is_said() {
    let fleet = new_fleet();
    let cookie = fleet.a.sign_in().await;

    // A page that needs more than sign-in: off to the grant route, which sends the person to the provider.
    let page = fleet.a.get("/write", Some(&cookie)).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/login/grant?scope=api.write&next=%2Fwrite"));
    let api = fleet.a.get_with("/write", Some(&cookie), &[("accept", "application/json")]).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert!(api.body.contains("\"scopes\":[\"api.write\"]"), "{}", api.body);

    let started = fleet.b.start(page.location(), Some(&cookie)).await;
    assert_eq!(started.param("scope"), "api.write");
    assert_eq!(started.param("login_hint"), "ada", "the provider is told whom to ask");
    assert!(
        started.query.contains_key("consent"),
        "a refresh token is held, but not for api.write: consent, so that a new one covers it"
    );
    let cookies = format!("{cookie}; {}", started.cookies());
    let back = fleet.a.get(&started.callback(&fleet.idp.good_code()), Some(&cookies)).await;
    assert_eq!((back.status, back.location()), (StatusCode::SEE_OTHER, "/write"), "{}", back.body);
    let now = fleet.b.get("/write", Some(&cookie)).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    assert!(now.body.contains("api.write"), "{}", now.body);

    // Someone who unticks the scope is told so, with a way to try again, rather than sent round in a circle.
    let other = new_fleet();
    let cookie = other.a.sign_in().await;
    other.idp.set_declined(&["api.write"]);
    let started = other.a.start("/login/grant?scope=api.read+api.write&next=/write", Some(&cookie)).await;
    let cookies = format!("{cookie}; {}", started.cookies());
    let back = other.a.get(&started.callback(&other.idp.good_code()), Some(&cookies)).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    let page = back.page.expect("an error page");
    assert!(page.message.contains("api.write") && !page.message.contains("api.read"), "{}", page.message);
    assert_eq!(page.link.expect("a link").url, "/login/grant?scope=api.write&next=%2Fwrite");
    assert_eq!(other.a.get("/write", Some(&cookie)).await.status, StatusCode::SEE_OTHER, "still not granted");
}

#[tokio::test]
async fn the_grant_route_refuses_what_the_site_does_not_ask_for_and_other_accounts() {
    let sites = new_fleet();
    let fleet = &sites;
    let signed_out = fleet.a.get("/login/grant?scope=api.read&next=/write", None).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_out.location(), "/login?next=%2Flogin%2Fgrant%3Fscope%3Dapi.read%26next%3D%252Fwrite");

    let cookie = fleet.a.sign_in().await;
    for scope in ["https://mail.google.com/", "api.read%22", &"a".repeat(300)] {
        let refused = fleet.a.get(&format!("/login/grant?scope={scope}"), Some(&cookie)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{scope}: {}", refused.body);
    }

    // The person picks another account at the provider: nothing is kept, nothing merged.
    let started = fleet.a.start("/login/grant?scope=api.write", Some(&cookie)).await;
    fleet.idp.set_subject(Some("mallory"));
    let cookies = format!("{cookie}; {}", started.cookies());
    let back = fleet.a.get(&started.callback(&fleet.idp.good_code()), Some(&cookies)).await;
    assert_eq!(back.status, StatusCode::FORBIDDEN, "{}", back.body);
    fleet.idp.set_subject(None);
    assert_eq!(fleet.a.get("/write", Some(&cookie)).await.status, StatusCode::SEE_OTHER, "api.write not granted");
    assert!(held(&fleet.grants, "mallory").await.is_empty());
}

#[tokio::test]
async fn the_last_sign_out_ends_the_grant_and_an_earlier_one_leaves_it_to_the_other_sessions() {
    let fleet = new_fleet();
    let first = fleet.a.sign_in().await;
    let second = fleet.b.sign_in().await;
    let token = fleet.a.get("/form", Some(&first)).await.body;
    let out = fleet.a.logout(Some(&first), Some(&token), &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(held(&fleet.grants, "ada").await.len(), 1, "the other session still acts for the person");
    assert_eq!(fleet.b.get("/token", Some(&second)).await.status, StatusCode::OK);

    let token = fleet.b.get("/form", Some(&second)).await.body;
    assert_eq!(fleet.b.logout(Some(&second), Some(&token), &[]).await.status, StatusCode::SEE_OTHER);
    assert!(held(&fleet.grants, "ada").await.is_empty(), "the last sign-out ends the grant");
    // Revoked at the provider in the background: the refresh token, which ends the whole grant.
    for _ in 0..100 {
        if !fleet.idp.revocations().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let revoked = fleet.idp.revocations();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert!(revoked[0].1 && revoked[0].0.starts_with("rt-"), "{revoked:?}");

    // Signing out everywhere ends the grant too, whatever other sessions there were.
    let first = fleet.a.sign_in().await;
    let _second = fleet.b.sign_in().await;
    let token = fleet.a.get("/form", Some(&first)).await.body;
    let all = fleet
        .a
        .send(crate::support::request(
            axum::http::Method::POST,
            "/sessions/end-all",
            Some(&first),
            &[("content-type", "application/x-www-form-urlencoded")],
            axum::body::Body::from(format!("csrf={token}")),
        ))
        .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.body);
    assert!(held(&fleet.grants, "ada").await.is_empty(), "signing out everywhere ends the grant");
}

#[tokio::test]
async fn a_sign_in_without_offline_access_keeps_the_access_token_and_asks_no_consent() {
    let site = Site::new();
    let cookie = site.sign_in().await;
    // The default site has no token route: the grant kept is what sign-out needs; signed in as usual.
    assert!(!cookie.is_empty());
    let idp = Arc::new(FakeProvider::new("oidc", ISSUER, "Example IdP", FakeIdp::claims()));
    let (store, grants, directory) = (Store::default(), Arc::new(MemoryGrants::default()), Arc::default());
    let plain = instance(&idp, &store, &grants, &directory, &[signin_login::generate_cookie_key()]);
    let cookie = plain.sign_in().await;
    let reply = plain.get("/token", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.ends_with("openid,email,profile"), "{}", reply.body);
    // No refresh token: once the token nears its end the person is sent to grant (no consent forced).
    idp.set_token_lifetime(Duration::from_secs(1));
    let cookie = plain.sign_in().await;
    run_out().await;
    assert_eq!(plain.get("/token", Some(&cookie)).await.location(), "/login/grant?next=%2Ftoken");
    let started = plain.start("/login/grant?next=/token", Some(&cookie)).await;
    assert!(!started.query.contains_key("consent"));
}

#[tokio::test]
async fn a_session_from_before_grants_were_kept_is_asked_to_sign_in_again_not_sent_round() {
    let fleet = new_fleet();
    let cookie = fleet.a.sign_in().await;
    // Such a session names no provider: take it out of the stored record.
    for mut record in fleet.a.store.records().await {
        record.data.remove("auth.provider");
        tower_sessions::SessionStore::save(&fleet.a.store.memory, &record).await.expect("saved");
    }
    let page = fleet.b.get("/token", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert_eq!(page.page.expect("a page").link.expect("a link").url, "/login?next=%2Ftoken&again=1");
    let grant = fleet.b.get("/login/grant?next=/token", Some(&cookie)).await;
    assert_eq!(grant.status, StatusCode::SEE_OTHER);
    assert!(
        grant.location().starts_with("/login?next=") && grant.location().ends_with("again=1"),
        "{}",
        grant.location()
    );
}

#[tokio::test]
async fn a_refresh_after_a_grant_yields_the_scopes_granted_and_no_consent_is_forced_for_those_held() {
    let fleet = new_fleet();
    let cookie = fleet.a.sign_in().await;
    let started = fleet.a.start("/login/grant?scope=api.read&next=/token", Some(&cookie)).await;
    let cookies = format!("{cookie}; {}", started.cookies());
    let back = fleet.a.get(&started.callback(&fleet.idp.good_code()), Some(&cookies)).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);

    // Asking again for what the refresh token covers forces no consent; what was granted is asked for again.
    let again = fleet.a.start("/login/grant?scope=api.read&next=/token", Some(&cookie)).await;
    assert!(!again.query.contains_key("consent"), "{}", again.url);
    let more = fleet.a.start("/login/grant?scope=api.write&next=/token", Some(&cookie)).await;
    assert_eq!(more.param("scope"), "api.write api.read", "earlier grants are asked for again");

    // The refreshed token has the scopes the refresh token was issued for.
    fleet.idp.set_token_lifetime(Duration::from_secs(1));
    let started = fleet.a.start("/login/grant?scope=api.read&next=/token", Some(&cookie)).await;
    let cookies = format!("{cookie}; {}", started.cookies());
    fleet.a.get(&started.callback(&fleet.idp.good_code()), Some(&cookies)).await;
    run_out().await;
    fleet.idp.set_token_lifetime(Duration::from_secs(3600));
    let refreshed = fleet.b.get("/token", Some(&cookie)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert!(refreshed.body.contains("api.read"), "{}", refreshed.body);
    assert_eq!(fleet.idp.refreshes(), 1);
}

/// A grant store that counts its reads.
#[derive(Default)]
struct CountingGrants {
    inner: MemoryGrants,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl GrantStore for CountingGrants {
    async fn get(&self, id: &str) -> Result<Option<signin_session::StoredGrant>, signin_session::BoxError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(id).await
    }
    async fn put(
        &self,
        id: &str,
        owner: &str,
        sealed: &[u8],
        expected: Option<u64>,
    ) -> Result<bool, signin_session::BoxError> {
        self.inner.put(id, owner, sealed, expected).await
    }
    async fn lease(
        &self,
        id: &str,
        version: u64,
        lease: Duration,
        holder: &str,
    ) -> Result<bool, signin_session::BoxError> {
        self.inner.lease(id, version, lease, holder).await
    }
    async fn release(&self, id: &str, holder: &str) -> Result<(), signin_session::BoxError> {
        self.inner.release(id, holder).await
    }
    async fn delete(&self, id: &str, version: Option<u64>) -> Result<bool, signin_session::BoxError> {
        self.inner.delete(id, version).await
    }
    async fn owned_by(
        &self,
        owner: &str,
    ) -> Result<Vec<(String, signin_session::StoredGrant)>, signin_session::BoxError> {
        self.inner.owned_by(owner).await
    }
}

#[tokio::test]
async fn a_grant_read_is_served_from_memory_within_the_coherence_bound() {
    let idp = offline_idp();
    let grants = Arc::new(CountingGrants::default());
    let options = Options::default();
    let sessions = options.sessions();
    let login = login_on(&sessions, &idp, grants.clone());
    let store = Store::default();
    let app = crate::support::routes(&login).route("/token", get(token)).layer(sessions.layer(store.clone()));
    let site = Site { app, store, idp: idp.clone(), sessions };
    let cookie = site.sign_in().await;
    let reads = || grants.reads.load(std::sync::atomic::Ordering::SeqCst);

    assert_eq!(site.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    let after_first = reads();
    for _ in 0..5 {
        assert_eq!(site.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    }
    assert_eq!(reads(), after_first, "within the bound, no read of the store");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(site.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(reads(), after_first + 1, "past the bound (session.cache.coherence, 1 s), the store is read again");
}

#[tokio::test]
async fn a_grant_made_on_another_instance_serves_a_page_that_needs_it_at_once() {
    let fleet = new_fleet();
    let cookie = fleet.a.sign_in().await;
    // Instance A reads the grant (and keeps it for the coherence bound) ...
    assert_eq!(fleet.a.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    // ... instance B widens it ...
    let started = fleet.b.start("/login/grant?scope=api.write&next=/write", Some(&cookie)).await;
    let cookies = format!("{cookie}; {}", started.cookies());
    let back = fleet.b.get(&started.callback(&fleet.idp.good_code()), Some(&cookies)).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    // ... and a page on A that needs the new scope does not settle for what A kept: it reads the grant again.
    let page = fleet.a.get("/write", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

#[tokio::test]
async fn sign_in_scopes_need_no_grant_and_short_lived_tokens_are_used_for_half_their_life() {
    let fleet = new_fleet();
    // Tokens that live less than the refresh margin (60 s): used for half their life, not refreshed at once.
    fleet.idp.set_token_lifetime(Duration::from_secs(30));
    let cookie = fleet.a.sign_in().await;
    assert_eq!(fleet.a.get("/token", Some(&cookie)).await.status, StatusCode::OK);
    // A sign-in scope is every token's, whatever the provider calls it in `scope`: no trip to the grant route.
    assert_eq!(fleet.b.get("/email", Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(fleet.idp.refreshes(), 0);

    // A form post that needs more is not redirected (it would come back as a GET without its body): a page with
    // the grant link.
    let post = fleet.a.send(crate::support::request(
        axum::http::Method::POST,
        "/write",
        Some(&cookie),
        &[],
        axum::body::Body::empty(),
    ));
    let post = post.await;
    assert_eq!(post.status, StatusCode::FORBIDDEN, "{}", post.body);
    assert_eq!(post.page.expect("a page").link.expect("a link").url, "/login/grant?scope=api.write&next=%2Fwrite");
}

#[tokio::test]
async fn requests_queued_behind_a_hanging_provider_answer_503_together_after_one_attempt() {
    let idp = offline_idp();
    let (store, grants, directory) = (Store::default(), Arc::new(MemoryGrants::default()), Arc::default());
    let keys = vec![signin_login::generate_cookie_key()];
    let site = instance_waiting(&idp, &store, &grants, &directory, &keys, Duration::from_millis(500));
    idp.set_token_lifetime(Duration::from_secs(1));
    let cookie = site.sign_in().await;
    run_out().await;
    idp.set_refresh(RefreshAnswer::Fresh, Duration::from_secs(5));

    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..5).map(|_| spawn_get(&site.app, "/token", &cookie)).collect();
    for call in calls {
        assert_eq!(call.await.expect("joined").0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(idp.refreshes(), 1, "one attempt; the requests that waited for it did not try again");

    // The provider answers again: the grant, kept as it was, refreshes.
    idp.set_refresh(RefreshAnswer::Fresh, Duration::ZERO);
    idp.set_token_lifetime(Duration::from_secs(3600));
    assert_eq!(site.get("/token", Some(&cookie)).await.status, StatusCode::OK);
}
