//! Bad input never breaks the service: generated requests against the real router (`oneshot`, no network) never
//! get a 5xx and never panic; wrong methods get 405, unknown paths 404, oversized bodies 413, each as our page.
//!
//! The generator mixes methods (odd tokens too), paths (known routes, `/static/…`, `..`, percent-escapes that are
//! not UTF-8, very long ones), query strings (huge, repeated keys, bad escapes, `code`/`state`/`error`/`iss`/`next`),
//! cookies (garbage, 8 KB and more, forged session ids of the right shape, garbage, oversized and misnamed sign-in
//! attempt cookies, a real attempt cookie and a real signed-in session, several at once) and bodies (form garbage,
//! larger than the limit, wrong content types).
//!
//! `SIGNIN_FUZZ_CASES` sets the number of requests (default 2,000); `scripts/fuzz` runs 100,000 in release mode
//! and prints the status histogram.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{
    ATTEMPT_PREFIX, GOOD_CODE, ISSUER, MAX_BODY, NAME, ORIGIN, SESSION_COOKIE, TestApp, UNVERIFIED_CODE, begin,
    body_text, csrf_token, request, sign_in,
};

/// Real cookies for the generator to send: a sign-in attempt under way (its cookie and state), and a signed-in
/// session (with its CSRF token).
struct Sessions {
    attempt: String,
    state: String,
    signed_in: String,
    csrf: String,
}

async fn real_sessions(app: &TestApp) -> Sessions {
    let attempt = begin(app, "").await;
    let signed_in = sign_in(app).await;
    let csrf = csrf_token(app, &signed_in).await;
    Sessions { attempt: attempt.cookie, state: attempt.state, signed_in, csrf }
}

// ---- the generator ----

/// One generated request, kept as plain data so a failure prints readably.
#[derive(Debug, Clone)]
struct Generated {
    method: String,
    path: String,
    query: Option<String>,
    cookie: Option<Vec<u8>>,
    content_type: Option<String>,
    origin: Option<String>,
    body: Vec<u8>,
    /// Send `Content-Length` (a client that knows its body's size) or not (a chunked body).
    content_length: bool,
}

const METHODS: &[&str] = &["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"];
const TCHARS: &str = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The routes with handlers that read the request (query, cookies, session, form).
const LIVE_ROUTES: &[&str] = &["/", "/login", "/login/callback", "/logout", "/api/me"];
/// Other routes, and near misses.
const ROUTES: &[&str] = &[
    "/",
    "/login",
    "/login/",
    "/login/callback",
    "/logout",
    "/health/live",
    "/health/ready",
    "/api/me",
    "/api/me/",
    "/api",
    "/API/ME",
    "/static/app.css",
    "/static/app.js",
    "/static/avatar.svg",
    "/static/",
    "/static/..%2F..%2FCargo.toml",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/app.css%00.js",
    "//login",
    "/LOGIN",
    "/%6c%6f%67%69%6e",
];
/// Path segment pieces: plain words, dot segments, escapes (some invalid, some not UTF-8), sub-delimiters.
const PIECES: &[&str] = &[
    "login",
    "callback",
    "logout",
    "static",
    "app.css",
    "health",
    "ready",
    "live",
    "..",
    ".",
    "%2e%2e",
    "%2F",
    "%2f",
    "%5C",
    "%FF%FE",
    "%C3%28",
    "%E2%82",
    "%F0%9F%92%A9",
    "%C3%A9",
    "%00",
    "%0A",
    "%0D%0A",
    "%",
    "%G1",
    "%%",
    "%2",
    "~",
    "a",
    "Z",
    "0",
    ";",
    ":",
    "@",
    "!",
    "$",
    "&",
    "'",
    "(",
    ")",
    "*",
    "+",
    ",",
    "=",
    "-",
    "_",
    "index.html",
    "%3Cscript%3E",
];
const QUERY_KEYS: &[&str] =
    &["next", "code", "state", "error", "error_description", "iss", "csrf", "login_hint", "", "next[]", "%6Eext"];
const NEXTS: &[&str] = &[
    "/",
    "/profile",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "/%2F%2Fevil.example",
    "javascript:alert(1)",
    "%2F..%2F..",
    "/login?next=/login",
];
const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/json",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "application/x-www-form-urlencoded; charset=latin1",
    ";;;",
];

fn from_pieces(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(PIECES), 1..=max).prop_map(|pieces| pieces.concat())
}

