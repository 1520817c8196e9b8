//! Several providers on one site: each signs in at its own paths, and an attempt begun with one is never completed
//! by another's callback (the mix-up attack).

use std::sync::Arc;

use axum::http::StatusCode;
use signin_login::{Claims, Error, Login, Provider};

use crate::support::{FakeIdp, FakeProvider, Hook, ISSUER, Options, Site, Store, routes};

const CORP: &str = "https://corp.example";

/// A site whose main provider is the usual fake and whose second is `corp`.
fn two_providers() -> (Site, Arc<FakeProvider>, Login<Hook>) {
    let options = Options::default();
    let sessions = options.sessions();
    let main = FakeIdp::new();
    let corp = FakeIdp::named("corp", CORP);
    let providers: Vec<Arc<dyn Provider>> = vec![main.clone(), corp.clone()];
    let login = Login::builder(sessions.clone(), Hook::Keep)
        .providers(providers)
        .per_instance()
        .build()
        .expect("two providers");
    let store = Store::default();
    let app = routes(&login).layer(sessions.layer(store.clone()));
    (Site { app, store, idp: main, sessions }, corp, login)
}

#[tokio::test]
async fn each_provider_signs_in_at_its_own_paths_and_the_main_one_keeps_login() {
    let (site, corp, login) = two_providers();

    // The main provider keeps `/login` and `/login/callback`.
    let main = site.start("/login", None).await;
    assert_eq!(main.url.origin().ascii_serialization(), "https://idp.example");
    // The other starts at `/login/corp`; its redirect URI is its own callback.
    let started = site.start("/login/corp?next=%2Fnotes", None).await;
    assert_eq!(started.url.origin().ascii_serialization(), CORP);
    assert_eq!(site.sessions.redirect_url_for("corp").as_str(), "https://example.com/login/corp/callback");
    assert_eq!(started.cookie.attribute("path"), Some("/login"), "one cookie path covers every provider");

    let reply =
        site.get(&started.callback_at("/login/corp/callback", &corp.good_code()), Some(&started.cookies())).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/notes");
    assert_eq!(corp.redeemed().len(), 1, "corp redeemed its code");
    assert!(started.redeemed_by(&corp.redeemed()[0]), "with corp's attempt's nonce and verifier");
    assert!(site.idp.redeemed().is_empty(), "the main provider was never asked");
    let session = reply.session_cookie().expect("a session").pair();
    let me = site.get("/me", Some(&session)).await;
    let claims: Claims = serde_json::from_str(&me.body).expect("claims");
    assert_eq!(claims.profile.issuer, CORP, "signed in by corp");

    // The buttons of a login page: the main provider first, each with its own start.
    let links = login.links(None);
    let starts: Vec<(&str, &str, &str)> =
        links.iter().map(|l| (l.id.as_str(), l.issuer.as_str(), l.login_url.as_str())).collect();
    assert_eq!(starts, [("oidc", ISSUER, "/login"), ("corp", CORP, "/login/corp")]);
    assert!(links.iter().all(|link| !link.google));
    assert_eq!(login.provider_by_issuer(CORP).map(Provider::id), Some("corp"));
}

#[tokio::test]
async fn an_attempt_begun_with_one_provider_is_refused_at_another_providers_callback() {
    let (site, corp, _login) = two_providers();

    // Begun with the main provider, brought to corp's callback (an attacker's provider would do this with a code
    // it obtained from the honest one).
    let started = site.start("/login", None).await;
    let code = site.idp.good_code();
    let reply = site.get(&started.callback_at("/login/corp/callback", &code), Some(&started.cookies())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("different provider"), "{}", reply.body);
    assert!(reply.session_cookie().is_none(), "no session");
    assert!(reply.attempt_cookies().iter().all(|c| c.is_removal()), "the attempt is used up");

    // And the other way round.
    let started = site.start("/login/corp", None).await;
    let reply = site.get(&started.callback(&corp.good_code()), Some(&started.cookies())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("different provider"), "{}", reply.body);

    assert!(site.idp.redeemed().is_empty() && corp.redeemed().is_empty(), "no code reached either provider");
    assert!(site.store.is_untouched().await, "nothing stored");
}

#[test]
fn providers_need_plain_distinct_ids_distinct_issuers_and_free_paths() {
    let sessions = Options::default().sessions();
    let build = |providers: Vec<Arc<dyn Provider>>| {
        Login::builder(sessions.clone(), Hook::Keep).providers(providers).per_instance().build()
    };
    let refusal = |providers: Vec<Arc<dyn Provider>>| match build(providers) {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };

    assert!(refusal(vec![]).contains("no OpenID provider"));
    let same_id = refusal(vec![FakeIdp::new(), FakeIdp::named("oidc", CORP)]);
    assert!(same_id.contains("two providers have the id `oidc`"), "{same_id}");
    let same_issuer = refusal(vec![FakeIdp::new(), FakeIdp::named("corp", ISSUER)]);
    assert!(same_issuer.contains("configured twice"), "{same_issuer}");
    for bad in ["Corp", "a b", "", "../x", &"x".repeat(33)] {
        let message = refusal(vec![FakeIdp::new(), FakeIdp::named(bad, CORP)]);
        assert!(message.contains("must be 1 to 32"), "{bad:?}: {message}");
    }
    // `/login/callback` is the main provider's callback already, and `/login/risc` the RISC receiver's path.
    let taken = refusal(vec![FakeIdp::new(), FakeIdp::named("callback", CORP)]);
    assert!(taken.contains("/login/callback"), "{taken}");
    let taken = refusal(vec![FakeIdp::new(), FakeIdp::named("risc", CORP)]);
    assert!(taken.contains("/login/risc"), "{taken}");

    assert!(build(vec![FakeIdp::new(), FakeIdp::named("corp-2_x", CORP)]).is_ok());
}
