//! Refreshing a grant against a misbehaving provider over real HTTP: a sign-in with offline access against the
//! hostile provider, then one refresh per fault, each with its exact outcome. `GrantEnded` deletes the grant in the
//! login layer; every other failure leaves it as it was (503).

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use signin_auth::{AuthError, AuthErrorKind, Callback, LoginFlow, OidcClient, Provider, ProviderSettings};
use signin_hostile_idp::{CLIENT_SECRET, Fault, HostileIdp, SUBJECT, Scenario};
use url::Url;

/// A client of the hostile provider with offline access, and a refresh token from a completed sign-in.
async fn signed_in() -> (HostileIdp, OidcClient, SecretString) {
    let idp = HostileIdp::start(Scenario::default()).await.expect("hostile idp starts");
    let mut settings = ProviderSettings::new(idp.issuer(), idp.client_id(), SecretString::from(idp.client_secret()));
    settings.http_timeout = Duration::from_secs(2);
    settings.offline_access = true;
    let redirect = Url::parse("http://127.0.0.1:9/login/callback").expect("static URL");
    let client = OidcClient::discover(settings, redirect).await.expect("discovery succeeds");
    let flow = LoginFlow::new(Arc::new(client.clone()), Duration::from_secs(600));
    let login = flow.begin(None, false);
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = browser.get(login.authorize_url.clone()).send().await.expect("authorize answers");
    let location = response.headers().get(reqwest::header::LOCATION).expect("Location").to_str().expect("ascii");
    let location = Url::parse(location).expect("absolute Location");
    let mut callback = Callback::default();
    for (name, value) in location.query_pairs() {
        match name.as_ref() {
            "code" => callback.code = Some(value.into_owned()),
            "state" => callback.state = Some(value.into_owned()),
            "iss" => callback.iss = Some(value.into_owned()),
            _ => {}
        }
    }
    let signed_in = flow.complete(login.pending, callback).await.expect("signed in");
    let refresh = signed_in.tokens.refresh_token.clone().expect("offline access yields a refresh token");
    (idp, client, refresh)
}

/// The refresh's outcome, checked to leak neither the refresh token nor the client secret.
async fn refresh(client: &OidcClient, token: &SecretString) -> Result<signin_auth::Refreshed, AuthError> {
    let outcome = client.refresh(token, client.issuer(), SUBJECT).await;
    if let Err(err) = &outcome {
        let shown = format!("{err} / {err:?} / {}", err.user_message());
        assert!(!shown.contains(token.expose_secret()) && !shown.contains(CLIENT_SECRET), "{shown}");
    }
    outcome
}

#[tokio::test]
async fn a_good_refresh_gives_a_new_access_token_and_a_verified_id_token() {
    let (idp, client, token) = signed_in().await;
    assert!(idp.access_tokens().len() == 1, "the sign-in's own");
    let refreshed = refresh(&client, &token).await.expect("refreshed");
    assert_eq!(idp.refresh_calls(), 1);
    assert!(idp.access_tokens().iter().any(|at| at == refreshed.access_token.expose_secret()), "a token it issued");
    assert!(refreshed.id_token.is_some() && refreshed.refresh_token.is_none(), "{refreshed:?}");
    assert!(refreshed.scopes.as_ref().is_some_and(|scopes| scopes.iter().any(|s| s == "openid")), "{refreshed:?}");
    let debug = format!("{refreshed:?}");
    assert!(!debug.contains(refreshed.access_token.expose_secret()), "{debug}");

    // A provider that rotates: the new refresh token comes back, the old one is dead.
    idp.set_scenario(Scenario::fault(Fault::RefreshRotates));
    let rotated = refresh(&client, &token).await.expect("refreshed").refresh_token.expect("a new refresh token");
    let reused = refresh(&client, &token).await.expect_err("the old one is dead");
    assert!(matches!(reused, AuthError::GrantEnded { .. }), "{reused:?}");
    assert!(refresh(&client, &rotated).await.is_ok(), "the new one works");
}

#[tokio::test]
async fn a_refresh_for_another_person_or_issuer_ends_the_grant() {
    for fault in [Fault::RefreshSubjectChanged, Fault::RefreshIssuerChanged] {
        let (idp, client, token) = signed_in().await;
        idp.set_scenario(Scenario::fault(fault.clone()));
        let err = refresh(&client, &token).await.expect_err("refused");
        assert_eq!(err.kind(), AuthErrorKind::GrantEnded, "{fault:?}: {err:?}");
        assert!(matches!(err, AuthError::RefreshIdentityChanged), "{err:?}");
    }
}

#[tokio::test]
async fn invalid_grant_ends_the_grant_and_every_other_failure_leaves_it() {
    let (idp, client, token) = signed_in().await;
    idp.set_scenario(Scenario::fault(Fault::RefreshInvalidGrant));
    let err = refresh(&client, &token).await.expect_err("refused");
    assert!(matches!(&err, AuthError::GrantEnded { code } if code == "invalid_grant"), "{err:?}");

    let cases = [
        (Fault::RefreshWithoutAccessToken, AuthErrorKind::ProviderUnavailable),
        (Fault::TokenServerError, AuthErrorKind::ProviderUnavailable),
        (Fault::TokenNotJson, AuthErrorKind::ProviderUnavailable),
        (Fault::TokenOversized(2 << 20), AuthErrorKind::ProviderUnavailable),
        (Fault::TokenOversizedChunked(2 << 20), AuthErrorKind::ProviderUnavailable),
        (Fault::TokenHangs(Duration::from_secs(5)), AuthErrorKind::ProviderTimeout),
        (Fault::BadSignature, AuthErrorKind::InvalidRequest),
    ];
    for (fault, kind) in cases {
        idp.set_scenario(Scenario::fault(fault.clone()));
        let started = std::time::Instant::now();
        let err = refresh(&client, &token).await.expect_err("refused");
        assert_eq!(err.kind(), kind, "{fault:?}: {err:?}");
        assert!(started.elapsed() < Duration::from_secs(4), "{fault:?} took {:?}", started.elapsed());
    }
    // The provider is well again: the refresh token held all along still works.
    idp.set_scenario(Scenario::default());
    assert!(refresh(&client, &token).await.is_ok());
}
