//! `ctrader-sim`: a protocol-faithful cTrader Open API simulator (see `ctrader-sim/SIM.md`).
//!
//! Pure, synchronous decision logic, each tested on its own:
//! - [`bars`]: `<SYMBOL>.csv` loading (the workspace's one reader, `protocol::bars_file`, plus the
//!   simulator's positive-price rule) and the shared [`bars::Timeline`] of bar open times.
//! - [`symbols`]: the contract catalog (digits, pipPosition, lotSize, volumes, spread, leverage).
//! - [`replay`]: the replay clock — which bars are closed, which one is forming, when a step is due.
//! - [`book`]: the hedged account — quotes, margin, positions, orders, deals, balance, SL/TP levels.
//! - [`fills`]: how a market order or a close executes — spread, slippage, one deal or several, or
//!   cut short — and the steps the server reports for it.
//! - [`faults`]: the control-command language and the fault state it drives.
//! - [`latency`]: New Bar → Order Sent latency per symbol (p50/p99/max); a close with no new bar
//!   after it (before a gap) is counted, not timed.
//! - [`money`]: cents ↔ the wire's `moneyDigits` scaling.
//! - [`core`]: the protocol state machine — Open API requests in, responses and events out, for
//!   every connection, with time injected (split by concern: one request's dispatch, market data,
//!   trading, the trader entity, the history limits); [`wire`]: the book's positions, orders and
//!   deals as messages.
//!
//! Thin async I/O around it:
//! - [`tls`]: the self-signed certificate and the rustls server config.
//! - [`server`]: the TLS listener, per-connection tasks, the replay driver and the control socket.

pub mod bars;
pub mod book;
pub mod core;
pub mod faults;
pub mod fills;
pub mod latency;
pub mod money;
pub mod replay;
pub mod server;
pub mod symbols;
pub mod tls;
pub mod wire;

use std::path::PathBuf;

/// Everything that can stop the simulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read or write {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bars(#[from] protocol::bars_file::BarsFileError),
    #[error("{}: the file holds no bars", .0.display())]
    NoBars(PathBuf),
    #[error("no `<SYMBOL>.csv` bar files in {} (pass --data DIR with files like EURUSD.csv)", .0.display())]
    NoBarFiles(PathBuf),
    #[error("every bars file has fewer than 2 bars: the bar period cannot be inferred")]
    TooFewBars,
    #[error("--start-bar {start_bar} must be between 1 and {} (the data has {bars} bar times)", bars.saturating_sub(1))]
    BadStartBar { start_bar: usize, bars: usize },
    #[error("bar period of {0} ms is not a cTrader trendbar period (M1..D1, W1)")]
    UnsupportedPeriod(i64),
    #[error("TLS setup: {0}")]
    Tls(String),
}
