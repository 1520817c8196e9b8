//! The service's say in a sign-in: turning verified claims into its own user.

use std::borrow::Cow;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use signin_auth::{BoxError, Claims, Provider, SignedIn};

/// Turns a verified sign-in into the service's user, or refuses it.
///
/// The returned user is what the session keeps and what [`crate::CurrentUser`] hands to handlers, so keep it small:
/// an id and what pages show. It is a snapshot taken at sign-in; see the crate documentation for why.
///
/// ```
/// use signin_login::{Provider, SignIn, SignInError, SignedIn};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Member { email: String }
///
/// struct OnlyExampleCom;
///
/// impl SignIn for OnlyExampleCom {
///     type User = Member;
///     async fn sign_in(&self, signed_in: &SignedIn, _: &dyn Provider) -> Result<Member, SignInError> {
///         let claims = &signed_in.claims.profile;
///         match claims.email.as_deref() {
///             Some(email) if email.ends_with("@example.com") && claims.email_verified == Some(true) => {
///                 Ok(Member { email: email.to_owned() })
///             }
///             _ => Err(SignInError::Refused("This site accepts accounts from example.com only.".into())),
///         }
///     }
/// }
/// ```
pub trait SignIn: Send + Sync + 'static {
    /// The service's user, as kept in the session.
    type User: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Decides about one verified sign-in. `provider` says who signed the person in (its issuer and the name to
    /// show).
    fn sign_in(
        &self,
        signed_in: &SignedIn,
        provider: &dyn Provider,
    ) -> impl Future<Output = Result<Self::User, SignInError>> + Send;

    /// The provider deleted the account of `issuer` and `subject` (a RISC `account-purged` event): forget what the
    /// service keeps of it. Its sessions have ended already. Does nothing by default.
    fn forget(&self, issuer: &str, subject: &str) -> impl Future<Output = Result<(), SignInError>> + Send {
        let _ = (issuer, subject);
        async { Ok(()) }
    }
}

/// Why a [`SignIn`] hook did not sign the person in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The service does not accept this person (e.g. an email-domain rule): a 403 page with this message.
    #[error("sign-in refused: {0}")]
    Refused(Cow<'static, str>),
    /// The claims are not usable (e.g. the email address is not verified): a 400 page with this title and message.
    #[error("unusable claims: {message}")]
    Invalid {
        /// The page's title.
        title: Cow<'static, str>,
        /// The page's message.
        message: Cow<'static, str>,
    },
    /// Something the hook needs is down (e.g. the user database): 503, try again later.
    #[error("a store the sign-in needs is unavailable")]
    Unavailable(#[source] BoxError),
    /// The hook failed otherwise: 500.
    #[error("the sign-in hook failed")]
    Failed(#[source] BoxError),
}

/// The hook of a stateless service: the session keeps the verified [`Claims`] themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepClaims;

impl SignIn for KeepClaims {
    type User = Claims;

    async fn sign_in(&self, signed_in: &SignedIn, _: &dyn Provider) -> Result<Claims, SignInError> {
        Ok(signed_in.claims.clone())
    }
}
