//! Paper mode end to end over the real WebSocket: CSV bars replayed as BAR lines, WARMUP answered
//! with HISTORY, SIGNALs executed on the paper book, ACKs, journal, drift.csv, signals.log, and a
//! restart that resumes the persisted book and answers a repeated signal without re-executing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ws::{self, recv, recv_until, send};
use executor::drift::DriftReport;
use protocol::Line;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

fn write_bars(dir: &std::path::Path) {
    let mut eur = String::from("time,open,high,low,close,volume\n");
    let mut spx = String::from("time,open,high,low,close,volume\n");
    for i in 0..8i64 {
        let c = 1.1 + 0.001 * i as f64;
        eur.push_str(&format!(
            "{},{c:.5},{:.5},{:.5},{c:.5},{}\n",
            T0 + i * 3600,
            c + 0.0005,
            c - 0.0005,
            100 + i
        ));
        let s = 5000.0 + i as f64;
        spx.push_str(&format!(
            "{},{s:.2},{:.2},{:.2},{s:.2},{}\n",
            T0 + i * 3600,
            s + 1.0,
            s - 1.0,
            10 + i
        ));
    }
    std::fs::write(dir.join("bars/EURUSD.csv"), eur).unwrap();
    std::fs::write(dir.join("bars/US500.csv"), spx).unwrap();
}

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.03, "lot_strong": 0.05, "digits": 5,
              "spread": 0.0001, "slippage": 0.00002, "contract_size": 100000 },
  "US500":  { "enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "digits": 2,
              "spread": 0.5, "contract_size": 1 }
}"#;

fn bar_of(line: &str) -> protocol::BarLine {
    match line.parse::<Line>().unwrap() {
        Line::Bar(b) => b,
        other => panic!("not a BAR: {other:?}"),
    }
}

