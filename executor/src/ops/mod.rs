//! Operating a running executor (docs/OPERATIONS.md, "Operator commands", "Health and metrics"):
//!
//! - [`commands`]: the operator commands of the `fleet` crate as pure logic — which runs, which is
//!   refused (naming the field), a repeated id answered again, the kill switch winning, Flatten's
//!   confirmation.
//! - [`overlay`]: `settings_overlay.json` in the state directory, what commands changed on top of
//!   `executor_config.json`, kept across restarts.
//! - [`ctl`]: the 0600 Unix socket `executor ctl` talks to (peer credentials checked, bounded
//!   framing), feeding the core loop.
//! - [`ctl_client`]: `executor ctl` itself; [`status`]: the status document and its text.
//! - [`metrics`]: the `/metrics` series (bounded labels).
//! - [`snapshot`]: consistent copies of the state for backups (`executor snapshot`).
pub mod commands;
pub mod ctl;
pub mod ctl_client;
pub mod metrics;
pub mod overlay;
pub mod snapshot;
pub mod status;
