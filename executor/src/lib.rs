//! executor — the hands of Oracle Trader: turns the preditor's SIGNAL lines into orders.
//!
//! Map, from `main()` to the signal decision: [`startup`] builds an [`Executor`] (the books, the
//! feed, the preditor link); [`core`] runs its one loop over one [`core::event::Event`] type, and a
//! SIGNAL goes to [`desk::Desk::handle_batch`], whose [`desk::engine::SignalEngine`] decides.
//!
//! - [`core`]: the loop, its event type, its sources and sinks, and the handlers (signals, bars,
//!   the broker's link, operator commands). Operator commands enter as `Event::Command`; outputs
//!   leave through [`core::sink::Sink`] (drift.csv, systemd), which never blocks the loop.
//! - [`startup`]: directories and the state-dir lock, the IPC token, the books and the journal's
//!   recovery, the logs, the feed.
//! - [`feed`]: where closed bars and WARMUP history come from: the CSV replay (paper) or the cTrader
//!   link (live, shadow), with its gaps and health; [`feed::bars`]: the pure closed-bar detector
//!   and the CSV bar source.
//! - [`ipc`]: the loopback WebSocket server, one connection's pure session, admission, WARMUP
//!   answers, the active preditor, `signals.log`.
//! - [`desk`]: one book (engine + broker + journal) executing plans: the signal engine (a pure
//!   state machine with an injected clock), the risk guard (only a [`desk::risk::RiskApproved`]
//!   open intent reaches a broker), intensity → lots, the bar memory, the one resolve rule for an
//!   order of unknown fate (in the run and at startup), and what the desk must not forget.
//! - [`broker`]: the `Broker` trait, the paper book and the cTrader adapter (over
//!   `ctrader::client`), the live book's positions from the broker's events
//!   ([`broker::live_book`]).
//! - [`orders`]: intents, fills, positions, account snapshots, deterministic client order ids.
//! - [`journal`]: append-only, fsynced, typed intent journal (written before every order).
//! - [`drift`]: `drift.csv` rows and `executor drift-report` (text and HTML).
//! - [`config`]: `executor_config.json` — per-symbol lots/enablement, risk limits, broker and IPC
//!   settings; validation that reports every problem at once. [`json_keys`]: keys a JSON text
//!   repeats (the config refuses them).
//! - [`secrets`] (the shared `service::secret`), [`state`], [`clock`], [`ntp`]: 0600 secret files,
//!   atomic state and the state-dir lock, the one injected clock, the kernel's NTP status.
//! - [`notify`]: systemd `READY`/`STATUS`/`WATCHDOG`/`STOPPING` (the shared `service` crate).
//! - [`onboarding`]: `executor auth` (OAuth2 code flow → token file), `executor accounts`, and what a
//!   refused connection setup means.
//! - [`ops`]: operator commands (`executor ctl`), the settings overlay, status, `/healthz` and
//!   `/metrics`, state snapshots for backups.
pub mod broker;
pub mod clock;
pub mod config;
pub mod core;
pub mod desk;
pub mod drift;
pub mod feed;
pub mod hub;
pub mod ipc;
pub mod journal;
pub mod json_keys;
pub use service::notify;
pub mod ntp;
pub mod onboarding;
pub mod ops;
pub mod orders;
pub use service::secret as secrets;
pub mod startup;
pub mod state;

pub use crate::core::{Executor, RunError};

/// The executor's version, in its HELLO.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