/// The time of the first EURUSD BAR published strictly after `floor`.
async fn eurusd_bar_after(c: &mut ws::Ws, floor: protocol::BarTime) -> protocol::BarTime {
    loop {
        let t = bar_of(&recv_until(c, "BAR|EURUSD|").await).time;
        if t > floor {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_mode_end_to_end_with_restart() {
    let dir = tempfile::tempdir().unwrap();
    // 2 bars/s: market time (the feed clock) advances an hour per 500 ms, so each signal must be
    // answered before the next bar makes its bar stale, as in production
    let body = common::paper_config(SYMBOLS, "{}", "").replace(
        "\"replay_bars_per_second\": 20",
        "\"replay_bars_per_second\": 2",
    );
    let cfg_path = common::write_config(dir.path(), &body);
    write_bars(dir.path());
    let cfg = executor::config::ExecutorConfig::load(&cfg_path).unwrap();
    let run = ws::start(cfg.clone()).await;
    let mut c = ws::hello(run.addr).await;

    // WARMUP: the history bars (start_bar = 3, plus any the replay already published), oldest
    // first, as one uninterrupted block
    send(&mut c, "WARMUP|EURUSD|H1|700").await;
    let mut got = vec![recv_until(&mut c, "HISTORY|").await];
    loop {
        let l = recv(&mut c).await.unwrap();
        let end = l.starts_with("HISTORY_END|");
        got.push(l);
        if end {
            break;
        }
    }
    let n: usize = got[0].rsplit('|').next().unwrap().parse().unwrap();
    assert!(
        got[0].starts_with("HISTORY|EURUSD|H1|") && n >= 3,
        "{}",
        got[0]
    );
    assert_eq!(got.len(), n + 2, "{got:#?}");
    assert!(
        got[1].starts_with("BAR|EURUSD|H1|2026-02-03T10:00:00Z|1.10000|"),
        "{}",
        got[1]
    );
    assert!(got[1..=n].iter().all(|l| l.starts_with("BAR|EURUSD|H1|")));
    assert_eq!(got[n + 1], "HISTORY_END|EURUSD|H1");

    // act on the next bar the replay publishes
    let bar = bar_of(&recv_until(&mut c, "BAR|EURUSD|").await);
    assert!(bar.time.unix_seconds() >= T0 + 3 * 3600);
    let b = bar.time.to_string();
    let close = bar.close.to_f64();
    send(&mut c, &format!("SIGNAL|EURUSD|LONG_WEAK|2|0.00|B:{b}|N:1")).await;
    let ack = recv_until(&mut c, "ACK|").await;
    let expect_price = format!("{:.5}", close + 0.0001 + 0.00002);
    assert_eq!(
        ack,
        format!("ACK|EURUSD|LONG_WEAK|OK|T:1|P:{expect_price}|B:{b}")
    );
    // repeated: same ACK, no second order
    send(&mut c, &format!("SIGNAL|EURUSD|LONG_WEAK|2|0.00|B:{b}|N:1")).await;
    assert_eq!(recv_until(&mut c, "ACK|").await, ack);
    // a stale signal (an old bar) is refused
    send(
        &mut c,
        "SIGNAL|US500|LONG_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1",
    )
    .await;
    assert_eq!(
        recv_until(&mut c, "ACK|").await,
        "ACK|US500|LONG_WEAK|FAIL|STALE|B:2026-02-03T10:00:00Z"
    );
    // kill switch by control line refuses opening, then OFF allows it again
    send(&mut c, "CONTROL|KILL_SWITCH|ON").await;
    send(&mut c, &format!("SIGNAL|US500|SHORT_WEAK|1|0.00|B:{b}|N:1")).await;
    assert_eq!(
        recv_until(&mut c, "ACK|").await,
        format!("ACK|US500|SHORT_WEAK|FAIL|KILL_SWITCH|B:{b}")
    );
    send(&mut c, "CONTROL|KILL_SWITCH|OFF").await;
    drop(c);
    run.stop().await;

    // the book, journal and logs are on disk
    let book: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/paper_book.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(book["positions"].as_array().unwrap().len(), 1);
    assert_eq!(
        book["positions"][0]["label"],
        format!("OT-EURUSD-{}-1O", bar.time.unix_seconds())
    );
    let journal = std::fs::read_to_string(dir.path().join("state/journal.jsonl")).unwrap();
    let kinds: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        &kinds[..4],
        ["guard", "intent", "result", "ack"],
        "the risk baseline, then the intent journaled before the result: {kinds:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("log/signals.log")).unwrap();
    assert!(
        log.contains(&format!("< SIGNAL|EURUSD|LONG_WEAK|2|0.00|B:{b}|N:1")),
        "{log}"
    );
    assert!(log.contains(&format!("> {ack}")), "{log}");
    let rep = DriftReport::from_file(&dir.path().join("log/drift.csv")).unwrap();
    let eur = &rep.symbols["EURUSD"];
    assert_eq!(
        (eur.signals, eur.paper.in_sync),
        (1, 1),
        "the repeat is not a second drift row"
    );
    assert_eq!(rep.symbols["US500"].paper.refusals.get("STALE"), Some(&1));
    assert_eq!(
        rep.symbols["US500"].paper.refusals.get("KILL_SWITCH"),
        Some(&1)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["drift-report", "--log"])
        .arg(dir.path().join("log/drift.csv"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("EURUSD: 1 signals") && text.contains("paper in sync 1/1 (100.0%)"),
        "{text}"
    );
    assert!(text.contains("refusals KILL_SWITCH=1 STALE=1"), "{text}");

    // restart: a second executor on the same state dir resumes the book
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    // the old signal again after the restart: same ACK from the journal, still one position
    send(&mut c, &format!("SIGNAL|EURUSD|LONG_WEAK|2|0.00|B:{b}|N:1")).await;
    assert_eq!(recv_until(&mut c, "ACK|").await, ack);
    // after the restart the replay starts again from start_bar (the CSV source is stateless), so it
    // publishes `b` again at some point: use bars strictly after `b`, or the executor rightly answers
    // the remembered ACK of `b` (a repeated bar is never re-executed, whatever its action).
    let next_time = eurusd_bar_after(&mut c, bar.time).await;
    let next = next_time.to_string();
    // the position matches → OK with the existing id, no order
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|2|1.00|B:{next}|N:2"),
    )
    .await;
    let held = recv_until(&mut c, "ACK|").await;
    assert_eq!(
        held,
        format!("ACK|EURUSD|LONG_WEAK|OK|T:1|P:{expect_price}|B:{next}")
    );
    // WAIT closes it
    let next2 = eurusd_bar_after(&mut c, next_time).await.to_string();
    send(&mut c, &format!("SIGNAL|EURUSD|WAIT|2|1.00|B:{next2}|N:1")).await;
    let closed = recv_until(&mut c, "ACK|").await;
    assert!(closed.starts_with("ACK|EURUSD|WAIT|OK|T:1|P:"), "{closed}");
    drop(c);
    run.stop().await;
    let book: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/paper_book.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(book["positions"].as_array().unwrap().len(), 0);
    assert_eq!(book["next_position_id"], 2);
}

#[tokio::test]
async fn second_executor_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::load(dir.path(), &common::paper_config(SYMBOLS, "{}", ""));
    let first = executor::Executor::start(cfg.clone(), None).await.unwrap();
    let err = executor::Executor::start(cfg, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("locked by another executor"), "{err}");
    drop(first);
}
