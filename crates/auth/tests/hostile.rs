//! The relying party against a misbehaving provider over real HTTP: one test per attack or failure.
//!
//! Each test starts a [`HostileIdp`], discovers it, begins a login, follows the authorization redirect like a
//! browser would (without following it to our callback), completes the login and checks the exact outcome.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;

use signin_auth::{
    AuthError, AuthErrorKind, Callback, LoginFlow, LoginStart, OidcClient, PendingLogin, ProviderSettings, SignedIn,
};
use signin_domain::{Identity, IdentityError, ProfileClaims};
use signin_hostile_idp::{CLIENT_SECRET, Fault, HostileIdp, SUBJECT, Scenario};
use url::Url;

/// How long a pending login stays usable in these tests.
const MAX_AGE: Duration = Duration::from_secs(600);

fn settings(idp: &HostileIdp) -> ProviderSettings {
    let mut settings = ProviderSettings::new(idp.issuer(), idp.client_id(), SecretString::from(idp.client_secret()));
    settings.http_timeout = Duration::from_secs(5);
    settings
}

/// The callback the hostile provider sends browsers back to.
fn redirect() -> Url {
    Url::parse("http://127.0.0.1:9/login/callback").expect("static URL")
}

async fn discover(settings: ProviderSettings) -> Result<OidcClient, AuthError> {
    OidcClient::discover(settings, redirect()).await
}

async fn start_with(scenario: Scenario, tweak: impl FnOnce(&mut ProviderSettings)) -> (HostileIdp, LoginFlow) {
    let idp = HostileIdp::start(scenario).await.expect("hostile idp starts");
    let mut settings = settings(&idp);
    tweak(&mut settings);
    let client = discover(settings).await.expect("discovery succeeds");
    (idp, LoginFlow::new(Arc::new(client), MAX_AGE))
}

async fn start(scenario: Scenario) -> (HostileIdp, LoginFlow) {
    start_with(scenario, |_| {}).await
}

/// Plays the browser: GET the authorization URL and read the redirect back to our callback.
async fn browse(login: &LoginStart) -> Callback {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = browser.get(login.authorize_url.clone()).send().await.expect("authorize answers");
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let location = response.headers().get(reqwest::header::LOCATION).expect("Location").to_str().expect("ascii");
    let location = Url::parse(location).expect("absolute Location");
    assert_eq!(location.path(), "/login/callback");
    let mut callback = Callback::default();
    for (name, value) in location.query_pairs() {
        let value = Some(value.into_owned());
        match name.as_ref() {
            "code" => callback.code = value,
            "state" => callback.state = value,
            "error" => callback.error = value,
            "error_description" => callback.error_description = value,
            "iss" => callback.iss = value,
            _ => {}
        }
    }
    callback
}

/// Everything that must never show up in an error message for this login.
fn secrets(pending: &PendingLogin, callback: &Callback) -> Vec<String> {
    let json = serde_json::to_value(pending).expect("pending serialises");
    let mut out: Vec<String> =
        ["s", "n", "v"].iter().filter_map(|field| json.get(field).and_then(Value::as_str).map(str::to_owned)).collect();
    out.extend(callback.code.clone());
    out.push(CLIENT_SECRET.to_owned());
    out
}

/// Begins a login, follows the redirect and completes it.
async fn sign_in(client: &LoginFlow) -> (Result<SignedIn, AuthError>, Vec<String>) {
    let login = client.begin(None, false);
    let callback = browse(&login).await;
    let secrets = secrets(&login.pending, &callback);
    (client.complete(login.pending, callback).await, secrets)
}

#[track_caller]
fn assert_rejected(outcome: (Result<SignedIn, AuthError>, Vec<String>), kind: AuthErrorKind) -> AuthError {
    let (result, secrets) = outcome;
    let err = match result {
        Ok(claims) => panic!("expected a {kind:?} rejection, got {claims:?}"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), kind, "wrong kind for: {err}");
    let shown = format!("{err} / {err:?} / {}", err.user_message());
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!shown.contains(secret.as_str()), "error output leaks a secret: {shown}");
    }
    err
}

