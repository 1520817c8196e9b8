//! The app's sign-in hook: the domain's rules on the verified claims, then the user's row.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use signin_domain::{
    DisplayName, Email, Identity, IdentityError, Issuer, PictureUrl, RepositoryError, User, UserId, UserRepository,
};
use signin_login::{Provider, SignIn, SignInError, SignedIn};

/// What the session keeps about the signed-in person: the user's id and what pages and `/api/me` show.
///
/// It is a snapshot of the row as it was written at this sign-in. A later sign-in elsewhere with a changed name or
/// picture updates the row and that new session; an older session shows the older values until its next sign-in.
/// That is deliberate: the values are what the provider asserted when this session was authenticated, and reading
/// the row on every request would cost a database round trip per page for a cosmetic difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    /// Our id of the user.
    pub id: UserId,
    /// Who signed the person in.
    pub issuer: Issuer,
    /// The verified email address.
    pub email: Email,
    /// The name to show.
    pub name: DisplayName,
    /// The picture, if any.
    pub picture: Option<PictureUrl>,
}

impl From<User> for SessionUser {
    fn from(user: User) -> Self {
        Self { id: user.id, issuer: user.issuer, email: user.email, name: user.name, picture: user.picture }
    }
}

/// Records every sign-in in the users table (insert or update by issuer and subject) and keeps the stored user.
#[derive(Clone)]
pub struct RecordUsers {
    users: Arc<dyn UserRepository>,
}

impl RecordUsers {
    /// The hook over a user store.
    pub fn new(users: Arc<dyn UserRepository>) -> Self {
        Self { users }
    }
}

impl SignIn for RecordUsers {
    type User = SessionUser;

    async fn sign_in(&self, signed_in: &SignedIn, provider: &dyn Provider) -> Result<SessionUser, SignInError> {
        let identity = Identity::from_claims(signed_in.claims.profile.clone()).map_err(|err| refusal(err, provider))?;
        let user = self.users.record_login(&identity, chrono::Utc::now()).await.map_err(|err| match err {
            RepositoryError::Unavailable(source) => SignInError::Unavailable(source),
            RepositoryError::Unexpected(source) => SignInError::Failed(source),
        })?;
        tracing::info!(user.id = %user.id, "user recorded");
        Ok(user.into())
    }

    /// The row goes: the provider deleted the account.
    async fn forget(&self, issuer: &str, subject: &str) -> Result<(), SignInError> {
        let removed = self.users.forget(issuer, subject).await.map_err(|err| match err {
            RepositoryError::Unavailable(source) => SignInError::Unavailable(source),
            RepositoryError::Unexpected(source) => SignInError::Failed(source),
        })?;
        tracing::info!(removed, "user forgotten: the provider deleted the account");
        Ok(())
    }
}

fn refusal(err: IdentityError, provider: &dyn Provider) -> SignInError {
    match err {
        IdentityError::EmailNotVerified => SignInError::Invalid {
            title: "Email not verified".into(),
            message: format!(
                "User email not available or not verified by {}. Verify your email address with your account \
                 provider, then sign in again.",
                provider.display_name()
            )
            .into(),
        },
        _ => SignInError::Invalid {
            title: "Sign-in failed".into(),
            message: "The sign-in provider did not send a usable account id or email address.".into(),
        },
    }
}
