//! End to end, over real HTTP: the real app, the real OpenID provider (`oidc-provider`, started by
//! `scripts/test`), real MariaDB with a database per test; `browser` drives headless Chromium through the same.

mod browser;
mod concurrency;
mod edges;
mod fleet;
mod flow;
mod helpers;
mod hostile;
mod instances;
mod library;
mod logout;
mod outage;
mod providers;
mod risc;
mod socket;
mod tokens;