fn method() -> impl Strategy<Value = String> {
    let token = proptest::collection::vec(select(TCHARS.chars().collect::<Vec<_>>()), 1..12)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    prop_oneof![
        8 => Just("GET".to_owned()),
        3 => Just("POST".to_owned()),
        4 => select(METHODS).prop_map(str::to_owned),
        1 => token,
        1 => Just("get".to_owned()),
    ]
}

fn path() -> BoxedStrategy<String> {
    let random = proptest::collection::vec((from_pieces(4), select(&["/", "//"][..])), 0..8).prop_map(|segments| {
        let mut path = String::from("/");
        for (segment, slash) in segments {
            path.push_str(&segment);
            path.push_str(slash);
        }
        path
    });
    let long = (from_pieces(3), 2_000..20_000usize)
        .prop_map(|(segment, len)| format!("/{}", segment.repeat(len / segment.len().max(1) + 1)));
    let asset = from_pieces(3).prop_map(|name| format!("/static/{name}"));
    prop_oneof![
        10 => select(LIVE_ROUTES).prop_map(str::to_owned),
        4 => select(ROUTES).prop_map(str::to_owned),
        3 => random,
        2 => asset,
        1 => long,
    ]
    .boxed()
}

fn query(sessions: &Sessions) -> impl Strategy<Value = Option<String>> {
    let state = sessions.state.clone();
    let key = prop_oneof![3 => select(QUERY_KEYS).prop_map(str::to_owned), 1 => from_pieces(3)];
    let value = prop_oneof![
        3 => from_pieces(5),
        2 => select(NEXTS).prop_map(str::to_owned),
        1 => Just(state.clone()),
        1 => Just(GOOD_CODE.to_owned()),
        1 => Just(UNVERIFIED_CODE.to_owned()),
        1 => (from_pieces(2), 2_000..40_000usize).prop_map(|(v, len)| v.repeat(len / v.len().max(1) + 1)),
    ];
    let pair = prop_oneof![
        4 => (key, value).prop_map(|(k, v)| format!("{k}={v}")),
        1 => from_pieces(3),
    ];
    let separator = select(&["&", "&", "&", "&&", ";", "&=&"][..]);
    let pairs = proptest::collection::vec((pair, separator), 0..12)
        .prop_map(|pairs| pairs.into_iter().map(|(pair, sep)| format!("{pair}{sep}")).collect::<String>());
    let repeated = (select(QUERY_KEYS), from_pieces(3), 2..50usize)
        .prop_map(|(key, value, times)| vec![format!("{key}={value}"); times].join("&"));
    prop_oneof![
        2 => Just(None),
        5 => pairs.prop_map(Some),
        1 => repeated.prop_map(Some),
        1 => Just(Some(format!("code={GOOD_CODE}&state={state}&iss={ISSUER}"))),
        1 => Just(Some(format!("code={UNVERIFIED_CODE}&state={state}"))),
        1 => Just(Some(format!("error=access_denied&state={state}"))),
    ]
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text (0x80–0xFF, not UTF-8 on its own).
fn header_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![4 => 0x20u8..0x7f, 1 => 0x80u8..=0xff, 1 => Just(b'\t'), 1 => Just(b';'), 1 => Just(b'=')],
        len,
    )
}

fn session_id_shaped() -> impl Strategy<Value = String> {
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect();
    prop_oneof![
        4 => Just(22usize),
        1 => 0..64usize,
    ]
    .prop_flat_map(move |len| proptest::collection::vec(select(alphabet.clone()), len))
    .prop_map(|chars| chars.into_iter().collect())
}

/// The name of an attempt cookie: the prefix and something like a hash.
fn attempt_shaped_name() -> impl Strategy<Value = String> {
    session_id_shaped().prop_map(|id| format!("{ATTEMPT_PREFIX}{id}"))
}

