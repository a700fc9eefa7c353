//! `/healthz`: is the daemon making progress? By the same rule that feeds the systemd watchdog
//! ([`crate::notify`]): the daemon's main loop reports real progress (never a task of its own), and
//! the daemon is healthy while its last progress is younger than the watchdog interval — the time
//! after which systemd, missing `WATCHDOG=1`, would restart it. So a probe that sees 503 sees what
//! systemd is about to act on, and the body says why.
//!
//! [`Liveness`] is the shared handle (atomics: the main loop writes, the HTTP thread reads);
//! [`judge`] is the rule, pure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The watchdog interval when systemd gives none (`WatchdogSec=60` in the shipped units).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The rule: `Ok` while ready and the last progress is younger than `interval`; else why not.
/// `since_progress` is `None` when no progress was ever reported (then time since ready counts).
pub fn judge(
    ready: bool,
    stopping: bool,
    since_progress: Option<Duration>,
    since_ready: Duration,
    interval: Duration,
) -> Result<(), String> {
    if stopping {
        return Err("stopping".into());
    }
    if !ready {
        return Err("starting: not ready yet".into());
    }
    let quiet = since_progress.unwrap_or(since_ready);
    if quiet >= interval {
        return Err(format!(
            "no progress for {:.1} s (watchdog interval {:.1} s): the main loop is stuck or its feed is silent; systemd restarts it once the watchdog expires",
            quiet.as_secs_f64(),
            interval.as_secs_f64()
        ));
    }
    Ok(())
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    interval: Duration,
    /// Milliseconds since `origin` + 1 of the last progress; 0 = none yet.
    last_progress: AtomicU64,
    /// Milliseconds since `origin` when the daemon said READY.
    ready_at: AtomicU64,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// The last `STATUS=` line, shown with the answer.
    status: Mutex<String>,
}

/// What `/healthz` reads and the main loop writes.
#[derive(Debug, Clone)]
pub struct Liveness(Arc<Inner>);

impl Default for Liveness {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL)
    }
}

impl Liveness {
    pub fn new(interval: Duration) -> Self {
        Self(Arc::new(Inner {
            origin: Instant::now(),
            interval,
            last_progress: AtomicU64::new(0),
            ready_at: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            status: Mutex::new(String::new()),
        }))
    }

    pub fn interval(&self) -> Duration {
        self.0.interval
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.0.origin).as_millis() as u64
    }

    pub fn progress(&self, now: Instant) {
        self.0
            .last_progress
            .store(self.ms(now).saturating_add(1), Ordering::Relaxed);
    }

    pub fn ready(&self, now: Instant) {
        if !self.0.ready.swap(true, Ordering::Relaxed) {
            self.0.ready_at.store(self.ms(now), Ordering::Relaxed);
        }
    }

    pub fn stopping(&self) {
        self.0.stopping.store(true, Ordering::Relaxed);
    }

    pub fn status(&self, status: &str) {
        if let Ok(mut s) = self.0.status.lock() {
            s.clear();
            s.push_str(status);
        }
    }

    /// `Ok(status line)` when healthy, else `Err(reason and status line)`.
    pub fn check(&self, now: Instant) -> Result<String, String> {
        let i = &self.0;
        let now_ms = self.ms(now);
        let last = i.last_progress.load(Ordering::Relaxed);
        let since_progress =
            (last > 0).then(|| Duration::from_millis(now_ms.saturating_sub(last - 1)));
        let since_ready =
            Duration::from_millis(now_ms.saturating_sub(i.ready_at.load(Ordering::Relaxed)));
        let status = i.status.lock().map(|s| s.clone()).unwrap_or_default();
        match judge(
            i.ready.load(Ordering::Relaxed),
            i.stopping.load(Ordering::Relaxed),
            since_progress,
            since_ready,
            i.interval,
        ) {
            Ok(()) => Ok(status),
            Err(why) if status.is_empty() => Err(why),
            Err(why) => Err(format!("{why}; status: {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn healthy_only_while_progress_is_younger_than_the_watchdog_interval() {
        assert!(judge(true, false, Some(s(59)), s(1000), s(60)).is_ok());
        let e = judge(true, false, Some(s(60)), s(1000), s(60)).unwrap_err();
        assert!(
            e.contains("no progress for 60.0 s (watchdog interval 60.0 s)"),
            "{e}"
        );
        // Never progressed: the time since READY counts.
        assert!(judge(true, false, None, s(10), s(60)).is_ok());
        assert!(judge(true, false, None, s(61), s(60)).is_err());
        assert!(
            judge(false, false, Some(s(0)), s(0), s(60))
                .unwrap_err()
                .contains("starting")
        );
        assert_eq!(
            judge(true, true, Some(s(0)), s(0), s(60)).unwrap_err(),
            "stopping"
        );
    }

    #[test]
    fn liveness_follows_progress_and_carries_the_status() {
        let l = Liveness::new(Duration::from_millis(100));
        let t0 = Instant::now();
        assert!(l.check(t0).unwrap_err().contains("starting"));
        l.ready(t0);
        l.status("live: 2 twin(s) synced");
        assert_eq!(l.check(t0).unwrap(), "live: 2 twin(s) synced");
        l.progress(t0 + Duration::from_millis(50));
        assert!(l.check(t0 + Duration::from_millis(149)).is_ok());
        let e = l.check(t0 + Duration::from_millis(150)).unwrap_err();
        assert!(
            e.contains("no progress") && e.contains("status: live: 2"),
            "{e}"
        );
        l.progress(t0 + Duration::from_millis(150));
        assert!(l.check(t0 + Duration::from_millis(160)).is_ok());
        l.stopping();
        assert!(l.check(t0 + Duration::from_millis(160)).is_err());
    }
}
