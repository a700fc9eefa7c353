//! The executor over the real WebSocket when its state directory misbehaves: ACKs that stay true
//! when the desk state cannot be saved, a kill switch that survives a restart, and a risk baseline
//! that a lost or corrupt `*_desk.json` cannot reset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ws::{self, recv_until, send};
use executor::config::ExecutorConfig;
use protocol::Line;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "digits": 5, "spread": 0.0001, "contract_size": 100000 }
}"#;

/// A paper executor replaying 40 hourly EURUSD bars (2 per second), with `risk` as its limits.
fn paper(dir: &std::path::Path, risk: &str) -> ExecutorConfig {
    let body = common::paper_config(SYMBOLS, risk, "").replace(
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
    ExecutorConfig::load(&path).unwrap()
}

/// The open time of the next EURUSD bar the replay publishes.
async fn next_bar(c: &mut ws::Ws) -> String {
    match recv_until(c, "BAR|EURUSD|").await.parse::<Line>().unwrap() {
        Line::Bar(b) => b.time.to_string(),
        other => panic!("not a BAR: {other:?}"),
    }
}

async fn signal(c: &mut ws::Ws, action: &str, bar: &str) -> String {
    send(c, &format!("SIGNAL|EURUSD|{action}|1|0.00|B:{bar}|N:1")).await;
    recv_until(c, "ACK|").await
}

fn desk_json(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("state/paper_desk.json")).unwrap())
        .unwrap()
}

/// Starts the executor on `cfg`, connects, and returns both.
async fn serve(cfg: &ExecutorConfig) -> (ws::Running, ws::Ws) {
    let run = ws::start(cfg.clone()).await;
    let c = ws::hello(run.addr).await;
    (run, c)
}

async fn stop(run: ws::Running, c: ws::Ws) {
    drop(c);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_reports_the_fill_when_the_desk_state_cannot_be_saved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    // Once started, a non-empty directory where the desk's state file goes fails every save at
    // its rename, as a full or read-only disk would, after the paper fill.
    let state = dir.path().join("state/paper_desk.json");
    let _ = std::fs::remove_file(&state);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("x"), "x").unwrap();
    let b = next_bar(&mut c).await;
    let ack = signal(&mut c, "LONG_WEAK", &b).await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:1|P:") && ack.ends_with(&format!("|B:{b}")),
        "{ack}"
    );
    drop(c);
    run.stop().await;
    assert!(state.is_dir(), "the save could not replace the blocker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_set_by_control_line_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    let (run, mut c) = serve(&cfg).await;
    send(&mut c, "CONTROL|KILL_SWITCH|ON").await;
    let b = next_bar(&mut c).await;
    assert_eq!(
        signal(&mut c, "LONG_WEAK", &b).await,
        format!("ACK|EURUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:{b}")
    );
    stop(run, c).await;

    let (run, mut c) = serve(&cfg).await;
    // The replay starts again at start_bar: skip to bars never answered before.
    let mut b2 = next_bar(&mut c).await;
    while b2 <= b {
        b2 = next_bar(&mut c).await;
    }
    assert_eq!(
        signal(&mut c, "LONG_WEAK", &b2).await,
        format!("ACK|EURUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:{b2}"),
        "the restart must not forget the kill switch"
    );
    send(&mut c, "CONTROL|KILL_SWITCH|OFF").await;
    let b3 = next_bar(&mut c).await;
    assert!(
        signal(&mut c, "LONG_WEAK", &b3)
            .await
            .starts_with("ACK|EURUSD|LONG_WEAK|OK|T:")
    );
    stop(run, c).await;
    assert_eq!(desk_json(dir.path())["kill_switch"], false);
}

