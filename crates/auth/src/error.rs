//! Why a sign-in failed, and how to tell the person.

use openidconnect::{
    DiscoveryError, RequestTokenError, StandardErrorResponse, UserInfoError, core::CoreErrorResponseType,
};

use crate::http::HttpError;

/// Any error, boxed, kept as the source of an [`AuthError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why discovery or a sign-in failed.
///
/// The messages never contain a token, an authorization code, the client secret or the PKCE verifier; values that
/// came from the provider or the browser are cut short and stripped of control characters.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The provider sent `error=...` to the callback (e.g. the person pressed "Cancel").
    #[error("the provider refused the sign-in ({code})")]
    Denied {
        /// The OAuth error code, e.g. `access_denied` (sanitised; `error_description` is never kept).
        code: String,
    },
    /// The callback's `state` is missing or is not the one of the pending login.
    #[error("the login state is missing or does not match")]
    StateMismatch,
    /// The pending login is older than the limit.
    #[error("the login attempt is too old")]
    LoginExpired,
    /// The callback's `iss` parameter (RFC 9207) names another issuer.
    #[error("the callback's iss parameter does not name the configured issuer")]
    CallbackIssuerMismatch,
    /// The callback has no `code`.
    #[error("the callback carries no authorization code")]
    MissingCode,
    /// The token endpoint refused the code (e.g. `invalid_grant` for a code used twice).
    #[error("the provider rejected the authorization code ({code})")]
    CodeRejected {
        /// The OAuth error code.
        code: String,
    },
    /// The ID token failed a check (signature, issuer, audience, time, nonce, at_hash, ...).
    #[error("the ID token was rejected: {reason}")]
    InvalidIdToken {
        /// Which check failed.
        reason: String,
    },
    /// A back-channel logout token failed a check (signature, `iss`, `aud`, `iat`, `events`, ...).
    #[error("the logout token was rejected: {reason}")]
    InvalidLogoutToken {
        /// Which check failed.
        reason: String,
    },
    /// A security event token failed a check (signature, `iss`, `aud`, `iat`, `jti`, `events`).
    #[error("the security event token was rejected: {reason}")]
    InvalidSecurityEvent {
        /// Which check failed.
        reason: String,
    },
    /// The userinfo endpoint spoke about another subject than the ID token.
    #[error("the userinfo subject does not match the ID token's subject")]
    UserInfoSubjectMismatch,
    /// The provider answered with 5xx, could not be reached, sent something that is not what it should be, or
    /// sent too much.
    #[error("the provider is unavailable: {reason}")]
    ProviderUnavailable {
        /// What went wrong.
        reason: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider did not answer within `http_timeout`.
    #[error("the provider did not answer in time")]
    ProviderTimeout,
    /// The settings or the discovery document cannot work (e.g. the document names another issuer).
    #[error("the provider configuration is unusable: {reason}")]
    Configuration {
        /// What is wrong.
        reason: String,
    },
    /// The provider refused a refresh token with `invalid_grant`: the person revoked the grant, it expired unused,
    /// or their password changed. The grant is over; only the person can make a new one.
    #[error("the provider ended the grant ({code})")]
    GrantEnded {
        /// The OAuth error code (`invalid_grant`).
        code: String,
    },
    /// A refresh's ID token names another issuer or subject than the grant's (OpenID Connect Core §12.2).
    #[error("the refreshed ID token names another person than the grant")]
    RefreshIdentityChanged,
}

/// The broad class of an [`AuthError`], for choosing an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorKind {
    /// 400: bad, missing or replayed state; missing code; a token that fails a check; a code the provider refused.
    InvalidRequest,
    /// 403: the provider (or the person) refused the sign-in.
    Denied,
    /// 502: the provider is down, unreachable, or answers nonsense.
    ProviderUnavailable,
    /// 504: the provider is too slow.
    ProviderTimeout,
    /// The grant a refresh used is over ([`AuthError::GrantEnded`], [`AuthError::RefreshIdentityChanged`]): the
    /// person must grant access again.
    GrantEnded,
}

impl AuthError {
    /// The class of this error.
    pub fn kind(&self) -> AuthErrorKind {
        match self {
            Self::Denied { .. } => AuthErrorKind::Denied,
            Self::StateMismatch
            | Self::LoginExpired
            | Self::CallbackIssuerMismatch
            | Self::MissingCode
            | Self::CodeRejected { .. }
            | Self::InvalidIdToken { .. }
            | Self::InvalidLogoutToken { .. }
            | Self::InvalidSecurityEvent { .. }
            | Self::UserInfoSubjectMismatch => AuthErrorKind::InvalidRequest,
            Self::ProviderUnavailable { .. } | Self::Configuration { .. } => AuthErrorKind::ProviderUnavailable,
            Self::ProviderTimeout => AuthErrorKind::ProviderTimeout,
            Self::GrantEnded { .. } | Self::RefreshIdentityChanged => AuthErrorKind::GrantEnded,
        }
    }

