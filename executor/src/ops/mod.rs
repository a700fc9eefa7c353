//! Operating a running executor (docs/OPERATIONS.md, "Operator commands", "Health and metrics"):
//!
//! - [`commands`]: the operator commands of the `fleet` crate as pure logic — which runs, which is
//!   refused (naming the field), a repeated id answered again, the kill switch winning, Flatten's
//!   confirmation.
//! - [`overlay`]: `settings_overlay.json` in the state directory, what commands changed on top of
//!   `executor_config.json`, kept across restarts.
pub mod commands;
pub mod overlay;
