//! Refresh tokens at the hostile provider: which sign-ins get one, what a refresh answers, rotation, revocation,
//! the refresh faults and the `/token` faults on refreshes.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use signin_hostile_idp::{CLIENT_ID, CLIENT_SECRET, Fault, HostileIdp, SUBJECT, Scenario};

const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "a-pkce-verifier-of-enough-length-for-rfc-7636-0123456789";

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`), read to the end.
fn exchange(method: &str, url: &str, headers: &[(String, String)], body: &str) -> std::io::Result<Reply> {
    let url = url::Url::parse(url).map_err(std::io::Error::other)?;
    let host = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(80));
    let mut stream = TcpStream::connect(&host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|code| code.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Reply { status, headers, body: body.to_owned() })
}

async fn request(method: &str, url: String, headers: Vec<(String, String)>, body: String) -> Reply {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || exchange(&method, &url, &headers, &body))
        .await
        .expect("request task")
        .expect("request")
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

fn basic(id: &str, secret: &str) -> (String, String) {
    ("Authorization".to_owned(), format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))))
}

/// A `/token` request with this form, the client authenticated with `client_secret_basic`.
async fn token(idp: &HostileIdp, pairs: &[(&str, &str)]) -> Reply {
    token_as(idp, CLIENT_SECRET, pairs).await
}

async fn token_as(idp: &HostileIdp, secret: &str, pairs: &[(&str, &str)]) -> Reply {
    let headers =
        vec![basic(CLIENT_ID, secret), ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned())];
    request("POST", format!("{}/token", idp.issuer()), headers, form(pairs)).await
}

async fn refresh(idp: &HostileIdp, refresh_token: &str) -> Reply {
    token(idp, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// `/authorize` with `scope` and the `extra` parameters, then the code at `/token`: the token response.
async fn sign_in(idp: &HostileIdp, scope: &str, extra: &[(&str, &str)]) -> Value {
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes()));
    let mut pairs = vec![
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", scope),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "st"),
        ("nonce", "n0nce"),
    ];
    pairs.extend_from_slice(extra);
    let authorize = request("GET", format!("{}/authorize?{}", idp.issuer(), form(&pairs)), vec![], String::new()).await;
    assert_eq!(authorize.status, 303, "authorize: {}", authorize.body);
    let location = url::Url::parse(authorize.header("location").expect("Location")).expect("callback URL");
    let code = location.query_pairs().find(|(name, _)| name == "code").expect("code").1.into_owned();
    let reply = token(
        idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "code redemption: {}", reply.body);
    reply.json()
}

fn claims(id_token: &Value) -> Value {
    let payload = id_token.as_str().expect("id_token").split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("claims JSON")
}

fn at_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

fn str_of<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_else(|| panic!("no string {name} in {value}"))
}

async fn start(fault: Fault) -> HostileIdp {
    HostileIdp::start(Scenario::fault(fault)).await.expect("hostile provider")
}

#[tokio::test]
async fn offline_access_by_access_type_gives_a_refresh_token_that_refreshes() {
    let idp = start(Fault::None).await;
    let scope = "openid email https://www.googleapis.com/auth/drive.readonly";
    let first = sign_in(&idp, scope, &[("access_type", "offline"), ("login_hint", "grace")]).await;
    assert_eq!(str_of(&first, "scope"), scope, "the scope as asked");
    let refresh_token = str_of(&first, "refresh_token").to_owned();
    assert_eq!(idp.refresh_tokens(), [refresh_token.as_str()]);
    assert_eq!(idp.refresh_calls(), 0);

    let reply = refresh(&idp, &refresh_token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refreshed = reply.json();
    let access_token = str_of(&refreshed, "access_token");
    assert_ne!(access_token, str_of(&first, "access_token"));
    assert_eq!(str_of(&refreshed, "token_type"), "Bearer");
    assert!(refreshed["expires_in"].as_i64().is_some_and(|secs| secs > 0));
    assert_eq!(str_of(&refreshed, "scope"), scope);
    assert!(refreshed.get("refresh_token").is_none(), "no rotation by default");
    let id = claims(&refreshed["id_token"]);
    assert_eq!(id["sub"], "grace");
    assert_eq!(id["iss"], idp.issuer().as_str());
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["azp"], CLIENT_ID);
    assert_eq!(id["at_hash"], at_hash(access_token).as_str());
    assert!(id["iat"].as_i64().is_some() && id["exp"].as_i64() > id["iat"].as_i64());
    assert!(id.get("nonce").is_none(), "a refresh's ID token has no nonce: {id}");
    assert_eq!(idp.access_tokens().last().map(String::as_str), Some(access_token));

    let userinfo = request(
        "GET",
        format!("{}/userinfo", idp.issuer()),
        vec![("Authorization".to_owned(), format!("Bearer {access_token}"))],
        String::new(),
    )
    .await;
    assert_eq!(userinfo.status, 200);
    assert_eq!(userinfo.json()["sub"], "grace");

    let again = refresh(&idp, &refresh_token).await;
    assert_eq!(again.status, 200, "the same refresh token works again: {}", again.body);
    assert_eq!(idp.refresh_calls(), 2);
}

#[tokio::test]
async fn only_offline_sign_ins_get_refresh_tokens() {
    let idp = start(Fault::None).await;
    let offline = sign_in(&idp, "openid offline_access profile", &[]).await;
    assert!(offline["refresh_token"].is_string(), "offline_access in scope: {offline}");
    assert_eq!(str_of(&offline, "scope"), "openid offline_access profile");
    let online = sign_in(&idp, "openid email profile", &[]).await;
    assert!(online.get("refresh_token").is_none(), "no offline access asked: {online}");
    let online = sign_in(&idp, "openid email", &[("access_type", "online")]).await;
    assert!(online.get("refresh_token").is_none(), "access_type=online: {online}");
    assert_eq!(idp.refresh_tokens().len(), 1);
    let refreshed = refresh(&idp, str_of(&offline, "refresh_token")).await.json();
    assert_eq!(claims(&refreshed["id_token"])["sub"], SUBJECT);
}

#[tokio::test]
async fn unknown_refresh_tokens_and_unauthenticated_clients_are_refused() {
    let idp = start(Fault::None).await;
    let reply = refresh(&idp, "never-issued").await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (400, "invalid_grant".into()));
    let reply = token(&idp, &[("grant_type", "refresh_token")]).await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (400, "invalid_grant".into()));

    let first = sign_in(&idp, "openid", &[("access_type", "offline")]).await;
    let reply =
        token_as(&idp, "wrong", &[("grant_type", "refresh_token"), ("refresh_token", str_of(&first, "refresh_token"))])
            .await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (401, "invalid_client".into()));
    assert_eq!(idp.refresh_calls(), 3);
}

#[tokio::test]
async fn revoked_refresh_tokens_are_dead() {
    let idp = start(Fault::None).await;
    let first = sign_in(&idp, "openid email", &[("access_type", "offline")]).await;
    let refresh_token = str_of(&first, "refresh_token");
    let headers = vec![
        basic(CLIENT_ID, CLIENT_SECRET),
        ("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
    ];
    let revoke = request("POST", format!("{}/revoke", idp.issuer()), headers, form(&[("token", refresh_token)])).await;
    assert_eq!(revoke.status, 200);
    assert_eq!(idp.revoked(), [refresh_token.to_owned()]);
    let reply = refresh(&idp, refresh_token).await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn rotating_refresh_tokens_work_once() {
    let idp = start(Fault::RefreshRotates).await;
    let first = sign_in(&idp, "openid email", &[("access_type", "offline")]).await;
    let original = str_of(&first, "refresh_token").to_owned();

    let reply = refresh(&idp, &original).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let second = str_of(&reply.json(), "refresh_token").to_owned();
    assert_ne!(second, original);
    assert_eq!(idp.refresh_tokens(), [original.clone(), second.clone()]);

    let reuse = refresh(&idp, &original).await;
    assert_eq!((reuse.status, reuse.json()["error"].clone()), (400, "invalid_grant".into()));
    let reply = refresh(&idp, &second).await;
    assert_eq!(reply.status, 200, "the rotated token works: {}", reply.body);
    let third = str_of(&reply.json(), "refresh_token").to_owned();
    assert_eq!(refresh(&idp, &second).await.status, 400);
    assert_eq!(refresh(&idp, &third).await.status, 200);
    assert_eq!(idp.refresh_calls(), 5);
}

#[tokio::test]
async fn refresh_faults_change_only_refreshes() {
    let idp = start(Fault::RefreshSubjectChanged).await;
    let first = sign_in(&idp, "openid email", &[("access_type", "offline"), ("login_hint", "ivy")]).await;
    assert_eq!(claims(&first["id_token"])["sub"], "ivy", "the code's ID token is correct");
    assert_eq!(claims(&first["id_token"])["iss"], idp.issuer().as_str());
    let refresh_token = str_of(&first, "refresh_token").to_owned();
    let id = claims(&refresh(&idp, &refresh_token).await.json()["id_token"]);
    assert_ne!(id["sub"], "ivy");
    assert_eq!(id["iss"], idp.issuer().as_str());

    idp.set_scenario(Scenario::fault(Fault::RefreshIssuerChanged));
    let id = claims(&refresh(&idp, &refresh_token).await.json()["id_token"]);
    assert_eq!(id["sub"], "ivy");
    assert_ne!(id["iss"], idp.issuer().as_str());

    idp.set_scenario(Scenario::fault(Fault::RefreshWithoutAccessToken));
    let reply = refresh(&idp, &refresh_token).await;
    assert_eq!(reply.status, 200);
    assert!(reply.json().get("access_token").is_none(), "{}", reply.body);

    idp.set_scenario(Scenario::fault(Fault::RefreshInvalidGrant));
    let reply = refresh(&idp, &refresh_token).await;
    assert_eq!((reply.status, reply.json()["error"].clone()), (400, "invalid_grant".into()));

    idp.set_scenario(Scenario::default());
    assert_eq!(refresh(&idp, &refresh_token).await.status, 200, "the refresh token survived the faults");
    assert_eq!(idp.refresh_calls(), 5);
}

#[tokio::test]
async fn token_endpoint_faults_answer_refreshes_too() {
    let idp = start(Fault::None).await;
    let first = sign_in(&idp, "openid", &[("access_type", "offline")]).await;
    let refresh_token = str_of(&first, "refresh_token").to_owned();

    idp.set_scenario(Scenario::fault(Fault::TokenServerError));
    assert_eq!(refresh(&idp, &refresh_token).await.status, 503);

    idp.set_scenario(Scenario::fault(Fault::TokenNotJson));
    let reply = refresh(&idp, &refresh_token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/html"));

    idp.set_scenario(Scenario::fault(Fault::TokenOversized(100_000)));
    let reply = refresh(&idp, &refresh_token).await;
    assert_eq!(reply.body.len(), 100_000);

    idp.set_scenario(Scenario::fault(Fault::TokenHangs(Duration::from_millis(300))));
    let started = std::time::Instant::now();
    assert_eq!(refresh(&idp, &refresh_token).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(idp.refresh_calls(), 4);
}
