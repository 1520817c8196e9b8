//! Logging set-up.

use tracing_subscriber::EnvFilter;

use crate::LogConfig;

/// Installs the global subscriber: `RUST_LOG` when set, else the configured filter; text or JSON lines.
pub fn init_tracing(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    let result = if config.format == "json" { builder.json().try_init() } else { builder.try_init() };
    if result.is_err() {
        // A subscriber is already installed (tests): keep it.
    }
}
