//! Signal → order decision cost, measured (not asserted): 20 symbols, a change of action on every
//! bar (close + open each time), the real paper book.
//! 1. engine + paper book only (the pure decision path, no I/O);
//! 2. the desk with the fsynced journal (what `executor run` does per signal in paper mode).
//!
//! Run: `cargo bench -p executor --bench signal_path`. Prints p50/p99/max per signal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use executor::broker::paper::PaperBroker;
use executor::config::ExecutorConfig;
use executor::desk::Desk;
use executor::desk::engine::{Decision, EngineRules, Execution, OpenStep, SignalEngine};
use executor::desk::risk::RiskGuard;
use executor::journal::Journal;
use protocol::{Action, BarTime, Decimal, Signal, Symbol};

const SYMS: [&str; 20] = [
    "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "EURGBP", "EURJPY",
    "GBPJPY", "XAUUSD", "US500", "US30", "NAS100", "GER40", "UK100", "AAPL", "MSFT", "TSLA",
    "BTCUSD",
];
/// Bars per run under `cargo bench`; `cargo test --all-targets` also runs this binary (without
/// `--bench`), and then a few bars suffice to prove it still works.
fn bars() -> i64 {
    if std::env::args().any(|a| a == "--bench") {
        500
    } else {
        5
    }
}

fn config(dir: &std::path::Path) -> ExecutorConfig {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    let tok = dir.join("secrets/ipc.token");
    // A token of the length the handshake requires (32 characters at least).
    std::fs::write(&tok, "bench-token-0123456789abcdef0123456789").unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let symbols: Vec<String> = SYMS
        .iter()
        .map(|s| format!("\"{s}\": {{ \"enabled\": true, \"timeframe\": \"H1\", \"contract_size\": 1, \"spread\": 0.0001 }}"))
        .collect();
    let json = format!(
        "{{ \"broker\": {{ \"mode\": \"paper\" }}, \"ipc\": {{ \"token_file\": \"secrets/ipc.token\" }}, \"risk\": {{ \"max_open_positions\": 100, \"max_total_lots\": 1000 }}, \"symbols\": {{ {} }} }}",
        symbols.join(",")
    );
    let p = dir.join("c.json");
    std::fs::write(&p, json).unwrap();
    ExecutorConfig::load(&p).unwrap()
}

fn signals(bar: i64) -> Vec<Signal> {
    let actions = [
        Action::LongWeak,
        Action::ShortModerate,
        Action::LongStrong,
        Action::Wait,
    ];
    SYMS.iter()
        .map(|s| Signal {
            symbol: s.parse::<Symbol>().unwrap(),
            action: actions[(bar as usize) % actions.len()],
            regime: 1,
            virtual_pnl: Decimal::from_f64(0.0, 2).unwrap(),
            bar_time: Some(BarTime::from_unix(1_770_112_800 + bar * 3600).unwrap()),
            held: Some(1),
        })
        .collect()
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name}: {} signals, p50 {:?}, p99 {:?}, max {:?}",
        v.len(),
        q(0.5),
        q(0.99),
        v[v.len() - 1]
    );
}

fn new_paper(cfg: &ExecutorConfig) -> PaperBroker {
    PaperBroker::open_book(cfg.symbols.clone(), 1e9, 30.0, None).unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let rules = EngineRules {
        symbols: cfg.symbols.clone(),
        model_symbols: Default::default(),
        stale_max_age_secs: 60,
    };
    let t0: DateTime<Utc> = "2026-02-03T11:00:01Z".parse().unwrap();

    // 1. pure path
    let mut engine = SignalEngine::new(rules.clone(), RiskGuard::new(cfg.risk.clone(), None));
    let mut paper = new_paper(&cfg);
    let mut lat = Vec::new();
    let bars = bars();
    for bar in 0..bars {
        let now = t0 + TimeDelta::hours(bar);
        for s in &SYMS {
            paper.on_bar_close(
                &s.parse().unwrap(),
                100.0 + bar as f64 * 0.01,
                now.timestamp(),
            );
        }
        for sig in signals(bar) {
            // The executor published the bar before its SIGNAL can come.
            if let Some(t) = sig.bar_time {
                engine.on_bar_published(&sig.symbol, protocol::Timeframe::H1, t);
            }
            let start = Instant::now();
            let snap = paper.snapshot_sync(&sig.symbol);
            if let Decision::Execute(mut plan) = engine.decide(&sig, now, &snap, false) {
                let mut exec = Execution::default();
                for c in &plan.closes {
                    exec.closes.push(paper.close_sync(c));
                }
                let after = paper.snapshot_sync(&sig.symbol);
                engine.approve_after_closes(&mut plan, now, &after, false);
                if let OpenStep::Open(a) = &plan.open {
                    exec.open = Some(paper.open_sync(a));
                }
                std::hint::black_box(engine.complete(&plan, &exec));
            }
            lat.push(start.elapsed());
        }
    }
    report("engine + paper book (no I/O)", lat);

    // 2. the desk with the fsynced journal
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut desk = Desk::new(
        SignalEngine::new(rules, RiskGuard::new(cfg.risk.clone(), None)),
        new_paper(&cfg),
        None,
    )
    .unwrap();
    let mut journal = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let mut lat = Vec::new();
    rt.block_on(async {
        for bar in 0..(bars / 5).max(1) {
            let now = t0 + TimeDelta::hours(bar);
            for s in &SYMS {
                desk.broker.on_bar_close(
                    &s.parse().unwrap(),
                    100.0 + bar as f64 * 0.01,
                    now.timestamp(),
                );
            }
            for sig in signals(bar) {
                if let Some(t) = sig.bar_time {
                    desk.engine
                        .on_bar_published(&sig.symbol, protocol::Timeframe::H1, t);
                }
                let start = Instant::now();
                std::hint::black_box(
                    desk.handle_signal(&sig, now, false, &mut journal)
                        .await
                        .unwrap(),
                );
                lat.push(start.elapsed());
            }
        }
    });
    report("desk with fsynced journal", lat);
}
