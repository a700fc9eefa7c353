//! The desk after ambiguous failures and crashes: a timed-out or disconnected order is looked up at
//! the broker by its deterministic label before anything else and is never resent; intents left
//! pending in the journal by a crash are resolved by reconciling at startup.
//!
//! The broker is the real paper book wrapped in a fault injector that loses replies or requests,
//! which is what a network does to the cTrader connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use executor::broker::paper::PaperBroker;
use executor::broker::{Broker, BrokerError, Ticket, answered};
use executor::desk::Desk;
use executor::journal::{Entry, Journal};
use executor::orders::{BookSnapshot, CloseIntent, Fill, Leg, OpenIntent, Side};
use executor::risk::RiskApproved;
use protocol::{Line, Signal, Symbol};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The order is executed but the reply is lost (timeout).
    LoseReply,
    /// The request never reaches the broker (disconnect).
    LoseRequest,
}

#[derive(Debug)]
struct Faulty {
    inner: PaperBroker,
    fault: Fault,
    opens: usize,
    closes: usize,
}

impl Broker for Faulty {
    type Receipt = Fill;

    fn name(&self) -> &'static str {
        "live"
    }
    fn snapshot(&self, symbol: &Symbol) -> BookSnapshot {
        self.inner.snapshot_sync(symbol)
    }
    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        self.inner.reconcile().await
    }
    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<Fill> {
        self.opens += 1;
        answered(match self.fault {
            Fault::None => self.inner.open_sync(order),
            Fault::LoseReply => self.inner.open_sync(order).and(Err(BrokerError::Timeout)),
            Fault::LoseRequest => Err(BrokerError::Disconnected),
        })
    }
    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<Fill> {
        self.closes += 1;
        answered(match self.fault {
            Fault::None => self.inner.close_sync(intent),
            Fault::LoseReply => self.inner.close_sync(intent).and(Err(BrokerError::Timeout)),
            Fault::LoseRequest => Err(BrokerError::Disconnected),
        })
    }
    fn settle(&mut self, answer: Result<Fill, BrokerError>) -> Result<Fill, BrokerError> {
        answer
    }
    fn commit(&mut self) -> Result<(), BrokerError> {
        self.inner.commit()
    }
}

const SYMBOLS: &str = r#"{ "EURUSD": { "enabled": true, "spread": 0.0001, "digits": 5 } }"#;

struct Setup {
    _dir: tempfile::TempDir,
    desk: Desk<Faulty>,
    journal: Journal,
    journal_path: std::path::PathBuf,
    now: DateTime<Utc>,
}

fn setup() -> Setup {
    let p = common::paper_desk::parts(SYMBOLS, "{}");
    let broker = Faulty {
        inner: p.paper,
        fault: Fault::None,
        opens: 0,
        closes: 0,
    };
    Setup {
        desk: Desk::new("live", p.engine, broker, None).unwrap(),
        journal: p.journal,
        journal_path: p.journal_path,
        now: "2026-02-03T11:00:01Z".parse().unwrap(),
        _dir: p.dir,
    }
}

impl Setup {
    /// Handles one SIGNAL line on the desk at `now`.
    async fn signal(&mut self, line: &str) -> executor::desk::DeskOutcome {
        let sig = signal(line);
        common::publish(&mut self.desk.engine, &sig);
        self.desk
            .handle_signal(&sig, self.now, false, &mut self.journal)
            .await
            .unwrap()
    }
}

fn signal(s: &str) -> Signal {
    match s.parse::<Line>().unwrap() {
        Line::Signal(s) => s,
        _ => panic!(),
    }
}

#[tokio::test]
async fn lost_reply_is_found_by_label_and_not_resent() {
    let mut s = setup();
    s.desk.broker.fault = Fault::LoseReply;
    let o = s
        .signal("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1")
        .await;
    assert_eq!(
        Line::Ack(o.ack).to_string(),
        "ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.10010|B:2026-02-03T10:00:00Z"
    );
    assert_eq!(s.desk.broker.opens, 1, "never resent");
    assert_eq!(o.position_after, "LONG 0.01");
    // close whose reply is lost: the position is gone at the broker, so it counts as closed
    let o = s
        .signal("SIGNAL|EURUSD|WAIT|1|0.00|B:2026-02-03T10:00:01Z|N:1")
        .await;
    assert_eq!(
        Line::Ack(o.ack).to_string(),
        "ACK|EURUSD|WAIT|OK|T:1|B:2026-02-03T10:00:01Z"
    );
    assert_eq!(
        (s.desk.broker.closes, o.position_after.as_str()),
        (1, "FLAT")
    );
}

