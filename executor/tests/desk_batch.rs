//! A batch of signals on one desk (the SIGNALs of one bar arriving together): every order is on the
//! wire before the first answer is awaited, every intent is journaled before any result, the risk
//! guard counts the opens approved earlier in the same batch, and a symbol that repeats starts a
//! new batch so its second signal sees the first one's fill.
//!
//! The broker is the real paper book behind a gate that holds every answer until a given number of
//! orders has been submitted: a desk that awaited each order before sending the next would never
//! get past the first one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use executor::broker::paper::PaperBroker;
use executor::broker::{Broker, BrokerError, Ticket};
use executor::desk::risk::RiskApproved;
use executor::desk::{Desk, DeskOutcome};
use executor::journal::{Entry, Journal};
use executor::orders::{Book, BookSnapshot, CloseIntent, Fill, OpenIntent, Side};
use protocol::{Line, Signal, Symbol};
use tokio::sync::watch;

/// The paper book; each answer is released once `release_at` orders have been submitted.
#[derive(Debug)]
struct Gated {
    inner: PaperBroker,
    submitted: watch::Sender<usize>,
    release_at: usize,
}

impl Gated {
    fn hold(&mut self, answer: Result<Fill, BrokerError>) -> Ticket<Fill> {
        self.submitted.send_modify(|n| *n += 1);
        let mut rx = self.submitted.subscribe();
        let release_at = self.release_at;
        Box::pin(async move {
            rx.wait_for(|n| *n >= release_at)
                .await
                .map_err(|_| BrokerError::Disconnected)?;
            answer
        })
    }
}

impl Broker for Gated {
    type Receipt = Fill;

    fn book(&self) -> Book {
        Book::Live
    }
    fn snapshot(&self, symbol: &Symbol) -> BookSnapshot {
        self.inner.snapshot_sync(symbol)
    }
    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        self.inner.reconcile().await
    }
    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<Fill> {
        let answer = self.inner.open_sync(order);
        self.hold(answer)
    }
    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<Fill> {
        let answer = self.inner.close_sync(intent);
        self.hold(answer)
    }
    fn settle(&mut self, answer: Result<Fill, BrokerError>) -> Result<Fill, BrokerError> {
        answer
    }
    fn commit(&mut self) -> Result<(), BrokerError> {
        self.inner.commit()
    }
}

const SPEC: &str = r#"{ "enabled": true, "spread": 0.0001, "digits": 5 }"#;
const NOW: &str = "2026-02-03T11:00:01Z";
const BAR: &str = "2026-02-03T10:00:00Z";

struct Setup {
    _dir: tempfile::TempDir,
    desk: Desk<Gated>,
    journal: Journal,
    journal_path: std::path::PathBuf,
    now: DateTime<Utc>,
}

fn setup(symbols: &[&str], risk: &str, release_at: usize) -> Setup {
    let body = symbols
        .iter()
        .map(|s| format!("\"{s}\": {SPEC}"))
        .collect::<Vec<_>>()
        .join(", ");
    let p = common::paper_desk::parts(&format!("{{ {body} }}"), risk);
    let (submitted, _) = watch::channel(0);
    let broker = Gated {
        inner: p.paper,
        submitted,
        release_at,
    };
    Setup {
        desk: Desk::new(p.engine, broker, None).unwrap(),
        journal: p.journal,
        journal_path: p.journal_path,
        now: NOW.parse().unwrap(),
        _dir: p.dir,
    }
}

fn signal(symbol: &str, action: &str, bar: &str) -> Signal {
    match format!("SIGNAL|{symbol}|{action}|1|0.00|B:{bar}|N:1")
        .parse::<Line>()
        .unwrap()
    {
        Line::Signal(s) => s,
        other => panic!("not a signal: {other}"),
    }
}

impl Setup {
    async fn batch(&mut self, sigs: &[Signal]) -> Vec<DeskOutcome> {
        for s in sigs {
            common::publish(&mut self.desk.engine, s);
        }
        tokio::time::timeout(
            Duration::from_secs(5),
            self.desk
                .handle_batch(sigs, self.now, false, &mut self.journal),
        )
        .await
        .expect("the batch never completed: its orders were not all sent before awaiting answers")
    }
}

