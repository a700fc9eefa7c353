//! A failure on the disk must not change what the ACKs say happened at the broker.
//!
//! - After the orders filled, the desk state cannot be saved (ENOSPC, a read-only directory): the
//!   ACKs still report the fills (`OK|T:|P:`), the results are journaled, and the state is saved at
//!   the next chance. It used to turn every ACK of the batch into `FAIL|INTERNAL` while 4 opens had
//!   filled.
//! - Before any order is sent, the intents cannot be journaled: no order goes out and each signal
//!   that would have traded gets `FAIL|JOURNAL_ERROR` (a documented reason); the others keep theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use executor::broker::paper::PaperBroker;
use executor::desk::Desk;
use executor::journal::{Entry, Journal};
use protocol::{Line, Signal};

const NOW: &str = "2026-02-03T11:00:01Z";
const BAR: &str = "2026-02-03T10:00:00Z";
const NO_LIMITS: &str = r#"{ "max_open_positions": 30, "max_total_lots": 30 }"#;
const SYMBOLS: [&str; 4] = ["EURUSD", "GBPUSD", "AUDUSD", "NZDUSD"];

fn symbols_json() -> String {
    let body = SYMBOLS
        .iter()
        .map(|s| format!(r#""{s}": {{ "enabled": true, "spread": 0.0001, "digits": 5 }}"#))
        .chain(std::iter::once(
            r#""USDCHF": { "enabled": false }"#.to_string(),
        ))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{ {body} }}")
}

fn signal(symbol: &str, action: &str) -> Signal {
    match format!("SIGNAL|{symbol}|{action}|1|0.00|B:{BAR}|N:1")
        .parse::<Line>()
        .unwrap()
    {
        Line::Signal(s) => s,
        other => panic!("not a signal: {other}"),
    }
}

struct Setup {
    dir: tempfile::TempDir,
    desk: Desk<PaperBroker>,
    journal: Journal,
    journal_path: std::path::PathBuf,
    now: DateTime<Utc>,
}

fn setup() -> Setup {
    let p = common::paper_desk::parts(&symbols_json(), NO_LIMITS);
    let state = p.dir.path().join("paper_desk.json");
    Setup {
        desk: Desk::new(p.engine, p.paper, Some(state)).unwrap(),
        journal: p.journal,
        journal_path: p.journal_path,
        now: NOW.parse().unwrap(),
        dir: p.dir,
    }
}

impl Setup {
    /// Handles a batch on `journal` (the setup's own when `None`), after marking each signal's
    /// bar as published, as the executor does when it sends that BAR.
    async fn batch(
        &mut self,
        sigs: &[Signal],
        journal: Option<&mut Journal>,
    ) -> Vec<executor::desk::DeskOutcome> {
        for s in sigs {
            common::publish(&mut self.desk.engine, s);
        }
        let journal = journal.unwrap_or(&mut self.journal);
        self.desk.handle_batch(sigs, self.now, false, journal).await
    }
}

fn acks(out: &[executor::desk::DeskOutcome]) -> Vec<String> {
    out.iter()
        .map(|o| Line::Ack(o.ack.clone()).to_string())
        .collect()
}

#[tokio::test]
async fn a_state_save_that_fails_after_the_fills_leaves_the_acks_true() {
    let mut s = setup();
    // A non-empty directory where the state file goes makes every save fail at its rename, as a
    // full or read-only filesystem would (the temp file's name is random, so it cannot be blocked).
    let blocker = s.dir.path().join("paper_desk.json");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), "x").unwrap();
    let sigs: Vec<Signal> = SYMBOLS.iter().map(|sym| signal(sym, "LONG_WEAK")).collect();
    let out = s.batch(&sigs, None).await;
    let lines = acks(&out);
    for (line, sym) in lines.iter().zip(SYMBOLS) {
        assert!(
            line.starts_with(&format!("ACK|{sym}|LONG_WEAK|OK|T:")) && line.contains("|P:"),
            "{lines:?}"
        );
    }
    assert_eq!(s.desk.broker.book.positions.len(), 4, "4 opens filled");
    let entries = Journal::read_all(&s.journal_path).unwrap();
    let results = entries
        .iter()
        .filter(|e| matches!(e, Entry::Result { ok: true, .. }))
        .count();
    assert_eq!(results, 4, "every fill is journaled: {entries:?}");
    assert!(blocker.is_dir(), "no state was saved over the blocker");

    // Space is back: the next signal saves the state it could not save before.
    std::fs::remove_dir_all(&blocker).unwrap();
    let again = s.batch(&[signal("EURUSD", "LONG_WEAK")], None).await;
    assert!(again[0].duplicate, "a repeat is answered from memory");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir.path().join("paper_desk.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["risk"]["initial_balance"], 10_000.0, "{saved}");
}

#[tokio::test]
async fn intents_that_cannot_be_journaled_send_no_order_and_say_so() {
    let mut s = setup();
    // /dev/full answers every write with ENOSPC.
    let mut full = Journal::open(std::path::Path::new("/dev/full")).unwrap();
    let mut sigs: Vec<Signal> = SYMBOLS
        .iter()
        .map(|sym| signal(sym, "SHORT_WEAK"))
        .collect();
    sigs.push(signal("USDCHF", "SHORT_WEAK"));
    let out = s.batch(&sigs, Some(&mut full)).await;
    let lines = acks(&out);
    for (line, sym) in lines.iter().zip(SYMBOLS) {
        assert_eq!(
            line,
            &format!("ACK|{sym}|SHORT_WEAK|FAIL|JOURNAL_ERROR|B:{BAR}"),
            "{lines:?}"
        );
    }
    assert_eq!(
        lines[4],
        format!("ACK|USDCHF|SHORT_WEAK|FAIL|DISABLED|B:{BAR}"),
        "a signal that needed no order keeps its own answer"
    );
    assert!(s.desk.broker.book.positions.is_empty(), "no order was sent");

    // Nothing was sent, so a repeat once the disk is back is executed, not answered from memory.
    let again = s.batch(&[signal("EURUSD", "SHORT_WEAK")], None).await;
    assert!(!again[0].duplicate);
    assert!(
        acks(&again)[0].starts_with("ACK|EURUSD|SHORT_WEAK|OK|T:"),
        "{:?}",
        acks(&again)
    );
    assert_eq!(s.desk.broker.book.positions.len(), 1);
}
