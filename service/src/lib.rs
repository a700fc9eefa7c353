//! Service plumbing shared by the two daemons (`executor`, `preditor`): the systemd notification
//! protocol ([`notify::SystemdNotifier`]) and the pure rule that decides when progress may feed the
//! watchdog ([`notify::WatchdogGate`]), `/healthz` by the same rule ([`health::Liveness`]) and,
//! with the `http` feature, the loopback `/healthz` + `/metrics` listener (`http`). No trading
//! logic lives here.

pub mod health;
#[cfg(feature = "http")]
pub mod http;
pub mod notify;

pub use health::Liveness;
pub use notify::{SystemdNotifier, WatchdogGate};
