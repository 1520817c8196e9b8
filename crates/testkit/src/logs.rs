//! The log lines a test's thread writes, for tests that assert what is (or is not) logged.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// The lines logged on this thread while the guard of [`Logs::capture`] lives, in the plain text format without
/// timestamps (span fields included, e.g. `request{id=…}`).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Logs {
    /// Captures what `filter` lets through (tracing-subscriber's syntax: `"warn"`,
    /// `"info,tower_sessions_core::session=error"`) on this thread, until the guard drops. Use a current-thread
    /// runtime, or the tasks of other threads go uncaptured.
    pub fn capture(filter: &str) -> (Self, DefaultGuard) {
        let logs = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_env_filter(filter)
            .with_ansi(false)
            .without_time()
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The lines logged since the last call. MySQL's slow-statement notices (a loaded machine) are left out: they
    /// are about the test database, not about what is tested.
    pub fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.contains("slow statement"))
            .map(str::to_owned)
            .collect()
    }
}