fn cookie(sessions: &Sessions) -> impl Strategy<Value = Option<Vec<u8>>> {
    let real = select(vec![sessions.attempt.clone(), sessions.signed_in.clone()]);
    let real_for_many = real.clone();
    let (attempt_name, sealed) = sessions.attempt.split_once('=').expect("name=value");
    let (attempt_name, sealed) = (attempt_name.to_owned(), sealed.to_owned());
    let signed_in = sessions.signed_in.clone();
    let attempt = sessions.attempt.clone();
    let attempts = prop_oneof![
        1 => Just(Some(format!("{ATTEMPT_PREFIX}abc=garbage").into_bytes())),
        2 => (attempt_shaped_name(), header_bytes(0..200)).prop_map(|(name, value)| {
            let mut cookie = format!("{name}=").into_bytes();
            cookie.extend(value);
            Some(cookie)
        }),
        // The real attempt's sealed value under another name: it does not open there.
        1 => attempt_shaped_name().prop_map(move |name| Some(format!("{name}={sealed}").into_bytes())),
        // The real attempt's name with a value tampered with: cut short, one character changed, or grown.
        1 => (0..sessions.attempt.len(), select(TCHARS.chars().collect::<Vec<_>>())).prop_map({
            let attempt = attempt.clone();
            move |(at, c)| {
                let mut cookie = attempt.clone().into_bytes();
                let at = at.max(attempt_name.len() + 1);
                match at % 3 {
                    0 => cookie.truncate(at),
                    1 => {
                        let last = cookie.len() - 1;
                        cookie[at.min(last)] = c as u8;
                    }
                    _ => cookie.extend(std::iter::repeat_n(c as u8, at)),
                }
                Some(cookie)
            }
        }),
        // Larger than any attempt cookie we write.
        1 => (attempt_shaped_name(), 3_000..9_000usize).prop_map(|(name, len)| {
            Some(format!("{name}={}", "A".repeat(len)).into_bytes())
        }),
        // Many attempts at once, garbage beside the real one and the session.
        1 => proptest::collection::vec(attempt_shaped_name(), 1..12).prop_map(move |names| {
            let mut cookie = names.iter().map(|name| format!("{name}=x")).collect::<Vec<_>>();
            cookie.push(attempt.clone());
            cookie.push(signed_in.clone());
            Some(cookie.join("; ").into_bytes())
        }),
    ];
    prop_oneof![
        3 => Just(None),
        2 => real.prop_map(|c| Some(c.into_bytes())),
        2 => session_id_shaped().prop_map(|id| Some(format!("{SESSION_COOKIE}={id}").into_bytes())),
        3 => attempts,
        1 => header_bytes(1..300).prop_map(Some),
        // 8 KB and more: a short random run repeated (a vector of 10,000 generated bytes would be slow to make).
        1 => (header_bytes(1..64), 8_000..12_000usize).prop_map(|(junk, len)| {
            let mut cookie = format!("{SESSION_COOKIE}=").into_bytes();
            cookie.extend(junk.iter().cycle().take(len));
            Some(cookie)
        }),
        1 => (session_id_shaped(), session_id_shaped(), real_for_many).prop_map(|(a, b, real)| {
            Some(format!("other=1; {SESSION_COOKIE}={a}; {real}; {SESSION_COOKIE}={b}; =; ;;").into_bytes())
        }),
    ]
}

fn body(sessions: &Sessions) -> impl Strategy<Value = Vec<u8>> {
    let csrf = sessions.csrf.clone();
    prop_oneof![
        4 => Just(Vec::new()),
        2 => from_pieces(12).prop_map(String::into_bytes),
        2 => Just(format!("csrf={csrf}").into_bytes()),
        1 => from_pieces(3).prop_map(|v| format!("csrf={v}&csrf={v}").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => (MAX_BODY + 1..MAX_BODY * 3).prop_map(|len| {
            let mut body = b"csrf=".to_vec();
            body.resize(len, b'a');
            body
        }),
    ]
}

fn generated(sessions: &Sessions) -> impl Strategy<Value = Generated> {
    let origin = prop_oneof![
        3 => Just(None),
        1 => Just(Some(ORIGIN.to_owned())),
        1 => Just(Some("https://evil.example".to_owned())),
        1 => Just(Some("null".to_owned())),
    ];
    let content_type = prop_oneof![2 => Just(None), 3 => select(CONTENT_TYPES).prop_map(|c| Some(c.to_owned()))];
    (method(), path(), query(sessions), cookie(sessions), content_type, origin, body(sessions), any::<bool>()).prop_map(
        |(method, path, query, cookie, content_type, origin, body, content_length)| Generated {
            method,
            path,
            query,
            cookie,
            content_type,
            origin,
            body,
            content_length,
        },
    )
}

impl Generated {
    /// The request, or `None` when `http` itself refuses to build it (then no server would ever see it).
    fn request(&self) -> Option<Request<Body>> {
        let mut uri = match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        };
        // `http` refuses URIs of 64 KiB and more (so would any server, long before): stay under.
        if uri.len() > 60_000 {
            let mut end = 60_000;
            while !uri.is_char_boundary(end) {
                end -= 1;
            }
            uri.truncate(end);
        }
        let mut request = Request::builder().method(Method::from_bytes(self.method.as_bytes()).ok()?).uri(uri);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, HeaderValue::from_bytes(cookie).ok()?);
        }
        if let Some(content_type) = &self.content_type {
            request = request.header(header::CONTENT_TYPE, HeaderValue::from_str(content_type).ok()?);
        }
        if let Some(origin) = &self.origin {
            request = request.header(header::ORIGIN, origin.as_str());
        }
        if self.content_length && !self.body.is_empty() {
            request = request.header(header::CONTENT_LENGTH, self.body.len());
        }
        request.body(Body::from(self.body.clone())).ok()
    }
}

