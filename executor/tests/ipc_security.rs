//! The IPC against a hostile local user, with the real binaries (issue 12 item 1):
//! - a squatter on the executor's port learns nothing from the real preditor that lets it
//!   authenticate to the real executor afterwards, and the preditor sends it nothing but its HELLO;
//! - at `RUST_LOG=trace` neither daemon writes the token to its output or its log files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::system::{Proc, free_port, repo_root, secret, sibling_binary};
use common::ws::{self, recv_within, send};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A preditor directory: the shipped EURUSD model, the token, an empty state dir.
fn preditor_dir(d: &Path) {
    for sub in ["models", "preditor-state", "secrets"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::os::unix::fs::symlink(
        repo_root().join("models/EURUSD_H1.zip"),
        d.join("models/EURUSD_H1.zip"),
    )
    .unwrap();
    secret(
        &d.join("secrets/ipc.token"),
        &format!("{}\n", common::TOKEN),
    );
}

fn spawn_preditor(d: &Path, port: u16, rust_log: &str, log: &Path) -> Proc {
    let child = Command::new(sibling_binary("preditor", "preditor"))
        .arg("run")
        .arg("--executor")
        .arg(format!("ws://127.0.0.1:{port}"))
        .arg("--token-file")
        .arg(d.join("secrets/ipc.token"))
        .arg("--models")
        .arg(d.join("models"))
        .arg("--state-dir")
        .arg(d.join("preditor-state"))
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc {
        name: "preditor",
        child,
    }
}

/// Every `|`-separated field of the captured lines: whatever a thief could try as the secret.
fn candidate_secrets(captured: &[String]) -> Vec<String> {
    let mut v: Vec<String> = captured
        .iter()
        .flat_map(|l| l.split('|').map(str::to_string))
        .filter(|f| !f.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Whether the connection is authenticated: a WARMUP is answered (HISTORY or UNKNOWN_SYMBOL)
/// rather than refused as unauthenticated.
async fn is_authenticated(c: &mut ws::Ws) -> bool {
    send(c, "WARMUP|EURUSD|H1|5").await;
    loop {
        match tokio::time::timeout(
            Duration::from_secs(2),
            recv_within(c, Duration::from_secs(2)),
        )
        .await
        {
            Ok(Some(l)) if l.starts_with("HISTORY|") || l.starts_with("ERROR|UNKNOWN_SYMBOL|") => {
                return true;
            }
            Ok(Some(l)) if l.starts_with("ERROR|UNAUTHENTICATED") => return false,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_on_the_executors_port_gets_nothing_that_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    preditor_dir(d);
    // The squatter: a plain WebSocket server on the port the preditor is configured for (the real
    // executor is down). It answers the preditor's HELLO as well as a thief can.
    let squat = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = squat.local_addr().unwrap().port();
    let _preditor = spawn_preditor(d, port, "info", &d.join("preditor.log"));
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(60), squat.accept())
        .await
        .expect("the preditor never connected")
        .unwrap();
    let mut victim = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let mut captured: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut answered = false;
    while Instant::now() < deadline {
        let m = tokio::time::timeout(Duration::from_millis(500), victim.next()).await;
        let Ok(m) = m else {
            continue;
        };
        match m {
            Some(Ok(Message::Text(t))) => {
                captured.extend(t.lines().map(str::to_string));
                if !answered {
                    answered = true;
                    // A well-formed executor HELLO of both protocol generations, with made-up
                    // values: the thief does not have the token to compute a real proof.
                    let fake = format!(
                        "HELLO|executor|0.1.0|live|{}|{}",
                        "ab".repeat(32),
                        "cd".repeat(32)
                    );
                    let _ = victim.send(Message::text(fake)).await;
                    let _ = victim
                        .send(Message::text("HELLO|executor|0.1.0|live"))
                        .await;
                }
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => break,
        }
    }
    drop(victim);
    drop(squat);
    assert!(
        captured
            .first()
            .is_some_and(|l| l.starts_with("HELLO|preditor|")),
        "the preditor connected and said HELLO: {captured:?}"
    );
    // The preditor did not take the squatter for its executor: nothing after its HELLO.
    assert_eq!(
        captured.len(),
        1,
        "the preditor sent more than its HELLO to an unproven peer: {captured:?}"
    );

    // The real executor comes up. The thief replays what it captured and tries every captured
    // field as the secret.
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = common::load(
        cfg_dir.path(),
        &common::paper_config(r#"{ "EURUSD": { "enabled": true } }"#, "{}", ""),
    );
    let run = ws::start(cfg).await;
    let mut c = ws::connect(run.addr).await;
    for l in &captured {
        send(&mut c, l).await;
    }
    assert!(
        !is_authenticated(&mut c).await,
        "replaying the captured lines authenticated the thief: {captured:?}"
    );
    for candidate in candidate_secrets(&captured) {
        // As the token in the old HELLO...
        let mut c = ws::connect(run.addr).await;
        send(&mut c, &format!("HELLO|preditor|0.1.0|{candidate}")).await;
        assert!(
            !is_authenticated(&mut c).await,
            "a captured field worked as the token: {candidate}"
        );
        // ...and as the key of the handshake.
        let mut c = ws::connect(run.addr).await;
        if ws::handshake(&mut c, &candidate, "0.1.0").await.is_ok() {
            assert!(
                !is_authenticated(&mut c).await,
                "a captured field worked as the handshake key: {candidate}"
            );
        }
    }
    // The real preditor still can.
    let mut real = ws::hello(run.addr).await;
    assert!(is_authenticated(&mut real).await);
    run.stop().await;
}

/// Paper-mode executor config on `port` replaying the demo EURUSD bars quickly.
fn executor_dir(d: &Path, port: u16) -> std::path::PathBuf {
    std::fs::create_dir_all(d.join("bars")).unwrap();
    let csv = std::fs::read_to_string(repo_root().join("data/demo/EURUSD.csv")).unwrap();
    let head: Vec<&str> = csv.lines().take(451).collect();
    std::fs::write(d.join("bars/EURUSD.csv"), head.join("\n") + "\n").unwrap();
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("executor_config.json")).unwrap(),
    )
    .unwrap();
    let config = serde_json::json!({
        "timeframe": "H1",
        "stale_signal_max_age_secs": 60,
        "clock": "feed",
        "log_dir": "log",
        "state_dir": "state",
        "ipc": { "bind": format!("127.0.0.1:{port}"), "token_file": "secrets/ipc.token", "hello_timeout_secs": 3 },
        "broker": { "mode": "paper", "paper": { "initial_balance": 100000, "leverage": 30,
                    "bars_dir": "bars", "replay_bars_per_second": 20, "start_bar": 400 } },
        "symbols": { "EURUSD": shipped["symbols"]["EURUSD"].clone() }
    });
    let p = d.join("config.json");
    std::fs::write(&p, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    p
}

/// Every file under `dir`, recursively, as lossy text.
fn all_text_under(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_symlink() {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with("ipc.token") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

#[test]
fn no_log_level_shows_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    preditor_dir(d);
    let port = free_port();
    let cfg = executor_dir(d, port);
    let exec_log = d.join("executor.log");
    let mut executor = Proc {
        name: "executor",
        child: Command::new(sibling_binary("executor", "executor"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&exec_log).unwrap())
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(executor.exited().is_none(), "the executor died");
        assert!(Instant::now() < deadline, "the executor never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut preditor = spawn_preditor(d, port, "trace", &d.join("preditor.log"));
    // Trade a little: the handshake, the warmup and a few SIGNAL/ACK round trips at trace level.
    let signals = d.join("log/signals.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acks = std::fs::read_to_string(&signals)
            .unwrap_or_default()
            .matches("> ACK|")
            .count();
        if acks >= 3 {
            break;
        }
        assert!(executor.exited().is_none(), "the executor died");
        assert!(preditor.exited().is_none(), "the preditor died");
        assert!(
            Instant::now() < deadline,
            "no 3 ACKs within 120 s; signals.log:\n{}",
            std::fs::read_to_string(&signals).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    preditor.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    executor.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    let files = all_text_under(d);
    let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("executor.log"))
            && names.iter().any(|n| n.ends_with("preditor.log"))
            && names.iter().any(|n| n.ends_with("signals.log")),
        "{names:?}"
    );
    // Trace level really was on (tungstenite and our own handshake lines are there).
    let exec_text = std::fs::read_to_string(&exec_log).unwrap();
    assert!(exec_text.contains("TRACE"), "RUST_LOG=trace took effect");
    let leaks: Vec<String> = files
        .iter()
        .filter(|(_, text)| text.contains(common::TOKEN))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        leaks.is_empty(),
        "these files show the IPC token: {leaks:?}"
    );
}
