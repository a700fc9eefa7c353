//! The core loop driven directly: a paper-mode executor built with a [`TokioClock`] under a paused
//! tokio runtime, its preditor connection played by the test through the loop's own event channel.
//! - One clock: staleness and the replay's pace follow tokio's time alone (moved with
//!   `tokio::time::advance`; no wall time passes).
//! - Operator commands: sent on `Executor::commands`, they reach the books by the one path and
//!   answer on their reply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use executor::clock::TokioClock;
use executor::core::event::{Command, CommandOutcome, CommandRequest};
use executor::ipc::{ConnEvent, Outbound};
use protocol::BarTime;
use tokio::sync::mpsc;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z
/// The replay's period: 0.01 bars per second.
const PERIOD: Duration = Duration::from_secs(100);
const MAX_AGE_SECS: u64 = 600;

fn write_bars(dir: &std::path::Path) {
    for sym in ["EURUSD", "GBPUSD"] {
        let mut csv = String::from("time,open,high,low,close,volume\n");
        for i in 0..8i64 {
            let c = 1.1 + 0.001 * i as f64;
            csv.push_str(&format!(
                "{},{c:.5},{:.5},{:.5},{c:.5},{}\n",
                T0 + i * 3600,
                c + 0.0005,
                c - 0.0005,
                100 + i
            ));
        }
        std::fs::write(dir.join(format!("bars/{sym}.csv")), csv).unwrap();
    }
}

const SYMBOLS: &str = r#"{
  "EURUSD": { "enabled": true, "digits": 5, "spread": 0.0001, "contract_size": 100000 },
  "GBPUSD": { "enabled": true, "digits": 5, "spread": 0.0001, "contract_size": 100000 }
}"#;

/// The lines of every message waiting on `rx`, without waiting.
fn drain(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(m) = rx.try_recv() {
        if let Outbound::Line(text) = m {
            lines.extend(text.split('\n').map(str::to_string));
        }
    }
    lines
}