fn cases() -> u32 {
    std::env::var("SIGNIN_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000)
}

// ---- the property ----

#[test]
fn router_survives_generated_requests() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = TestApp::new();
    let sessions = runtime.block_on(real_sessions(&app));
    let cases = cases();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let statuses = std::cell::RefCell::new(BTreeMap::<u16, u64>::new());
    let unbuildable = std::cell::Cell::new(0u64);
    let started = Instant::now();

    let result = runner.run(&generated(&sessions), |generated| {
        let Some(request) = generated.request() else {
            unbuildable.set(unbuildable.get() + 1);
            return Ok(());
        };
        let (status, body) = runtime.block_on(async {
            let response = app.send(request).await;
            let status = response.status();
            (status, axum::body::to_bytes(response.into_body(), 4 << 20).await)
        });
        *statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
        if status.is_server_error() {
            return Err(TestCaseError::fail(format!("{status} for {generated:?}")));
        }
        if body.is_err() {
            return Err(TestCaseError::fail(format!("unreadable body ({status}) for {generated:?}")));
        }
        Ok(())
    });

    let elapsed = started.elapsed();
    let statuses = statuses.into_inner();
    let sent: u64 = statuses.values().sum();
    eprintln!(
        "fuzz: {sent} generated requests answered in {:.2} s ({:.0} requests/s), {} refused by `http` before \
         sending; statuses: {statuses:?}",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
        unbuildable.get(),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(sent >= u64::from(cases) * 9 / 10, "most generated requests must be sendable: {sent} of {cases}");
}

// ---- explicit answers to wrong methods, unknown paths, oversized bodies ----

async fn assert_error_page(response: Response<Body>, status: StatusCode, heading: &str) -> Response<()> {
    assert_eq!(response.status(), status);
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let (parts, body) = response.into_parts();
    let html = body_text(Response::new(body)).await;
    assert!(html.contains(&format!("Error {}", status.as_u16())), "{html}");
    assert!(html.contains(heading), "{html}");
    Response::from_parts(parts, ())
}

#[tokio::test]
async fn wrong_methods_get_405_with_our_page() {
    let app = TestApp::new();
    for (method, path, allowed) in [
        (Method::POST, "/", "GET"),
        (Method::DELETE, "/login", "GET"),
        (Method::PUT, "/login/callback", "GET"),
        (Method::GET, "/logout", "POST"),
        (Method::POST, "/health/live", "GET"),
        (Method::PATCH, "/static/app.css", "GET"),
    ] {
        let response = app.send(request(method.clone(), path, None).body(Body::empty()).expect("request")).await;
        let parts = assert_error_page(response, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").await;
        let allow = parts.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }
}

#[tokio::test]
async fn unknown_paths_get_404_with_our_page() {
    let app = TestApp::new();
    for path in ["/nope", "/static/nope.css", "/login/callback/extra", "/%FF%FE", "/static/..%2F..%2FCargo.toml"] {
        let response = app.get(path, None).await;
        assert_error_page(response, StatusCode::NOT_FOUND, "Page not found").await;
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_with_our_page() {
    let app = TestApp::new();
    let sessions = real_sessions(&app).await;
    let huge = format!("csrf={}&pad={}", sessions.csrf, "a".repeat(MAX_BODY * 2));
    for (cookie, content_length) in
        [(None, true), (Some(&sessions.signed_in), true), (Some(&sessions.signed_in), false)]
    {
        let mut request = request(Method::POST, "/logout", cookie.map(String::as_str))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if content_length {
            request = request.header(header::CONTENT_LENGTH, huge.len());
        }
        let response = app.send(request.body(Body::from(huge.clone())).expect("request")).await;
        assert_error_page(response, StatusCode::PAYLOAD_TOO_LARGE, "Request too large").await;
    }
    // The session survived: an oversized request ends nothing.
    let profile = body_text(app.get("/", Some(&sessions.signed_in)).await).await;
    assert!(profile.contains(NAME), "still signed in");
}