fn acks(out: &[DeskOutcome]) -> Vec<String> {
    out.iter()
        .map(|o| Line::Ack(o.ack.clone()).to_string())
        .collect()
}

const NO_LIMITS: &str = r#"{ "max_open_positions": 10, "max_total_lots": 10 }"#;

#[tokio::test]
async fn every_order_of_a_batch_is_sent_before_any_answer_is_awaited() {
    let symbols = ["EURUSD", "GBPUSD", "AUDUSD"];
    let mut s = setup(&symbols, NO_LIMITS, 3);
    let sigs: Vec<Signal> = symbols
        .iter()
        .map(|sym| signal(sym, "LONG_WEAK", BAR))
        .collect();
    let out = s.batch(&sigs).await;
    for (o, sym) in out.iter().zip(symbols) {
        assert_eq!(
            o.ack.symbol.as_str(),
            sym,
            "outcomes keep the signals' order"
        );
        assert!(
            Line::Ack(o.ack.clone())
                .to_string()
                .starts_with(&format!("ACK|{sym}|LONG_WEAK|OK|")),
            "{}",
            Line::Ack(o.ack.clone())
        );
        assert!(o.position_after.starts_with("LONG"), "{}", o.position_after);
    }
    assert_eq!(s.desk.broker.inner.book.positions.len(), 3);
}

#[tokio::test]
async fn a_batch_journals_every_intent_before_any_result() {
    let symbols = ["EURUSD", "GBPUSD", "AUDUSD"];
    let mut s = setup(&symbols, NO_LIMITS, 3);
    let sigs: Vec<Signal> = symbols
        .iter()
        .map(|sym| signal(sym, "SHORT_WEAK", BAR))
        .collect();
    s.batch(&sigs).await;
    let entries = Journal::read_all(&s.journal_path).unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| match e {
            Entry::Intent { .. } => "intent",
            Entry::Result { .. } => "result",
            Entry::Ack { .. } => "ack",
            Entry::Guard { .. } => "guard",
            Entry::Command { .. } => "command",
            Entry::CommandResult { .. } => "command_result",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "guard", "intent", "intent", "intent", "result", "result", "result", "ack", "ack",
            "ack"
        ],
        "one durable append for the batch's intents (behind the risk baseline the first signal of \
         the day took, which they rely on), then the results, then the ACKs"
    );
}

