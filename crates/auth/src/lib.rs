#![doc = include_str!("../README.md")]

mod claims;
mod client;
mod error;
mod http;
mod login;

pub use claims::{Claims, SignedIn, Tokens};
pub use client::{GOOGLE_ISSUER, OidcClient, ProviderSettings, issuer_name};
pub use error::{AuthError, AuthErrorKind, BoxError};
pub use login::{AuthorizationRequest, Callback, LoginFlow, LoginStart, PendingLogin, Provider};
