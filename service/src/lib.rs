//! Service plumbing shared by the two daemons (`executor`, `preditor`): the systemd notification
//! protocol ([`notify::SystemdNotifier`]) and the pure rule that decides when progress may feed the
//! watchdog ([`notify::WatchdogGate`]). No trading logic lives here.

pub mod notify;

pub use notify::{SystemdNotifier, WatchdogGate};