#[tokio::test]
async fn lost_request_fails_with_the_reason_and_is_not_resent() {
    let mut s = setup();
    s.desk.broker.fault = Fault::LoseRequest;
    let o = s
        .signal("SIGNAL|EURUSD|SHORT_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1")
        .await;
    assert_eq!(
        Line::Ack(o.ack).to_string(),
        "ACK|EURUSD|SHORT_WEAK|FAIL|DISCONNECTED|B:2026-02-03T10:00:00Z"
    );
    assert_eq!(s.desk.broker.opens, 1);
    // the journal holds the intent, then its failed result
    let entries = Journal::read_all(&s.journal_path).unwrap();
    assert!(matches!(
        &entries[0],
        Entry::Intent {
            leg: Leg::Open,
            side: Some(Side::Sell),
            ..
        }
    ));
    assert!(
        matches!(&entries[1], Entry::Result { ok: false, error: Some(e), .. } if e.contains("connection lost"))
    );
}

#[tokio::test]
async fn pending_intents_from_a_crash_are_resolved_by_reconcile_at_startup() {
    let mut s = setup();
    // Before the "crash": one order reached the broker, another did not; neither result was journaled.
    let sym: Symbol = "EURUSD".parse().unwrap();
    let bar = "2026-02-03T10:00:00Z".parse().unwrap();
    let coid = executor::orders::client_order_id(&sym, bar, protocol::Action::LongWeak, Leg::Open);
    let sig = signal("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1");
    let snap = s.desk.broker.inner.snapshot_sync(&sym);
    common::publish(&mut s.desk.engine, &sig);
    let executor::engine::Decision::Execute(plan) = s.desk.engine.decide(&sig, s.now, &snap, false)
    else {
        panic!("expected a plan")
    };
    let executor::engine::OpenStep::Open(approved) = &plan.open else {
        panic!()
    };
    s.desk.broker.inner.open_sync(approved).unwrap();
    for c in [coid.as_str(), "OT-EURUSD-1-2O"] {
        s.journal
            .append(&Entry::Intent {
                t: "t".into(),
                book: "live".into(),
                coid: c.into(),
                leg: Leg::Open,
                symbol: "EURUSD".into(),
                bar: 0,
                action: "LONG_WEAK".into(),
                side: Some(Side::Buy),
                lots: 0.01,
                position_id: None,
            })
            .unwrap();
    }
    let entries = Journal::read_all(&s.journal_path).unwrap();
    let n = s
        .desk
        .recover(&entries, &mut s.journal, s.now)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let after = Journal::read_all(&s.journal_path).unwrap();
    let results: Vec<(String, bool)> = after
        .iter()
        .filter_map(|e| match e {
            Entry::Result {
                coid,
                ok,
                resolved_by: Some(r),
                ..
            } if r == "reconcile" => Some((coid.clone(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        vec![(coid, true), ("OT-EURUSD-1-2O".to_string(), false)]
    );
    assert_eq!(s.desk.broker.opens, 0, "recovery never sends orders");
    assert!(executor::journal::pending_intents(&after, "live").is_empty());
}

#[tokio::test]
async fn a_failed_close_stops_the_plan_and_its_open_is_journaled_as_not_sent() {
    let mut s = setup();
    s.signal("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1")
        .await;
    s.desk.broker.fault = Fault::LoseRequest;
    let o = s
        .signal("SIGNAL|EURUSD|SHORT_WEAK|1|0.00|B:2026-02-03T10:00:01Z|N:1")
        .await;
    assert_eq!(
        Line::Ack(o.ack).to_string(),
        "ACK|EURUSD|SHORT_WEAK|FAIL|DISCONNECTED|B:2026-02-03T10:00:01Z"
    );
    assert_eq!(
        (s.desk.broker.opens, s.desk.broker.closes),
        (1, 1),
        "the open was not attempted"
    );
    assert_eq!(o.position_after, "LONG 0.01");
    let e = Journal::read_all(&s.journal_path).unwrap();
    // first signal: intent, result, ack; second: both intents (one fsync) before any order, then results
    assert!(
        matches!(
            &e[3],
            Entry::Intent {
                leg: Leg::Close,
                ..
            }
        ),
        "{:?}",
        e[3]
    );
    assert!(
        matches!(&e[4], Entry::Intent { leg: Leg::Open, .. }),
        "{:?}",
        e[4]
    );
    assert!(
        matches!(&e[5], Entry::Result { ok: false, .. }),
        "{:?}",
        e[5]
    );
    assert!(
        matches!(&e[6], Entry::Result { ok: false, error: Some(m), .. } if m.contains("NOT_SENT")),
        "{:?}",
        e[6]
    );
    assert!(executor::journal::pending_intents(&e, "live").is_empty());
}
