//! Asking WARMUP again when the executor could not answer it this time
//! (`ERROR|HISTORY_UNAVAILABLE|<symbol> <tf>: <why>`, PROTOCOL.md §6-§7). Pure: the caller passes
//! `now` and sends the WARMUPs.
//!
//! Without it, a twin whose history request failed (a broker timeout, a lost link, a pacing
//! refusal) waited for a window of live bars and "warmed up from live bars", which on a held or
//! slow feed is never, or hours late, and always misses the entries the model made meanwhile.

use std::time::Duration;

use protocol::{Symbol, Timeframe};
use tokio::time::Instant;

/// The first retry of a pair after this long, doubling per failure up to [`RETRY_MAX`]: the same
/// schedule as the reconnect backoff (`live.rs`). The executor answers one block per pair in flight,
/// so even a broker that is down for hours costs one cheap WARMUP per pair every 5 s.
pub const RETRY_MIN: Duration = Duration::from_millis(200);
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// One pair's retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmupRetry {
    due: Option<Instant>,
    backoff: Duration,
}

impl Default for WarmupRetry {
    fn default() -> Self {
        Self {
            due: None,
            backoff: RETRY_MIN,
        }
    }
}

impl WarmupRetry {
    /// The executor could not serve the pair's WARMUP: ask again after the backoff, which doubles.
    /// A retry already scheduled stays as it is (one ERROR per WARMUP; a second one for the same
    /// pair means an older WARMUP's answer, not a new failure).
    pub fn failed(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(RETRY_MAX);
        }
    }

    /// When the next WARMUP is due, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the WARMUP is due at `now`; if so it counts as sent (the next failure schedules anew).
    pub fn take_due(&mut self, now: Instant) -> bool {
        if self.due.is_some_and(|t| t <= now) {
            self.due = None;
            return true;
        }
        false
    }

    /// The pair has its history, or a new connection starts with fresh WARMUPs: nothing pending,
    /// and the next failure waits the shortest backoff again.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// The pair a `HISTORY_UNAVAILABLE` text names (`"AAPL H1: why"`), if it names one. A text that
/// does not (an executor that words it differently) gets `None`, and the caller retries every pair
/// still waiting for its history: the executor answers a pair already in flight with that block.
pub fn named_pair(text: &str) -> Option<(Symbol, Timeframe)> {
    let (pair, _) = text.split_once(':')?;
    let mut words = pair.split_whitespace();
    let symbol = words.next()?.parse().ok()?;
    let timeframe = words.next()?.parse().ok()?;
    words.next().is_none().then_some((symbol, timeframe))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retries_back_off_doubling_to_the_cap_and_reset_on_success() {
        let t0 = Instant::now();
        let mut r = WarmupRetry::default();
        assert!(!r.take_due(t0), "nothing failed yet");
        r.failed(t0);
        r.failed(t0 + Duration::from_millis(50)); // same round: unchanged
        assert_eq!(r.due(), Some(t0 + RETRY_MIN));
        assert!(!r.take_due(t0 + RETRY_MIN - Duration::from_millis(1)));
        assert!(r.take_due(t0 + RETRY_MIN));
        assert!(!r.take_due(t0 + RETRY_MIN), "once per failure");
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..7 {
            r.failed(now);
            let due = r.due().unwrap();
            waits.push(due - now);
            assert!(r.take_due(due));
            now = due;
        }
        assert_eq!(
            waits,
            [400, 800, 1600, 3200, 5000, 5000, 5000].map(Duration::from_millis)
        );
        r.reset();
        r.failed(now);
        assert_eq!(r.due(), Some(now + RETRY_MIN));
    }

    #[test]
    fn the_pair_is_read_from_the_start_of_the_text() {
        assert_eq!(
            named_pair("AAPL H1: the broker's history request failed (timeout); send WARMUP again"),
            Some(("AAPL".parse().unwrap(), Timeframe::H1))
        );
        for other in [
            "no colon here",
            "AAPL: no timeframe",
            "AAPL H1 extra: three words",
            "AAPL X9: not a timeframe",
            ": nothing",
        ] {
            assert_eq!(named_pair(other), None, "{other}");
        }
    }
}
