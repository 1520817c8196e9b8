//! Signing out at the provider too, as its [`SignOutPlan`] says: at sign-in the session record keeps what that
//! needs (the token to revoke, the ID token as `id_token_hint`; server-side only), and after the site's own
//! sign-out the token is revoked in the background (bounded by `oidc.sign_out_timeout`, never delaying the
//! answer) and the browser is sent on to the provider's end-session endpoint when configured.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use signin_auth::{SignOutPlan, Tokens};
use url::Url;

use crate::{Login, SignIn};

/// What a session keeps for signing out.
#[derive(Serialize, Deserialize)]
struct Kept {
    /// The id of the provider that signed the person in (by id, not position: the list may change while sessions
    /// live).
    #[serde(rename = "i")]
    provider: String,
    /// The token to revoke, and whether it is a refresh token.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    revoke: Option<(String, bool)>,
    /// The ID token, for `id_token_hint`.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// What the sealed record is authenticated as.
const PURPOSE: &str = "signin.sign_out";

/// What to keep from a sign-in with the provider of id `provider`, or `None` when its sign-out needs nothing:
/// sealed ([`crate::attempts::Attempts::seal_at_rest`]), since it holds tokens.
pub(crate) fn kept(
    sessions: &crate::Sessions,
    provider: &str,
    plan: SignOutPlan,
    tokens: &Tokens,
) -> Option<serde_json::Value> {
    if plan == SignOutPlan::default() {
        return None;
    }
    // The refresh token when there is one: revoking it ends the whole grant (RFC 7009 §2.1).
    let revoke = plan.revoke.then(|| match &tokens.refresh_token {
        Some(refresh) => (refresh.expose_secret().to_owned(), true),
        None => (tokens.access_token.expose_secret().to_owned(), false),
    });
    let id_token = plan.end_session.then(|| tokens.id_token.expose_secret().to_owned());
    let plain = serde_json::to_string(&Kept { provider: provider.to_owned(), revoke, id_token }).ok()?;
    sessions.attempts().seal_at_rest(PURPOSE, &plain).map(serde_json::Value::String)
}

/// Opens a kept record: sealed, or (from sessions begun before records were sealed) as it was written.
fn opened(sessions: &crate::Sessions, kept: &serde_json::Value) -> Option<Kept> {
    match kept {
        serde_json::Value::String(sealed) => {
            serde_json::from_str(&sessions.attempts().open_at_rest(PURPOSE, sealed)?).ok()
        }
        other => serde_json::from_value(other.clone()).ok(),
    }
}

/// After the site's sign-out: starts the revocation, and returns the provider's end-session URL to send the
/// browser to, if any.
pub(crate) fn at_provider<H: SignIn>(login: &Login<H>, kept: &serde_json::Value) -> Option<Url> {
    let kept = opened(login.sessions(), kept)?;
    // Signed in with a provider the configuration no longer has: nothing is sent anywhere.
    let index = login.inner.providers.iter().position(|entry| entry.flow.provider().id() == kept.provider)?;
    if let Some((token, refresh)) = kept.revoke {
        let login = login.clone();
        let token = SecretString::from(token);
        tokio::spawn(async move {
            let outcome = match login.entry(index).flow.provider().revoke(&token, refresh).await {
                Ok(()) => "success",
                Err(err) => {
                    tracing::warn!(error = %err, "revoking the token at the provider failed");
                    "failed"
                }
            };
            metrics::counter!("signin_token_revocations_total", "outcome" => outcome).increment(1);
        });
    }
    let hint = kept.id_token?;
    let sessions = login.sessions();
    let mut home = sessions.public_url().clone();
    home.set_path(&sessions.home_url());
    login.entry(index).flow.provider().end_session_url(&hint, &home)
}
