//! Property (issue 12 item 3): whatever SIGNALs arrive, in whatever order — real bars, bars in the
//! future, times off the bar grid, unknown symbols, other actions for an answered bar, bursts of
//! more bars than the engine remembers, restarts that rebuild the engine from the journal — one
//! (symbol, bar) is executed at most once on a book. Staleness is switched off (a huge maximum age)
//! so that only the engine's memory stands between a resend and a second order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use executor::broker::paper::PaperBroker;
use executor::desk::Desk;
use executor::desk::engine::{EngineRules, SignalEngine};
use executor::desk::risk::RiskGuard;
use executor::journal::{Entry, Journal};
use proptest::prelude::*;
use protocol::{Action, BarTime, Signal, Symbol, Timeframe};

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.02, "lot_strong": 0.03, "digits": 5 },
  "GBPUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.02, "lot_strong": 0.03, "digits": 5 }
}"#;
const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z, an H1 boundary
const REAL_BARS: i64 = 6;

#[derive(Debug, Clone)]
enum BarPick {
    /// The k-th real bar (published or not yet).
    Real(i64),
    /// An hour boundary far in the future.
    Future(i64),
    /// A real bar's time plus some minutes: off the grid.
    OffGrid(i64, i64),
}

#[derive(Debug, Clone)]
enum Op {
    /// The executor publishes real bar k of a symbol.
    Publish(usize, i64),
    Signal {
        symbol: usize,
        bar: BarPick,
        action: usize,
        held: u32,
    },
    /// `n` signals for distinct future bars of one symbol (evicts an unguarded memory).
    Burst {
        symbol: usize,
        n: i64,
        action: usize,
    },
    /// The executor restarts: a new engine, answered bars back from the journal.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let bar = prop_oneof![
        (0..REAL_BARS).prop_map(BarPick::Real),
        (0..200i64).prop_map(BarPick::Future),
        ((0..REAL_BARS), (1..60i64)).prop_map(|(k, m)| BarPick::OffGrid(k, m)),
    ];
    prop_oneof![
        3 => ((0..2usize), (0..REAL_BARS)).prop_map(|(s, k)| Op::Publish(s, k)),
        6 => ((0..3usize), bar, (0..7usize), (1..3u32))
            .prop_map(|(symbol, bar, action, held)| Op::Signal { symbol, bar, action, held }),
        1 => ((0..2usize), (60..90i64), (0..7usize))
            .prop_map(|(symbol, n, action)| Op::Burst { symbol, n, action }),
        1 => Just(Op::Restart),
    ]
}

const NAMES: [&str; 3] = ["EURUSD", "GBPUSD", "XAGUSD"];

fn bar_time(p: &BarPick) -> BarTime {
    let unix = match p {
        BarPick::Real(k) => T0 + k * 3600,
        BarPick::Future(k) => 4_070_908_800 + k * 3600,
        BarPick::OffGrid(k, m) => T0 + k * 3600 + m * 60,
    };
    BarTime::from_unix(unix).unwrap()
}

