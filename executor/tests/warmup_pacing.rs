//! The demo's warm-up against the real `ctrader-sim` at its default limits (5 historical
//! requests/s): the preditor's 20 `WARMUP|SYM|H1|1350` at once, on the demo's data (700 bars of
//! history, start bar 700) and the demo config's symbols and 5 s request timeout. Each WARMUP pages
//! back through three trendbar windows, so 60 requests queue behind the client's pacing (4 per
//! 1.05 s: ~16 s). Before the fix the client refused every request whose turn came after its 5 s
//! timeout and four symbols were answered `ERROR|UNKNOWN_SYMBOL`; now every one gets its HISTORY.
//!
//! Needs the simulator binary next to the executor's (`cargo test --workspace` builds it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::system::{Sim, repo_root, secret};
use common::ws::{self, recv_within, send};
use protocol::Line;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_warmups_of_1350_bars_all_get_their_history_at_the_default_limits() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim-ca.pem");
    // No rate-limit flags: the simulator's defaults are the server's documented 50 and 5 per second.
    let sim = Sim::start(
        &root.join("data/demo"),
        &cert,
        &["--speed", "4", "--start-bar", "700", "--paused"],
        Some(&dir.path().join("sim.log")),
    );
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    secret(&dir.path().join("secrets/ct_secret"), "sim-client-secret\n");
    secret(
        &dir.path().join("secrets/ct_tokens.json"),
        r#"{"access_token":"sim-access-token","refresh_token":"sim-refresh-token"}"#,
    );
    let demo: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("executor_config.json")).unwrap())
            .unwrap();
    let symbols = demo["symbols"].as_object().unwrap().clone();
    assert_eq!(symbols.len(), 20, "the demo trades 20 symbols");
    let timeout_ms = demo["broker"]["ctrader"]["request_timeout_ms"].clone();
    let config = serde_json::json!({
        "timeframe": "H1", "clock": "feed", "stale_signal_max_age_secs": 60,
        "log_dir": "log", "state_dir": "state",
        "ipc": { "bind": "127.0.0.1:0", "token_file": "secrets/ipc.token" },
        "broker": {
            "mode": "shadow",
            "ctrader": {
                "host": "127.0.0.1", "port": sim.port, "ca_file": cert,
                "client_id": "sim-client-id", "secret_file": "secrets/ct_secret",
                "token_file": "secrets/ct_tokens.json", "account_id": 1_000_001,
                "request_timeout_ms": timeout_ms
            },
            "paper": { "initial_balance": 100000, "leverage": 30 }
        },
        "symbols": symbols
    });
    let cfg = common::load(dir.path(), &config.to_string());
    let run = ws::start(cfg).await;
    let mut c = ws::hello(run.addr).await;
    // As the preditor does: one WARMUP per model, back to back.
    for sym in symbols.keys() {
        send(&mut c, &format!("WARMUP|{sym}|H1|1350")).await;
    }

    // symbol -> (announced count, BARs received, ended)
    let mut blocks: BTreeMap<String, (u32, usize, bool)> = BTreeMap::new();
    let mut errors = Vec::new();
    let started = std::time::Instant::now();
    while blocks.values().filter(|b| b.2).count() + errors.len() < symbols.len() {
        // The queue is ~16 s long; far more than that without a line is a hang.
        let l = recv_within(&mut c, Duration::from_secs(60))
            .await
            .expect("the executor closed the connection");
        match l.parse::<Line>() {
            Ok(Line::History(h)) => {
                blocks.insert(h.symbol.to_string(), (h.count, 0, false));
            }
            Ok(Line::Bar(b)) => {
                if let Some(block) = blocks.get_mut(b.symbol.as_str()) {
                    block.1 += 1;
                }
            }
            Ok(Line::HistoryEnd(h)) => blocks.get_mut(h.symbol.as_str()).unwrap().2 = true,
            Ok(Line::Error(_)) => errors.push(l),
            _ => {}
        }
    }
    assert!(errors.is_empty(), "refused WARMUPs: {errors:#?}");
    for sym in symbols.keys() {
        let (count, bars, ended) = blocks[sym.as_str()];
        // The demo data holds 700 bars before the start bar: all of them, in full.
        assert_eq!((count, bars, ended), (700, 700, true), "{sym}");
    }
    // The queue really was longer than one request timeout (else this test proves nothing).
    assert!(
        started.elapsed() > Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(c);
    run.stop().await;
    drop(sim);
}
