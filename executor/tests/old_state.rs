//! Today's executor on a state directory an older one wrote (`tests/data/state_91626d6`, before
//! journal entries were typed): every journal line reads back, every bar it answered is answered
//! again with the very same line, the intent left pending is resolved by reconciling and never sent,
//! and the kill switch it set stays set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ws::{self, recv_until, send};
use executor::config::ExecutorConfig;
use executor::journal::{Entry, Journal, ResolvedBy};
use protocol::Line;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/state_91626d6");
/// The open intent the fixture leaves pending (bar 2026-02-04T07:00:00Z).
const PENDING: &str = "OT-EURUSD-1770188400-1O";

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "digits": 5, "spread": 0.0001, "contract_size": 100000 }
}"#;

/// The config and bars the fixture was written with, over a copy of its state directory.
fn paper(dir: &std::path::Path) -> ExecutorConfig {
    let body = common::paper_config(SYMBOLS, "{}", "").replace(
        "\"replay_bars_per_second\": 20",
        "\"replay_bars_per_second\": 2",
    );
    let path = common::write_config(dir, &body);
    let mut eur = String::from("time,open,high,low,close,volume\n");
    for i in 0..40i64 {
        let c = 1.1 + 0.002 * (i % 7) as f64;
        eur.push_str(&format!(
            "{},{c:.5},{:.5},{:.5},{c:.5},{}\n",
            T0 + i * 3600,
            c + 0.0005,
            c - 0.0005,
            100 + i
        ));
    }
    std::fs::write(dir.join("bars/EURUSD.csv"), eur).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    for f in ["journal.jsonl", "paper_desk.json", "paper_book.json"] {
        std::fs::copy(format!("{FIXTURE}/{f}"), dir.join("state").join(f)).unwrap();
    }
    ExecutorConfig::load(&path).unwrap()
}

#[test]
fn every_line_of_the_old_journal_reads_back() {
    let r = Journal::recover(std::path::Path::new(&format!("{FIXTURE}/journal.jsonl"))).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    let lines = std::fs::read_to_string(format!("{FIXTURE}/journal.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(r.entries.len(), lines);
    assert_eq!(lines, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_resumes_from_an_older_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path());
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    // Every answered bar gets its journaled answer again, whatever the clock says now.
    for (sig, ack) in [
        (
            "SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-03T13:00:00Z|N:1",
            "ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.10610|B:2026-02-03T13:00:00Z",
        ),
        (
            "SIGNAL|EURUSD|SHORT_MODERATE|1|0.00|B:2026-02-03T14:00:00Z|N:1",
            "ACK|EURUSD|SHORT_MODERATE|OK|T:2|P:1.10800|B:2026-02-03T14:00:00Z",
        ),
        (
            "SIGNAL|EURUSD|WAIT|1|0.00|B:2026-02-03T15:00:00Z|N:1",
            "ACK|EURUSD|WAIT|OK|T:2|P:1.11010|B:2026-02-03T15:00:00Z",
        ),
        (
            "SIGNAL|EURUSD|LONG_STRONG|1|0.00|B:2026-02-03T16:00:00Z|N:2",
            "ACK|EURUSD|LONG_STRONG|WAIT_SYNC|MISSED_ENTRY|B:2026-02-03T16:00:00Z",
        ),
        (
            "SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-03T17:00:00Z|N:1",
            "ACK|EURUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:2026-02-03T17:00:00Z",
        ),
        (
            "SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-04T06:00:00Z|N:1",
            "ACK|EURUSD|LONG_WEAK|FAIL|BROKER_ERROR|B:2026-02-04T06:00:00Z",
        ),
        // The open left pending: never filled, so never resent; its bar is answered as unresolved.
        (
            "SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:2026-02-04T07:00:00Z|N:1",
            "ACK|EURUSD|LONG_WEAK|FAIL|BROKER_ERROR|B:2026-02-04T07:00:00Z",
        ),
    ] {
        send(&mut c, sig).await;
        assert_eq!(recv_until(&mut c, "ACK|").await, ack, "{sig}");
    }
    // The kill switch the old executor was told to set holds for a bar never answered.
    let fresh = loop {
        let Line::Bar(b) = recv_until(&mut c, "BAR|EURUSD|")
            .await
            .parse::<Line>()
            .unwrap()
        else {
            unreachable!()
        };
        if b.time.unix_seconds() >= T0 + 8 * 3600 {
            break b.time;
        }
    };
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{fresh}|N:1"),
    )
    .await;
    assert_eq!(
        recv_until(&mut c, "ACK|").await,
        format!("ACK|EURUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:{fresh}")
    );
    drop(c);
    run.stop().await;

    let entries = Journal::read_all(&dir.path().join("state/journal.jsonl")).unwrap();
    let results: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e, Entry::Result { coid, .. } if coid == PENDING))
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        matches!(
            results[0],
            Entry::Result {
                ok: false,
                resolved_by: Some(ResolvedBy::Reconcile),
                ..
            }
        ),
        "{results:?}"
    );
    let book: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/paper_book.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(book["positions"], serde_json::json!([]), "nothing was sent");
    assert_eq!(book["balance"], 9995.6);
}
