//! Plumbing the two daemons (`executor`, `preditor`) and the cTrader client share. No trading
//! logic lives here.
//!
//! Map:
//! - [`notify`]: the systemd notification protocol ([`SystemdNotifier`]) and the pure rule that
//!   decides when progress may feed the watchdog ([`WatchdogGate`]).
//! - [`secret`]: secret files readable by their owner only ([`read_secret`]).
//! - [`atomic`]: replacing a file so a crash leaves the old or the new content ([`write_atomic`];
//!   [`write_atomic_with`] streams content too large to build in memory first).
//! - [`backoff`]: exponential reconnect backoff with jitter ([`Backoff`]).
//! - [`health`]: `/healthz` by the watchdog's rule ([`Liveness`]); with the `http` feature, the
//!   loopback `/healthz` + `/metrics` listener (`http`).

pub mod atomic;
pub mod backoff;
pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod notify;
pub mod secret;

pub use atomic::{Access, AtomicWriteError, write_atomic, write_atomic_with};
pub use backoff::Backoff;
pub use health::Liveness;
pub use notify::{SystemdNotifier, WatchdogGate};
pub use secret::{SecretError, read_secret};
