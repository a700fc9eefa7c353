//! Scenario tests of the pure signal logic (docs/ARCHITECTURE.md §5 "Executor") with an injected clock and the
//! real paper book, driven synchronously: every ACK kind and every reason the engine can produce.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use executor::broker::paper::PaperBroker;
use executor::config::ExecutorConfig;
use executor::desk::engine::{Decision, EngineRules, Execution, OpenStep, SignalEngine};
use executor::desk::risk::RiskGuard;
use protocol::{Ack, AckOutcome, BarTime, Line, Reason, Symbol};

const B0: &str = "2026-02-03T10:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    cfg: ExecutorConfig,
    engine: SignalEngine,
    paper: PaperBroker,
    now: DateTime<Utc>,
    kill_file: bool,
}

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05,
              "spread": 0.0001, "slippage": 0.00002, "max_spread": 0.0005, "contract_size": 100000, "digits": 5 },
  "GBPUSD": { "enabled": true, "lot_weak": 1, "lot_moderate": 2, "lot_strong": 3, "contract_size": 100000, "digits": 5 },
  "US500":  { "enabled": true, "lot_weak": 0.10, "lot_moderate": 0.30, "lot_strong": 0.50, "contract_size": 1, "digits": 2 },
  "AAPL":   { "enabled": false, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5, "contract_size": 1, "digits": 2 }
}"#;

const RISK: &str = r#"{ "max_daily_loss_pct": 5, "max_total_loss_pct": 10, "min_equity": 0,
  "max_open_positions": 2, "max_total_lots": 4, "kill_switch_file": "state/KILL" }"#;

impl World {
    fn new(risk: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let cfg = common::load(dir.path(), &common::paper_config(SYMBOLS, risk, ""));
        let rules = EngineRules {
            symbols: cfg.symbols.clone(),
            model_symbols: [sym("USDJPY")].into_iter().collect(),
            stale_max_age_secs: cfg.stale_signal_max_age_secs as i64,
        };
        let engine = SignalEngine::new(rules, RiskGuard::new(cfg.risk.clone(), None));
        let mut paper = PaperBroker::open_book(cfg.symbols.clone(), 10_000.0, 30.0, None).unwrap();
        paper.on_bar_close(&sym("EURUSD"), 1.1, 0);
        paper.on_bar_close(&sym("GBPUSD"), 1.25, 0);
        paper.on_bar_close(&sym("US500"), 5000.0, 0);
        World {
            _dir: dir,
            cfg,
            engine,
            paper,
            now: t("2026-02-03T11:00:01Z"),
            kill_file: false,
        }
    }

    fn signal(&mut self, line: &str) -> Ack {
        let Ok(Line::Signal(sig)) = line.parse::<Line>() else {
            panic!("not a signal: {line}")
        };
        common::publish(&mut self.engine, &sig);
        let snap = self.paper.snapshot_sync(&sig.symbol);
        match self.engine.decide(&sig, self.now, &snap, self.kill_file) {
            Decision::Reply(r) => r.ack,
            Decision::Execute(mut plan) => {
                let mut exec = Execution::default();
                for c in &plan.closes {
                    let r = self.paper.close_sync(c);
                    let failed = r.is_err();
                    exec.closes.push(r);
                    if failed {
                        break;
                    }
                }
                // The desk decides an open that waited for its closes once they are done.
                let after = self.paper.snapshot_sync(&sig.symbol);
                self.engine
                    .approve_after_closes(&mut plan, self.now, &after, self.kill_file);
                if exec.closes.iter().all(Result::is_ok)
                    && let OpenStep::Open(approved) = &plan.open
                {
                    exec.open = Some(self.paper.open_sync(approved));
                }
                self.engine.complete(&plan, &exec)
            }
        }
    }

    fn positions(&self, s: &str) -> Vec<(String, f64)> {
        self.paper
            .book
            .positions
            .iter()
            .filter(|p| p.symbol == s)
            .map(|p| (format!("{:?}", p.side), p.lots))
            .collect()
    }

    fn price(&mut self, s: &str, close: f64) {
        self.paper.on_bar_close(&sym(s), close, 0);
    }
}

fn sig(symbol: &str, action: &str, bar: &str, n: u32) -> String {
    format!("SIGNAL|{symbol}|{action}|2|0.00|B:{bar}|N:{n}")
}

