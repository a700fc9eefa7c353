//! Oracle Trader IPC line protocol: the text lines the preditor and the executor exchange over a
//! loopback WebSocket. Types, strict parsing and canonical formatting only; no I/O.
//! `PROTOCOL.md` next to this crate is the specification.
//!
//! Map:
//! - [`lines`]: [`Line`] and one type per line (`HELLO AUTH BAR WARMUP HISTORY HISTORY_END SIGNAL
//!   ACK ERROR`); `FromStr` (strict, total, never panics) and `Display` (canonical text);
//!   [`parse_message`] for a WebSocket message carrying several lines.
//! - [`bar`]: the one [`Bar`] of the workspace (open time, OHLC in f64, tick volume), its rules
//!   (ENV.md §1), its BAR line form ([`BarLine`]), and the parser of bar times in files.
//! - `bars_file` (feature `csv`): the one reader (and writer) of bars CSV files, for the backtest,
//!   the paper replay, the simulator and the hub's export alike.
//! - [`values`]: validated field values: [`Symbol`], [`Timeframe`], [`BarTime`], [`Decimal`], [`Mode`].
//! - [`action`]: the policy's seven [`Action`]s and their [`Direction`] / [`Intensity`].
//! - [`auth`]: the handshake's [`Nonce`] and [`Proof`] values; `handshake` (feature `handshake`):
//!   the mutual HMAC challenge–response that computes and checks them.
//! - [`codes`]: ACK [`Reason`]s and [`ErrorCode`]s, with forward-compatible `Other` codes.
//! - [`error`]: [`ParseError`] (line type + field name + why) and the field-level [`ValueError`].
//! - [`mod@redact`]: what a log shows of a line, raw or parsed (handshake values as `***`).
//!
//! ```
//! use protocol::{Action, Line};
//! let line: Line = "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1".parse()?;
//! let Line::Signal(signal) = &line else { unreachable!() };
//! assert_eq!(signal.action, Action::LongWeak);
//! assert_eq!(line.to_string(), "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1");
//! # Ok::<(), protocol::ParseError>(())
//! ```

pub mod action;
pub mod auth;
pub mod bar;
#[cfg(feature = "csv")]
pub mod bars_file;
pub mod codes;
pub mod error;
#[cfg(feature = "handshake")]
pub mod handshake;
pub mod lines;
pub mod redact;
#[cfg(feature = "serde")]
mod serde_impls;
pub mod values;

pub use action::{Action, Direction, Intensity};
pub use auth::{Nonce, Proof};
pub use bar::{Bar, BarError};
pub use codes::{ErrorCode, Reason};
pub use error::{ParseError, ParseErrorKind, ValueError};
pub use lines::{
    Ack, AckOutcome, Auth, BarLine, ErrorLine, Hello, History, HistoryEnd, LINE_TYPES, Line,
    Redacted, Signal, Warmup, parse_message, signal_identity,
};
pub use redact::redact;
pub use values::{BarTime, Decimal, Mode, Symbol, Timeframe};

/// Longest accepted line in bytes (without the `\n` separator). Longer lines are refused with
/// [`ParseErrorKind::TooLong`] before any other work, so a hostile peer cannot make the parser
/// chew on megabytes.
pub const MAX_LINE_LEN: usize = 4096;
