//! The login library's integration tests: one binary, one module per concern, all against a small axum service
//! in memory (`oneshot`, no network, no database, a fake provider).
//!
//! - `flow`: the sign-in from `/login` to the session, `next`, path prefixes, the hook's refusals, the provider's
//!   outages and `login_hint`.
//! - `extractors`: what `CurrentUser`, `MaybeUser` and `CsrfToken` answer for signed-out requests.
//! - `attempts`: the attempt cookies: parallel attempts, the cap, tampering, keys, expiry, replays.
//! - `once`: a sign-in completes once (a replay that the provider redeems again, on two instances, concurrently),
//!   from the browser that began it (attempt cookies copied into another browser).
//! - `logout`: sign-out and its CSRF checks.
//! - `config`: settings that cannot work are refused at start-up.
//! - `providers`: several providers on one site, each at its own paths; the mix-up defence.
//! - `edges`: store outages, a stored user of another shape, deployments sharing a key, duplicate cookies, long
//!   and non-ASCII `next`, nested routers.
//!
//! `support` holds the fakes and the helpers the modules share.

mod attempts;
mod config;
mod cookies;
mod edges;
mod extractors;
mod flow;
mod grants;
mod logout;
mod mine;
mod once;
mod providers;
mod support;
