//! Logging set-up.

use tracing_subscriber::EnvFilter;

use crate::LogConfig;

/// Installs the global subscriber: `RUST_LOG` when set, else the configured filter; text or JSON lines.
pub fn init_tracing(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = quiet_noise(filter, &std::env::var("RUST_LOG").unwrap_or_else(|_| config.filter.clone()));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let result = if config.format == "json" { builder.json().try_init() } else { builder.try_init() };
    if result.is_err() {
        // A subscriber is already installed (tests): keep it.
    }
}

/// tower-sessions logs a WARN for every request whose session cookie names no stored session, which anyone can send
/// at will (about 20,000 lines a second under a garbage-cookie flood). The login library counts and sums up such
/// requests itself, so that target is kept to errors unless the filter names it.
fn quiet_noise(filter: EnvFilter, directives: &str) -> EnvFilter {
    if directives.contains("tower_sessions") {
        return filter;
    }
    match "tower_sessions_core::session=error".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}