fn fail_reason(a: &Ack) -> Reason {
    match &a.outcome {
        AckOutcome::Fail(r) => r.clone(),
        other => panic!("expected FAIL, got {other:?} in {}", Line::Ack(a.clone())),
    }
}

fn ok(a: &Ack) -> (Option<u64>, Option<String>) {
    match &a.outcome {
        AckOutcome::Ok { position_id, price } => {
            (*position_id, price.as_ref().map(|p| p.as_str().to_string()))
        }
        other => panic!("expected OK, got {other:?} in {}", Line::Ack(a.clone())),
    }
}

#[test]
fn malformed_when_bar_or_held_missing() {
    let mut w = World::new(RISK);
    assert_eq!(
        fail_reason(&w.signal("SIGNAL|EURUSD|LONG_WEAK|3|0.00")),
        Reason::Malformed
    );
    assert_eq!(
        fail_reason(&w.signal(&format!("SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:{B0}"))),
        Reason::Malformed
    );
    assert_eq!(
        fail_reason(&w.signal("SIGNAL|EURUSD|LONG_WEAK|3|0.00|N:1")),
        Reason::Malformed
    );
    assert!(w.positions("EURUSD").is_empty());
}

#[test]
fn unknown_disabled_and_model_only_symbols() {
    let mut w = World::new(RISK);
    assert_eq!(
        fail_reason(&w.signal(&sig("XAGUSD", "LONG_WEAK", B0, 1))),
        Reason::UnknownSymbol
    );
    assert_eq!(
        fail_reason(&w.signal(&sig("AAPL", "LONG_WEAK", B0, 1))),
        Reason::Disabled
    );
    // a model without a config entry is disabled, not unknown
    assert_eq!(
        fail_reason(&w.signal(&sig("USDJPY", "LONG_WEAK", B0, 1))),
        Reason::Disabled
    );
}

#[test]
fn stale_after_bar_close_plus_max_age() {
    let mut w = World::new(RISK);
    // bar 10:00 H1 closes 11:00; max age 60 s → 11:01:00 still fresh, 11:01:01 stale
    w.now = t("2026-02-03T11:01:01Z");
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))),
        Reason::Stale
    );
    w.now = t("2026-02-03T11:01:00Z");
    let a = w.signal(&sig("EURUSD", "LONG_WEAK", "2026-02-03T10:00:01Z", 1));
    ok(&a);
}

/// A week or month bar closes at its end, not at its open: MN1 by the calendar (`BarTime::bar_close`).
#[test]
fn week_and_month_bars_are_stale_only_after_their_close() {
    for (tf, open, fresh, stale) in [
        // February 2026 closes on 1 March.
        (
            protocol::Timeframe::MN1,
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:01:00Z",
            "2026-03-01T00:01:01Z",
        ),
        // The week from Sunday 1 February closes on Sunday 8 February.
        (
            protocol::Timeframe::W1,
            "2026-02-01T00:00:00Z",
            "2026-02-08T00:01:00Z",
            "2026-02-08T00:01:01Z",
        ),
    ] {
        let mut w = World::new(RISK);
        let mut rules = w.engine.rules().clone();
        rules.symbols.get_mut(&sym("EURUSD")).unwrap().timeframe = tf;
        w.engine.set_rules(rules, w.cfg.risk.clone());
        w.now = t(stale);
        assert_eq!(
            fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", open, 1))),
            Reason::Stale,
            "{tf}"
        );
        // Mid-period and up to close + max age, the signal is fresh.
        let mut w = World::new(RISK);
        let mut rules = w.engine.rules().clone();
        rules.symbols.get_mut(&sym("EURUSD")).unwrap().timeframe = tf;
        w.engine.set_rules(rules, w.cfg.risk.clone());
        w.now = t(fresh);
        ok(&w.signal(&sig("EURUSD", "LONG_WEAK", open, 1)));
    }
}

