//! Where to send someone after they sign in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Longest `next` path kept.
const PATH_MAX: usize = 2048;

/// A path on this site, safe to redirect to after sign-in.
///
/// Accepts only a local absolute path: it starts with exactly one `/` (so `//evil.example`, which browsers read
/// as another host, is refused), has no scheme, no backslash (browsers treat `/\evil.example` as `//evil.example`),
/// and no control characters or white space.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalPath(String);

impl LocalPath {
    /// The site's root, where a sign-in ends when no (valid) `next` was given.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Parses a candidate `next` value.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::Empty("next path"));
        }
        if raw.len() > PATH_MAX {
            return Err(DomainError::TooLong { what: "next path", max: PATH_MAX });
        }
        let mut bytes = raw.bytes();
        let local = bytes.next() == Some(b'/') && !matches!(bytes.next(), Some(b'/' | b'\\'));
        if !local || raw.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) {
            return Err(DomainError::Malformed("next path"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Parses a candidate and falls back to the root when it is missing or unsafe.
    pub fn parse_or_root(raw: Option<&str>) -> Self {
        raw.and_then(|raw| Self::parse(raw).ok()).unwrap_or_else(Self::root)
    }
}

impl AsRef<str> for LocalPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LocalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl TryFrom<String> for LocalPath {
    type Error = DomainError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<LocalPath> for String {
    fn from(value: LocalPath) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept() {
        for ok in ["/", "/profile", "/a/b?c=d&e=%2F", "/x#frag"] {
            assert_eq!(LocalPath::parse(ok).expect(ok).as_ref(), ok);
        }
    }

    #[test]
    fn anything_that_leaves_the_site_is_refused() {
        for bad in [
            "",
            "//evil.example",
            "https://evil.example",
            "http:evil.example",
            "evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/ok\\..\\",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/a b",
            " /x",
        ] {
            assert!(LocalPath::parse(bad).is_err(), "{bad:?}");
            assert_eq!(LocalPath::parse_or_root(Some(bad)), LocalPath::root(), "{bad:?}");
        }
        assert_eq!(LocalPath::parse_or_root(None), LocalPath::root());
        assert!(LocalPath::parse(&format!("/{}", "a".repeat(PATH_MAX))).is_err());
    }
}
