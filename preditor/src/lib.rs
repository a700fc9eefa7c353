//! preditor — the Oracle Trader brain: a digital twin of the training environment per symbol.
//!
//! Map (pure decision logic first, I/O shells last):
//! - [`bars`]: the bar type and the bars CSV layouts (ENV.md §1).
//! - [`model`]: the atomic model zip — metadata validation (ENV.md §8); [`plans`]: its two graphs ready
//!   to run (the policy's tract plan; [`emission`]: the export.py HMM graph evaluated natively).
//! - [`features`]: policy and HMM features over one window, f64 (ENV.md §4-§5).
//! - [`hmm`]: the causal scaled forward filter (per-bar scaled emissions `e_s`) → regime (ENV.md §5).
//! - [`twin`]: virtual position, `execute_action`, observation, and the pure `step` (ENV.md §6-§7).
//! - [`series`]: many consecutive windows at once (backtest, history replay); [`live_window`]: the live
//!   bar's step, prepared between bars. Both give the per-window step's bits.
//! - [`fifo`]: the per-symbol ring of the last `W` bars.
//! - [`state`]: the twin state persisted atomically per symbol.
//! - [`backtest`]: the step over a whole series, and its CSV; [`summary`]: the trader's summary of it.
//! - [`session`]: per-symbol live logic (warmup, resume, per-bar step) without I/O.
//! - [`notify`]: systemd `sd_notify` (READY, STATUS, progress-gated WATCHDOG, STOPPING; the shared `service` crate).
//! - [`metrics`]: the `/metrics` series (bars, signals, each twin's position, regime and PnL).
//! - [`sync`]: one twin's sync with the executor (waiting, receiving a HISTORY, live), a pure state
//!   machine; [`warmup_retry`]: when to ask WARMUP again after `ERROR|HISTORY_UNAVAILABLE`.
//! - [`live`]: the WebSocket client to the executor (tokio), reconnect and shutdown: the I/O shell
//!   around [`session`] and [`sync`]; its `lines.rs` handles each received line (HISTORY, BAR, a
//!   refused WARMUP) without I/O.
//! - [`v1`]: recognises the specification's v1 model zip and names the command that converts it.

pub mod backtest;
pub mod bars;
pub mod emission;
pub mod features;
pub mod fifo;
pub mod hmm;
pub mod live;
pub mod live_window;
pub mod metrics;
pub mod model;
pub mod plans;
pub mod policy;
pub mod series;
pub use service::notify;
pub mod session;
pub mod state;
pub mod summary;
pub mod sync;
pub mod twin;
pub mod v1;
pub mod warmup_retry;