#[test]
fn open_fills_at_close_plus_spread_and_slippage_and_repeat_is_not_reexecuted() {
    let mut w = World::new(RISK);
    let line = sig("EURUSD", "LONG_WEAK", B0, 1);
    let a = w.signal(&line);
    assert_eq!(ok(&a), (Some(1), Some("1.10012".to_string())));
    assert_eq!(a.bar_time, Some(B0.parse::<BarTime>().unwrap()));
    assert_eq!(w.positions("EURUSD"), vec![("Buy".to_string(), 0.01)]);
    // The same signal again: same ACK, no second order, even if the market moved.
    w.price("EURUSD", 1.2);
    let again = w.signal(&line);
    assert_eq!(again, a);
    assert_eq!(w.positions("EURUSD").len(), 1);
    assert_eq!(w.paper.book.next_position_id, 2);
    // A different action for the same bar: refused with DUPLICATE_BAR echoing its own action
    // (PROTOCOL.md §4 ACK), not executed; the first answer still stands.
    let other = w.signal(&sig("EURUSD", "SHORT_STRONG", B0, 1));
    assert_eq!(
        Line::Ack(other).to_string(),
        format!("ACK|EURUSD|SHORT_STRONG|FAIL|DUPLICATE_BAR|B:{B0}")
    );
    assert_eq!(w.positions("EURUSD"), vec![("Buy".to_string(), 0.01)]);
    assert_eq!(w.signal(&line), a);
    assert_eq!(w.paper.book.next_position_id, 2);
}

#[test]
fn matching_position_needs_no_order_and_change_closes_then_opens() {
    let mut w = World::new(RISK);
    ok(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1)));
    w.now += TimeDelta::hours(1);
    let held = w.signal(&sig("EURUSD", "LONG_WEAK", "2026-02-03T11:00:00Z", 2));
    assert_eq!(
        ok(&held),
        (Some(1), Some("1.10012".to_string())),
        "existing position id and entry price"
    );
    assert_eq!(w.paper.book.next_position_id, 2, "no order sent");
    // intensity change = close + open (no partial close)
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "LONG_STRONG", "2026-02-03T12:00:00Z", 1));
    assert_eq!(ok(&a).0, Some(2));
    assert_eq!(w.positions("EURUSD"), vec![("Buy".to_string(), 0.05)]);
    // direction change
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "SHORT_MODERATE", "2026-02-03T13:00:00Z", 1));
    // sell at bid 1.1 minus slippage
    assert_eq!(ok(&a), (Some(3), Some("1.09998".to_string())));
    assert_eq!(w.positions("EURUSD"), vec![("Sell".to_string(), 0.03)]);
    // WAIT closes and answers with the closed position and its exit price (buy at ask + slippage)
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "WAIT", "2026-02-03T14:00:00Z", 1));
    assert_eq!(ok(&a), (Some(3), Some("1.10012".to_string())));
    assert!(w.positions("EURUSD").is_empty());
    // WAIT while flat: OK, nothing to report
    w.now += TimeDelta::hours(1);
    assert_eq!(
        ok(&w.signal(&sig("EURUSD", "WAIT", "2026-02-03T15:00:00Z", 2))),
        (None, None)
    );
}

/// Issue 11 item 3: a position the broker filled only in part (0.02 lots of LONG_MODERATE's
/// 0.03, the rest cancelled) is the target while the action holds: the next bar answers OK with
/// it and sends nothing (no top-up, no close and reopen). A position of the same size that was not
/// opened for this target is not; a change of action closes the partial one as usual.
#[test]
fn a_partly_filled_target_is_held_until_the_action_changes() {
    let mut w = World::new(RISK);
    assert_eq!(
        ok(&w.signal(&sig("EURUSD", "LONG_MODERATE", B0, 1))).0,
        Some(1)
    );
    w.paper.book.positions[0].lots = 0.02;
    for (bar, n) in [("2026-02-03T11:00:00Z", 2), ("2026-02-03T12:00:00Z", 3)] {
        w.now += TimeDelta::hours(1);
        let a = w.signal(&sig("EURUSD", "LONG_MODERATE", bar, n));
        assert_eq!(
            ok(&a).0,
            Some(1),
            "{bar}: the partial position is the target"
        );
        assert_eq!(w.paper.book.next_position_id, 2, "{bar}: no order sent");
        assert_eq!(w.positions("EURUSD"), vec![("Buy".to_string(), 0.02)]);
    }
    // Not opened for this target (its label is another action's): closed, the entry not chased.
    w.paper.book.positions[0].label = Some("OT-EURUSD-1770112800-1O".into());
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "LONG_MODERATE", "2026-02-03T13:00:00Z", 4));
    assert_eq!(a.outcome, AckOutcome::WaitSync(Reason::MissedEntry));
    assert!(w.positions("EURUSD").is_empty());
    // A partial fill, then a change of action: closed and the new target opened.
    w.now += TimeDelta::hours(1);
    ok(&w.signal(&sig("EURUSD", "LONG_STRONG", "2026-02-03T14:00:00Z", 1)));
    w.paper.book.positions[0].lots = 0.04;
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "LONG_MODERATE", "2026-02-03T15:00:00Z", 1));
    assert_eq!(ok(&a).0, Some(3));
    assert_eq!(w.positions("EURUSD"), vec![("Buy".to_string(), 0.03)]);
}

