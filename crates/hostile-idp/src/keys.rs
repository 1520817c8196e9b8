//! Fixed RSA test keys (committed PEM files: generating 2048-bit keys in a debug build is slow) and JWT signing.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};

/// One RSA signing key with its key id.
pub(crate) struct TestKey {
    pub(crate) kid: &'static str,
    pair: RsaKeyPair,
}

impl TestKey {
    fn load(kid: &'static str, pem: &str) -> anyhow::Result<Self> {
        let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
        let der = STANDARD.decode(body)?;
        let pair = RsaKeyPair::from_pkcs8(&der).map_err(|err| anyhow::anyhow!("bad test key {kid}: {err}"))?;
        Ok(Self { kid, pair })
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(self.pair.public());
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e),
        })
    }

    /// The public key as PEM text (PKCS#1): what a confused verifier would use as an HMAC secret.
    pub(crate) fn public_pem(&self) -> String {
        let b64 = STANDARD.encode(self.pair.public().as_ref());
        let mut pem = String::from("-----BEGIN RSA PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END RSA PUBLIC KEY-----\n");
        pem
    }

    /// RS256 signature over `input`.
    pub(crate) fn sign(&self, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut signature)
            .map_err(|_| anyhow::anyhow!("RSA signing failed"))?;
        Ok(signature)
    }
}

/// The provider's keys: the one it signs with, the one it rotates to, and one only an attacker has.
pub(crate) struct Keys {
    pub(crate) primary: TestKey,
    pub(crate) rotated: TestKey,
    pub(crate) attacker: TestKey,
}

impl Keys {
    pub(crate) fn load() -> anyhow::Result<Self> {
        Ok(Self {
            primary: TestKey::load("hostile-key-1", include_str!("keys/primary.pem"))?,
            rotated: TestKey::load("hostile-key-2", include_str!("keys/rotated.pem"))?,
            attacker: TestKey::load("attacker-key", include_str!("keys/attacker.pem"))?,
        })
    }
}

/// How to sign one token.
pub(crate) enum Signing<'a> {
    /// RS256 with this key; the header carries `kid` when given.
    Rs256 { key: &'a TestKey, kid: Option<&'a str> },
    /// `alg: none`, empty signature.
    None { kid: &'a str },
    /// HS256 keyed by these bytes.
    Hs256 { secret: &'a [u8], kid: &'a str },
}

/// Builds a compact JWS. `extra_header` fields (e.g. `jku`) are merged into the header.
pub(crate) fn encode_jwt(
    signing: &Signing<'_>,
    extra_header: &[(&str, Value)],
    claims: &Value,
) -> anyhow::Result<String> {
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("JWT"));
    match signing {
        Signing::Rs256 { kid, .. } => {
            header.insert("alg".into(), json!("RS256"));
            if let Some(kid) = kid {
                header.insert("kid".into(), json!(kid));
            }
        }
        Signing::None { kid } => {
            header.insert("alg".into(), json!("none"));
            header.insert("kid".into(), json!(kid));
        }
        Signing::Hs256 { kid, .. } => {
            header.insert("alg".into(), json!("HS256"));
            header.insert("kid".into(), json!(kid));
        }
    }
    for (name, value) in extra_header {
        header.insert((*name).to_owned(), value.clone());
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
    );
    let signature = match signing {
        Signing::Rs256 { key, .. } => key.sign(input.as_bytes())?,
        Signing::None { .. } => Vec::new(),
        Signing::Hs256 { secret, .. } => {
            ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input.as_bytes()).as_ref().to_vec()
        }
    };
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// `at_hash` for an RS256 token: base64url of the left half of SHA-256(access token).
pub(crate) fn at_hash(access_token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// PKCE S256: base64url(SHA-256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// A random url-safe string.
pub(crate) fn random_token() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 24];
    // SystemRandom only fails when the OS has no randomness at all; a fixed fallback is fine for a test server.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = [7; 24];
    }
    URL_SAFE_NO_PAD.encode(bytes)
}
