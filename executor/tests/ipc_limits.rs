//! What an authenticated or unauthenticated peer can make the executor do (issue 12 items 3, 4, 10):
//! SIGNALs for bars it never published are refused and cannot push real bars out of the memory of
//! answered ones (no duplicate order); a repeated bar with another action gets `DUPLICATE_BAR`; an
//! ERROR is never answered; WARMUPs do not hold up ACKs; idle connections and unknown symbols do
//! not grow the executor's memory (measured on the real binary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::system::{Proc, free_port, sibling_binary};
use common::ws::{self, recv_within, send};
use protocol::{BarTime, Line};

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

/// `n` hourly EURUSD bars from T0.
fn eurusd_csv(n: i64) -> String {
    let mut s = String::from("time,open,high,low,close,volume\n");
    for i in 0..n {
        let c = 1.1 + 0.0001 * (i % 50) as f64;
        s.push_str(&format!(
            "{},{c:.5},{:.5},{:.5},{c:.5},{}\n",
            T0 + i * 3600,
            c + 0.0005,
            c - 0.0005,
            100 + i
        ));
    }
    s
}

/// A paper-mode config in `d` (token, bars) replaying `bars` EURUSD bars at `rate` bars/s from
/// `start_bar`, listening on `bind`.
fn paper(d: &Path, bars: i64, start_bar: i64, rate: f64, bind: &str) -> PathBuf {
    let cfg = format!(
        r#"{{
  "timeframe": "H1",
  "stale_signal_max_age_secs": 60,
  "clock": "feed",
  "log_dir": "log",
  "state_dir": "state",
  "ipc": {{ "bind": "{bind}", "token_file": "secrets/ipc.token", "hello_timeout_secs": 10 }},
  "broker": {{ "mode": "paper", "paper": {{ "initial_balance": 10000, "leverage": 30, "bars_dir": "bars",
               "replay_bars_per_second": {rate}, "start_bar": {start_bar} }} }},
  "risk": {{}},
  "symbols": {{ "EURUSD": {{ "enabled": true, "digits": 5, "lot_weak": 0.01, "lot_moderate": 0.02, "lot_strong": 0.03 }} }}
}}"#
    );
    let p = common::write_config(d, &cfg);
    std::fs::write(d.join("bars/EURUSD.csv"), eurusd_csv(bars)).unwrap();
    p
}

/// The next live EURUSD BAR's time (bars come every few seconds here).
async fn next_bar(c: &mut ws::Ws) -> BarTime {
    loop {
        let l = recv_within(c, Duration::from_secs(30))
            .await
            .expect("connection closed while waiting for a BAR");
        if let Ok(Line::Bar(b)) = l.parse::<Line>() {
            return b.time;
        }
    }
}

/// The next ACK line (BARs skipped).
async fn next_ack(c: &mut ws::Ws) -> String {
    loop {
        let l = recv_within(c, Duration::from_secs(30))
            .await
            .expect("connection closed while waiting for an ACK");
        if l.starts_with("ACK|") {
            return l;
        }
    }
}

/// Open intents the journal holds for EURUSD's bar `bar`.
fn open_intents(state: &Path, bar: BarTime) -> usize {
    let text = std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["kind"] == "intent"
                && v["leg"] == "Open"
                && v["symbol"] == "EURUSD"
                && v["bar"] == bar.unix_seconds()
        })
        .count()
}

#[tokio::test]
async fn signals_for_unpublished_bars_are_refused_and_never_cause_a_second_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = executor::config::ExecutorConfig::load(&paper(d, 200, 60, 0.25, "127.0.0.1:0"))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    let bar = next_bar(&mut c).await;
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{bar}|N:1"),
    )
    .await;
    let first = next_ack(&mut c).await;
    assert!(first.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{first}");
    assert_eq!(open_intents(&d.join("state"), bar), 1);

    // 65 future bars (more than the 64 answered bars remembered per symbol), a time off the bar
    // grid, and another timeframe's bar boundary: none was published, none is executed.
    let mut junk: Vec<String> = (0..65)
        .map(|k| {
            let t = BarTime::from_unix(4_070_908_800 + k * 3600).unwrap(); // 2099-01-01T00:00Z +k h
            format!("SIGNAL|EURUSD|WAIT|1|0.00|B:{t}|N:1")
        })
        .collect();
    let off_grid = BarTime::from_unix(bar.unix_seconds() + 17 * 60).unwrap();
    junk.push(format!(
        "SIGNAL|EURUSD|SHORT_STRONG|1|0.00|B:{off_grid}|N:1"
    ));
    send(&mut c, &junk.join("\n")).await;
    for line in &junk {
        let ack = next_ack(&mut c).await;
        let b = line
            .rsplit("|B:")
            .next()
            .unwrap()
            .split('|')
            .next()
            .unwrap();
        assert!(ack.contains("|FAIL|UNKNOWN_BAR|"), "{line} -> {ack}");
        assert!(ack.ends_with(&format!("|B:{b}")), "{ack}");
    }
    // The real bar's repeat still gets its first answer, and nothing was sent again.
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{bar}|N:1"),
    )
    .await;
    assert_eq!(next_ack(&mut c).await, first);
    // Another action for that bar: refused, and the first answer still stands.
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|SHORT_STRONG|1|0.00|B:{bar}|N:1"),
    )
    .await;
    assert_eq!(
        next_ack(&mut c).await,
        format!("ACK|EURUSD|SHORT_STRONG|FAIL|DUPLICATE_BAR|B:{bar}")
    );
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{bar}|N:1"),
    )
    .await;
    assert_eq!(next_ack(&mut c).await, first);
    assert_eq!(
        open_intents(&d.join("state"), bar),
        1,
        "one open for the bar"
    );
    run.stop().await;
}

