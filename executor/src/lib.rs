//! executor — the hands of Oracle Trader: turns the preditor's SIGNAL lines into orders.
//!
//! Map (pure, synchronous logic first; I/O shells last):
//! - [`config`]: `executor_config.json` — per-symbol lots/enablement, risk limits, broker and IPC
//!   settings; validation that reports every problem at once.
//! - [`lots`]: intensity → lots, target positions.
//! - [`orders`]: intents, fills, positions, account snapshots, deterministic client order ids.
//! - [`risk`]: the risk guard; only a [`risk::RiskApproved`] open intent can reach a broker.
//! - [`engine`]: the signal engine (DESIGN.md §6) — a pure state machine with an injected clock.
//! - [`broker`]: the `Broker` trait, the paper book and the cTrader adapter (over `ctrader::client`).
//! - [`journal`]: append-only, fsynced intent journal (written before every order).
//! - [`json_keys`]: finds keys a JSON text repeats (the config refuses them).
//! - [`drift`]: `drift.csv` rows; [`report`]: `executor drift-report` (text and HTML) from them.
//! - [`barfeed`]: the pure closed-bar detector and the CSV bar source.
//! - [`secrets`] (the shared `service::secret`), [`state`], [`clock`], [`ntp`]: 0600 secret files,
//!   atomic state and the state-dir lock, the injected clock, the kernel's NTP status.
//! - [`reconcile`]: the live book's positions from the broker's events (late, repeated and
//!   reordered ones ignored) and reconciles, and when to reconcile.
//! - [`resolve`]: orders of unknown fate looked up in the broker's positions.
//! - [`desk`]: one book (engine + broker + journal) executing plans; [`desk_state`]: what it
//!   must not forget (risk baseline, kill switch), kept in its file and its journal.
//! - [`session`]: one connection's pure line handling (HELLO/token, bad input, control lines).
//! - [`signals_log`]: the tail-able `signals.log` of every line in and out.
//! - [`notify`]: systemd `READY`/`STATUS`/`WATCHDOG`/`STOPPING` (the shared `service` crate).
//! - [`onboarding`]: `executor auth` (OAuth2 code flow → token file), `executor accounts`, and what a
//!   refused connection setup means.
//! - [`server`]: startup, the loopback WebSocket server, and the core loop that owns the books.
pub mod admission;
pub mod bar_memory;
pub mod barfeed;
pub mod broker;
pub mod clock;
pub mod config;
pub mod desk;
pub mod desk_state;
pub mod drift;
pub mod engine;
pub mod ipc;
pub mod journal;
pub mod json_keys;
pub mod lots;
pub use service::notify;
pub mod ntp;
pub mod onboarding;
pub mod orders;
pub mod reconcile;
pub mod report;
pub mod resolve;
pub mod risk;
pub use service::secret as secrets;
pub mod server;
pub mod session;
pub mod signals_log;
pub mod state;
pub mod warmup;