#[test]
fn missed_entry_is_not_chased_until_the_next_change() {
    let mut w = World::new(RISK);
    let a = w.signal(&sig("EURUSD", "LONG_MODERATE", B0, 3));
    assert_eq!(a.outcome, AckOutcome::WaitSync(Reason::MissedEntry));
    assert!(w.positions("EURUSD").is_empty());
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "LONG_MODERATE", "2026-02-03T11:00:00Z", 4));
    assert_eq!(a.outcome, AckOutcome::WaitSync(Reason::MissedEntry));
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "SHORT_WEAK", "2026-02-03T12:00:00Z", 1));
    assert_eq!(ok(&a).0, Some(1));
    assert_eq!(w.positions("EURUSD"), vec![("Sell".to_string(), 0.01)]);
}

#[test]
fn missed_entry_after_a_refused_open_and_stale_real_position_is_closed() {
    let mut w = World::new(RISK);
    // spread 0.001 > max 0.0005: refused
    w.paper.on_bar_close(&sym("EURUSD"), 1.1, 0);
    w.paper.book.quotes.get_mut("EURUSD").unwrap().ask = 1.101;
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))),
        Reason::Spread
    );
    w.price("EURUSD", 1.1);
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("EURUSD", "LONG_WEAK", "2026-02-03T11:00:00Z", 2));
    assert_eq!(a.outcome, AckOutcome::WaitSync(Reason::MissedEntry));
    // A real position that no longer matches an action held for several bars is closed (closing is
    // always allowed) but the new entry is not chased.
    w.now += TimeDelta::hours(1);
    ok(&w.signal(&sig("GBPUSD", "LONG_WEAK", "2026-02-03T12:00:00Z", 1)));
    w.now += TimeDelta::hours(1);
    let a = w.signal(&sig("GBPUSD", "SHORT_WEAK", "2026-02-03T13:00:00Z", 2));
    assert_eq!(a.outcome, AckOutcome::WaitSync(Reason::MissedEntry));
    assert!(w.positions("GBPUSD").is_empty());
}

#[test]
fn kill_switch_refuses_opening_but_never_closing() {
    let mut w = World::new(RISK);
    ok(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1)));
    w.engine.risk.kill_switch = true;
    assert_eq!(
        fail_reason(&w.signal(&sig("US500", "LONG_WEAK", B0, 1))),
        Reason::KillSwitch
    );
    // a change closes the old position, then the open is refused
    w.now += TimeDelta::hours(1);
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "SHORT_WEAK", "2026-02-03T11:00:00Z", 1))),
        Reason::KillSwitch
    );
    assert!(w.positions("EURUSD").is_empty());
    // the file works as well as the control line
    w.engine.risk.kill_switch = false;
    w.kill_file = true;
    w.now += TimeDelta::hours(1);
    assert_eq!(
        fail_reason(&w.signal(&sig("US500", "LONG_WEAK", "2026-02-03T12:00:00Z", 1))),
        Reason::KillSwitch
    );
    w.kill_file = false;
    w.now += TimeDelta::hours(1);
    ok(&w.signal(&sig("US500", "LONG_WEAK", "2026-02-03T13:00:00Z", 1)));
}

