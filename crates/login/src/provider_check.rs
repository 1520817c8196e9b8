//! Keeps `/login` from sending people to a provider that does not answer.
//!
//! `/login` itself needs nothing from the provider (discovery happened at start-up), so without a check a person
//! would leave this site for a dead one. Instead `/login` asks the provider's keys endpoint, at most once per
//! interval while it answers and again after a short pause while it does not, and shows a 502/504 page when it
//! fails. A sign-in that fails on the provider's side forgets the last good answer, so the next `/login` checks.

use std::time::{Duration, Instant};

use signin_auth::{AuthErrorKind, Provider};
use tokio::sync::Mutex;

use crate::error::LoginError;

/// How long a failed check stands before the provider is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Why the provider is considered down: whether it timed out, and what the check found (for the log).
#[derive(Debug, Clone)]
struct Failure {
    timed_out: bool,
    reason: String,
}

/// The last check's time and outcome. One check at a time: a burst of `/login` waits for the same answer.
pub(crate) struct ProviderCheck {
    interval: Duration,
    last: Mutex<Option<(Instant, Result<(), Failure>)>>,
}

impl ProviderCheck {
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, last: Mutex::new(None) }
    }

    /// `Ok` when the provider answered lately (or checks are off), else the error to show.
    pub(crate) async fn ensure(&self, provider: &dyn Provider) -> Result<(), LoginError> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut last = self.last.lock().await;
        let fresh = last.as_ref().filter(|(at, outcome)| {
            at.elapsed() < if outcome.is_ok() { self.interval } else { RETRY_AFTER.min(self.interval) }
        });
        let outcome = match fresh {
            Some((_, outcome)) => outcome.clone(),
            None => {
                let outcome = provider.ping().await.map_err(|err| Failure {
                    timed_out: err.kind() == AuthErrorKind::ProviderTimeout,
                    reason: err.to_string(),
                });
                *last = Some((Instant::now(), outcome.clone()));
                outcome
            }
        };
        outcome.map_err(|failure| LoginError::ProviderDown { timed_out: failure.timed_out, reason: failure.reason })
    }

    /// Forgets a good answer after the provider failed a sign-in, so the next `/login` checks again.
    pub(crate) async fn forget(&self) {
        let mut last = self.last.lock().await;
        if matches!(last.as_ref(), Some((_, Ok(())))) {
            *last = None;
        }
    }
}
