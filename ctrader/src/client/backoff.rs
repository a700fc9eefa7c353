//! Reconnect timing: exponential backoff with jitter, stretched to a maintenance end time when the
//! server announced one. Pure; the random draw is passed in.

use std::time::Duration;

/// Exponential backoff: `initial × 2^attempt`, capped at `max`, with up to `jitter` of it
/// removed at random so many clients do not reconnect in lockstep after a server restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// `jitter` is the fraction (0..=1) of each delay that may be removed at random.
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            initial,
            max: max.max(initial),
            jitter: jitter.clamp(0.0, 1.0),
            attempt: 0,
        }
    }

    /// Failures since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; `unit_random` is a uniform draw in `[0, 1)`.
    pub fn next_delay(&mut self, unit_random: f64) -> Duration {
        let base = self.initial.as_secs_f64() * 2f64.powi(self.attempt.min(30) as i32);
        let capped = base.min(self.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let keep = 1.0 - self.jitter * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * keep)
    }

    /// Called once a connection is fully re-established.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The wait before reconnecting: the backoff delay, or until the announced maintenance end if later.
pub fn reconnect_delay(
    backoff: Duration,
    maintenance_end_ms: Option<i64>,
    now_ms: i64,
) -> Duration {
    match maintenance_end_ms {
        Some(end) if end > now_ms => backoff.max(Duration::from_millis((end - now_ms) as u64)),
        _ => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap_then_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10), 0.5);
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay(0.0).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.attempt(), 6);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(60), 0.25);
        assert_eq!(b.next_delay(1.0), Duration::from_secs(6));
        let d = b.next_delay(0.5);
        assert_eq!(d, Duration::from_secs_f64(16.0 * 0.875));
    }

    #[test]
    fn maintenance_end_extends_the_wait() {
        let backoff = Duration::from_secs(2);
        assert_eq!(
            reconnect_delay(backoff, Some(1_000_000 + 90_000), 1_000_000),
            Duration::from_secs(90)
        );
        assert_eq!(
            reconnect_delay(backoff, Some(1_000_500), 1_000_000),
            backoff
        );
        assert_eq!(reconnect_delay(backoff, Some(5), 1_000_000), backoff);
        assert_eq!(reconnect_delay(backoff, None, 1_000_000), backoff);
    }
}