#[test]
fn daily_loss_counts_from_the_day_start_and_resets_next_day() {
    // 10 000 initial: daily limit 5 % = 500, total 10 % = 1 000
    let mut w = World::new(RISK);
    ok(&w.signal(&sig("GBPUSD", "LONG_WEAK", B0, 1))); // 1 lot at 1.25 (day start equity 10 000)
    w.price("GBPUSD", 1.244); // -600
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))),
        Reason::DailyLoss
    );
    // next trading day: the day starts at the current equity (9 400), so opening is allowed again
    w.now = t("2026-02-04T11:00:01Z");
    ok(&w.signal(&sig("EURUSD", "LONG_WEAK", "2026-02-04T10:00:00Z", 1)));
    let st = w.engine.risk.state.clone().unwrap();
    assert_eq!(st.initial_balance, 10_000.0);
    assert!((st.day_start_equity - 9_400.0).abs() < 1e-6, "{st:?}");
    assert!(w.engine.take_risk_dirty());
}

#[test]
fn total_loss_from_the_initial_balance_and_min_equity() {
    let mut w = World::new(RISK);
    ok(&w.signal(&sig("GBPUSD", "LONG_WEAK", B0, 1)));
    w.price("GBPUSD", 1.238); // -1 200 ≥ 1 000
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))),
        Reason::TotalLoss
    );

    let mut w =
        World::new(r#"{ "max_daily_loss_pct": 50, "max_total_loss_pct": 50, "min_equity": 9900 }"#);
    ok(&w.signal(&sig("GBPUSD", "LONG_WEAK", B0, 1)));
    w.price("GBPUSD", 1.2485); // -150 → equity 9 850 < 9 900
    assert_eq!(
        fail_reason(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))),
        Reason::MinEquity
    );
}

#[test]
fn max_open_positions() {
    let mut w = World::new(RISK); // max 2 positions, 4 lots
    ok(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1)));
    ok(&w.signal(&sig("US500", "LONG_WEAK", B0, 1)));
    assert_eq!(
        fail_reason(&w.signal(&sig("GBPUSD", "LONG_WEAK", B0, 1))),
        Reason::MaxPositions
    );
    // replacing a position on a symbol frees its slot: the close is counted before the open
    w.now += TimeDelta::hours(1);
    ok(&w.signal(&sig("EURUSD", "SHORT_WEAK", "2026-02-03T11:00:00Z", 1)));
}

#[test]
fn margin_and_exposure_limits() {
    // GBPUSD 3 lots at 1.25 with leverage 30: 375 000 / 30 = 12 500 > equity 10 000 → MARGIN
    let mut w = World::new(RISK);
    assert_eq!(
        fail_reason(&w.signal(&sig("GBPUSD", "LONG_STRONG", B0, 1))),
        Reason::Margin
    );
    // 2 lots (8 333 margin) fits (a later bar: the refused bar is answered, never re-executed)
    w.now += TimeDelta::hours(1);
    ok(&w.signal(&sig("GBPUSD", "LONG_MODERATE", "2026-02-03T11:00:00Z", 1)));
    let mut w = World::new(r#"{ "max_total_lots": 1.05, "max_open_positions": 5 }"#);
    ok(&w.signal(&sig("GBPUSD", "LONG_WEAK", B0, 1)));
    assert_eq!(
        fail_reason(&w.signal(&sig("US500", "LONG_WEAK", B0, 1))),
        Reason::MaxExposure
    );
    ok(&w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1))); // 1.00 + 0.01 ≤ 1.05
}

#[test]
fn no_quote_means_market_closed() {
    let mut w = World::new(RISK);
    w.paper.book.quotes.remove("US500");
    assert_eq!(
        fail_reason(&w.signal(&sig("US500", "LONG_WEAK", B0, 1))),
        Reason::MarketClosed
    );
}

#[test]
fn answered_signals_survive_a_restart_through_remember() {
    let mut w = World::new(RISK);
    let a = w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1));
    let rules = w.engine.rules().clone();
    let mut fresh = SignalEngine::new(rules, RiskGuard::new(w.cfg.risk.clone(), None));
    fresh.remember(&sym("EURUSD"), B0.parse().unwrap(), a.clone());
    w.engine = fresh;
    assert_eq!(w.signal(&sig("EURUSD", "LONG_WEAK", B0, 1)), a);
    assert_eq!(w.paper.book.next_position_id, 2);
}