    /// The error for a callback that carries `error=…` (e.g. `access_denied` when the person pressed "Cancel"):
    /// only a well-formed OAuth error code is kept.
    pub fn from_callback_error(raw: &str) -> Self {
        Self::Denied { code: error_code(raw) }
    }

    /// A sentence for the person signing in: plain words, no internals.
    pub fn user_message(&self) -> &'static str {
        match self {
            Self::Denied { code } if code == "access_denied" => {
                "Sign-in was cancelled. You can try again whenever you like."
            }
            Self::Denied { .. } => "The sign-in provider refused the sign-in. Please try again.",
            Self::LoginExpired => "The sign-in took too long. Please start again.",
            Self::StateMismatch => "This sign-in link is no longer valid. Please start again.",
            Self::CallbackIssuerMismatch
            | Self::MissingCode
            | Self::CodeRejected { .. }
            | Self::InvalidIdToken { .. }
            | Self::InvalidLogoutToken { .. }
            | Self::InvalidSecurityEvent { .. }
            | Self::UserInfoSubjectMismatch => "The sign-in could not be completed. Please try again.",
            Self::ProviderUnavailable { .. } | Self::Configuration { .. } => {
                "The sign-in provider is not available right now. Please try again later."
            }
            Self::ProviderTimeout => "The sign-in provider took too long to answer. Please try again later.",
            Self::GrantEnded { .. } | Self::RefreshIdentityChanged => {
                "The access you granted has ended. Please grant it again."
            }
        }
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Self::ProviderUnavailable { reason: reason.into(), source: None }
    }

    pub(crate) fn invalid_token(reason: impl AsRef<str>) -> Self {
        Self::InvalidIdToken { reason: clean(reason.as_ref()) }
    }
}

impl From<HttpError> for AuthError {
    fn from(err: HttpError) -> Self {
        match err {
            HttpError::Timeout => Self::ProviderTimeout,
            other => Self::ProviderUnavailable { reason: other.to_string(), source: Some(Box::new(other)) },
        }
    }
}

impl From<DiscoveryError<HttpError>> for AuthError {
    fn from(err: DiscoveryError<HttpError>) -> Self {
        match err {
            DiscoveryError::Request(http) => http.into(),
            DiscoveryError::Response(status, _, _) => {
                Self::unavailable(format!("discovery or keys endpoint answered HTTP {}", status.as_u16()))
            }
            DiscoveryError::Parse(_) => Self::unavailable("discovery document or key set is malformed"),
            // openidconnect reports a discovery document whose `issuer` differs from ours as a validation error.
            DiscoveryError::Validation(msg) => Self::Configuration { reason: clean(&msg) },
            other => Self::Configuration { reason: clean(&other.to_string()) },
        }
    }
}

pub(crate) type TokenError = RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>;

impl From<TokenError> for AuthError {
    fn from(err: TokenError) -> Self {
        match err {
            RequestTokenError::Request(http) => http.into(),
            // A 4xx with an OAuth error body: the provider refuses this code (replayed, expired, wrong verifier).
            RequestTokenError::ServerResponse(resp) => Self::CodeRejected { code: clean(resp.error().as_ref()) },
            // The body is dropped on purpose: it may hold tokens.
            RequestTokenError::Parse(_, _) => Self::unavailable("the token endpoint's answer is not a token response"),
            // oauth2's own words (wrong Content-Type, empty body, empty error), never the body itself.
            RequestTokenError::Other(msg) => {
                Self::unavailable(format!("the token endpoint's answer is not a token response: {}", clean(&msg)))
            }
        }
    }
}

impl AuthError {
    /// A refresh's failure at the token endpoint. The errors of RFC 6749 §5.2 that are about this grant
    /// (`invalid_grant`; `invalid_request` and `invalid_scope`, which a well-formed refresh of ours gets only for a
    /// refresh token the provider no longer takes) end it, so that the person grants again rather than meet a 503
    /// for ever; those about the client (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`: a
    /// configuration every person shares) and any other answer (the provider down, a 5xx with an OAuth body) leave
    /// it as it was.
    pub(crate) fn from_refresh(err: TokenError) -> Self {
        match err {
            RequestTokenError::ServerResponse(resp)
                if matches!(resp.error().as_ref(), "invalid_grant" | "invalid_request" | "invalid_scope") =>
            {
                Self::GrantEnded { code: resp.error().as_ref().to_owned() }
            }
            RequestTokenError::ServerResponse(resp) => Self::unavailable(format!(
                "the token endpoint refused the refresh ({})",
                error_code(resp.error().as_ref())
            )),
            other => other.into(),
        }
    }
}

