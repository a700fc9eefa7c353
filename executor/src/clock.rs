//! The injected clock. Production uses the system clock; replays and the simulator use the feed's
//! own time (the latest market timestamp plus the wall time elapsed since it arrived), because their
//! bars are historical and the wall clock would call every signal stale.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Market time: advanced by [`FeedClock::observe`] on every bar/spot; between observations it runs
/// at wall speed. Before the first observation it reads the system clock.
/// The latest market time and the wall instant it was seen at.
type MarketMark = Option<(DateTime<Utc>, Instant)>;

#[derive(Debug, Clone, Default)]
pub struct FeedClock {
    last: Arc<Mutex<MarketMark>>,
}

impl FeedClock {
    pub fn observe(&self, market_time: DateTime<Utc>) {
        if let Ok(mut g) = self.last.lock() {
            // Never move backwards: a late tick must not make fresh signals look stale or vice versa.
            let keep = g.is_some_and(|(t, _)| t > market_time);
            if !keep {
                *g = Some((market_time, Instant::now()));
            }
        }
    }
}

impl Clock for FeedClock {
    fn now(&self) -> DateTime<Utc> {
        let g = self.last.lock().ok().and_then(|g| *g);
        match g {
            Some((t, at)) => t + TimeDelta::from_std(at.elapsed()).unwrap_or_default(),
            None => Utc::now(),
        }
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
