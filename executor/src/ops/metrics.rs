//! The executor's `/metrics`: the series docs/OPERATIONS.md ("Health and metrics") lists, in
//! Prometheus's text format, through the tikv `prometheus` crate.
//!
//! Where the figures come from:
//! - counters of lines on the wire are counted where `signals.log` writes them
//!   ([`ExecutorMetrics::on_line`]), so `acks_total` is the ACK count of `signals.log` exactly;
//! - signals are counted by the core loop (authenticated preditor only), drift by the drift
//!   recorder, orders by the desk, fsyncs by the journal, link changes by the broker pump;
//! - gauges (equity, limits, positions, twins) are set from the status document the core loop
//!   rebuilds every second ([`ExecutorMetrics::set_status`]).
//!
//! Labels stay bounded: a symbol label is a configured symbol or `other`, a reason one of
//! PROTOCOL.md §5's or `other`, a book `live` or `paper`; never an id, a price or a time.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fleet::{Book, BrokerLink, Side, StatusDocument};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use protocol::{Line, Reason};

use crate::ipc::signals_log::Dir;

/// Latency buckets, seconds: sub-millisecond (paper fills) to the 10 s of a slow broker.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// fsync buckets, seconds.
const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0,
];
const OTHER: &str = "other";

type GaugeVec = prometheus::GaugeVec;

/// Every series of the executor, and the registry that renders them.
#[derive(Debug)]
pub struct ExecutorMetrics {
    registry: Registry,
    symbols: RwLock<BTreeSet<String>>,
    bars: IntCounterVec,
    signals: IntCounterVec,
    acks: IntCounterVec,
    bar_to_order: Histogram,
    signal_to_ack: Histogram,
    fsync: Histogram,
    link_up: IntGauge,
    reconnects: IntCounter,
    equity: GaugeVec,
    balance: GaugeVec,
    risk_used: GaugeVec,
    risk_limit: GaugeVec,
    open_positions: GaugeVec,
    open_lots: GaugeVec,
    twin_lots: GaugeVec,
    twin_regime: GaugeVec,
    drift: IntCounterVec,
    paused: IntGauge,
    kill_switch: IntGauge,
    commands: IntCounterVec,
    /// The hub link (`crate::hub`): connected, outbox bytes, and its counts since the start.
    hub: [IntGauge; 5],
    timing: Mutex<Timing>,
}

/// When the latest BAR and SIGNAL of each symbol went through (latencies), one of each per symbol.
#[derive(Debug, Default)]
struct Timing {
    bar_sent: HashMap<String, (String, Instant)>,
    signal_in: HashMap<String, (String, Instant)>,
    link_was_up: Option<bool>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    h
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    g
}

/// The label of a reason: a known code, or `other` (a reason carried in from elsewhere).
fn reason_label(r: &Reason) -> &str {
    match r {
        Reason::Other(_) => OTHER,
        known => known.as_str(),
    }
}

pub fn book_label(b: Book) -> &'static str {
    crate::ops::status::book_name(b)
}