#[tokio::test]
async fn the_risk_guard_counts_opens_approved_earlier_in_the_batch() {
    let symbols = ["EURUSD", "GBPUSD", "AUDUSD"];
    // Room for two positions; nothing is open, so each signal alone would be approved.
    let mut s = setup(
        &symbols,
        r#"{ "max_open_positions": 2, "max_total_lots": 10 }"#,
        2,
    );
    let sigs: Vec<Signal> = symbols
        .iter()
        .map(|sym| signal(sym, "LONG_WEAK", BAR))
        .collect();
    let out = acks(&s.batch(&sigs).await);
    assert!(out[0].starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{out:?}");
    assert!(out[1].starts_with("ACK|GBPUSD|LONG_WEAK|OK|"), "{out:?}");
    assert!(
        out[2].starts_with("ACK|AUDUSD|LONG_WEAK|FAIL|MAX_POSITIONS"),
        "{out:?}"
    );
    assert_eq!(s.desk.broker.inner.book.positions.len(), 2);
}

#[tokio::test]
async fn a_repeated_symbol_starts_a_new_batch_that_sees_the_first_fill() {
    let mut s = setup(&["EURUSD", "GBPUSD"], NO_LIMITS, 1);
    let next_bar = "2026-02-03T11:00:00Z";
    let sigs = [
        signal("EURUSD", "LONG_WEAK", BAR),
        signal("GBPUSD", "LONG_WEAK", BAR),
        // The next bar reverses EURUSD: it must close the position the first signal opened.
        signal("EURUSD", "SHORT_WEAK", next_bar),
    ];
    let out = s.batch(&sigs).await;
    let lines = acks(&out);
    assert!(
        lines[0].starts_with("ACK|EURUSD|LONG_WEAK|OK|"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("ACK|EURUSD|SHORT_WEAK|OK|"),
        "{lines:?}"
    );
    let eurusd: Vec<_> = s
        .desk
        .broker
        .inner
        .book
        .positions
        .iter()
        .filter(|p| p.symbol == "EURUSD")
        .collect();
    assert_eq!(eurusd.len(), 1, "{eurusd:?}");
    assert_eq!(eurusd[0].side, Side::Sell);
    assert!(out[2].fill.is_some());
}

/// `n` symbols `SYM01`, `SYM02`, …
fn many(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("SYM{i:02}")).collect()
}

/// A bar later than [`BAR`], for the reversals.
const NEXT_BAR: &str = "2026-02-03T10:00:01Z";

/// A bar of reversals at the position limit: each reversal's close frees the slot its own new
/// position takes, so none is refused (issue 13 item 7: a batch used to count every new position
/// before its own close was confirmed, and refused all but the first at the limit).
#[tokio::test]
async fn twenty_reversals_at_a_twenty_position_limit_are_not_refused() {
    let names = many(20);
    let symbols: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut s = setup(
        &symbols,
        r#"{ "max_open_positions": 20, "max_total_lots": 10 }"#,
        1,
    );
    let longs: Vec<Signal> = symbols
        .iter()
        .map(|sym| signal(sym, "LONG_WEAK", BAR))
        .collect();
    let out = acks(&s.batch(&longs).await);
    assert!(out.iter().all(|a| a.contains("|OK|")), "{out:?}");
    let shorts: Vec<Signal> = symbols
        .iter()
        .map(|sym| signal(sym, "SHORT_WEAK", NEXT_BAR))
        .collect();
    let out = acks(&s.batch(&shorts).await);
    for (sym, ack) in symbols.iter().zip(&out) {
        assert!(
            ack.starts_with(&format!("ACK|{sym}|SHORT_WEAK|OK|T:")),
            "{out:?}"
        );
    }
    let book = &s.desk.broker.inner.book.positions;
    assert_eq!(book.len(), 20);
    assert!(book.iter().all(|p| p.side == Side::Sell), "{book:?}");
}

/// The limits still hold around reversals: at the position limit a new symbol's open is refused
/// while the reversals beside it go through, and the new positions of reversals count against
/// each other (here the exposure limit, once the closes have freed theirs).
#[tokio::test]
async fn the_limits_still_hold_beside_and_between_reversals() {
    let names = many(21);
    let symbols: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut s = setup(
        &symbols,
        r#"{ "max_open_positions": 20, "max_total_lots": 0.5 }"#,
        1,
    );
    let longs: Vec<Signal> = symbols[..20]
        .iter()
        .map(|sym| signal(sym, "LONG_WEAK", BAR))
        .collect();
    let out = acks(&s.batch(&longs).await);
    assert!(out.iter().all(|a| a.contains("|OK|")), "{out:?}");
    // 20 reversals from 0.01 to 0.03 lots (0.6 in total, over the 0.5 limit), and a new symbol.
    let mut sigs: Vec<Signal> = symbols[..20]
        .iter()
        .map(|sym| signal(sym, "SHORT_MODERATE", NEXT_BAR))
        .collect();
    sigs.push(signal(symbols[20], "LONG_WEAK", NEXT_BAR));
    let out = acks(&s.batch(&sigs).await);
    assert!(
        out[20].starts_with("ACK|SYM21|LONG_WEAK|FAIL|MAX_POSITIONS"),
        "at the limit, a new position has no slot until a close is confirmed: {out:?}"
    );
    let opened = out[..20].iter().filter(|a| a.contains("|OK|T:")).count();
    let refused: Vec<&String> = out[..20].iter().filter(|a| a.contains("|FAIL|")).collect();
    // 0.5 lots hold 16 positions of 0.03: the 17th and later are refused, their closes done.
    assert_eq!(opened, 16, "{out:?}");
    assert_eq!(refused.len(), 4, "{out:?}");
    assert!(
        refused.iter().all(|a| a.contains("|FAIL|MAX_EXPOSURE|")),
        "{refused:?}"
    );
    let book = &s.desk.broker.inner.book.positions;
    assert_eq!(book.len(), 16, "{book:?}");
    let lots: f64 = book.iter().map(|p| p.lots).sum();
    assert!(lots <= 0.5 + 1e-9, "{lots}");
}
