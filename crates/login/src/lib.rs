#![doc = include_str!("../README.md")]

mod attempts;
mod backchannel;
mod builder;
mod config;
mod domains;
mod error;
mod extract;
mod grants;
mod hook;
mod layer;
mod limit;
mod login;
mod mine;
mod noise;
mod provider_check;
mod risc;
mod router;
mod routes;
mod settings;
mod sign_out;
mod site;

pub use error::{Error, ErrorPage, PageLink};
pub use extract::{AccessToken, Api, CsrfToken, CurrentUser, MaybeUser, Rejection, Scopes, SignInScopes};
pub use grants::{ProviderTokens, TokenRefusal};
pub use hook::{KeepClaims, SignIn, SignInError};
pub use limit::{ForwardedHeader, RateLimitSettings};
pub use mine::{ActiveSession, MySessions};
pub use settings::{LoginSettings, TokenSettings, generate_cookie_key};
/// The RISC event types the receiver acts on (`login.risc.enabled`).
pub use signin_auth::event as risc_event;
pub use signin_auth::{
    Claims, GOOGLE_ISSUER, OidcClient, Provider, ProviderSettings, RiscReceiver, RiscSettings, SignedIn, Tokens,
    issuer_name,
};
pub use signin_session::{
    AccountHolds, GrantStore, MemoryAccountHolds, MemoryDirectory, MemoryGrants, MemoryUsedTokens, SessionDirectory,
    SessionSettings, UsedTokens,
};
/// The MySQL stores (feature `mysql`, on by default).
#[cfg(feature = "mysql")]
pub use signin_session::{
    MySqlAccountHolds, MySqlGrants, MySqlSessionDirectory, MySqlSessionStore, MySqlUsedTokens, sqlx_pool,
};
pub use tower_sessions::SessionStore;

pub use builder::{LoginBuilder, step};
pub use config::{ConfigSource, SiteSettings};
pub use layer::SessionLayer;
/// Named by [`SessionLayer`]'s `Layer` implementation; not used directly.
#[doc(hidden)]
pub use layer::{SaveWatch, SessionService};
pub use login::{Login, ProviderLink};
pub use signin_domain::DatabaseSettings;
pub use site::{SessionReader, Sessions};

pub(crate) use layer::Control;
