//! Who signed in: the provider's statements about a person, parsed into types that can only hold valid values.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::DomainError;

/// Longest subject OpenID Connect allows (Core 1.0, §2: "MUST NOT exceed 255 ASCII characters").
const SUBJECT_MAX: usize = 255;
/// RFC 5321 limits a path to 256 octets; 320 is the common upper bound for local@domain.
const EMAIL_MAX: usize = 320;
/// Longest display name kept; longer names are cut at a character boundary.
const NAME_MAX: usize = 255;
/// Longest picture URL kept; a longer one is dropped and the placeholder is shown.
const PICTURE_MAX: usize = 2048;
/// Longest issuer identifier accepted.
const ISSUER_MAX: usize = 255;

/// The issuer identifier of an OpenID provider, e.g. `https://accounts.google.com`.
///
/// Compared exactly as written (OpenID Connect Discovery §4.3), so no normalisation happens here.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Issuer(String);

impl Issuer {
    /// Parses an issuer: an absolute `https` or `http` URL without query or fragment.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::Empty("issuer"));
        }
        if raw.len() > ISSUER_MAX {
            return Err(DomainError::TooLong { what: "issuer", max: ISSUER_MAX });
        }
        let url = Url::parse(raw).map_err(|_| DomainError::Malformed("issuer"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(DomainError::Malformed("issuer"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(DomainError::Malformed("issuer"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// The provider's identifier for a person: unique and stable per issuer.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

impl Subject {
    /// Parses a subject: 1 to 255 printable ASCII characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::Empty("subject"));
        }
        if raw.len() > SUBJECT_MAX {
            return Err(DomainError::TooLong { what: "subject", max: SUBJECT_MAX });
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DomainError::Malformed("subject"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// An email address as the provider stated it. Only its outline is checked (one `@`, both sides present,
/// no spaces or control characters): the provider has verified it, we only make sure it is safe to store and show.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses an email address.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DomainError::Empty("email"));
        }
        if raw.chars().count() > EMAIL_MAX {
            return Err(DomainError::TooLong { what: "email", max: EMAIL_MAX });
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DomainError::Malformed("email"));
        }
        match raw.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(DomainError::Malformed("email")),
        }
    }
}

/// A name to show for a person: trimmed, without control characters, at most 255 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Cleans a name for display: control characters are removed, runs of white space become one space,
    /// and a name longer than 255 characters is cut. Fails only when nothing is left.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let cleaned: String = raw
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if cleaned.is_empty() {
            return Err(DomainError::Empty("display name"));
        }
        Ok(Self(cleaned.chars().take(NAME_MAX).collect()))
    }
}

/// The address of a profile picture: an absolute `https` or `http` URL of at most 2048 characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PictureUrl(String);

impl PictureUrl {
    /// Parses a picture URL.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::Empty("picture URL"));
        }
        if raw.len() > PICTURE_MAX {
            return Err(DomainError::TooLong { what: "picture URL", max: PICTURE_MAX });
        }
        let url = Url::parse(raw).map_err(|_| DomainError::Malformed("picture URL"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() || !url.username().is_empty() {
            return Err(DomainError::Malformed("picture URL"));
        }
        Ok(Self(url.into()))
    }
}

macro_rules! string_newtype {
    ($($ty:ident),*) => {$(
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = DomainError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> Self {
                value.0
            }
        }
    )*};
}
string_newtype!(Issuer, Subject, Email, DisplayName, PictureUrl);

/// What a provider said about a person, after the token carrying it was verified, before our rules apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileClaims {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`; `None` when the claim is absent.
    pub email_verified: Option<bool>,
    /// `name`.
    pub name: Option<String>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `picture`.
    pub picture: Option<String>,
}

/// Why a verified set of claims cannot become a signed-in identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The provider did not say the email address is verified.
    #[error("the provider has not verified this email address")]
    EmailNotVerified,
    /// No usable email address.
    #[error("the provider sent no usable email address: {0}")]
    Email(DomainError),
    /// No usable subject.
    #[error("the provider sent no usable subject: {0}")]
    Subject(DomainError),
    /// No usable issuer.
    #[error("the provider sent no usable issuer: {0}")]
    Issuer(DomainError),
}

/// A person who has proven to us who they are: a verified email address from a trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider.
    pub issuer: Issuer,
    /// The provider's id of the person.
    pub subject: Subject,
    /// The verified email address.
    pub email: Email,
    /// The name to show.
    pub name: DisplayName,
    /// The picture, when the provider sent a usable one.
    pub picture: Option<PictureUrl>,
}