#[track_caller]
fn assert_signed_in(outcome: (Result<SignedIn, AuthError>, Vec<String>)) -> ProfileClaims {
    match outcome.0 {
        Ok(signed_in) => signed_in.claims.profile,
        Err(err) => panic!("expected a sign-in, got {err} ({err:?})"),
    }
}

async fn rejected_with(scenario: Scenario, kind: AuthErrorKind) -> AuthError {
    let (_idp, client) = start(scenario).await;
    assert_rejected(sign_in(&client).await, kind)
}

async fn rejected_token(fault: Fault) -> AuthError {
    let err = rejected_with(Scenario::fault(fault), AuthErrorKind::InvalidRequest).await;
    assert!(matches!(err, AuthError::InvalidIdToken { .. }), "{err:?}");
    err
}

fn ada(issuer: String) -> ProfileClaims {
    ProfileClaims {
        issuer,
        subject: SUBJECT.to_owned(),
        email: Some("ada@example.com".into()),
        email_verified: Some(true),
        name: Some("Ada Lovelace".into()),
        given_name: Some("Ada".into()),
        picture: Some("https://example.com/ada.png".into()),
    }
}

// ---- the happy path and discovery ----

#[tokio::test]
async fn accepts_a_correct_provider() {
    let (idp, client) = start(Scenario::default()).await;
    assert_eq!(client.provider().issuer(), idp.issuer());

    let login = client.begin(None, false);
    let params: std::collections::HashMap<_, _> = login.authorize_url.query_pairs().into_owned().collect();
    let scopes: Vec<_> = params["scope"].split(' ').collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"email") && scopes.contains(&"profile"), "{scopes:?}");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["response_type"], "code");
    assert!(!params["nonce"].is_empty() && !params["state"].is_empty());
    assert_ne!(client.begin(None, false).pending.created_at(), 0);

    let callback = browse(&login).await;
    let claims = client.complete(login.pending, callback).await.expect("signed in").claims.profile;
    assert_eq!(claims, ada(idp.issuer()));
    assert!(Identity::from_claims(claims).is_ok());
    assert_eq!(idp.requests_to("/jwks"), 1, "keys are fetched once, at discovery");
    assert_eq!(idp.requests_to("/userinfo"), 0, "userinfo is not needed when the ID token has the email");
}

#[tokio::test]
async fn discovery_fails_when_document_names_another_issuer() {
    let idp = HostileIdp::start(Scenario::fault(Fault::DiscoveryIssuerMismatch)).await.expect("starts");
    let err = discover(settings(&idp)).await.expect_err("must refuse");
    assert!(matches!(err, AuthError::Configuration { .. }), "{err:?}");
    assert_eq!(err.kind(), AuthErrorKind::ProviderUnavailable);
}

#[tokio::test]
async fn discovery_never_follows_redirects() {
    let idp = HostileIdp::start(Scenario::fault(Fault::DiscoveryRedirect)).await.expect("starts");
    let err = discover(settings(&idp)).await.expect_err("a redirect is not a discovery document");
    assert_eq!(err.kind(), AuthErrorKind::ProviderUnavailable, "{err:?}");
    assert_eq!(idp.requests_to("/attacker/openid-configuration"), 0, "the redirect must not be followed");
}

#[tokio::test]
async fn discovery_fails_when_provider_is_unreachable() {
    let idp = HostileIdp::start(Scenario::default()).await.expect("starts");
    let settings = settings(&idp);
    drop(idp);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = discover(settings).await.expect_err("nobody listens");
    assert_eq!(err.kind(), AuthErrorKind::ProviderUnavailable, "{err:?}");
}

#[tokio::test]
async fn ping_checks_the_keys_endpoint() {
    let (idp, client) = start(Scenario::default()).await;
    client.provider().ping().await.expect("keys endpoint answers");
    idp.set_scenario(Scenario::fault(Fault::KeyRotatedJwksDown));
    let err = client.provider().ping().await.expect_err("keys endpoint is down");
    assert_eq!(err.kind(), AuthErrorKind::ProviderUnavailable);
}

// ---- the callback ----

