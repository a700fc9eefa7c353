//! The hub link (docs/HUB.md): this instance reports to the fleet broker and takes the hub's
//! signed commands, without ever making trading wait.
//!
//! - [`HubSink`], a [`Sink`] on the core loop: turns each [`Report`] into a `fleet` record and
//!   appends it to the [`outbox`] (one `write` to the page cache, never a network call).
//! - [`link`]: the task that connects out to the broker (rumqttc v5 over rustls), sends the outbox
//!   in order with QoS 1, keeps the retained status and its last will, and hands the commands it
//!   receives to the core loop as raw bytes (verified there, `core/hub.rs`).

pub mod link;
pub mod outbox;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet::{AckRecord, BarRecord, DriftRecord, Position, Side, SignalRecord, Stream, Telemetry};
use protocol::{Bar, BarTime, Line, Symbol};

use crate::clock::Clock;
use crate::config::HubConfig;
use crate::core::sink::{Report, Sink};
use crate::drift::{BookOutcome, DriftRow};

pub use link::{Link, LinkError};
pub use outbox::{Appended, OutboxError, Shared};

/// The outbox's directory in the state directory.
pub const OUTBOX_DIR: &str = "hub_outbox";

/// The loop's side of the link.
pub struct HubSink {
    outbox: outbox::Writer,
    clock: Arc<dyn Clock>,
    period: Duration,
    last_telemetry: Option<(DateTime<Utc>, Telemetry)>,
}

impl std::fmt::Debug for HubSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSink").finish_non_exhaustive()
    }
}

/// Opens the outbox under `state_dir` and prepares both sides; the link is started by the loop.
pub fn open(
    cfg: &HubConfig,
    state_dir: &std::path::Path,
    clock: Arc<dyn Clock>,
) -> Result<(HubSink, outbox::Reader), OutboxError> {
    let (writer, reader) = outbox::open(&state_dir.join(OUTBOX_DIR), cfg.outbox_max_bytes)?;
    Ok((
        HubSink {
            outbox: writer,
            clock,
            period: cfg.telemetry_period,
            last_telemetry: None,
        },
        reader,
    ))
}

impl HubSink {
    /// The counters the link and the outbox keep (for `/metrics`).
    pub fn shared(&self) -> Arc<Shared> {
        self.outbox.shared()
    }

    fn ts_ms(&self) -> i64 {
        self.clock.wall().timestamp_millis()
    }

    fn append<B: serde::Serialize>(&mut self, stream: Stream, body: B) {
        let ts = self.ts_ms();
        self.outbox.append(stream, ts, body);
    }

    /// Every `period`, and at once when something other than the marks changed (positions, the
    /// broker link, pause, kill switch, enabled symbols, limits).
    fn telemetry(&mut self, t: &Telemetry) {
        let now = self.clock.wall();
        let due = match &self.last_telemetry {
            None => true,
            Some((at, last)) => {
                now.signed_duration_since(*at).to_std().unwrap_or_default() >= self.period
                    || state_of(last) != state_of(t)
            }
        };
        if due
            && !matches!(
                self.outbox
                    .append(Stream::Telemetry, now.timestamp_millis(), t),
                Appended::Skipped
            )
        {
            self.last_telemetry = Some((now, t.clone()));
        }
    }
}

/// What "on change" compares: everything but money marks.
fn state_of(t: &Telemetry) -> impl PartialEq + use<> {
    let pos = |p: &Option<Position>| p.map(|p| (p.side, p.lots.to_bits()));
    (
        t.broker_link,
        t.paused,
        t.kill_switch,
        t.open_positions,
        t.daily_loss.limit_pct.to_bits(),
        t.total_loss.limit_pct.to_bits(),
        t.symbols
            .iter()
            .map(|s| {
                (
                    s.symbol.clone(),
                    s.enabled,
                    s.virtual_position.side,
                    pos(&s.paper),
                    pos(&s.live),
                )
            })
            .collect::<Vec<_>>(),
    )
}

impl Sink for HubSink {
    fn report(&mut self, r: &Report<'_>) {
        match *r {
            Report::Signal(sig) => self.append(
                Stream::Signals,
                SignalRecord {
                    line: Line::Signal(sig.clone()).to_string(),
                },
            ),
            Report::Ack(book, ack) => self.append(
                Stream::Acks,
                AckRecord {
                    book: crate::core::fleet_book(book),
                    line: Line::Ack(ack.clone()).to_string(),
                },
            ),
            Report::Bar(b) => {
                let bar = Bar {
                    time: b.time.unix_seconds(),
                    open: b.open.to_f64(),
                    high: b.high.to_f64(),
                    low: b.low.to_f64(),
                    close: b.close.to_f64(),
                    volume: b.volume,
                };
                match BarRecord::new(b.symbol.clone(), b.timeframe, &bar) {
                    Ok(rec) => self.append(Stream::Bars, rec),
                    Err(e) => {
                        tracing::warn!(error = %e, "a bar the hub's contract refuses is not sent")
                    }
                }
            }
            Report::Drift(row) => {
                if let Some(rec) = drift_record(row) {
                    self.append(Stream::Drift, rec);
                }
            }
            Report::Telemetry(t) => self.telemetry(t),
            Report::CommandResult(o) => self.append(Stream::CommandResults, o),
            Report::Stopping => self.outbox.stop(),
            Report::Ready(_) | Report::Reloading | Report::Status(_) | Report::Progress(_) => {}
        }
    }
}

/// `LONG 0.01`, `SHORT 0.02+SHORT 0.01`, `FLAT` (crate::desk::describe_positions) as a position.
fn position(text: &str, pnl: f64) -> Position {
    let mut side = Side::Flat;
    let mut lots = 0.0;
    for part in text.split('+') {
        let mut it = part.split_whitespace();
        match (it.next(), it.next().and_then(|l| l.parse::<f64>().ok())) {
            (Some("LONG"), Some(l)) => {
                side = Side::Long;
                lots += l;
            }
            (Some("SHORT"), Some(l)) => {
                side = Side::Short;
                lots += l;
            }
            _ => {}
        }
    }
    if lots <= 0.0 {
        side = Side::Flat;
        lots = 0.0;
    }
    Position { side, lots, pnl }
}

fn drift_record(row: &DriftRow) -> Option<DriftRecord> {
    let symbol: Symbol = row.symbol.parse().ok()?;
    let bar_time: BarTime = row.bar.parse().ok()?;
    let target = position(&row.target, row.virtual_pnl.parse().unwrap_or(0.0));
    let book = |b: &Option<BookOutcome>| b.as_ref().map(|o| position(&o.position, o.pnl));
    let (live, paper) = (book(&row.live), book(&row.paper));
    let same = |p: &Option<Position>| {
        p.is_none_or(|p| p.side == target.side && (p.lots - target.lots).abs() < 1e-9)
    };
    let in_sync = same(&live) && same(&paper);
    let reason = [&row.live, &row.paper]
        .into_iter()
        .flatten()
        .map(|o| o.reason.clone())
        .find(|r| !r.is_empty());
    Some(DriftRecord {
        symbol,
        bar_time,
        target,
        live,
        paper,
        in_sync,
        reason: if in_sync { None } else { reason },
        // drift.csv's slippage is in price units; the record's is in points: left out.
        slippage_points: None,
    })
}
