//! Counting events for the log: one line per interval, with a count, rather than one per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A log line at most once per `every`, with the number of events it stands for: for events that anyone can cause
/// at will (garbage cookies, refused connections), so that they cannot flood the log. Written here because what is
/// needed is a counter beside one log call, not a rate limiter.
#[derive(Debug)]
pub struct Tally {
    every: Duration,
    started: Instant,
    /// Events since the last line.
    count: AtomicU64,
    /// When the last line was written, in milliseconds after `started` (`u64::MAX`: never).
    last: AtomicU64,
}

impl Tally {
    /// A tally that reports at most once per `every` (the first event at once).
    pub fn new(every: Duration) -> Self {
        Self { every, started: Instant::now(), count: AtomicU64::new(0), last: AtomicU64::new(u64::MAX) }
    }

    /// Counts one event; returns how many to report when a line is due now.
    pub fn add(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let every = u64::try_from(self.every.as_millis()).unwrap_or(u64::MAX);
        let last = self.last.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= every;
        if due && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Some(self.count.swap(0, Ordering::Relaxed));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reports_once_per_interval_with_the_count() {
        let tally = Tally::new(Duration::from_secs(3600));
        assert_eq!(tally.add(), Some(1), "the first event is reported");
        for _ in 0..999 {
            assert_eq!(tally.add(), None);
        }
        let zero = Tally::new(Duration::ZERO);
        assert_eq!(zero.add(), Some(1));
        assert_eq!(zero.add(), Some(1));
    }
}
