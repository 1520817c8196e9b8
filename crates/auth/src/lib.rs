#![doc = include_str!("../README.md")]

mod claims;
mod client;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod http;
mod jws;
mod login;
mod logout;
mod risc;

pub use claims::{Claims, Refreshed, SignedIn, Tokens};
pub use client::{GOOGLE_ISSUER, OidcClient, ProviderSettings, issuer_name};
pub use error::{AuthError, AuthErrorKind, BoxError};
pub use login::{AuthorizationRequest, Callback, LoginFlow, LoginStart, PendingLogin, Provider, SignOutPlan};
pub use logout::{BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_MAX_AGE, LogoutToken};
pub use risc::{
    GOOGLE_RISC_CONFIGURATION, RiscReceiver, RiscSettings, SECURITY_EVENT_MAX_AGE, SecurityEvent, SecurityEventToken,
    event,
};
