//! The keys that seal grants at rest: AES-256-GCM (RustCrypto's `aes-gcm`) under keys derived with HKDF-SHA256
//! from `login.tokens.keys`, or from `login.cookie_keys` for this use alone when none are given.
//!
//! A sealed record is `1 ‖ key id (4 bytes) ‖ nonce (12 random bytes) ‖ ciphertext and tag`, and authenticates
//! the grant's id as associated data: a record moved to another row does not open. The key id (a hash of the key,
//! telling nothing about it) picks the key to try; the first key seals, every key opens.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::settings::decode_keys;

/// The format's version byte.
const VERSION: u8 = 1;
/// What HKDF derives a sealing key for.
const INFO: &[u8] = b"signin grant sealing key v1";
/// What a grant's associated data starts with.
const PURPOSE: &[u8] = b"signin.grant\0";

/// The keys, the first sealing.
#[derive(Clone)]
pub(crate) struct TokenKeys(Vec<([u8; 4], Aes256Gcm)>);

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKeys([{} redacted])", self.0.len())
    }
}

impl TokenKeys {
    /// The keys of `setting` (base64 of at least 32 random bytes each).
    pub(crate) fn parse(raw: &[SecretString], setting: &str) -> Result<Self, Error> {
        Ok(Self::derive(&decode_keys(raw, setting)?))
    }

    /// The keys of `login.tokens.keys`, or when that is empty derived from `login.cookie_keys`.
    pub(crate) fn from_settings(login: &crate::LoginSettings) -> Result<Self, Error> {
        if login.tokens.keys.is_empty() {
            Self::parse(&login.cookie_keys, "login.cookie_keys")
        } else {
            Self::parse(&login.tokens.keys, "login.tokens.keys")
        }
    }

    fn derive(secrets: &[Vec<u8>]) -> Self {
        Self(
            secrets
                .iter()
                .map(|secret| {
                    let mut key = [0u8; 32];
                    // 32 bytes are far below HKDF-SHA256's limit of 255 × 32.
                    hkdf::Hkdf::<Sha256>::new(None, secret).expand(INFO, &mut key).unwrap_or_default();
                    let digest = Sha256::digest([b"signin grant key id".as_slice(), &key].concat());
                    let id = [digest[0], digest[1], digest[2], digest[3]];
                    (id, Aes256Gcm::new(&key.into()))
                })
                .collect(),
        )
    }

    /// Whether a key to seal with is configured.
    pub(crate) fn can_seal(&self) -> bool {
        !self.0.is_empty()
    }

    fn aad(grant: &str) -> Vec<u8> {
        [PURPOSE, grant.as_bytes()].concat()
    }

    /// Seals `plain` for the grant with id `grant`, with the first key; `None` without a key.
    pub(crate) fn seal(&self, grant: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let (id, cipher) = self.0.first()?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: &Self::aad(grant) }).ok()?;
        let mut out = Vec::with_capacity(1 + 4 + 12 + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// Opens what [`TokenKeys::seal`] sealed for the grant `grant`, with whichever key sealed it.
    pub(crate) fn open(&self, grant: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < 4 + 12 + 16 {
            return None;
        }
        let (id, rest) = rest.split_at(4);
        let (nonce, body) = rest.split_at(12);
        let aad = Self::aad(grant);
        self.0
            .iter()
            .filter(|(key_id, _)| key_id.as_slice() == id)
            .find_map(|(_, cipher)| cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad }).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(raw: &[&String]) -> TokenKeys {
        let raw: Vec<SecretString> = raw.iter().map(|key| SecretString::from((*key).clone())).collect();
        TokenKeys::parse(&raw, "login.tokens.keys").expect("keys")
    }

    #[test]
    fn a_sealed_grant_opens_with_any_key_of_the_site_for_its_own_row_only() {
        let (old, new) = (crate::generate_cookie_key(), crate::generate_cookie_key());
        let before = keys(&[&old]);
        let sealed = before.seal("grant-1", b"the-refresh-token").expect("sealed");
        assert!(!sealed.windows(17).any(|w| w == b"the-refresh-token"), "ciphertext, not the token");
        assert_ne!(sealed, before.seal("grant-1", b"the-refresh-token").expect("sealed"), "a fresh nonce each time");

        let rotated = keys(&[&new, &old]);
        assert_eq!(rotated.open("grant-1", &sealed).as_deref(), Some(b"the-refresh-token".as_slice()), "rotation");
        let resealed = rotated.seal("grant-1", b"x").expect("sealed");
        assert!(before.open("grant-1", &resealed).is_none(), "the new key seals");
        assert!(rotated.open("grant-2", &sealed).is_none(), "a record moved to another row does not open");
        assert!(keys(&[&new]).open("grant-1", &sealed).is_none(), "without the key, nothing");
        for at in [0, 3, 10, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[at] ^= 1;
            assert!(rotated.open("grant-1", &tampered).is_none(), "byte {at} changed");
        }
        assert!(rotated.open("grant-1", &sealed[..20]).is_none(), "cut short");
        assert!(!format!("{rotated:?}").contains(&new));
    }

    #[test]
    fn keys_derived_from_the_cookie_keys_are_not_the_cookie_keys() {
        let key = crate::generate_cookie_key();
        let login = crate::LoginSettings { cookie_keys: vec![key.clone().into()], ..Default::default() };
        let derived = TokenKeys::from_settings(&login).expect("derived");
        assert!(derived.can_seal());
        let sealed = derived.seal("g", b"token").expect("sealed");
        let explicit = crate::LoginSettings {
            tokens: crate::settings::TokenSettings {
                keys: vec![crate::generate_cookie_key().into()],
                ..Default::default()
            },
            ..login
        };
        assert!(TokenKeys::from_settings(&explicit).expect("explicit").open("g", &sealed).is_none(), "their own keys");
        // Moving to keys of their own keeps the grants: the cookie key listed among them opens what it sealed.
        let moved = crate::LoginSettings {
            tokens: crate::settings::TokenSettings {
                keys: vec![crate::generate_cookie_key().into(), key.clone().into()],
                ..Default::default()
            },
            ..crate::LoginSettings::default()
        };
        assert_eq!(TokenKeys::from_settings(&moved).expect("moved").open("g", &sealed).as_deref(), Some(&b"token"[..]));
        assert!(!TokenKeys::from_settings(&crate::LoginSettings::default()).expect("none").can_seal());
    }
}