/// Trades once (open, then close on the next bar) so the paper balance moves off its initial
/// 10000, stops, and returns the balance.
async fn trade_and_stop(cfg: &ExecutorConfig, dir: &std::path::Path) -> f64 {
    let (run, mut c) = serve(cfg).await;
    let b = next_bar(&mut c).await;
    assert!(signal(&mut c, "LONG_STRONG", &b).await.contains("|OK|"));
    let b2 = next_bar(&mut c).await;
    assert!(signal(&mut c, "WAIT", &b2).await.contains("|OK|"));
    stop(run, c).await;
    let book: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/paper_book.json")).unwrap())
            .unwrap();
    let balance = book["balance"].as_f64().unwrap();
    assert!(
        (balance - 10_000.0).abs() > 0.01,
        "the trade moved the balance: {balance}"
    );
    balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_desk_file_does_not_reset_the_risk_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    trade_and_stop(&cfg, dir.path()).await;
    let before = desk_json(dir.path());
    assert_eq!(before["risk"]["initial_balance"], 10_000.0);
    std::fs::remove_file(dir.path().join("state/paper_desk.json")).unwrap();

    // After the restart (and a signal, which takes a baseline if there is none), the baseline is
    // the one before the file was lost, not the balance now.
    let (run, mut c) = serve(&cfg).await;
    let b = next_bar(&mut c).await;
    signal(&mut c, "WAIT", &b).await;
    stop(run, c).await;
    let after = desk_json(dir.path());
    assert_eq!(after["risk"], before["risk"], "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_baseline_refuses_to_start_and_a_corrupt_file_is_never_to_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    trade_and_stop(&cfg, dir.path()).await;
    let desk = dir.path().join("state/paper_desk.json");

    std::fs::write(&desk, "{ \"risk\": ").unwrap();
    let err = executor::Executor::start(cfg.clone(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("paper_desk.json") && err.contains("restore it from a backup"),
        "{err}"
    );
    assert!(
        !err.contains("delete it to"),
        "never suggest deleting: {err}"
    );

    // A journal from before the baseline was journaled (no guard entry), and no desk file: the
    // book has traded, so starting afresh would reset the limits. Refused, with the fix.
    std::fs::remove_file(&desk).unwrap();
    let journal = dir.path().join("state/journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let without_guard: String = text
        .lines()
        .filter(|l| !l.contains("\"kind\":\"guard\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&journal, without_guard).unwrap();
    let err = executor::Executor::start(cfg.clone(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("paper_desk.json is missing") && err.contains("restore"),
        "{err}"
    );
    assert!(!desk.exists(), "nothing was reset: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_bad_bytes_and_a_torn_tail_still_starts_and_loses_no_new_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let journal = dir.path().join("state/journal.jsonl");
    // Not UTF-8 in the middle (it stopped the executor from starting), then a line torn mid-write.
    std::fs::write(
        &journal,
        b"{\"kind\":\"ack\",\"t\":\"\xff\xfe\"}\n{\"kind\":\"intent\",\"t\":\"2026-02-0",
    )
    .unwrap();
    let (run, mut c) = serve(&cfg).await;
    let b = next_bar(&mut c).await;
    let ack = signal(&mut c, "LONG_WEAK", &b).await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:1|"), "{ack}");
    stop(run, c).await;
    let r = executor::journal::Journal::recover(&journal).unwrap();
    assert_eq!(
        r.skipped.iter().map(|s| s.line).collect::<Vec<_>>(),
        [1, 2],
        "{:?}",
        r.skipped
    );
    let kinds: Vec<&str> = r
        .entries
        .iter()
        .map(|e| match e {
            executor::journal::Entry::Guard { .. } => "guard",
            executor::journal::Entry::Intent { .. } => "intent",
            executor::journal::Entry::Result { .. } => "result",
            executor::journal::Entry::Ack { .. } => "ack",
            executor::journal::Entry::Command { .. } => "command",
            executor::journal::Entry::CommandResult { .. } => "command_result",
        })
        .collect();
    assert_eq!(
        kinds,
        ["guard", "intent", "result", "ack"],
        "every new entry is whole"
    );
}

/// The day's starting equity once the trading day has rolled is not the initial balance: the
/// restart must bring back that figure (from the file, or from the journal when the file is
/// lost), and a replay that starts again at an earlier day must not roll the day back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_starting_equity_after_a_day_roll_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    let next_day = chrono::DateTime::from_timestamp(T0 + 14 * 3600, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(next_day, "2026-02-04T00:00:00Z");

    // Day 1: a trade moves the balance off 10 000; day 2's first signal takes its baseline.
    let (run, mut c) = serve(&cfg).await;
    let b = next_bar(&mut c).await;
    assert!(signal(&mut c, "LONG_STRONG", &b).await.contains("|OK|"));
    let b = next_bar(&mut c).await;
    assert!(signal(&mut c, "WAIT", &b).await.contains("|OK|"));
    let mut rolled = next_bar(&mut c).await;
    while rolled < next_day {
        rolled = next_bar(&mut c).await;
    }
    assert!(signal(&mut c, "WAIT", &rolled).await.contains("|OK|"));
    stop(run, c).await;
    let before = desk_json(dir.path())["risk"].clone();
    assert_eq!(before["day"], "2026-02-04", "{before}");
    assert_eq!(before["initial_balance"], 10_000.0, "{before}");
    let day_start = before["day_start_equity"].as_f64().unwrap();
    assert!(
        (day_start - 10_000.0).abs() > 0.01,
        "day 2 starts at the equity after day 1's trade, not at the initial balance: {before}"
    );

    // Restart with the file: the replay starts again on day 1, whose bars are answered again.
    let (run, mut c) = serve(&cfg).await;
    let first = next_bar(&mut c).await;
    assert!(first < next_day, "{first}");
    signal(&mut c, "WAIT", &first).await;
    stop(run, c).await;
    assert_eq!(
        desk_json(dir.path())["risk"],
        before,
        "a signal on an earlier day rolled the trading day back"
    );

    // Restart without the file: the journal's copy, then a signal on day 2 keeps it.
    std::fs::remove_file(dir.path().join("state/paper_desk.json")).unwrap();
    let (run, mut c) = serve(&cfg).await;
    let mut b = next_bar(&mut c).await;
    while b <= rolled {
        b = next_bar(&mut c).await;
    }
    assert!(signal(&mut c, "WAIT", &b).await.contains("|OK|"));
    stop(run, c).await;
    assert_eq!(desk_json(dir.path())["risk"], before);
}
