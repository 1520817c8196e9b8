//! The web crate's integration tests: one binary, one module per concern, all against the real router in memory
//! (`oneshot`, no network, no MySQL, no provider).
//!
//! - `flow`: the app end to end: sign-in (attempt cookies, the provider check), the callback's failures, logout and
//!   its CSRF checks, `/api/me`, the provider's name and branding on the pages, health.
//! - `headers`: the protective headers on every kind of response.
//! - `fuzz`: generated bad requests never get a 5xx; wrong methods, unknown paths and oversized bodies get our
//!   pages. `SIGNIN_FUZZ_CASES` sets the number of generated requests; `scripts/fuzz` runs many in release mode.
//!
//! `support` holds the fakes (provider, user store, a session store that counts) and the helpers the modules share.

mod flow;
mod fuzz;
mod headers;
mod support;
