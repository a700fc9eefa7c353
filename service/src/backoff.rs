//! Reconnect timing: exponential backoff with jitter. The rule is pure (the random draw is passed
//! in, [`Backoff::next_delay`]); [`Backoff::next_random_delay`] draws it.
//!
//! Jitter only ever shortens a delay, so the cap stays a cap; it keeps clients that lost the same
//! server at the same moment from coming back in lockstep (and the preditor from retrying an
//! executor restart on the very millisecond of every other attempt).

use std::time::Duration;

/// Exponential backoff: `initial × 2^attempt`, capped at `max`, with up to `jitter` of it
/// removed at random.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// `jitter` is the fraction (0..=1) of each delay that may be removed at random; `max` is
    /// raised to `initial` if below it.
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            initial,
            max: max.max(initial),
            jitter: if jitter.is_nan() {
                0.0
            } else {
                jitter.clamp(0.0, 1.0)
            },
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
        let draw = if unit_random.is_nan() {
            0.0
        } else {
            unit_random.clamp(0.0, 1.0)
        };
        Duration::from_secs_f64(capped * (1.0 - self.jitter * draw))
    }

    /// [`Backoff::next_delay`] with a draw from the thread's random generator.
    pub fn next_random_delay(&mut self) -> Duration {
        self.next_delay(rand::random::<f64>())
    }

    /// Called once a connection is fully re-established.
    pub fn reset(&mut self) {
        self.attempt = 0;
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
    fn random_delays_stay_inside_the_band_and_differ() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(5), 0.3);
            let d = b.next_random_delay();
            assert!(
                (Duration::from_millis(140)..=Duration::from_millis(200)).contains(&d),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 1, "64 draws gave one delay: no jitter");
    }

    #[test]
    fn odd_inputs_are_tamed() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1), f64::NAN);
        assert_eq!(b.next_delay(f64::NAN), Duration::from_secs(2), "max raised");
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4), 7.0);
        assert_eq!(
            b.next_delay(2.0),
            Duration::ZERO,
            "jitter and draw clamped to 1"
        );
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_secs(60), 0.0);
        for _ in 0..100 {
            b.next_delay(0.0);
        }
        assert_eq!(b.next_delay(0.0), Duration::from_secs(60), "no overflow");
    }
}