#[tokio::test]
async fn reports_provider_error_as_denied_without_echoing_the_description() {
    let err = rejected_with(Scenario::fault(Fault::AuthorizeDenied), AuthErrorKind::Denied).await;
    assert!(matches!(&err, AuthError::Denied { code } if code == "access_denied"), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("script"));
}

#[tokio::test]
async fn rejects_wrong_state() {
    let (_idp, client) = start(Scenario::default()).await;
    let login = client.begin(None, false);
    let mut callback = browse(&login).await;
    callback.state = Some("forged-state".into());
    let secrets = secrets(&login.pending, &callback);
    let err = assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn rejects_missing_state() {
    let (_idp, client) = start(Scenario::default()).await;
    let login = client.begin(None, false);
    let mut callback = browse(&login).await;
    callback.state = None;
    let secrets = secrets(&login.pending, &callback);
    let err = assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn rejects_callback_from_another_login() {
    let (_idp, client) = start(Scenario::default()).await;
    let first = client.begin(None, false);
    let second = client.begin(None, false);
    let callback = browse(&first).await;
    let secrets = secrets(&second.pending, &callback);
    let err =
        assert_rejected((client.complete(second.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::StateMismatch), "{err:?}");
}

#[tokio::test]
async fn rejects_replayed_authorization_code() {
    let (_idp, client) = start(Scenario::default()).await;
    let login = client.begin(None, false);
    let callback = browse(&login).await;
    let secrets = secrets(&login.pending, &callback);
    client.complete(login.pending.clone(), callback.clone()).await.expect("first use signs in");
    let err = assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(&err, AuthError::CodeRejected { code } if code == "invalid_grant"), "{err:?}");
}

#[tokio::test]
async fn rejects_expired_pending_login() {
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile idp starts");
    let client = discover(settings(&idp)).await.expect("discovery succeeds");
    // Attempts that must finish within no time at all: one second later, this one is too old.
    let client = LoginFlow::new(Arc::new(client), Duration::ZERO);
    let login = client.begin(None, false);
    let callback = browse(&login).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let secrets = secrets(&login.pending, &callback);
    let err = assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::LoginExpired), "{err:?}");
}

#[tokio::test]
async fn rejects_missing_code() {
    let (_idp, client) = start(Scenario::default()).await;
    let login = client.begin(None, false);
    let mut callback = browse(&login).await;
    callback.code = None;
    let secrets = secrets(&login.pending, &callback);
    let err = assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::MissingCode), "{err:?}");
}

#[tokio::test]
async fn rejects_callback_iss_mismatch() {
    let err = rejected_with(Scenario::fault(Fault::CallbackIssMismatch), AuthErrorKind::InvalidRequest).await;
    assert!(matches!(err, AuthError::CallbackIssuerMismatch), "{err:?}");
}

#[tokio::test]
async fn accepts_callback_without_iss() {
    let (idp, client) = start(Scenario::fault(Fault::CallbackIssOmitted)).await;
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
}

// ---- the ID token's claims ----

#[tokio::test]
async fn rejects_id_token_issuer_mismatch() {
    rejected_token(Fault::IdTokenIssuerMismatch).await;
}

#[tokio::test]
async fn rejects_an_issuer_written_without_its_scheme() {
    // Exact match: `127.0.0.1:port` is not `http://127.0.0.1:port` (openidconnect refuses it as no URL at all).
    rejected_token(Fault::IdTokenIssuerWithoutScheme).await;
}

#[tokio::test]
async fn rejects_missing_aud() {
    rejected_token(Fault::AudMissing).await;
}

#[tokio::test]
async fn rejects_aud_of_another_client() {
    rejected_token(Fault::AudNotClient).await;
}

#[tokio::test]
async fn rejects_extra_untrusted_audience() {
    rejected_token(Fault::AudExtraUntrusted).await;
}

#[tokio::test]
async fn rejects_wrong_azp() {
    let err = rejected_token(Fault::AzpWrong).await;
    assert!(err.to_string().contains("azp"), "{err}");
}

#[tokio::test]
async fn rejects_missing_sub() {
    rejected_token(Fault::SubMissing).await;
}

