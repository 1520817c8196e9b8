//! Settings that cannot work are refused when the layer is built.

use signin_login::{Error, Login, LoginSettings, SessionSettings, Sessions};
use url::Url;

use crate::support::{FakeIdp, Hook, Options};

#[test]
fn login_without_cookie_keys_is_a_config_error_naming_the_key() {
    let options = Options { keys: Vec::new(), ..Options::default() };
    let sessions = options.sessions();
    let err = Login::builder(sessions, Hook::Keep)
        .providers(vec![FakeIdp::new()])
        .per_instance()
        .build()
        .expect_err("no key");
    match err {
        Error::Config(message) => assert!(message.contains("login.cookie_keys"), "{message}"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn an_https_site_needs_secure_cookies() {
    let url = Url::parse("https://example.com").expect("url");
    let session = SessionSettings { secure: false, ..SessionSettings::default() };
    let login =
        LoginSettings { cookie_keys: vec![signin_login::generate_cookie_key().into()], ..LoginSettings::default() };
    let err = Sessions::new(url, session.clone(), login.clone()).expect_err("insecure cookies on https");
    assert!(matches!(&err, Error::Config(message) if message.contains("session.secure")), "{err:?}");
    // Plain http (development) may turn it off.
    Sessions::new(Url::parse("http://localhost:8080").expect("url"), session, login).expect("http without Secure");
}

#[test]
fn unusable_settings_name_their_key() {
    let url = || Url::parse("https://example.com").expect("url");
    let key = || vec![signin_login::generate_cookie_key().into()];
    let cases: Vec<(Url, SessionSettings, LoginSettings, &str)> = vec![
        (
            Url::parse("ftp://example.com").expect("url"),
            SessionSettings::default(),
            LoginSettings::default(),
            "server.public_url",
        ),
        (
            Url::parse("https://example.com/?a=b").expect("url"),
            SessionSettings::default(),
            LoginSettings::default(),
            "server.public_url",
        ),
        (
            url(),
            SessionSettings { cookie_name: "bad name".into(), ..SessionSettings::default() },
            LoginSettings::default(),
            "session.cookie_name",
        ),
        (
            url(),
            SessionSettings::default(),
            LoginSettings { cookie_keys: vec!["c2hvcnQ".to_owned().into()], ..LoginSettings::default() },
            "login.cookie_keys[0]",
        ),
        (
            url(),
            SessionSettings::default(),
            LoginSettings { login_path: "//evil".into(), cookie_keys: key(), ..LoginSettings::default() },
            "login.login_path",
        ),
        (
            url(),
            SessionSettings::default(),
            LoginSettings { max_attempts: 0, cookie_keys: key(), ..LoginSettings::default() },
            "login.max_attempts",
        ),
        (
            url(),
            SessionSettings::default(),
            // Two routes at one path would stop the router at start-up.
            LoginSettings { risc_path: "/logout".into(), cookie_keys: key(), ..LoginSettings::default() },
            "risc_path must differ",
        ),
    ];
    for (url, session, login, key) in cases {
        let err = Sessions::new(url, session, login).expect_err(key);
        assert!(matches!(&err, Error::Config(message) if message.contains(key)), "{key}: {err:?}");
    }
}

#[test]
fn a_reader_follows_the_sites_paths_and_needs_no_keys() {
    // A service that only reads the sessions: the shared sections, the app's own login path, no attempt key.
    let site: signin_login::SiteSettings = serde_json::from_value(serde_json::json!({
        "login": { "login_path": "/auth/signin", "callback_path": "/auth/signin/back" },
        "database": { "url": "mysql://db/site" },
    }))
    .expect("shared sections");
    let reader = Sessions::reader(Url::parse("https://notes.example.com").expect("url"), &site).expect("a reader");
    let next = signin_domain::LocalPath::parse("/notes").expect("a path");
    assert_eq!(reader.login_url(Some(&next)), "/auth/signin?next=%2Fnotes", "its sign-in links follow the app's");
    assert!(reader.login_settings().cookie_keys.is_empty());
}

#[test]
fn risc_turned_on_needs_a_receiver_and_says_so() {
    let options = Options::default();
    let mut login = options.login_settings();
    login.risc.enabled = true;
    let sessions = Sessions::new(Url::parse(options.public_url).expect("url"), options.session_settings(), login)
        .expect("settings");
    let err = Login::builder(sessions, Hook::Keep).providers(vec![FakeIdp::new()]).per_instance().build();
    let err = err.expect_err("no receiver");
    assert!(err.to_string().contains("login.risc.enabled"), "{err}");
}