#[tokio::test]
async fn an_error_line_is_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        executor::config::ExecutorConfig::load(&paper(dir.path(), 100, 60, 0.01, "127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("{e}"));
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    // Malformed and well-formed ERRORs, then a line that is answered: its answer comes first.
    send(
        &mut c,
        "ERROR|not a code|x\nERROR|MALFORMED\nERROR|MALFORMED|your line was odd\nSIGNAL|XAGUSD|WAIT|1|0.00|B:2026-02-03T10:00:00Z|N:1",
    )
    .await;
    loop {
        let l = recv_within(&mut c, Duration::from_secs(10)).await.unwrap();
        if l.starts_with("BAR|") || l.starts_with("HISTORY") {
            continue;
        }
        assert_eq!(
            l, "ACK|XAGUSD|WAIT|FAIL|UNKNOWN_SYMBOL|B:2026-02-03T10:00:00Z",
            "an ERROR was answered"
        );
        break;
    }
    run.stop().await;
}

#[tokio::test]
async fn warmups_do_not_hold_up_the_ack_of_a_signal_sent_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        executor::config::ExecutorConfig::load(&paper(dir.path(), 3000, 2990, 0.01, "127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("{e}"));
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    let mut msg: Vec<String> = (0..40)
        .map(|_| "WARMUP|EURUSD|H1|2990".to_string())
        .collect();
    msg.push("SIGNAL|XAGUSD|WAIT|1|0.00|B:2026-02-03T10:00:00Z|N:1".to_string());
    send(&mut c, &msg.join("\n")).await;
    // The ACK comes before any HISTORY block is complete.
    let mut ends = 0;
    loop {
        let l = recv_within(&mut c, Duration::from_secs(60)).await.unwrap();
        if l.starts_with("HISTORY_END|") {
            ends += 1;
        } else if l.starts_with("ACK|") {
            break;
        }
    }
    assert_eq!(ends, 0, "the ACK waited for {ends} HISTORY blocks");
    // And the WARMUPs were answered: one block (a WARMUP for a pair already being answered is
    // answered by that block, PROTOCOL.md §7), complete.
    let mut bars = 0;
    loop {
        let l = recv_within(&mut c, Duration::from_secs(60)).await.unwrap();
        if l.starts_with("BAR|") {
            bars += 1;
        } else if l.starts_with("HISTORY_END|") {
            break;
        }
    }
    assert!(bars >= 2990, "{bars} bars in the block");
    run.stop().await;
}

/// The resident set of `pid` in KiB (`VmRSS` in /proc).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A distinct valid symbol per index.
fn symbol_name(mut i: usize) -> String {
    let mut s = String::from("Z");
    loop {
        s.push((b'A' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return s;
        }
    }
}

/// The real binary: 600 idle WebSocket connections (no HELLO) and 20,000 distinct unknown symbols
/// in SIGNALs. Each step's resident-set growth is printed (`--nocapture`) and bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_unknown_symbols_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = paper(dir.path(), 100, 60, 0.01, &format!("127.0.0.1:{port}"));
    let mut exec = Proc {
        name: "executor",
        child: Command::new(sibling_binary("executor", "executor"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(exec.exited().is_none(), "the executor died");
        assert!(Instant::now() < deadline, "the executor never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = exec.child.id();
    // One full session first, so lazily allocated state is there before the baseline.
    drop(ws::hello(addr).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = rss_kib(pid);

    let mut idle = Vec::new();
    for _ in 0..600 {
        // A connection the executor closes at once is fine: it is bounded, not refused service.
        if let Ok(Ok((c, _))) = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(format!("ws://{addr}")),
        )
        .await
        {
            idle.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_idle = rss_kib(pid);
    // The real preditor still gets in while they are held open.
    let mut c = ws::hello(addr).await;
    eprintln!(
        "600 idle connections: VmRSS {base} KiB -> {with_idle} KiB (+{} KiB)",
        with_idle.saturating_sub(base)
    );

    let before = rss_kib(pid);
    let n = 20_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let msg: Vec<String> = chunk
            .iter()
            .map(|&i| {
                format!(
                    "SIGNAL|{}|LONG_WEAK|1|0.00|B:2026-02-03T10:00:00Z|N:1",
                    symbol_name(i)
                )
            })
            .collect();
        send(&mut c, &msg.join("\n")).await;
        for _ in chunk {
            let ack = next_ack(&mut c).await;
            assert!(ack.contains("|FAIL|UNKNOWN_SYMBOL|"), "{ack}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib(pid);
    eprintln!(
        "{n} unknown symbols: VmRSS {before} KiB -> {after} KiB (+{} KiB)",
        after.saturating_sub(before)
    );
    drop(idle);
    assert!(
        with_idle.saturating_sub(base) < 8 * 1024,
        "600 idle connections grew the executor by {} KiB",
        with_idle.saturating_sub(base)
    );
    assert!(
        after.saturating_sub(before) < 4 * 1024,
        "{n} unknown symbols grew the executor by {} KiB",
        after.saturating_sub(before)
    );
}