impl Identity {
    /// Applies the sign-in rules to verified claims.
    ///
    /// - `email_verified` must be `true`; absent counts as not verified.
    /// - The display name is `name`, else `given_name`, else the email address.
    /// - A missing or unusable `picture` gives `None`, never an error: the page shows a placeholder.
    pub fn from_claims(claims: ProfileClaims) -> Result<Self, IdentityError> {
        let issuer = Issuer::parse(&claims.issuer).map_err(IdentityError::Issuer)?;
        let subject = Subject::parse(&claims.subject).map_err(IdentityError::Subject)?;
        if claims.email_verified != Some(true) {
            return Err(IdentityError::EmailNotVerified);
        }
        let email = Email::parse(claims.email.as_deref().unwrap_or_default()).map_err(IdentityError::Email)?;
        let name = [claims.name.as_deref(), claims.given_name.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|raw| DisplayName::parse(raw).ok())
            .or_else(|| DisplayName::parse(email.as_ref()).ok())
            .ok_or(IdentityError::Email(DomainError::Empty("email")))?;
        let picture = claims.picture.as_deref().and_then(|raw| PictureUrl::parse(raw).ok());
        Ok(Self { issuer, subject, email, name, picture })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ProfileClaims {
        ProfileClaims {
            issuer: "https://accounts.google.com".into(),
            subject: "110169484474386276334".into(),
            email: Some("ada@example.com".into()),
            email_verified: Some(true),
            name: Some("Ada Lovelace".into()),
            given_name: Some("Ada".into()),
            picture: Some("https://lh3.googleusercontent.com/a/photo.jpg".into()),
        }
    }

    #[test]
    fn verified_claims_become_an_identity() {
        let id = Identity::from_claims(claims()).expect("valid claims");
        assert_eq!(id.email.as_ref(), "ada@example.com");
        assert_eq!(id.name.as_ref(), "Ada Lovelace");
        assert_eq!(id.subject.as_ref(), "110169484474386276334");
        assert_eq!(id.picture.as_ref().map(AsRef::as_ref), Some("https://lh3.googleusercontent.com/a/photo.jpg"));
    }

    #[test]
    fn unverified_or_absent_email_verified_is_refused() {
        for verified in [Some(false), None] {
            let err = Identity::from_claims(ProfileClaims { email_verified: verified, ..claims() });
            assert_eq!(err, Err(IdentityError::EmailNotVerified));
        }
    }

    #[test]
    fn display_name_falls_back_to_given_name_then_email() {
        let id = Identity::from_claims(ProfileClaims { name: None, ..claims() }).expect("valid");
        assert_eq!(id.name.as_ref(), "Ada");
        let id = Identity::from_claims(ProfileClaims { name: Some("  \u{7} ".into()), given_name: None, ..claims() })
            .expect("valid");
        assert_eq!(id.name.as_ref(), "ada@example.com");
    }

    #[test]
    fn a_bad_picture_is_dropped_not_fatal() {
        for bad in ["javascript:alert(1)", "data:image/png;base64,AAAA", "not a url", "https://user:pw@example.com/x"] {
            let id = Identity::from_claims(ProfileClaims { picture: Some(bad.into()), ..claims() }).expect("valid");
            assert_eq!(id.picture, None, "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(3000));
        let id = Identity::from_claims(ProfileClaims { picture: Some(long), ..claims() }).expect("valid");
        assert_eq!(id.picture, None);
    }

    #[test]
    fn missing_email_or_subject_is_refused() {
        assert!(matches!(
            Identity::from_claims(ProfileClaims { email: None, ..claims() }),
            Err(IdentityError::Email(DomainError::Empty(_)))
        ));
        assert!(matches!(
            Identity::from_claims(ProfileClaims { subject: String::new(), ..claims() }),
            Err(IdentityError::Subject(_))
        ));
        assert!(matches!(
            Identity::from_claims(ProfileClaims { subject: "a b".into(), ..claims() }),
            Err(IdentityError::Subject(DomainError::Malformed(_)))
        ));
    }

    #[test]
    fn emails_need_an_outline() {
        for bad in ["", "no-at", "@example.com", "ada@", "a b@example.com", "ada@exa\nmple.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(400))).is_err());
        assert_eq!(Email::parse(" ada@example.com ").expect("valid").as_ref(), "ada@example.com");
    }

    #[test]
    fn display_names_are_cleaned_and_cut() {
        assert_eq!(DisplayName::parse("  Ada\t\nLovelace\u{0} ").expect("valid").as_ref(), "Ada Lovelace");
        assert_eq!(DisplayName::parse(&"é".repeat(300)).expect("valid").as_ref().chars().count(), 255);
    }

    #[test]
    fn issuers_are_absolute_web_urls() {
        assert!(Issuer::parse("https://accounts.google.com").is_ok());
        assert!(Issuer::parse("http://127.0.0.1:4000").is_ok());
        for bad in ["", "accounts.google.com", "ftp://x.example", "https://x.example/?a=b", "https://x.example/#f"] {
            assert!(Issuer::parse(bad).is_err(), "{bad:?}");
        }
    }
}
