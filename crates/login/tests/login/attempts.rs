//! The attempt cookies: several at once, the cap, and cookies that must not open.

use std::time::Duration;

use axum::http::StatusCode;

use crate::support::{Browser, Options, Reply, Site, Started};

/// The callback's page for an attempt that cannot be used, and its cookie cleared.
#[track_caller]
fn assert_expired(reply: &Reply, attempt: &Started) {
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    let cleared = reply.set_cookie(&attempt.cookie.name).expect("the attempt cookie is cleared");
    assert!(cleared.is_removal(), "{cleared:?}");
    assert_eq!(cleared.attribute("path"), Some("/login"));
    assert!(reply.session_cookie().is_none());
}

#[tokio::test]
async fn parallel_attempts_each_find_their_own() {
    let site = Site::new();
    let mut browser = Browser::default();
    let mut started = Vec::new();
    for next in ["/one", "/two", "/three"] {
        started.push(browser.start(&site, &format!("/login?next={next}")).await);
    }
    assert_eq!(browser.attempts().len(), 3, "three attempt cookies: {:?}", browser.attempts());
    let names: std::collections::HashSet<_> = started.iter().map(|s| s.cookie.name.clone()).collect();
    assert_eq!(names.len(), 3, "each attempt has a cookie of its own");
    assert!(started.iter().all(|s| s.reply.attempt_cookies().len() == 1), "no attempt was dropped");

    // Complete them in another order than they started; the browser sends all its attempt cookies each time.
    for (done, (index, next)) in [(1, "/two"), (2, "/three"), (0, "/one")].into_iter().enumerate() {
        let attempt = &started[index];
        let code = site.idp.good_code();
        let uri = attempt.callback(&code);
        let cookies = browser.cookie_header(&uri).expect("cookies");
        assert_eq!(cookies.matches("__Secure-signin_session_login_").count(), 3 - done, "{cookies}");
        let reply = browser.get(&site, &uri).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{next}: {}", reply.body);
        assert_eq!(reply.location(), next, "the callback found its own attempt");
        assert!(reply.session_cookie().is_some(), "{next} signs in");
        let cleared = reply.attempt_cookies();
        assert_eq!(cleared.len(), 1, "only its own attempt cookie is cleared: {cleared:?}");
        assert_eq!(cleared[0].name, attempt.cookie.name);
        assert!(cleared[0].is_removal());
        let redeemed = site.idp.redeemed();
        let last = redeemed.last().expect("redeemed");
        assert_eq!(last.code, code);
        assert!(attempt.redeemed_by(last), "{next} was redeemed with its own nonce and verifier");
        assert!(started.iter().enumerate().filter(|(i, _)| *i != index).all(|(_, other)| !other.redeemed_by(last)));
    }
    assert!(browser.attempts().is_empty());
    let me = browser.get(&site, "/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(site.store.records().await.len(), 1, "each sign-in replaced the session before it");
}

#[tokio::test]
async fn a_further_attempt_beyond_the_cap_drops_the_oldest() {
    let site = Site::new();
    let mut browser = Browser::default();
    let mut started = Vec::new();
    for n in 0..5 {
        let attempt = browser.start(&site, &format!("/login?next=/{n}")).await;
        assert_eq!(attempt.reply.attempt_cookies().len(), 1, "attempt {n} drops nothing");
        started.push(attempt);
    }
    let sixth = browser.start(&site, "/login?next=/5").await;
    let set = sixth.reply.attempt_cookies();
    assert_eq!(set.len(), 2, "the new attempt and the removal of the oldest: {set:?}");
    let removed: Vec<_> = set.iter().filter(|c| c.is_removal()).collect();
    assert_eq!(removed.len(), 1, "{set:?}");
    assert_eq!(removed[0].name, started[0].cookie.name, "the oldest attempt is dropped");
    assert_eq!(removed[0].attribute("path"), Some("/login"));
    assert_eq!(browser.attempts().len(), 5);

    // The dropped attempt's callback finds nothing of its own in this browser. The browser still holds the other
    // attempts, so the library calls the link stale ("Sign-in failed") rather than expired.
    let first = &started[0];
    let reply = browser.get(&site, &first.callback(&site.idp.good_code())).await;
    let page = reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(page.message.contains("no longer valid"), "{page:?}");
    assert!(reply.set_cookies().is_empty(), "the other attempts are left alone: {:?}", reply.set_cookies());
    assert!(reply.session_cookie().is_none());
    // A browser with no attempt under way at all is told it expired.
    let reply = site.get(&first.callback(&site.idp.good_code()), None).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    assert!(site.idp.redeemed().is_empty());
    assert_eq!(browser.attempts().len(), 5);
    // The others still work.
    let reply = browser.get(&site, &started[1].callback(&site.idp.good_code())).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/1");
}

#[tokio::test]
async fn a_tampered_attempt_cookie_gives_400_and_is_cleared() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let value = &started.cookie.value;
    let at = value.len() / 2;
    let flipped = if value.as_bytes()[at] == b'A' { 'B' } else { 'A' };
    let tampered = format!("{}={}{flipped}{}", started.cookie.name, &value[..at], &value[at + 1..]);
    assert_ne!(tampered, started.cookie.pair());
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&tampered)).await;
    assert_expired(&reply, &started);
    assert!(site.idp.redeemed().is_empty());

    // Neither does a value that is not even base64, nor an empty one.
    for junk in ["%%%not-base64%%%", ""] {
        let cookie = format!("{}={junk}", started.cookie.name);
        let reply = site.get(&started.callback(&site.idp.good_code()), Some(&cookie)).await;
        assert_expired(&reply, &started);
    }
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn an_attempt_cookie_moved_to_another_name_does_not_open() {
    let site = Site::new();
    let a = site.start("/login", None).await;
    let b = site.start("/login", None).await;
    // `b`'s callback with `a`'s sealed value under `b`'s name.
    let swapped = format!("{}={}", b.cookie.name, a.cookie.value);
    let reply = site.get(&b.callback(&site.idp.good_code()), Some(&swapped)).await;
    assert_expired(&reply, &b);
}