fn signal(symbol: usize, bar: BarTime, action: usize, held: u32) -> Signal {
    Signal {
        symbol: NAMES[symbol].parse().unwrap(),
        action: Action::from_index(action).unwrap(),
        regime: 0,
        virtual_pnl: "0.00".parse().unwrap(),
        bar_time: Some(bar),
        held: Some(held),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    rules: EngineRules,
    risk: executor::config::RiskConfig,
    desk: Desk<PaperBroker>,
    journal: Journal,
    journal_path: std::path::PathBuf,
    now: DateTime<Utc>,
    /// (symbol, bar) pairs that have been executed (sent orders) so far.
    executed: BTreeSet<(String, i64)>,
    seen_entries: usize,
}

impl Harness {
    fn new() -> Harness {
        let p = common::paper_desk::parts(SYMBOLS, "{}");
        let mut rules = p.engine.rules().clone();
        rules.stale_max_age_secs = 1_000_000_000;
        let risk = p.engine.risk.limits.clone();
        let engine = SignalEngine::new(rules.clone(), RiskGuard::new(risk.clone(), None));
        Harness {
            desk: Desk::new(engine, p.paper, None).unwrap(),
            journal: p.journal,
            journal_path: p.journal_path,
            _dir: p.dir,
            rules,
            risk,
            now: DateTime::from_timestamp(T0 + 3601, 0).unwrap(),
            executed: BTreeSet::new(),
            seen_entries: 0,
        }
    }

    /// Runs one batch, then checks that no (symbol, bar) got orders a second time.
    fn batch(&mut self, sigs: Vec<Signal>) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // One outcome per signal (handle_batch cannot fail: see Desk::handle_batch).
        rt.block_on(
            self.desk
                .handle_batch(&sigs, self.now, false, &mut self.journal),
        );
        let entries = Journal::read_all(&self.journal_path).unwrap();
        let mut this_batch = BTreeSet::new();
        for e in &entries[self.seen_entries..] {
            if let Entry::Intent { symbol, bar, .. } = e {
                this_batch.insert((symbol.to_string(), bar.unix_seconds()));
            }
        }
        self.seen_entries = entries.len();
        for key in this_batch {
            prop_assert!(
                self.executed.insert(key.clone()),
                "{key:?} was executed a second time"
            );
        }
        Ok(())
    }

    fn restart(&mut self) {
        let engine = SignalEngine::new(self.rules.clone(), RiskGuard::new(self.risk.clone(), None));
        let broker = std::mem::replace(
            &mut self.desk.broker,
            PaperBroker::open_book(Default::default(), 1.0, 1.0, None).unwrap(),
        );
        self.desk = Desk::new(engine, broker, None).unwrap();
        let entries = Journal::read_all(&self.journal_path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(self.desk.recover(&entries, &mut self.journal, self.now))
            .unwrap();
        self.seen_entries = Journal::read_all(&self.journal_path).unwrap().len();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn one_bar_is_executed_at_most_once_per_book(ops in prop::collection::vec(op(), 1..60)) {
        let mut h = Harness::new();
        for op in ops {
            match op {
                Op::Publish(s, k) => {
                    let sym: Symbol = NAMES[s].parse().unwrap();
                    let bar = BarTime::from_unix(T0 + k * 3600).unwrap();
                    h.desk.engine.on_bar_published(&sym, Timeframe::H1, bar);
                }
                Op::Signal { symbol, bar, action, held } => {
                    h.batch(vec![signal(symbol, bar_time(&bar), action, held)])?;
                }
                Op::Burst { symbol, n, action } => {
                    let sigs = (0..n)
                        .map(|k| signal(symbol, bar_time(&BarPick::Future(k)), action, 1))
                        .collect();
                    h.batch(sigs)?;
                }
                Op::Restart => h.restart(),
            }
        }
    }
}

/// The issue's probe, deterministic: a real bar answered, 65 future bars, the real bar again.
#[test]
fn sixty_five_future_bars_do_not_make_a_real_bar_run_twice() {
    let mut h = Harness::new();
    let real = BarTime::from_unix(T0).unwrap();
    let eur: Symbol = "EURUSD".parse().unwrap();
    h.desk.engine.on_bar_published(&eur, Timeframe::H1, real);
    h.batch(vec![signal(0, real, 1, 1)]).unwrap();
    // WAIT on 65 future bars (each would close the position if executed), then the real bar again.
    for k in 0..65 {
        h.batch(vec![signal(0, bar_time(&BarPick::Future(k)), 0, 1)])
            .unwrap();
    }
    h.batch(vec![signal(0, real, 1, 1)]).unwrap();
    assert_eq!(
        h.executed,
        [("EURUSD".to_string(), T0)].into_iter().collect(),
        "only the real bar was executed, once"
    );
    assert_eq!(h.desk.broker.book.positions.len(), 1);
}
