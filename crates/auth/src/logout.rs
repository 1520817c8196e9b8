//! OpenID Connect Back-Channel Logout 1.0: the logout token a provider POSTs when a person signs out there, and
//! its checks (§2.6). The signature is checked by [`crate::jws`] with the provider's keys and advertised
//! algorithms; the claims here.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::jws;

/// The `events` member that makes a JWT a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token may be (its `iat`), besides the clock leeway. A provider sends it the moment the person
/// signs out; an old one is a replay.
pub const LOGOUT_TOKEN_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// A verified logout token: whose sessions at which provider session to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The issuer that sent it.
    pub issuer: String,
    /// The person (`sub`), when named.
    pub subject: Option<String>,
    /// The provider's session (`sid`), when named.
    pub session_id: Option<String>,
    /// The token's id (`jti`): a token is acted on once.
    pub jti: String,
    /// When it was issued (`iat`, Unix seconds).
    pub issued_at: i64,
    /// Until when a token with this `iat` is accepted (Unix seconds): a record of its `jti` must last that long.
    pub accepted_until: i64,
}

fn text<'a>(payload: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, &'static str> {
    match payload.get(name) {
        None => Ok(None),
        Some(Value::String(value)) if !value.is_empty() && value.len() <= 255 => Ok(Some(value)),
        Some(_) => Err("a claim is not a short string"),
    }
}

/// The checks of §2.6 after the signature: `typ`, `iss`, `aud` (the audience rule of every token,
/// [`jws::audience_accepted`]), `iat`, `exp` (required since errata set 1 of the specification, §2.4), `jti`,
/// `events`, `sub` and/or `sid`, and no `nonce` (an ID token is not a logout token).
pub(crate) fn check(
    token: &jws::Verified,
    issuer: &str,
    client_id: &str,
    leeway: Duration,
    now: i64,
) -> Result<LogoutToken, &'static str> {
    let (header, payload) = (&token.header, &token.payload);
    if !jws::typed_as(header, "logout+jwt") {
        return Err("the token's typ is not logout+jwt");
    }
    if payload.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("iss is not the provider's issuer");
    }
    if !jws::audience_accepted(payload.get("aud"), &[client_id]) {
        return Err("aud does not name this client, or names another audience too");
    }
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(60);
    let max_age = i64::try_from(LOGOUT_TOKEN_MAX_AGE.as_secs()).unwrap_or(300);
    let iat = payload.get("iat").and_then(Value::as_i64).ok_or("iat is missing")?;
    if iat > now + leeway {
        return Err("iat is in the future");
    }
    if iat < now - max_age - leeway {
        return Err("iat is too old");
    }
    // A NumericDate may have a fraction (RFC 7519 §2); whole seconds are enough here.
    let exp = payload.get("exp").ok_or("exp is missing")?.as_f64().ok_or("exp is not a number")?;
    let exp = exp as i64; // saturating: a number beyond i64 is far in the future

    if exp < now - leeway {
        return Err("the token has expired");
    }
    let jti = text(payload, "jti")?.ok_or("jti is missing")?.to_owned();
    let event =
        payload.get("events").and_then(Value::as_object).and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err("events does not hold the back-channel logout event");
    }
    if payload.contains_key("nonce") {
        return Err("a logout token carries no nonce");
    }
    let subject = text(payload, "sub")?.map(str::to_owned);
    let session_id = text(payload, "sid")?.map(str::to_owned);
    if subject.is_none() && session_id.is_none() {
        return Err("the token names neither sub nor sid");
    }
    let accepted_until = iat + max_age + leeway;
    Ok(LogoutToken { issuer: issuer.to_owned(), subject, session_id, jti, issued_at: iat, accepted_until })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://idp.example";
    const NOW: i64 = 1_800_000_000;

    fn token(header: Value, payload: Value) -> jws::Verified {
        let (Value::Object(header), Value::Object(payload)) = (header, payload) else { panic!("objects") };
        jws::Verified { header, payload }
    }

    fn good() -> Value {
        json!({
            "iss": ISS, "aud": "client", "iat": NOW, "exp": NOW + 120, "jti": "j-1", "sub": "ada", "sid": "s-1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        })
    }

    fn checked(header: Value, payload: Value) -> Result<LogoutToken, &'static str> {
        check(&token(header, payload), ISS, "client", Duration::from_secs(60), NOW)
    }

    fn with(name: &str, value: Value) -> Value {
        let mut payload = good();
        if value.is_null() {
            payload.as_object_mut().expect("object").remove(name);
        } else {
            payload[name] = value;
        }
        payload
    }

    #[test]
    fn a_good_token_names_the_subject_and_the_session() {
        let ok = checked(json!({ "typ": "logout+jwt" }), good()).expect("good");
        assert!(checked(json!({ "typ": "application/logout+jwt" }), good()).is_ok(), "typ with its prefix");
        assert_eq!(ok.accepted_until, NOW + 300 + 60);
        assert_eq!(ok.subject.as_deref(), Some("ada"));
        assert_eq!(ok.session_id.as_deref(), Some("s-1"));
        assert_eq!(ok.jti, "j-1");
        assert!(checked(json!({}), with("aud", json!(["client"]))).is_ok(), "an audience list of ours");
        assert!(checked(json!({}), with("exp", json!(NOW as f64 + 60.25))).is_ok(), "exp with a fraction");
        assert!(checked(json!({}), with("sid", Value::Null)).is_ok(), "sub alone");
        assert!(checked(json!({}), with("sub", Value::Null)).is_ok(), "sid alone");
        assert!(checked(json!({}), with("iat", json!(NOW - 300))).is_ok(), "five minutes old");
    }

    #[test]
    fn every_rule_of_the_spec_refuses_its_token() {
        let cases = [
            (json!({ "typ": "JWT" }), good(), "typ"),
            (json!({}), with("iss", json!("https://evil.example")), "iss"),
            (json!({}), with("aud", json!("someone-else")), "aud"),
            (json!({}), with("aud", Value::Null), "aud"),
            (json!({}), with("aud", json!(["client", "untrusted"])), "another audience"),
            (json!({}), with("exp", Value::Null), "exp is missing"),
            (json!({}), with("exp", json!("soon")), "exp is not a number"),
            (json!({}), with("exp", json!((NOW - 3600) as f64 + 0.5)), "expired"),
            (json!({}), with("iat", Value::Null), "iat is missing"),
            (json!({}), with("iat", json!(NOW + 3600)), "future"),
            (json!({}), with("iat", json!(NOW - 3600)), "too old"),
            (json!({}), with("exp", json!(NOW - 3600)), "expired"),
            (json!({}), with("jti", Value::Null), "jti"),
            (json!({}), with("events", Value::Null), "events"),
            (json!({}), with("events", json!({ "http://schemas.openid.net/event/other": {} })), "events"),
            (json!({}), with("events", json!({ BACKCHANNEL_LOGOUT_EVENT: "yes" })), "events"),
            (json!({}), with("nonce", json!("n")), "nonce"),
            (json!({}), with("sub", json!(42)), "short string"),
        ];
        for (header, payload, why) in cases {
            let refused = checked(header, payload.clone()).expect_err(why);
            assert!(refused.contains(why), "{why}: {refused} for {payload}");
        }
        let mut neither = with("sub", Value::Null);
        neither.as_object_mut().expect("object").remove("sid");
        assert!(checked(json!({}), neither).expect_err("neither").contains("neither sub nor sid"));
    }
}