#[tokio::test]
async fn an_attempt_sealed_with_another_key_gives_400() {
    let site = Site::new();
    let other = Site::new();
    let started = other.start("/login", None).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    assert_expired(&reply, &started);
    assert!(site.idp.redeemed().is_empty());
}

#[tokio::test]
async fn a_rotated_key_still_opens_the_attempts_it_sealed() {
    let old = signin_login::generate_cookie_key();
    let new = signin_login::generate_cookie_key();
    let before = Site::with(Options { keys: vec![old.clone()], ..Options::default() });
    let after = Site::with(Options { keys: vec![new.clone(), old.clone()], ..Options::default() });
    let started = before.start("/login?next=%2Fnotes", None).await;
    let reply = after.get(&started.callback(&after.idp.good_code()), Some(&started.cookies())).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/notes");
    assert!(reply.session_cookie().is_some());

    // New attempts are sealed with the new key: a site that only has the old one cannot open them.
    let started = after.start("/login", None).await;
    let reply = before.get(&started.callback(&before.idp.good_code()), Some(&started.cookies())).await;
    assert_expired(&reply, &started);
}

#[tokio::test]
async fn an_oversized_attempt_cookie_gives_400() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let oversized = format!("{}={}", started.cookie.name, "A".repeat(5000));
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&oversized)).await;
    assert_expired(&reply, &started);
    assert!(site.idp.redeemed().is_empty());
}

#[tokio::test]
async fn an_expired_attempt_gives_400() {
    let site = Site::with(Options { pending_login: Duration::from_secs(1), ..Options::default() });
    let started = site.start("/login", None).await;
    assert_eq!(started.cookie.max_age(), Some(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    let page = reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(page.message.contains("took too long"), "{page:?}");
    assert!(reply.set_cookie(&started.cookie.name).expect("cleared").is_removal());
    assert!(reply.session_cookie().is_none());
    assert!(site.idp.redeemed().is_empty(), "the provider never sees an expired attempt");
}

#[tokio::test]
async fn a_callback_without_its_attempt_cookie_gives_400() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), None).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    assert!(reply.set_cookies().is_empty(), "{:?}", reply.set_cookies());

    // Another attempt's cookie is no substitute: a link that names none of the browser's attempts is stale.
    let other = site.start("/login", None).await;
    let reply = site.get(&started.callback(&site.idp.good_code()), Some(&other.cookies())).await;
    let page = reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(page.message.contains("no longer valid"), "{page:?}");
    assert!(reply.set_cookies().is_empty(), "the other attempt is left alone");

    // Nor is a callback without a state, with or without attempts under way.
    let reply = site.get("/login/callback?code=good-x", Some(&started.cookies())).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(reply.set_cookies().is_empty());
    let reply = site.get("/login/callback?code=good-x", None).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    assert!(site.idp.redeemed().is_empty());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_replayed_callback_does_not_sign_in_again() {
    let site = Site::new();
    let mut browser = Browser::default();
    let started = browser.start(&site, "/login").await;
    let uri = started.callback(&site.idp.good_code());
    let cookies = browser.cookie_header(&uri).expect("the attempt cookie");
    let first = browser.get(&site, &uri).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert!(first.session_cookie().is_some());

    // A real browser has dropped the attempt cookie: the replay finds no attempt.
    assert!(browser.attempts().is_empty());
    let again = browser.get(&site, &uri).await;
    again.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
    assert!(again.session_cookie().is_none());
    assert_eq!(site.idp.redeemed().len(), 1, "the provider was not asked again");

    // Replaying the exact request (the old Cookie header) opens the attempt again, but the provider refuses a code
    // used twice, so no second session comes of it.
    let replay = site.get(&uri, Some(&cookies)).await;
    replay.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(replay.session_cookie().is_none());
    assert!(replay.set_cookie(&started.cookie.name).expect("cleared").is_removal());
    assert_eq!(site.idp.redeemed().len(), 2);
    assert_eq!(site.store.records().await.len(), 1, "still the one session");
}

#[tokio::test]
async fn a_refused_code_gives_400() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let reply = site.get(&started.callback("bad-code"), Some(&started.cookies())).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(reply.set_cookie(&started.cookie.name).expect("cleared").is_removal());
    assert!(site.store.is_untouched().await);
}