#[tokio::test]
async fn rejects_missing_iat() {
    rejected_token(Fault::IatMissing).await;
}

#[tokio::test]
async fn rejects_token_expired_beyond_leeway() {
    rejected_token(Fault::ExpiredBy(Duration::from_secs(120))).await;
}

#[tokio::test]
async fn accepts_token_expired_within_leeway() {
    let (idp, client) = start(Scenario::fault(Fault::ExpiredBy(Duration::from_secs(30)))).await;
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
}

#[tokio::test]
async fn rejects_iat_in_the_future() {
    rejected_token(Fault::IatInFuture(Duration::from_secs(300))).await;
}

#[tokio::test]
async fn rejects_nbf_in_the_future() {
    let err = rejected_token(Fault::NbfInFuture(Duration::from_secs(300))).await;
    assert!(err.to_string().contains("nbf"), "{err}");
}

#[tokio::test]
async fn accepts_nbf_within_leeway() {
    let (idp, client) = start(Scenario::fault(Fault::NbfInFuture(Duration::from_secs(20)))).await;
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
}

#[tokio::test]
async fn rejects_wrong_nonce() {
    let err = rejected_token(Fault::NonceWrong).await;
    assert!(err.to_string().contains("nonce"), "{err}");
}

#[tokio::test]
async fn rejects_missing_nonce() {
    let err = rejected_token(Fault::NonceMissing).await;
    assert!(err.to_string().contains("nonce"), "{err}");
}

#[tokio::test]
async fn rejects_wrong_at_hash() {
    let err = rejected_token(Fault::AtHashWrong).await;
    assert!(err.to_string().contains("at_hash"), "{err}");
}

// ---- signatures and keys ----

#[tokio::test]
async fn rejects_alg_none() {
    let err = rejected_token(Fault::AlgNone).await;
    assert!(err.to_string().contains("signature"), "{err}");
}

#[tokio::test]
async fn rejects_bad_signature() {
    rejected_token(Fault::BadSignature).await;
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_public_key() {
    let err = rejected_token(Fault::Hs256WithPublicKey).await;
    assert!(err.to_string().contains("HS256"), "only advertised algorithms are allowed: {err}");
}

#[tokio::test]
async fn rejects_jku_header_and_never_fetches_it() {
    let (idp, client) = start(Scenario::fault(Fault::JkuHeader)).await;
    let err = assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::InvalidIdToken { .. }), "{err:?}");
    assert_eq!(idp.requests_to("/attacker/jwks"), 0, "jku must never be fetched");
}

#[tokio::test]
async fn rejects_x5u_header_and_never_fetches_it() {
    let (idp, client) = start(Scenario::fault(Fault::X5uHeader)).await;
    let err = assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);
    assert!(matches!(err, AuthError::InvalidIdToken { .. }), "{err:?}");
    assert_eq!(idp.requests_to("/attacker/cert.pem"), 0, "x5u must never be fetched");
}

#[tokio::test]
async fn accepts_token_without_kid_when_one_key() {
    let (idp, client) = start(Scenario::fault(Fault::NoKid)).await;
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
}

/// With several keys and no `kid`, the RP does not try each key: the token is rejected (OpenID Connect Core 10.1
/// requires a `kid` when the set has more than one key).
#[tokio::test]
async fn rejects_token_without_kid_when_several_keys() {
    let err = rejected_token(Fault::NoKidSeveralKeys).await;
    assert!(err.to_string().contains("Ambiguous key"), "{err}");
}

#[tokio::test]
async fn accepts_rotated_key_after_refetch() {
    let (idp, client) = start(Scenario::default()).await;
    assert_eq!(idp.requests_to("/jwks"), 1);
    idp.set_scenario(Scenario::fault(Fault::KeyRotated));

    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
    assert_eq!(idp.requests_to("/jwks"), 2, "keys fetched again once for the unknown kid");

    assert_signed_in(sign_in(&client).await);
    assert_eq!(idp.requests_to("/jwks"), 2, "the refreshed keys are kept for later logins");
}

