//! A sign-in completes once, from the browser that began it: a replayed callback gets no second session even from a
//! provider that redeems a code twice, on this instance or another; an attempt cookie copied into another browser
//! (planted by a sibling subdomain: login CSRF) is refused before the provider is asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use signin_login::{MemoryUsedTokens, UsedTokens};

use crate::support::{BINDING_COOKIE, Browser, Hook, Options, Site};

/// Two instances of one deployment (same keys, same public URL) sharing one used-token store, each with a hook
/// that counts its calls (each call would write the user's row).
fn two_instances() -> (Site, Site, Arc<AtomicUsize>) {
    let keys = vec![signin_login::generate_cookie_key()];
    let used: Arc<dyn UsedTokens> = Arc::new(MemoryUsedTokens::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let instance = || {
        Site::with(Options {
            keys: keys.clone(),
            hook: Hook::Counting(calls.clone()),
            used_tokens: Some(used.clone()),
            ..Options::default()
        })
    };
    (instance(), instance(), calls)
}

#[tokio::test]
async fn a_replay_that_the_provider_redeems_again_gets_no_second_session_on_either_instance() {
    let (a, b, calls) = two_instances();
    let started = a.start("/login", None).await;
    // This provider redeems the code every time it is shown.
    let uri = started.callback("again-1");

    let first = a.get(&uri, Some(&started.cookies())).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert!(first.session_cookie().is_some());

    // The same callback and a copy of the attempt cookie, on the same instance and on the other.
    for (site, which) in [(&a, "the same instance"), (&b, "another instance")] {
        let replay = site.get(&uri, Some(&started.cookies())).await;
        replay.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
        assert!(replay.session_cookie().is_none(), "{which}");
        assert_eq!(site.idp.redeemed().len(), if which == "another instance" { 1 } else { 2 }, "{which}");
    }
    assert_eq!(a.store.records().await.len(), 1, "the one session");
    assert!(b.store.is_untouched().await, "no session on the other instance");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the hook ran once: one write of the user's row");
}

#[tokio::test]
async fn eight_concurrent_replays_make_exactly_one_session() {
    let (a, b, calls) = two_instances();
    let started = a.start("/login", None).await;
    let uri = started.callback("again-2");
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut racing = Vec::new();
    for n in 0..8 {
        let site = if n % 2 == 0 { a.clone() } else { b.clone() };
        let (uri, cookies) = (uri.clone(), started.cookies());
        racing.push(tokio::spawn(async move { site.get(&uri, Some(&cookies)).await }));
    }
    let mut signed_in = 0;
    for race in racing {
        let reply = race.await.expect("joined");
        if reply.status == StatusCode::SEE_OTHER {
            assert!(reply.session_cookie().is_some());
            signed_in += 1;
        } else {
            reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in expired");
        }
    }
    assert_eq!(signed_in, 1);
    assert_eq!(a.store.records().await.len() + b.store.records().await.len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn callbacks_with_made_up_codes_claim_nothing() {
    // The claim is written only after the provider answered with a verified token: refused codes leave the
    // attempt claimable, so the person's own callback still works.
    let (a, _, calls) = two_instances();
    let started = a.start("/login", None).await;
    for n in 0..5 {
        let refused = a.get(&started.callback(&format!("made-up-{n}")), Some(&started.cookies())).await;
        refused.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    }
    let real = a.get(&started.callback("again-3"), Some(&started.cookies())).await;
    assert_eq!(real.status, StatusCode::SEE_OTHER, "{}", real.body);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn another_browsers_attempt_cookie_is_refused_before_the_provider_is_asked() {
    let site = Site::new();
    // The attacker begins a sign-in in their own browser...
    let mut attacker = Browser::default();
    let theirs = attacker.start(&site, "/login").await;
    // ... and plants its attempt cookie in the victim's browser, which has a binding of its own.
    let mut victim = Browser::default();
    let own = victim.start(&site, "/login").await;
    assert_ne!(own.binding.value, theirs.binding.value, "each browser its own binding");
    let planted = format!("{}; {}", theirs.cookie.pair(), own.binding.pair());

    let reply = site.get(&theirs.callback(&site.idp.good_code()), Some(&planted)).await;
    reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
    assert!(reply.body.contains("another browser"), "{}", reply.body);
    assert!(reply.session_cookie().is_none());
    assert!(reply.set_cookie(&theirs.cookie.name).expect("the planted cookie is cleared").is_removal());
    assert!(site.idp.redeemed().is_empty(), "no call to the provider's token endpoint");
    assert!(site.store.is_untouched().await);

    // The victim's own sign-in is untouched by it.
    let back = victim.get(&site, &own.callback(&site.idp.good_code())).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
}

#[tokio::test]
async fn an_attempt_without_its_binding_is_refused_before_the_provider_is_asked() {
    let site = Site::new();
    let started = site.start("/login", None).await;
    let code = site.idp.good_code();
    let several = format!("{}; {}; {BINDING_COOKIE}={}", started.cookies(), started.binding.pair(), "x".repeat(43));
    let broken = format!("{}; {BINDING_COOKIE}=not-a-binding", started.cookie.pair());
    for cookies in [started.cookie.pair(), several, broken] {
        let reply = site.get(&started.callback(&code), Some(&cookies)).await;
        reply.assert_page(StatusCode::BAD_REQUEST, "Sign-in failed");
        assert!(reply.session_cookie().is_none(), "{cookies}");
    }
    assert!(site.idp.redeemed().is_empty());
    assert!(site.store.is_untouched().await);
}

#[tokio::test]
async fn a_browser_keeps_its_binding_across_attempts_and_tabs() {
    let site = Site::new();
    let mut browser = Browser::default();
    let first = browser.start(&site, "/login?next=/a").await;
    let second = browser.start(&site, "/login?next=/b").await;
    assert_eq!(first.binding.value, second.binding.value, "the binding is kept, not made anew");
    // Both tabs complete, the later one first.
    let b = browser.get(&site, &second.callback(&site.idp.good_code())).await;
    assert_eq!((b.status, b.location()), (StatusCode::SEE_OTHER, "/b"));
    let a = browser.get(&site, &first.callback(&site.idp.good_code())).await;
    assert_eq!((a.status, a.location()), (StatusCode::SEE_OTHER, "/a"));
}

/// A used-token store that remembers what it was asked to claim, and until when.
#[derive(Default)]
struct Recording {
    inner: MemoryUsedTokens,
    claims: std::sync::Mutex<Vec<(String, time::OffsetDateTime)>>,
}

#[async_trait::async_trait]
impl UsedTokens for Recording {
    async fn first_use(&self, key: &str, until: time::OffsetDateTime) -> Result<bool, signin_session::BoxError> {
        self.claims.lock().expect("lock").push((key.to_owned(), until));
        self.inner.first_use(key, until).await
    }

    async fn release(&self, key: &str) -> Result<(), signin_session::BoxError> {
        self.inner.release(key).await
    }
}

#[tokio::test]
async fn the_claim_lasts_as_long_as_an_attempt_can_and_names_no_secret() {
    let used = Arc::new(Recording::default());
    let site = Site::with(Options {
        pending_login: std::time::Duration::from_secs(300),
        used_tokens: Some(used.clone()),
        ..Options::default()
    });
    let started = site.start("/login", None).await;
    let signed_in_at = time::OffsetDateTime::now_utc();
    let back = site.get(&started.callback(&site.idp.good_code()), Some(&started.cookies())).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);

    let claims = used.claims.lock().expect("lock").clone();
    assert_eq!(claims.len(), 1, "{claims:?}");
    let (key, until) = &claims[0];
    // `login.pending_login` plus the provider's clock leeway (a minute), then it expires.
    let expected = signed_in_at + time::Duration::seconds(300 + 60);
    assert!((*until - expected).abs() < time::Duration::seconds(5), "{until} vs {expected}");
    for secret in [started.state(), started.param("nonce")] {
        assert!(!key.contains(secret), "the claim's key hides the attempt: {key}");
    }
}
