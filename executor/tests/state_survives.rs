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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_reports_the_fill_when_the_desk_state_cannot_be_saved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = paper(dir.path(), "{}");
    // Every atomic save of the desk goes through this path: a directory there fails it, as a full
    // or read-only disk would, after the paper fill.
    std::fs::create_dir_all(dir.path().join("state/paper_desk.tmp")).unwrap();
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    let b = next_bar(&mut c).await;
    let ack = signal(&mut c, "LONG_WEAK", &b).await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:1|P:") && ack.ends_with(&format!("|B:{b}")),
        "{ack}"
    );
    drop(c);
    run.stop().await;
}
