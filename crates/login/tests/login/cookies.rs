//! The session cookie's name and what the layer does with cookies it cannot trust: `__Host-` over https, two
//! session cookies (one may be planted), malformed ones, and the log they may cause.

use axum::http::StatusCode;
use signin_testkit::logs::Logs;

use crate::support::{BASE_NAME, Options, SESSION_COOKIE, Site};

#[tokio::test]
async fn over_https_the_session_cookie_is_a_host_cookie() {
    let site = Site::new();

    let cookie = site.sign_in().await;

    assert!(cookie.starts_with("__Host-signin_session="), "{cookie}");
    let me = site.get("/me", Some(&cookie)).await;
    assert_eq!(me.status, StatusCode::OK);
    let plain = cookie.replacen("__Host-", "", 1);
    assert_eq!(site.get("/maybe", Some(&plain)).await.body, "signed out", "the base name is not the cookie");
}

#[tokio::test]
async fn over_plain_http_the_cookie_keeps_its_base_name() {
    let site = Site::with(Options { public_url: "http://localhost:8080", ..Options::default() });

    let cookie = site.sign_in().await;

    assert!(cookie.starts_with(&format!("{BASE_NAME}=")), "{cookie}");
}

#[tokio::test]
async fn two_session_cookies_sign_nobody_in_and_are_cleared() {
    let site = Site::new();
    let victim = site.sign_in().await;
    let planted = site.sign_in().await; // the attacker's own, valid, session

    for cookies in [format!("{victim}; {planted}"), format!("{planted}; {victim}")] {
        let reply = site.get("/maybe", Some(&cookies)).await;

        assert_eq!(reply.body, "signed out", "one of two session cookies was used: {cookies}");
        let removal = reply.set_cookie(SESSION_COOKIE).expect("the cookie is cleared");
        assert!(removal.is_removal(), "{removal:?}");
        assert_eq!(removal.attribute("path"), Some("/"));
    }
    assert_eq!(site.get("/maybe", Some(&victim)).await.body, "signed in as ada", "alone, it works");
}

#[tokio::test]
async fn a_malformed_session_cookie_is_ignored_and_cleared_and_other_cookies_pass() {
    let site = Site::new();

    let reply = site.get("/maybe", Some("theme=dark; __Host-signin_session=garbage!; lang=en")).await;

    assert_eq!(reply.body, "signed out");
    assert!(reply.set_cookie(SESSION_COOKIE).is_some_and(|c| c.is_removal()));
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_garbage_requests_write_a_bounded_number_of_log_lines() {
    // As the library's README asks of a service: tower-sessions' own line per unknown session id kept to errors.
    let (logs, _guard) = Logs::capture("info,tower_sessions_core::session=error");
    let site = Site::new();

    for n in 0..10_000 {
        let garbage = match n % 4 {
            0 => format!("__Host-signin_session=garbage{n}"),
            1 => {
                "__Host-signin_session=AAAAAAAAAAAAAAAAAAAAAA; __Host-signin_session=BBBBBBBBBBBBBBBBBBBBBB".to_owned()
            }
            2 => "__Host-signin_session=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            _ => String::new(),
        };
        let reply = if n % 8 == 3 {
            site.get(&format!("/login/callback?code=c{n}&state=s{n}"), Some(&garbage)).await
        } else if n % 8 == 7 {
            site.logout(Some(&garbage), Some("forged"), &[]).await
        } else {
            site.get("/maybe", Some(&garbage)).await
        };
        assert!(reply.status.is_success() || reply.status.is_client_error() || reply.status.is_redirection());
    }

    let lines = logs.take();
    let count = lines.len();
    let written = lines.join("\n");
    assert!(count <= 20, "{count} log lines for 10,000 garbage requests:\n{written}");
    for kind in ["malformed session cookie", "several session cookies", "names no stored session", "refused"] {
        assert!(written.contains(kind), "{kind}: the noise is summed up, not hidden:\n{written}");
    }
}

#[tokio::test]
async fn a_percent_encoded_copy_of_the_session_cookies_name_is_a_plant_and_signs_nobody_in() {
    let site = Site::new();
    let victim = site.sign_in().await;
    let attacker = site.sign_in().await;
    // A sibling subdomain can set this (it does not start with `__Host-` as sent); the session layer decodes names.
    let planted = attacker.replacen("__Host-", "%5F%5FHost-", 1);

    for cookies in [planted.clone(), format!("{victim}; {planted}"), format!("{planted}; {victim}")] {
        let reply = site.get("/maybe", Some(&cookies)).await;
        assert_eq!(reply.body, "signed out", "{cookies}");
        assert!(reply.set_cookie(SESSION_COOKIE).is_some_and(|c| c.is_removal()), "{cookies}");
    }
}