#[tokio::test]
async fn rejects_rotated_key_when_keys_endpoint_down() {
    let (idp, client) = start(Scenario::default()).await;
    idp.set_scenario(Scenario::fault(Fault::KeyRotatedJwksDown));
    assert_rejected(sign_in(&client).await, AuthErrorKind::ProviderUnavailable);
    assert_eq!(idp.requests_to("/jwks"), 2);
}

#[tokio::test]
async fn refetches_keys_at_most_once_per_callback() {
    // A token signed by an unknown key: one refetch, still unknown, rejected; no loop.
    let (idp, client) = start(Scenario::fault(Fault::JkuHeader)).await;
    assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);
    assert_eq!(idp.requests_to("/jwks"), 2);
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_keys_at_most_once_per_interval_and_waiting_callbacks_share_it() {
    // Every token names a key the provider's set does not have.
    let (idp, client) = start(Scenario::fault(Fault::JkuHeader)).await;
    let client = Arc::new(client);
    let mut callbacks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        callbacks
            .push(tokio::spawn(async move { assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest) }));
    }
    for callback in callbacks {
        callback.await.expect("joined");
    }
    assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);

    assert_eq!(idp.requests_to("/jwks"), 2, "discovery, then one refetch for nine callbacks");
}

#[tokio::test]
async fn after_the_interval_an_unknown_key_id_refetches_again() {
    let (idp, client) =
        start_with(Scenario::fault(Fault::JkuHeader), |s| s.key_refetch_interval = Duration::from_millis(50)).await;
    assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_rejected(sign_in(&client).await, AuthErrorKind::InvalidRequest);

    assert_eq!(idp.requests_to("/jwks"), 3);
}

/// A forged logout token with an unknown `kid` (anyone can POST one).
fn forged_logout_token(idp: &HostileIdp, kid: &str) -> String {
    let now = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs(),
    )
    .expect("fits");
    let claims = json!({
        "iss": idp.issuer(), "aud": idp.client_id(), "iat": now, "exp": now + 120, "jti": kid, "sub": SUBJECT,
        "events": { signin_auth::BACKCHANNEL_LOGOUT_EVENT: {} },
    });
    idp.sign_with_unknown_kid(&claims, "logout+jwt", kid).expect("signed")
}

#[tokio::test]
async fn a_rotation_right_after_a_forged_logout_token_still_signs_the_next_person_in() {
    // At the default re-fetch interval (60 s): the forged token spends the budget of posted tokens only.
    let (idp, client) = start(Scenario::default()).await;
    let refused = client.provider().verify_logout_token(&forged_logout_token(&idp, "forged-1")).await;
    assert!(matches!(refused, Err(AuthError::InvalidLogoutToken { .. })), "{refused:?}");
    assert_eq!(idp.requests_to("/jwks"), 2, "the forged token's unknown kid fetched the keys once");

    idp.set_scenario(Scenario::fault(Fault::KeyRotated));
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
    assert_eq!(idp.requests_to("/jwks"), 3, "the provider's own answer fetched the rotated keys at once");
}

#[tokio::test]
async fn a_thousand_forged_tokens_with_random_kids_fetch_the_keys_at_most_once_per_interval() {
    let (idp, client) = start(Scenario::default()).await;
    let client = Arc::new(client);
    let mut posted = Vec::new();
    for batch in 0..10 {
        let tokens: Vec<String> =
            (0..100).map(|n| forged_logout_token(&idp, &format!("kid-{batch}-{n}-{}", rand_suffix()))).collect();
        let client = client.clone();
        posted.push(tokio::spawn(async move {
            for token in tokens {
                let refused = client.provider().verify_logout_token(&token).await;
                assert!(matches!(refused, Err(AuthError::InvalidLogoutToken { .. })), "{refused:?}");
            }
        }));
    }
    for task in posted {
        task.await.expect("joined");
    }
    assert_eq!(idp.requests_to("/jwks"), 2, "discovery, then one re-fetch for 1,000 forged tokens");
    // And they did not spend the provider's own budget: a rotation is still picked up at once.
    idp.set_scenario(Scenario::fault(Fault::KeyRotated));
    assert_signed_in(sign_in(&client).await);
    assert_eq!(idp.requests_to("/jwks"), 3);
}