impl From<UserInfoError<HttpError>> for AuthError {
    fn from(err: UserInfoError<HttpError>) -> Self {
        match err {
            UserInfoError::Request(http) => http.into(),
            UserInfoError::Response(status, _, _) => {
                Self::unavailable(format!("userinfo endpoint answered HTTP {}", status.as_u16()))
            }
            UserInfoError::Parse(_) => Self::unavailable("userinfo answer is malformed"),
            UserInfoError::ClaimsVerification(err) => Self::invalid_token(format!("userinfo: {err}")),
            other => Self::unavailable(clean(&format!("userinfo failed: {other}"))),
        }
    }
}

/// Makes a provider- or browser-supplied string safe to log and display: no control characters, at most 200
/// characters.
pub(crate) fn clean(raw: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = raw.chars().take(MAX).map(|c| if c.is_control() { '?' } else { c }).collect();
    if raw.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// An OAuth error code from the callback, kept only when it looks like one (`access_denied`, ...).
pub(crate) fn error_code(raw: &str) -> String {
    let plausible =
        !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if plausible { raw.to_owned() } else { "unrecognised error".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_cause() {
        assert_eq!(AuthError::Denied { code: "access_denied".into() }.kind(), AuthErrorKind::Denied);
        for err in [
            AuthError::StateMismatch,
            AuthError::LoginExpired,
            AuthError::MissingCode,
            AuthError::CallbackIssuerMismatch,
            AuthError::CodeRejected { code: "invalid_grant".into() },
            AuthError::invalid_token("nonce mismatch"),
            AuthError::UserInfoSubjectMismatch,
        ] {
            assert_eq!(err.kind(), AuthErrorKind::InvalidRequest, "{err}");
        }
        assert_eq!(HttpError::Timeout.into_auth().kind(), AuthErrorKind::ProviderTimeout);
        assert_eq!(HttpError::Status(503).into_auth().kind(), AuthErrorKind::ProviderUnavailable);
        assert_eq!(HttpError::TooLarge(10).into_auth().kind(), AuthErrorKind::ProviderUnavailable);
    }

    #[test]
    fn refresh_errors_about_the_grant_end_it_and_those_about_the_client_do_not() {
        use openidconnect::core::CoreErrorResponseType as E;
        let answer = |error: E| {
            AuthError::from_refresh(RequestTokenError::ServerResponse(StandardErrorResponse::new(error, None, None)))
        };
        for error in [E::InvalidGrant, E::InvalidRequest, E::InvalidScope] {
            assert_eq!(answer(error.clone()).kind(), AuthErrorKind::GrantEnded, "{error:?}");
        }
        for error in [
            E::InvalidClient,
            E::UnauthorizedClient,
            E::UnsupportedGrantType,
            E::Extension("temporarily_unavailable".into()),
        ] {
            assert_eq!(answer(error.clone()).kind(), AuthErrorKind::ProviderUnavailable, "{error:?}");
        }
        assert_eq!(
            AuthError::from_refresh(RequestTokenError::Other("no body".into())).kind(),
            AuthErrorKind::ProviderUnavailable
        );
    }

    #[test]
    fn user_messages_are_plain() {
        for err in [
            AuthError::Denied { code: "access_denied".into() },
            AuthError::invalid_token("aud `x` is not trusted"),
            AuthError::unavailable("token endpoint answered HTTP 503"),
        ] {
            let msg = err.user_message();
            assert!(!msg.contains("aud") && !msg.contains("503") && !msg.contains("access_denied"), "{msg}");
        }
    }

    #[test]
    fn provider_strings_are_cleaned() {
        assert_eq!(clean("a\nb\u{1b}[31m"), "a?b?[31m");
        assert_eq!(clean(&"x".repeat(500)).chars().count(), 201);
        assert_eq!(error_code("access_denied"), "access_denied");
        assert_eq!(error_code("<script>alert(1)</script>"), "unrecognised error");
        assert_eq!(error_code(""), "unrecognised error");
    }

    impl HttpError {
        fn into_auth(self) -> AuthError {
            self.into()
        }
    }
}
