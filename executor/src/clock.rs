//! The one clock. Every time the executor reads goes through a [`Clock`]: the market time signals
//! and bar closes are judged by ([`Clock::now`]), the wall time of things the real world times (a
//! broker's announced maintenance end, an archive's name: [`Clock::wall`]) and the monotonic
//! instant of schedules and the watchdog ([`Clock::instant`], tokio's, so a test that pauses tokio
//! drives it).
//!
//! Production passes [`SystemClock`]; a replay whose bars are historical passes [`FeedClock`] (the
//! latest market timestamp plus the time elapsed since it arrived), or the wall clock would call
//! every signal stale; tests pass [`TokioClock`] under `tokio::time::pause`, or a [`ManualClock`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time signals are judged by.
    fn now(&self) -> DateTime<Utc>;

    /// The wall-clock time (a replay's market clock may run hours a second, or repeat).
    fn wall(&self) -> DateTime<Utc> {
        self.now()
    }

    /// The monotonic instant: tokio's clock, which `tokio::time::pause` stops and `advance` moves.
    fn instant(&self) -> Instant {
        Instant::now()
    }

    /// A market timestamp was seen (a spot, a bar's close); only a clock that follows the feed
    /// uses it.
    fn observe(&self, _market_time: DateTime<Utc>) {}
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The latest market time and the instant it was seen at.
type MarketMark = Option<(DateTime<Utc>, Instant)>;

/// Market time: advanced by [`Clock::observe`] on every bar/spot; between observations it runs at
/// the speed of the monotonic clock. Before the first observation it reads the system clock.
#[derive(Debug, Clone, Default)]
pub struct FeedClock {
    last: Arc<Mutex<MarketMark>>,
}

impl Clock for FeedClock {
    fn now(&self) -> DateTime<Utc> {
        let g = self.last.lock().ok().and_then(|g| *g);
        match g {
            Some((t, at)) => t + TimeDelta::from_std(at.elapsed()).unwrap_or_default(),
            None => Utc::now(),
        }
    }

    fn wall(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn observe(&self, market_time: DateTime<Utc>) {
        if let Ok(mut g) = self.last.lock() {
            // Never move backwards: a late tick must not make fresh signals look stale or vice versa.
            let keep = g.is_some_and(|(t, _)| t > market_time);
            if !keep {
                *g = Some((market_time, Instant::now()));
            }
        }
    }
}

/// Wall time as tokio's clock sees it: `start` plus the tokio time elapsed since the clock was
/// made. Under `tokio::time::pause` (or `#[tokio::test(start_paused = true)]`) it stands still
/// until the test advances time, together with every timer of the executor.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: Instant,
}

impl TokioClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        TokioClock {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + TimeDelta::from_std(self.origin.elapsed()).unwrap_or_default()
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(t)))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut g) = self.0.lock() {
            *g = t;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|g| *g).unwrap_or_else(|_| Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_tokio_clock_moves_only_with_tokio_time() {
        let start: DateTime<Utc> = "2026-02-03T10:00:00Z".parse().unwrap();
        let c = TokioClock::new(start);
        assert_eq!(c.now(), start);
        tokio::time::advance(std::time::Duration::from_millis(1500)).await;
        assert_eq!(c.now(), start + TimeDelta::milliseconds(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_feed_clock_runs_on_from_the_last_market_time_and_never_back() {
        let f = FeedClock::default();
        let t: DateTime<Utc> = "2026-02-03T10:00:00Z".parse().unwrap();
        f.observe(t);
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        assert_eq!(f.now(), t + TimeDelta::seconds(2));
        f.observe(t - TimeDelta::hours(1));
        assert_eq!(
            f.now(),
            t + TimeDelta::seconds(2),
            "a late tick moves nothing"
        );
    }
}
