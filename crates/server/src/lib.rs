#![doc = include_str!("../README.md")]

mod metrics;
mod serve;
mod settings;
mod startup;
mod telemetry;

pub use serve::{ConnectionSettings, Draining};
pub use settings::{LogConfig, ServerSettings, Settings};
pub use startup::{Application, inherited_listener, migrate, revoke_sessions};
pub use telemetry::init_tracing;
