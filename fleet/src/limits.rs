//! Size bounds of everything on the wire. A compromised instance (or a broken one) can send
//! anything; these keep every decoder's memory and time bounded before parsing starts. The broker
//! enforces `max_packet_size` (hub/mosquitto/oracle-fleet.conf) above the largest of them.

/// Any record except telemetry and command results.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Telemetry carries every symbol's books: up to [`MAX_SYMBOLS`] of them.
pub const MAX_TELEMETRY_BYTES: usize = 128 * 1024;
/// A command result can carry the status document (every symbol's settings and telemetry).
pub const MAX_RESULT_BYTES: usize = 192 * 1024;
/// A signed command on `oracle/{id}/commands`.
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// Symbols in one telemetry record or status document.
pub const MAX_SYMBOLS: usize = 128;
/// A free-text field (a reason, a message, a version string).
pub const MAX_TEXT: usize = 512;
/// The broker's `max_packet_size` must be at least this (largest payload + topic + headers).
pub const BROKER_MAX_PACKET: usize = 256 * 1024;