/// A few random characters, so that no two forged key ids are alike.
fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

// ---- email_verified and userinfo ----

#[tokio::test]
async fn passes_email_verified_false_through_to_the_domain() {
    let (_idp, client) = start(Scenario::default().with_claim("email_verified", json!(false))).await;
    let claims = assert_signed_in(sign_in(&client).await);
    assert_eq!(claims.email_verified, Some(false));
    assert_eq!(Identity::from_claims(claims), Err(IdentityError::EmailNotVerified));
}

#[tokio::test]
async fn passes_missing_email_verified_as_none() {
    let (_idp, client) = start(Scenario::default().without_claim("email_verified")).await;
    let claims = assert_signed_in(sign_in(&client).await);
    assert_eq!(claims.email_verified, None);
    assert_eq!(Identity::from_claims(claims), Err(IdentityError::EmailNotVerified));
}

#[tokio::test]
async fn rejects_email_verified_as_a_string() {
    let scenario = Scenario::default().with_claim("email_verified", json!("false"));
    let err = rejected_with(scenario, AuthErrorKind::InvalidRequest).await;
    assert!(matches!(err, AuthError::InvalidIdToken { .. }), "{err:?}");
}

#[tokio::test]
async fn merges_userinfo_when_id_token_has_no_email() {
    let (idp, client) = start(Scenario::fault(Fault::ProfileOnlyInUserinfo)).await;
    assert_eq!(assert_signed_in(sign_in(&client).await), ada(idp.issuer()));
    assert_eq!(idp.requests_to("/userinfo"), 1);
}

#[tokio::test]
async fn rejects_userinfo_for_another_subject() {
    let err = rejected_with(Scenario::fault(Fault::UserinfoSubMismatch), AuthErrorKind::InvalidRequest).await;
    assert!(matches!(err, AuthError::UserInfoSubjectMismatch), "{err:?}");
}

// ---- a broken token endpoint ----

#[tokio::test]
async fn times_out_when_token_endpoint_hangs() {
    let (_idp, client) = start_with(Scenario::default(), |s| s.http_timeout = Duration::from_millis(500)).await;
    let login = client.begin(None, false);
    let callback = browse(&login).await;
    _idp.set_scenario(Scenario::fault(Fault::TokenHangs(Duration::from_secs(5))));
    let secrets = secrets(&login.pending, &callback);
    let started = std::time::Instant::now();
    let err =
        assert_rejected((client.complete(login.pending, callback).await, secrets), AuthErrorKind::ProviderTimeout);
    assert!(started.elapsed() < Duration::from_secs(3), "gave up after {:?}", started.elapsed());
    assert!(matches!(err, AuthError::ProviderTimeout), "{err:?}");
}

#[tokio::test]
async fn rejects_oversized_token_response() {
    let (_idp, client) =
        start_with(Scenario::fault(Fault::TokenOversized(200 * 1024)), |s| s.max_response_bytes = 64 * 1024).await;
    let err = assert_rejected(sign_in(&client).await, AuthErrorKind::ProviderUnavailable);
    assert!(err.to_string().contains("larger"), "{err}");
}

#[tokio::test]
async fn rejects_oversized_chunked_token_response() {
    let (_idp, client) =
        start_with(Scenario::fault(Fault::TokenOversizedChunked(200 * 1024)), |s| s.max_response_bytes = 64 * 1024)
            .await;
    let err = assert_rejected(sign_in(&client).await, AuthErrorKind::ProviderUnavailable);
    assert!(err.to_string().contains("larger"), "{err}");
}

#[tokio::test]
async fn rejects_non_json_token_response() {
    rejected_with(Scenario::fault(Fault::TokenNotJson), AuthErrorKind::ProviderUnavailable).await;
}

#[tokio::test]
async fn reports_token_endpoint_5xx_as_unavailable() {
    let err = rejected_with(Scenario::fault(Fault::TokenServerError), AuthErrorKind::ProviderUnavailable).await;
    assert!(err.to_string().contains("503"), "{err}");
}
