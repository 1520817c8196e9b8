//! Signing out at the provider too, as its [`signin_auth::SignOutPlan`] says. What that needs (the token to
//! revoke, the ID token as `id_token_hint`) is in the person's grant ([`crate::ProviderTokens`], sealed at rest);
//! the session names only the provider. After the site's own sign-out, the person's last session on the site
//! revokes the grant in the background (bounded by `oidc.sign_out_timeout`, never delaying the answer) and
//! deletes it; a sign-out while other sessions of theirs live (the session directory knows; without one, every
//! sign-out counts as the last) leaves the grant to them. The browser is sent on to
//! the provider's end-session endpoint when configured.
//!
//! Sessions begun before grants were kept carry a sealed record of their own ([`Kept`]), still honoured.

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::{Login, SignIn};

/// What a session begun before grants were kept holds for signing out.
#[derive(Deserialize)]
struct Kept {
    /// The id of the provider that signed the person in (by id, not position: the list may change while sessions
    /// live).
    #[serde(rename = "i")]
    provider: String,
    /// The token to revoke, and whether it is a refresh token.
    #[serde(rename = "r", default)]
    revoke: Option<(String, bool)>,
    /// The ID token, for `id_token_hint`.
    #[serde(rename = "h", default)]
    id_token: Option<String>,
}

/// What the sealed record is authenticated as.
const PURPOSE: &str = "signin.sign_out";

/// Opens a kept record: sealed, or (from sessions begun before records were sealed) as it was written.
fn opened(sessions: &crate::Sessions, kept: &serde_json::Value) -> Option<Kept> {
    match kept {
        serde_json::Value::String(sealed) => {
            serde_json::from_str(&sessions.attempts().open_at_rest(PURPOSE, sealed)?).ok()
        }
        other => serde_json::from_value(other.clone()).ok(),
    }
}

/// Who signed out: the owner, the provider's id, and whether other sessions of theirs live on.
pub(crate) struct Leaving {
    pub(crate) owner: String,
    pub(crate) provider: String,
    pub(crate) others: bool,
}

/// After the site's sign-out of `leaving`: ends the grant when the plan says to revoke and no other session of
/// the person lives, and returns the provider's end-session URL to send the browser to, if any.
pub(crate) async fn at_provider<H: SignIn>(login: &Login<H>, leaving: &Leaving) -> Option<Url> {
    let index = login.index_of(&leaving.provider)?;
    let provider = login.entry(index).flow.provider();
    let plan = provider.sign_out_plan();
    let tokens = login.tokens()?;
    // One read of the grant either way: the grant it ends gives the hint too.
    let hint = if plan.revoke && !leaving.others {
        tokens.end(provider, &leaving.owner, true).await
    } else if plan.end_session {
        tokens.id_token(provider, &leaving.owner).await
    } else {
        None
    };
    end_session_url(login, provider, &hint.filter(|_| plan.end_session)?)
}

/// The same for a session begun before grants were kept, from the record it holds.
pub(crate) fn at_provider_kept<H: SignIn>(login: &Login<H>, kept: &serde_json::Value) -> Option<Url> {
    let kept = opened(login.sessions(), kept)?;
    // Signed in with a provider the configuration no longer has: nothing is sent anywhere.
    let index = login.index_of(&kept.provider)?;
    if let Some((token, refresh)) = kept.revoke
        && let Some(provider) = login.tokens().and_then(|tokens| tokens.provider(&kept.provider))
    {
        crate::grants::revoke_in_background(provider.clone(), SecretString::from(token), refresh);
    }
    end_session_url(login, login.entry(index).flow.provider(), &kept.id_token?)
}

/// Where `provider` ends the person's session there, with `hint` as `id_token_hint`, coming back to the site's
/// home.
fn end_session_url<H: SignIn>(login: &Login<H>, provider: &dyn signin_auth::Provider, hint: &str) -> Option<Url> {
    let sessions = login.sessions();
    let mut home = sessions.public_url().clone();
    home.set_path(&sessions.home_url());
    provider.end_session_url(hint, &home)
}
