#![doc = include_str!("../README.md")]

mod attempts;
mod backchannel;
mod domains;
mod error;
mod extract;
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
pub use extract::{Api, CsrfToken, CurrentUser, MaybeUser, Rejection};
pub use hook::{KeepClaims, SignIn, SignInError};
pub use limit::{ForwardedHeader, RateLimitSettings};
pub use mine::{ActiveSession, MySessions};
pub use settings::{LoginSettings, generate_cookie_key};
/// The RISC event types the receiver acts on ([`Login::with_risc`]).
pub use signin_auth::event as risc_event;
pub use signin_auth::{
    Claims, GOOGLE_ISSUER, OidcClient, Provider, ProviderSettings, RiscReceiver, RiscSettings, SignedIn, Tokens,
    issuer_name,
};
pub use signin_session::{
    AccountHolds, MemoryAccountHolds, MemoryDirectory, MemoryUsedTokens, MySqlAccountHolds, MySqlSessionDirectory,
    MySqlSessionStore, MySqlUsedTokens, SessionDirectory, SessionSettings, UsedTokens, sqlx_pool,
};
pub use tower_sessions::SessionStore;

pub use layer::{SaveWatch, SessionLayer, SessionService};
pub use login::{Login, ProviderLink};
pub use site::Sessions;

pub(crate) use layer::Control;
