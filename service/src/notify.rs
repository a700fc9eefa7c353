//! systemd readiness and watchdog (`sd_notify`), as `docs/OPERATIONS.md` specifies for the
//! `Type=notify` / `WatchdogSec=` units of both daemons.
//!
//! [`WatchdogGate`] is the pure rule: ping only when real progress happened since the last ping,
//! and at most every half watchdog interval. [`SystemdNotifier`] is the I/O shell over the
//! `sd-notify` crate; it does nothing when `NOTIFY_SOCKET` is unset (tests, the demo).
//!
//! Progress is reported by each daemon's main loop only (executor: a served preditor line, a broker
//! event, a paper replay tick, a broker probe answered; preditor: any WebSocket message from the
//! executor, including its 15 s Ping, or a reconnect attempt), never by a task of its own: a wedged
//! loop must stop the pings so that systemd restarts the process.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::health::{DEFAULT_INTERVAL, Liveness};

/// Decides when a `WATCHDOG=1` may be sent. Time is injected.
#[derive(Debug, Clone)]
pub struct WatchdogGate {
    min_gap: Duration,
    last_ping: Option<Instant>,
    progressed: bool,
}

impl WatchdogGate {
    /// `interval` is systemd's `WATCHDOG_USEC`; pings are spaced by at least half of it, which
    /// leaves a whole half interval for the next progress to arrive.
    pub fn new(interval: Duration) -> Self {
        WatchdogGate {
            min_gap: interval / 2,
            last_ping: None,
            progressed: false,
        }
    }

    /// The smallest spacing between two pings.
    pub fn min_gap(&self) -> Duration {
        self.min_gap
    }

    /// Records real progress at `now`; true when a ping should be sent now.
    pub fn on_progress(&mut self, now: Instant) -> bool {
        self.progressed = true;
        self.poll(now)
    }

    /// True when progress is pending and the last ping is at least the minimum gap old. A `true`
    /// consumes the pending progress (the caller sends the ping).
    pub fn poll(&mut self, now: Instant) -> bool {
        let due = self
            .last_ping
            .is_none_or(|t| now.saturating_duration_since(t) >= self.min_gap);
        if self.progressed && due {
            self.progressed = false;
            self.last_ping = Some(now);
            true
        } else {
            false
        }
    }
}

/// A daemon's side of the systemd notification protocol.
#[derive(Debug, Default)]
pub struct SystemdNotifier {
    /// `None`: not started by systemd (no `NOTIFY_SOCKET`), every call is a no-op.
    enabled: bool,
    /// `None` when systemd did not enable the watchdog for this process.
    gate: Option<WatchdogGate>,
    last_status: String,
    /// What `/healthz` reads: fed by the same calls, whether systemd listens or not.
    liveness: Liveness,
}

impl SystemdNotifier {
    /// A notifier that never sends anything.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the variables are left in place).
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let mut usec = 0u64;
        let gate = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| WatchdogGate::new(Duration::from_micros(usec)));
        if let Some(g) = &gate {
            tracing::info!(
                min_gap_ms = g.min_gap().as_millis() as u64,
                "systemd watchdog enabled; pinged on progress only"
            );
        }
        let interval = if usec > 0 {
            Duration::from_micros(usec)
        } else {
            DEFAULT_INTERVAL
        };
        SystemdNotifier {
            enabled,
            gate,
            last_status: String::new(),
            liveness: Liveness::new(interval),
        }
    }

    /// The handle `/healthz` reads (ready, status, progress: what this notifier is told).
    pub fn liveness(&self) -> Liveness {
        self.liveness.clone()
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }

    /// `READY=1` with the current status line.
    pub fn ready(&mut self, status: &str) {
        self.liveness.ready(Instant::now());
        self.liveness.status(status);
        self.last_status = status.to_string();
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STATUS=` when it differs from the last one sent.
    pub fn status(&mut self, status: &str) {
        if self.last_status != status {
            self.liveness.status(status);
            self.last_status = status.to_string();
            self.send(&[NotifyState::Status(status)]);
        }
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, which systemd requires for `Type=notify-reload`).
    pub fn reloading(&mut self) {
        let mut states = vec![NotifyState::Reloading];
        match NotifyState::monotonic_usec_now() {
            Ok(m) => states.push(m),
            Err(e) => tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC for MONOTONIC_USEC"),
        }
        self.send(&states);
    }

    /// `STOPPING=1`.
    pub fn stopping(&mut self) {
        self.liveness.stopping();
        self.last_status = "stopping".into();
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// Real progress at `now`: sends `WATCHDOG=1` when the gate allows it.
    pub fn progress(&mut self, now: Instant) {
        self.liveness.progress(now);
        let ping = self.gate.as_mut().is_some_and(|g| g.on_progress(now));
        if ping {
            self.send(&[NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_progress_pings_at_once() {
        let t0 = Instant::now();
        let mut g = WatchdogGate::new(ms(60_000));
        assert_eq!(g.min_gap(), ms(30_000));
        assert!(g.on_progress(t0));
    }

    #[test]
    fn no_progress_no_ping_however_long_it_waits() {
        let t0 = Instant::now();
        let mut g = WatchdogGate::new(ms(1_000));
        assert!(!g.poll(t0));
        assert!(!g.poll(t0 + ms(10_000)));
        assert!(g.on_progress(t0 + ms(10_001)));
        // the ping consumed the progress: time alone does not ping again
        assert!(!g.poll(t0 + ms(20_000)));
    }

    #[test]
    fn pings_at_most_every_half_interval() {
        let t0 = Instant::now();
        let mut g = WatchdogGate::new(ms(1_000));
        assert!(g.on_progress(t0));
        let pings: Vec<u64> = (1..=20u64)
            .map(|i| i * 100)
            .filter(|&t| g.on_progress(t0 + ms(t)))
            .collect();
        assert_eq!(pings, vec![500, 1000, 1500, 2000]);
    }

    #[test]
    fn progress_too_soon_is_kept_until_the_gap_has_passed() {
        let t0 = Instant::now();
        let mut g = WatchdogGate::new(ms(1_000));
        assert!(g.on_progress(t0));
        assert!(!g.on_progress(t0 + ms(100)));
        assert!(!g.poll(t0 + ms(499)));
        assert!(g.poll(t0 + ms(500)));
        assert!(!g.poll(t0 + ms(1_500)));
    }

    #[test]
    fn a_clock_going_backwards_does_not_ping_early() {
        let t0 = Instant::now() + ms(10_000);
        let mut g = WatchdogGate::new(ms(1_000));
        assert!(g.on_progress(t0));
        assert!(!g.on_progress(t0 - ms(5_000)));
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_does_not_fail() {
        let mut n = SystemdNotifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x");
        n.status("y");
        n.reloading();
        n.progress(Instant::now());
        n.stopping();
    }
}