/// Waits for the next message and returns its lines.
async fn next_lines(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<String> {
    match rx.recv().await.expect("the executor closed the connection") {
        Outbound::Line(text) => text.split('\n').map(str::to_string).collect(),
        Outbound::Close(e) => panic!("closed: {e:?}"),
    }
}

fn signal(id: u64, symbol: &str, bar: BarTime) -> ConnEvent {
    ConnEvent::Line {
        id,
        line: format!("SIGNAL|{symbol}|LONG_WEAK|1|0.00|B:{bar}|N:1")
            .parse()
            .unwrap(),
    }
}

/// A served executor and the test's side of its preditor connection.
struct Run {
    dir: tempfile::TempDir,
    conn: mpsc::Sender<ConnEvent>,
    out: mpsc::UnboundedReceiver<Outbound>,
    commands: mpsc::Sender<CommandRequest>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    /// When the connection was handed to the loop (tokio's time).
    started: tokio::time::Instant,
}

/// Starts a paper executor (0.01 bars/s, signals stale after [`MAX_AGE_SECS`]) whose clock starts
/// at the close of the first replayed bar (start_bar 3: 13:00, closed 14:00), and connects.
async fn start() -> Run {
    let dir = tempfile::tempdir().unwrap();
    let body = common::paper_config(SYMBOLS, "{}", "")
        .replace("\"clock\": \"feed\"", "\"clock\": \"system\"")
        .replace(
            "\"stale_signal_max_age_secs\": 60",
            &format!("\"stale_signal_max_age_secs\": {MAX_AGE_SECS}"),
        )
        .replace(
            "\"replay_bars_per_second\": 20",
            "\"replay_bars_per_second\": 0.01",
        );
    let cfg = common::load(dir.path(), &body);
    write_bars(dir.path());
    let first_close = chrono::DateTime::from_timestamp(T0 + 4 * 3600, 0).unwrap();
    let clock = std::sync::Arc::new(TokioClock::new(first_close));
    let exec = executor::Executor::start(cfg, Some(clock)).await.unwrap();
    let commands = exec.commands();

    let (conn, conn_rx) = mpsc::channel(64);
    let (_reload_tx, reload_rx) = mpsc::channel(1);
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(exec.serve(
        conn_rx,
        async {
            let _ = stop_rx.await;
        },
        reload_rx,
    ));
    let (out_tx, out) = mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    conn.send(ConnEvent::Authenticated {
        id: 1,
        version: "test".into(),
        tx: out_tx,
    })
    .await
    .unwrap();
    Run {
        dir,
        conn,
        out,
        commands,
        stop,
        served,
        started,
    }
}

/// A command's outcome; a command the loop never takes fails the test (in tokio's time: the
/// replay's timers keep it moving).
async fn answer(rx: tokio::sync::oneshot::Receiver<CommandOutcome>) -> CommandOutcome {
    tokio::time::timeout(Duration::from_secs(3600), rx)
        .await
        .expect("no answer to the command")
        .unwrap()
}

impl Run {
    /// The next ACK the executor sends.
    async fn ack(&mut self) -> String {
        loop {
            let lines = next_lines(&mut self.out).await;
            if let Some(a) = lines.into_iter().find(|l| l.starts_with("ACK|")) {
                return a;
            }
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.served.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn staleness_and_the_replay_follow_the_paused_clock() {
    let mut run = start().await;
    // The first replayed bar: on the first tick (or the next, a period later, if the loop took
    // the tick before the connection).
    let bars = next_lines(&mut run.out).await;
    let waited = run.started.elapsed();
    assert!(waited <= PERIOD, "first bar after {waited:?} of tokio time");
    let bar3 = BarTime::from_unix(T0 + 3 * 3600).unwrap();
    assert!(
        bars.iter()
            .any(|l| l.starts_with(&format!("BAR|EURUSD|H1|{bar3}|"))),
        "{bars:?}"
    );

    // The replay steps only when tokio's time reaches its next tick.
    tokio::task::yield_now().await;
    assert!(drain(&mut run.out).is_empty(), "a bar before the next tick");
    tokio::time::advance(PERIOD).await;
    tokio::task::yield_now().await;
    let bar4 = BarTime::from_unix(T0 + 4 * 3600).unwrap();
    let next = drain(&mut run.out);
    assert!(
        next.iter()
            .any(|l| l.starts_with(&format!("BAR|EURUSD|H1|{bar4}|"))),
        "the next bar one period later: {next:?}"
    );

    // Fresh by the paused clock: followed.
    run.conn.send(signal(1, "EURUSD", bar3)).await.unwrap();
    let ack = run.ack().await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{ack}");

    // Past the allowed age once tokio's time has moved on (no wall time has).
    let age = run.started.elapsed();
    tokio::time::advance(Duration::from_secs(MAX_AGE_SECS + 1) - age).await;
    run.conn.send(signal(1, "GBPUSD", bar3)).await.unwrap();
    assert_eq!(
        run.ack().await,
        format!("ACK|GBPUSD|LONG_WEAK|FAIL|STALE|B:{bar3}"),
        "a signal {MAX_AGE_SECS} s + 1 s after its bar's close by the paused clock"
    );
    run.stop().await;
}

/// An operator's command (what `executor ctl` and the hub's link will send) reaches the books
/// through `Executor::commands` and answers on its reply: the kill switch refuses the next open
/// and is journaled; a reload of a broken config is refused with why, the running one kept.
#[tokio::test(start_paused = true)]
async fn operator_commands_reach_the_books_and_answer() {
    let mut run = start().await;
    let bar3 = BarTime::from_unix(T0 + 3 * 3600).unwrap();
    let _first_bar = next_lines(&mut run.out).await;

    let (req, outcome) = CommandRequest::asking(Command::KillSwitch { on: true });
    run.commands.send(req).await.unwrap();
    assert_eq!(answer(outcome).await, CommandOutcome::Done);
    run.conn.send(signal(1, "EURUSD", bar3)).await.unwrap();
    assert_eq!(
        run.ack().await,
        format!("ACK|EURUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:{bar3}")
    );
    let journal = std::fs::read_to_string(run.dir.path().join("state/journal.jsonl")).unwrap();
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"kind\":\"guard\"") && l.contains("\"kill_switch\":true")),
        "{journal}"
    );

    std::fs::write(run.dir.path().join("config.json"), "{ \"timeframe\": ").unwrap();
    let (req, outcome) = CommandRequest::asking(Command::Reload);
    run.commands.send(req).await.unwrap();
    match answer(outcome).await {
        CommandOutcome::Failed(why) => {
            assert!(why.contains("the running config is kept"), "{why}")
        }
        other => panic!("a broken config reloaded: {other:?}"),
    }
    // The running config and the switch still hold.
    run.conn.send(signal(1, "GBPUSD", bar3)).await.unwrap();
    assert_eq!(
        run.ack().await,
        format!("ACK|GBPUSD|LONG_WEAK|FAIL|KILL_SWITCH|B:{bar3}")
    );
    run.stop().await;
}