impl ExecutorMetrics {
    /// The series, with the configured `symbols` as the only symbol labels.
    // The names and label sets are constants: registering them cannot fail (a duplicate name
    // would be a programming error caught by the first test that builds this).
    pub fn new<'a>(symbols: impl IntoIterator<Item = &'a protocol::Symbol>) -> Arc<Self> {
        let r = Registry::new_custom(Some("oracle_executor".into()), None)
            .unwrap_or_else(|e| panic!("registry: {e}"));
        let hub = [
            ("hub_connected", "1 while the hub link is connected to its broker (0 without a hub section)."),
            ("hub_outbox_bytes", "Bytes of the hub outbox on disk (records not yet acknowledged by the broker, and the current segment)."),
            ("hub_records_acked", "Records the broker acknowledged since the start."),
            ("hub_records_dropped", "Records dropped since the start: the outbox was at hub.outbox_max_bytes (or could not be written). The hub sees the gap in seq."),
            ("hub_telemetry_skipped", "Telemetry snapshots not queued since the start, the broker being unreachable."),
        ]
        .map(|(name, help)| int_gauge(&r, name, help));
        let m = ExecutorMetrics {
            bars: counter(
                &r,
                "bars_published_total",
                "Live closed bars sent to the preditor (BAR lines in signals.log).",
                &["symbol"],
            ),
            signals: counter(
                &r,
                "signals_total",
                "SIGNALs from the authenticated preditor, by action.",
                &["symbol", "action"],
            ),
            acks: counter(
                &r,
                "acks_total",
                "ACKs sent to the preditor (ACK lines in signals.log), by outcome and reason.",
                &["symbol", "outcome", "reason"],
            ),
            bar_to_order: histogram(
                &r,
                "new_bar_to_order_sent_seconds",
                "From a bar's BAR line sent to the preditor to the order for it sent to the broker.",
                LATENCY_BUCKETS,
            ),
            signal_to_ack: histogram(
                &r,
                "signal_to_ack_seconds",
                "From a SIGNAL received to its ACK sent.",
                LATENCY_BUCKETS,
            ),
            fsync: histogram(
                &r,
                "journal_fsync_seconds",
                "Duration of each journal fsync (one per batch of order intents).",
                FSYNC_BUCKETS,
            ),
            link_up: int_gauge(
                &r,
                "broker_link_up",
                "1 while the cTrader session is up and authorised (always 1 in paper mode: no broker).",
            ),
            reconnects: {
                let c = IntCounter::new(
                    "broker_reconnects_total",
                    "cTrader sessions re-established after a loss.",
                )
                .unwrap_or_else(|e| panic!("reconnects: {e}"));
                r.register(Box::new(c.clone()))
                    .unwrap_or_else(|e| panic!("reconnects: {e}"));
                c
            },
            equity: gauge(
                &r,
                "equity",
                "Equity of a book, account currency.",
                &["book"],
            ),
            balance: gauge(
                &r,
                "balance",
                "Balance of a book, account currency.",
                &["book"],
            ),
            risk_used: gauge(
                &r,
                "risk_used",
                "How much of a risk limit is used, in the limit's unit (percent of the initial balance for the loss limits, equity for min_equity).",
                &["book", "limit"],
            ),
            risk_limit: gauge(
                &r,
                "risk_limit",
                "A risk limit in force (executor_config.json risk.*, with the overlay).",
                &["book", "limit"],
            ),
            open_positions: gauge(
                &r,
                "open_positions",
                "Open positions of a book on a symbol.",
                &["book", "symbol"],
            ),
            open_lots: gauge(
                &r,
                "open_lots",
                "Net open lots of a book on a symbol (short negative).",
                &["book", "symbol"],
            ),
            twin_lots: gauge(
                &r,
                "twin_virtual_lots",
                "The twin's virtual position as its last SIGNAL says, lots (short negative).",
                &["symbol"],
            ),
            twin_regime: gauge(
                &r,
                "twin_regime",
                "The HMM regime of the twin's last SIGNAL.",
                &["symbol"],
            ),
            drift: counter(
                &r,
                "drift_total",
                "Signals handled per book: in_sync (the book holds the model's target afterwards) or the reason it does not.",
                &["book", "state"],
            ),
            paused: int_gauge(&r, "paused", "1 while an operator pause is in force."),
            kill_switch: int_gauge(
                &r,
                "kill_switch",
                "1 while a kill switch (KILL file or control line) is on.",
            ),
            commands: counter(
                &r,
                "commands_total",
                "Operator commands answered, by op and result.",
                &["op", "result"],
            ),
            registry: r,
            symbols: RwLock::new(symbols.into_iter().map(|s| s.to_string()).collect()),
            hub,
            timing: Mutex::new(Timing::default()),
        };
        Arc::new(m)
    }

    /// The symbols allowed as labels (after a reload).
    pub fn set_symbols<'a>(&self, symbols: impl IntoIterator<Item = &'a protocol::Symbol>) {
        if let Ok(mut s) = self.symbols.write() {
            *s = symbols.into_iter().map(|x| x.to_string()).collect();
        }
    }

    fn symbol_label(&self, s: &str) -> String {
        let known = self.symbols.read().is_ok_and(|set| set.contains(s));
        if known {
            s.to_string()
        } else {
            OTHER.to_string()
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics could not be encoded");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// A line `signals.log` records (see `SignalsLog::set_observer`).
    pub fn on_line(&self, dir: Dir, text: &str, now: Instant) {
        let kind = text.split('|').next().unwrap_or("");
        if !matches!((dir, kind), (Dir::Out, "BAR" | "ACK") | (Dir::In, "SIGNAL")) {
            return;
        }
        let Ok(line) = text.parse::<Line>() else {
            return;
        };
        let Ok(mut t) = self.timing.lock() else {
            return;
        };
        match line {
            Line::Bar(b) => {
                let sym = self.symbol_label(b.symbol.as_str());
                self.bars.with_label_values(&[&sym]).inc();
                if sym != OTHER {
                    t.bar_sent.insert(sym, (b.time.to_string(), now));
                }
            }
            Line::Signal(s) => {
                let sym = self.symbol_label(s.symbol.as_str());
                if sym != OTHER
                    && let Some(bar) = s.bar_time
                {
                    t.signal_in.insert(sym, (bar.to_string(), now));
                }
            }
            Line::Ack(a) => {
                let sym = self.symbol_label(a.symbol.as_str());
                let (outcome, reason) = match &a.outcome {
                    protocol::AckOutcome::Ok { .. } => ("OK", "none"),
                    protocol::AckOutcome::Fail(r) => ("FAIL", reason_label(r)),
                    protocol::AckOutcome::WaitSync(r) => ("WAIT_SYNC", reason_label(r)),
                };
                self.acks.with_label_values(&[&sym, outcome, reason]).inc();
                if let (Some(bar), Some((sig_bar, at))) = (a.bar_time, t.signal_in.get(&sym))
                    && *sig_bar == bar.to_string()
                {
                    self.signal_to_ack
                        .observe(now.saturating_duration_since(*at).as_secs_f64());
                    t.signal_in.remove(&sym);
                }
            }
            _ => {}
        }
    }

    /// SIGNALs the core loop handles.
    pub fn on_signals(&self, sigs: &[protocol::Signal]) {
        for s in sigs {
            let sym = self.symbol_label(s.symbol.as_str());
            self.signals
                .with_label_values(&[&sym, s.action.as_str()])
                .inc();
        }
    }

    /// An order for `symbol`'s bar `bar` went to the broker (first order of that bar only).
    pub fn on_order_sent(&self, symbol: &protocol::Symbol, bar: protocol::BarTime, now: Instant) {
        let Ok(mut t) = self.timing.lock() else {
            return;
        };
        let key = bar.to_string();
        if let Some((b, at)) = t.bar_sent.get(symbol.as_str())
            && *b == key
        {
            self.bar_to_order
                .observe(now.saturating_duration_since(*at).as_secs_f64());
            // One figure per bar: a second order of the same bar (the open after its close) is
            // part of the same decision.
            t.bar_sent.remove(symbol.as_str());
        }
    }

    pub fn on_fsync(&self, d: Duration) {
        self.fsync.observe(d.as_secs_f64());
    }

    /// The hub link's figures (every second).
    pub fn set_hub(&self, h: &crate::hub::Shared) {
        use std::sync::atomic::Ordering::Relaxed;
        let v = [
            i64::from(h.connected.load(Relaxed)),
            h.bytes.load(Relaxed) as i64,
            h.acked.load(Relaxed) as i64,
            h.dropped.load(Relaxed) as i64,
            h.telemetry_skipped.load(Relaxed) as i64,
        ];
        for (g, v) in self.hub.iter().zip(v) {
            g.set(v);
        }
    }

    /// The broker link went up or down; an up after a down is a reconnect.
    pub fn on_link(&self, up: bool) {
        self.link_up.set(i64::from(up));
        if let Ok(mut t) = self.timing.lock() {
            if up && t.link_was_up == Some(false) {
                self.reconnects.inc();
            }
            t.link_was_up = Some(up);
        }
    }

    /// One drift row: whether the book holds the target afterwards, or why not.
    pub fn on_drift(&self, book: Book, in_sync: bool, reason: Option<&Reason>) {
        let state = match (in_sync, reason) {
            (true, _) => "in_sync".to_string(),
            (false, Some(r)) => reason_label(r).to_string(),
            (false, None) => "differs".to_string(),
        };
        self.drift
            .with_label_values(&[book_label(book), &state])
            .inc();
    }

    pub fn on_command(&self, op: &str, result: &str) {
        self.commands.with_label_values(&[op, result]).inc();
    }

    /// The gauges, from the status document.
    pub fn set_status(&self, d: &StatusDocument) {
        self.paused.set(i64::from(d.paused));
        self.kill_switch.set(i64::from(d.kill_switch));
        match d.telemetry.broker_link {
            BrokerLink::Up | BrokerLink::None => self.link_up.set(1),
            BrokerLink::Down => self.link_up.set(0),
        }
        for b in &d.books {
            let book = book_label(b.book);
            if let Some(e) = b.equity {
                self.equity.with_label_values(&[book]).set(e);
            }
            if let Some(x) = b.balance {
                self.balance.with_label_values(&[book]).set(x);
            }
            for s in &b.symbols {
                let sym = self.symbol_label(s.symbol.as_str());
                let lots: f64 = s
                    .positions
                    .iter()
                    .map(|p| match p.side {
                        Side::Short => -p.lots,
                        _ => p.lots,
                    })
                    .sum();
                self.open_positions
                    .with_label_values(&[book, &sym])
                    .set(s.positions.len() as f64);
                self.open_lots.with_label_values(&[book, &sym]).set(lots);
            }
        }
        for l in &d.limits {
            let book = book_label(l.book);
            self.risk_used
                .with_label_values(&[book, &l.name])
                .set(l.used);
            self.risk_limit
                .with_label_values(&[book, &l.name])
                .set(l.limit);
        }
        for s in &d.telemetry.symbols {
            let sym = self.symbol_label(s.symbol.as_str());
            let v = &s.virtual_position;
            let lots = match v.side {
                Side::Short => -v.lots,
                _ => v.lots,
            };
            self.twin_lots.with_label_values(&[&sym]).set(lots);
        }
        for b in d.books.iter().take(1) {
            for s in &b.symbols {
                if let Some(regime) = s
                    .last_signal
                    .as_deref()
                    .and_then(|l| l.split('|').nth(3))
                    .and_then(|r| r.parse::<f64>().ok())
                {
                    let sym = self.symbol_label(s.symbol.as_str());
                    self.twin_regime.with_label_values(&[&sym]).set(regime);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
