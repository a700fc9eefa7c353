//! Shadow mode end to end against the real `ctrader-sim` binary (TLS, Open API protobuf): the
//! executor authenticates, reconciles, subscribes, answers WARMUP from historical trendbars, turns
//! the simulator's spots and live trendbars into closed BARs, and executes SIGNALs on the live book
//! (the simulator) and the paper book side by side, logging both in drift.csv.
//!
//! Needs the simulator binary next to the executor's (`cargo test --workspace`, as scripts/test.sh
//! runs it, builds it; alone: `cargo build -p ctrader-sim --bin ctrader-sim`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::system::{Sim, secret};
use common::ws::{self, recv, recv_until, send};
use executor::drift::DriftReport;
use protocol::Line;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

fn write_bars(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut spx = String::from("time,open,high,low,close,volume\n");
    for i in 0..40i64 {
        let s = 5000.0 + (i % 7) as f64;
        spx.push_str(&format!(
            "{},{s:.2},{:.2},{:.2},{:.2},{}\n",
            T0 + i * 3600,
            s + 2.0,
            s - 2.0,
            s + 1.0,
            10 + i
        ));
    }
    std::fs::write(dir.join("EURUSD.csv"), common::sim_eurusd_csv(T0)).unwrap();
    std::fs::write(dir.join("US500.csv"), spx).unwrap();
}

/// A stock CFD's bars: 7 H1 bars (14:00–20:00 UTC) on each weekday from Monday 2025-06-02, none
/// at night or at weekends, as a session-limited symbol's history looks at the broker.
fn write_stock_bars(dir: &Path, weekdays: i64) {
    std::fs::create_dir_all(dir).unwrap();
    const MONDAY: i64 = 1_748_822_400; // 2025-06-02T00:00:00Z
    let mut csv = String::from("time,open,high,low,close,volume\n");
    let mut n = 0i64;
    for day in (0..).filter(|d| d % 7 < 5).take(weekdays as usize) {
        for hour in 14..21 {
            let p = 190.0 + (n % 13) as f64 * 0.25;
            csv.push_str(&format!(
                "{},{p:.2},{:.2},{:.2},{:.2},{}\n",
                MONDAY + day * 86_400 + hour * 3600,
                p + 0.5,
                p - 0.5,
                p + 0.25,
                50 + n % 17
            ));
            n += 1;
        }
    }
    std::fs::write(dir.join("AAPL.csv"), csv).unwrap();
}

struct Env {
    dir: tempfile::TempDir,
    sim: Option<Sim>,
    run: common::ws::Running,
}

const FOREX_AND_INDEX: &str = r#"
    "EURUSD": { "enabled": true, "digits": 5, "spread": 0.00007, "slippage": 0.00001 },
    "US500": { "enabled": true, "lot_weak": 0.1, "lot_moderate": 0.3, "lot_strong": 0.5, "digits": 2, "contract_size": 1 }"#;

/// What a test environment runs on.
struct EnvSpec<'a> {
    /// Writes the simulator's bar files into the directory given.
    write: fn(&Path),
    /// Bars of history before the replay.
    start_bar: &'a str,
    /// The config's `symbols` object body.
    symbols: &'a str,
    /// Extra top-level config entries (`"risk": {...},`), or "".
    extra: &'a str,
    /// Extra simulator flags.
    sim_args: &'a [&'a str],
    request_timeout_ms: u64,
}

impl EnvSpec<'_> {
    fn default_with(request_timeout_ms: u64) -> EnvSpec<'static> {
        EnvSpec {
            write: write_bars,
            start_bar: "10",
            symbols: FOREX_AND_INDEX,
            extra: "",
            sim_args: &[],
            request_timeout_ms,
        }
    }
}

/// Starts ctrader-sim on fresh bars (speed 2 bars/s, 10 bars of history) and a shadow-mode
/// executor connected to it.
async fn start_env(request_timeout_ms: u64) -> Env {
    start_env_on(EnvSpec::default_with(request_timeout_ms)).await
}

/// [`start_env`] with more simulator flags (e.g. `--paused`).
async fn start_env_with(request_timeout_ms: u64, sim_flags: &[&str]) -> Env {
    start_env_on(EnvSpec {
        sim_args: sim_flags,
        ..EnvSpec::default_with(request_timeout_ms)
    })
    .await
}

/// [`start_env`] as `spec` says.
async fn start_env_on(spec: EnvSpec<'_>) -> Env {
    let (dir, sim, cfg) = prepare_env(spec);
    let run = ws::start(cfg).await;
    Env {
        dir,
        sim: Some(sim),
        run,
    }
}

/// The simulator running and the executor's config, as `spec` says.
fn prepare_env(spec: EnvSpec<'_>) -> (tempfile::TempDir, Sim, executor::config::ExecutorConfig) {
    let EnvSpec {
        write,
        start_bar,
        symbols,
        extra,
        sim_args,
        request_timeout_ms,
    } = spec;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("simdata");
    write(&data);
    let cert = dir.path().join("sim-ca.pem");
    let mut args = vec!["--speed", "2", "--start-bar", start_bar];
    args.extend_from_slice(sim_args);
    // The simulator's log (stderr) in the test's directory: some tests read it.
    let sim = Sim::start(&data, &cert, &args, Some(&dir.path().join("sim.log")));
    let port = sim.port;

    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    secret(&dir.path().join("secrets/ct_secret"), "sim-client-secret\n");
    secret(
        &dir.path().join("secrets/ct_tokens.json"),
        r#"{"access_token":"sim-access-token","refresh_token":"sim-refresh-token"}"#,
    );
    let body = format!(
        r#"{{
  "timeframe": "H1", "clock": "feed", "stale_signal_max_age_secs": 60,
  "log_dir": "log", "state_dir": "state", {extra}
  "ipc": {{ "bind": "127.0.0.1:0", "token_file": "secrets/ipc.token" }},
  "broker": {{
    "mode": "shadow",
    "ctrader": {{ "host": "127.0.0.1", "port": {port}, "ca_file": "{cert}", "client_id": "sim-client-id",
                 "secret_file": "secrets/ct_secret", "token_file": "secrets/ct_tokens.json", "account_id": 1000001,
                 "request_timeout_ms": {request_timeout_ms} }},
    "paper": {{ "initial_balance": 100000, "leverage": 30 }}
  }},
  "symbols": {{ {symbols} }}
}}"#,
        cert = cert.display()
    );
    let cfg = common::load(dir.path(), &body);
    (dir, sim, cfg)
}

/// One command on the simulator's control socket; returns its one-line answer.
fn control(env: &Env, cmd: &str) -> String {
    env.sim.as_ref().unwrap().control(cmd)
}

/// Waits for a fresh closed bar of `sym`, sends the signal for it and returns the ACK. A bar that
/// had already gone stale while queued (the core was busy) is answered STALE without any order, so
/// the next bar is tried (at most 6).
async fn signal_on_next_bar(c: &mut common::ws::Ws, sym: &str, action: &str) -> String {
    for _ in 0..6 {
        let l = recv_until(c, &format!("BAR|{sym}|")).await;
        let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        send(
            c,
            &format!("SIGNAL|{sym}|{action}|1|0.00|B:{}|N:1", bar.time),
        )
        .await;
        let ack = recv_until(c, "ACK|").await;
        if !ack.contains("|FAIL|STALE|") {
            return ack;
        }
    }
    panic!("no fresh bar for {sym}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_against_ctrader_sim() {
    let env = start_env(5000).await;
    let mut c = ws::hello(env.run.addr).await;

    // WARMUP from the simulator's historical trendbars: only closed bars, oldest first
    send(&mut c, "WARMUP|EURUSD|H1|5").await;
    let head = recv_until(&mut c, "HISTORY|").await;
    let n: usize = head.rsplit('|').next().unwrap().parse().unwrap();
    assert!(
        head.starts_with("HISTORY|EURUSD|H1|") && (1..=5).contains(&n),
        "{head}"
    );
    let mut hist = Vec::new();
    for _ in 0..n {
        hist.push(recv(&mut c).await.unwrap());
    }
    assert!(
        hist.iter().all(|l| l.starts_with("BAR|EURUSD|H1|")),
        "{hist:#?}"
    );
    assert_eq!(recv(&mut c).await.unwrap(), "HISTORY_END|EURUSD|H1");

    // a closed bar from the live feed (spots + live trendbars)
    let l = recv_until(&mut c, "BAR|EURUSD|").await;
    let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
        panic!("{l}")
    };
    assert!(bar.time.unix_seconds() >= T0 + 9 * 3600, "{bar:?}");
    let b = bar.time.to_string();
    send(&mut c, &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{b}|N:1")).await;
    let ack = recv_until(&mut c, "ACK|").await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
    assert!(
        ack.contains("|P:") && ack.ends_with(&format!("|B:{b}")),
        "{ack}"
    );

    // the next bar: WAIT closes it on both books
    let next = loop {
        let l = recv_until(&mut c, "BAR|EURUSD|").await;
        let Ok(Line::Bar(nb)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        if nb.time != bar.time {
            break nb.time.to_string();
        }
    };
    send(&mut c, &format!("SIGNAL|EURUSD|WAIT|1|0.00|B:{next}|N:1")).await;
    let closed = recv_until(&mut c, "ACK|").await;
    assert!(closed.starts_with("ACK|EURUSD|WAIT|OK|T:"), "{closed}");
    drop(c);
    let Env { dir, sim, run, .. } = env;
    run.stop().await;
    drop(sim);

    let rep = DriftReport::from_file(&dir.path().join("log/drift.csv")).unwrap();
    let eur = &rep.symbols["EURUSD"];
    assert_eq!(eur.signals, 2);
    assert_eq!((eur.live.signals, eur.live.in_sync), (2, 2), "{rep}");
    assert_eq!((eur.paper.signals, eur.paper.in_sync), (2, 2), "{rep}");
    let drift = std::fs::read_to_string(dir.path().join("log/drift.csv")).unwrap();
    assert!(
        drift.lines().nth(1).unwrap().contains(",LONG 0.01,"),
        "{drift}"
    );
    eprintln!("{ack}\n{closed}\n{drift}\n{rep}");
}

/// Right after a start no bar has closed on the live feed yet (here the replay is held), and the
/// twin's first signal is its decision on the last history bar. The shadow paper book must have a
/// price for it from that history, like the live book has the broker's quote: before, it answered
/// FAIL|MARKET_CLOSED and drifted from the live book from the first signal on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paper_book_prices_the_first_signal_from_history() {
    let env = start_env_with(5000, &["--paused"]).await;
    let mut c = ws::hello(env.run.addr).await;
    send(&mut c, "WARMUP|EURUSD|H1|5").await;
    let head = recv_until(&mut c, "HISTORY|").await;
    let n: usize = head.rsplit('|').next().unwrap().parse().unwrap();
    let mut last = String::new();
    for _ in 0..n {
        last = recv(&mut c).await.unwrap();
    }
    assert_eq!(recv(&mut c).await.unwrap(), "HISTORY_END|EURUSD|H1");
    let Ok(Line::Bar(bar)) = last.parse::<Line>() else {
        panic!("{last}")
    };
    let b = bar.time.to_string();
    send(&mut c, &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{b}|N:1")).await;
    let ack = recv_until(&mut c, "ACK|").await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
    drop(c);
    let Env { dir, sim, run, .. } = env;
    run.stop().await;
    drop(sim);
    let drift = std::fs::read_to_string(dir.path().join("log/drift.csv")).unwrap();
    let row = drift.lines().nth(1).unwrap_or_default();
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells.len(), 18, "{drift}");
    assert_eq!(
        (cells[6], cells[12], cells[15]),
        ("LONG 0.01", "LONG 0.01", "OK"),
        "live and paper book both follow the first signal: {row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_faults_margin_lost_reply_and_dropped_connection() {
    let env = start_env(1500).await;
    let mut c = ws::hello(env.run.addr).await;

    // The broker refuses US500 for margin: the live book fails, the paper book follows the model.
    assert!(control(&env, "margin-fail US500").starts_with("OK"));
    let ack = signal_on_next_bar(&mut c, "US500", "LONG_WEAK").await;
    assert!(ack.starts_with("ACK|US500|LONG_WEAK|FAIL|MARGIN|"), "{ack}");
    assert!(control(&env, "margin-ok US500").starts_with("OK"));

    // The answer to the order (and its execution events) is lost: the request times out, the desk
    // reconciles, finds the position by its label and answers OK with it; nothing is resent.
    assert!(control(&env, "drop-responses 1").starts_with("OK"));
    let ack = signal_on_next_bar(&mut c, "EURUSD", "LONG_WEAK").await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|T:"), "{ack}");
    let pos_id = ack
        .split('|')
        .find_map(|f| f.strip_prefix("T:"))
        .unwrap()
        .to_string();
    // The connection drops: the client reconnects, re-authorises, resubscribes and reconciles; the
    // position is still known, and WAIT closes it.
    assert!(control(&env, "drop").starts_with("OK"));
    let ack = signal_on_next_bar(&mut c, "EURUSD", "WAIT").await;
    assert_eq!(
        ack.split('|').find_map(|f| f.strip_prefix("T:")),
        Some(pos_id.as_str()),
        "{ack}"
    );
    assert!(ack.starts_with("ACK|EURUSD|WAIT|OK|"), "{ack}");
    let stats = control(&env, "stats");
    drop(c);
    let Env { dir, sim, run, .. } = env;
    run.stop().await;
    drop(sim);

    let rep = DriftReport::from_file(&dir.path().join("log/drift.csv")).unwrap();
    let us = &rep.symbols["US500"];
    assert_eq!(us.live.refusals.get("MARGIN"), Some(&1), "{rep}");
    assert_eq!((us.paper.signals, us.paper.in_sync), (1, 1), "{rep}");
    let eur = &rep.symbols["EURUSD"];
    // signals that went stale while the core waited out the timeout or the reconnect are retried
    // on the next bar; they did nothing
    let stale = eur.live.refusals.get("STALE").copied().unwrap_or(0);
    assert_eq!(
        (eur.live.signals - stale, eur.live.in_sync),
        (2, 2),
        "{rep}"
    );
    let journal = std::fs::read_to_string(dir.path().join("state/journal.jsonl")).unwrap();
    let eur_opens = journal
        .lines()
        .filter(|l| {
            l.contains("\"leg\":\"Open\"")
                && l.contains("\"book\":\"live\"")
                && l.contains("EURUSD")
        })
        .count();
    assert_eq!(eur_opens, 1, "one open intent, never resent:\n{journal}");
    eprintln!("{rep}\nsimulator latency stats: {stats}");
}

/// The CSV rows of a bars file by open time: (open, high, low, close, volume) as written.
fn csv_rows(path: &Path) -> std::collections::BTreeMap<i64, [String; 5]> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                [f[1], f[2], f[3], f[4], f[5]].map(str::to_string),
            )
        })
        .collect()
}

/// Issue 11: the BARs the executor sends from the live feed are the broker's bars. The live
/// trendbar of a spot event has no `deltaClose` (the simulator sends none, as the real server):
/// each bar closes at the last bid inside it, never at its low, and the bar forming when the
/// executor subscribed comes from history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_bars_are_the_brokers_bars() {
    let env = start_env(5000).await;
    let mut c = ws::hello(env.run.addr).await;
    let files = [
        (
            "EURUSD",
            csv_rows(&env.dir.path().join("simdata/EURUSD.csv")),
        ),
        ("US500", csv_rows(&env.dir.path().join("simdata/US500.csv"))),
    ];
    let mut seen: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    while seen.values().map(Vec::len).sum::<usize>() < 8 {
        let l = recv_until(&mut c, "BAR|").await;
        let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        let (sym, rows) = files
            .iter()
            .find(|(s, _)| *s == bar.symbol.as_str())
            .unwrap();
        let t = bar.time.unix_seconds();
        let want = rows
            .get(&t)
            .unwrap_or_else(|| panic!("{l}: no such bar in the file"));
        let got = [
            bar.open.as_str().to_string(),
            bar.high.as_str().to_string(),
            bar.low.as_str().to_string(),
            bar.close.as_str().to_string(),
            bar.volume.to_string(),
        ];
        assert_eq!(&got, want, "{l}");
        let times = seen.entry(sym).or_default();
        assert!(times.last().is_none_or(|&p| p < t), "in order, once: {l}");
        times.push(t);
    }
    assert!(seen.values().all(|t| t.len() >= 2), "{seen:?}");
    drop(c);
    env.run.stop().await;
}

/// The bars a WARMUP served are never sent again as live BARs, whichever comes first: the HISTORY
/// block (answered by its own task while the pair's live BARs are held) or the live bar that
/// closes a bar the block already had. The simulator starts held, so the block ends with the last
/// history bar, then its clock runs and the live feed starts with that bar's closing spot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_a_warmup_served_are_not_sent_again_live() {
    let env = start_env_on(EnvSpec {
        sim_args: &["--paused"],
        ..EnvSpec::default_with(5000)
    })
    .await;
    let mut c = ws::hello(env.run.addr).await;
    send(&mut c, "WARMUP|EURUSD|H1|5").await;
    assert_eq!(recv_until(&mut c, "HISTORY|").await, "HISTORY|EURUSD|H1|5");
    let mut served = Vec::new();
    for _ in 0..5 {
        let l = recv(&mut c).await.unwrap();
        let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        served.push(bar.time.unix_seconds());
    }
    assert_eq!(recv(&mut c).await.unwrap(), "HISTORY_END|EURUSD|H1");
    // History 0..=9 (start bar 10): the block ends with bar 9.
    assert_eq!(served, (5..10).map(|i| T0 + i * 3600).collect::<Vec<_>>());
    assert!(control(&env, "resume").starts_with("OK"));
    let mut live = Vec::new();
    while live.len() < 3 {
        let l = recv_until(&mut c, "BAR|EURUSD|").await;
        let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        live.push(bar.time.unix_seconds());
    }
    assert!(
        live[0] > served[4] && live.windows(2).all(|w| w[0] < w[1]),
        "live BARs after the block's last bar {}, once each: {live:?}",
        served[4]
    );
    drop(c);
    env.run.stop().await;
}

/// Issue 11: a session-limited symbol (a stock CFD, ~7 H1 bars a day) still gets the whole WARMUP:
/// the executor pages back through history, each request inside the simulator's documented
/// maximum window (wider ones get INCORRECT_BOUNDARIES), until it has the bars asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_of_a_session_limited_symbol_returns_every_bar_asked_for() {
    let env = start_env_on(EnvSpec {
        write: |d| write_stock_bars(d, 115),
        start_bar: "760",
        symbols: r#""AAPL": { "enabled": true, "lot_weak": 1, "lot_moderate": 3, "lot_strong": 5, "digits": 2, "contract_size": 1 }"#,
        ..EnvSpec::default_with(5000)
    })
    .await;
    let mut c = ws::hello(env.run.addr).await;
    send(&mut c, "WARMUP|AAPL|H1|700").await;
    let head = recv_until(&mut c, "HISTORY|").await;
    assert_eq!(head, "HISTORY|AAPL|H1|700");
    let rows = csv_rows(&env.dir.path().join("simdata/AAPL.csv"));
    let mut times = Vec::new();
    for _ in 0..700 {
        let l = recv(&mut c).await.unwrap();
        let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
            panic!("{l}")
        };
        let t = bar.time.unix_seconds();
        let want = rows
            .get(&t)
            .unwrap_or_else(|| panic!("{l}: no such bar in the file"));
        assert_eq!(bar.close.as_str(), want[3], "{l}");
        times.push(t);
    }
    assert_eq!(recv(&mut c).await.unwrap(), "HISTORY_END|AAPL|H1");
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first, once each"
    );
    // The newest 700 closed bars: they end where the replay started (bar 760 is forming).
    let all: Vec<i64> = rows.keys().copied().collect();
    let served_to = all.iter().position(|t| *t == times[699]).unwrap();
    assert!(
        (759..=762).contains(&served_to),
        "last served bar index {served_to}"
    );
    assert_eq!(times, all[served_to + 1 - 700..=served_to].to_vec());
    // ~100 weekdays: far more than 3 x 700 hours back.
    assert!(
        times[699] - times[0] > 3 * 700 * 3600,
        "{}",
        times[699] - times[0]
    );
    drop(c);
    env.run.stop().await;
}

/// EURUSD (traded) and US30 (not in the executor's config; flat at 40,000, so a position's only
/// loss is the spread and the slippage it was opened with).
fn write_eurusd_and_us30(dir: &Path) {
    write_bars(dir);
    let mut us30 = String::from("time,open,high,low,close,volume\n");
    for i in 0..40i64 {
        us30.push_str(&format!(
            "{},40000.0,40000.0,40000.0,40000.0,10\n",
            T0 + i * 3600
        ));
    }
    std::fs::write(dir.join("US30.csv"), us30).unwrap();
    std::fs::remove_file(dir.join("US500.csv")).unwrap();
}

const EURUSD_ONLY: &str =
    r#""EURUSD": { "enabled": true, "digits": 5, "spread": 0.00007, "slippage": 0.00001 }"#;
/// The simulator's id for US30 (`ctrader-sim/src/symbols.rs`).
const US30_ID: i64 = 10_015;

/// Opens `volume` (0.01 units) of US30 at the simulator with a client of our own, as a trader
/// placing an order by hand on the same account would.
async fn open_by_hand(env: &Env, volume: i64) {
    let client = env.sim.as_ref().unwrap().own_client().await;
    let fill = client
        .new_market_order(
            US30_ID,
            ctrader::messages::ProtoOaTradeSide::Buy,
            volume,
            Some("by hand"),
            None,
        )
        .await
        .unwrap();
    assert!(fill.position().is_some(), "{fill:?}");
}

/// Issue 11: a position on a symbol the config does not trade (opened by hand) takes a position
/// slot: with `max_open_positions` 1 the executor opens nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_on_unconfigured_symbols_take_position_slots() {
    let env = start_env_on(EnvSpec {
        write: write_eurusd_and_us30,
        symbols: EURUSD_ONLY,
        extra: r#""risk": { "max_open_positions": 1 },"#,
        ..EnvSpec::default_with(5000)
    })
    .await;
    let mut c = ws::hello(env.run.addr).await;
    open_by_hand(&env, 100).await;
    let ack = signal_on_next_bar(&mut c, "EURUSD", "LONG_WEAK").await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|FAIL|MAX_POSITIONS|"),
        "{ack}"
    );
    drop(c);
    env.run.stop().await;
}

/// Issue 11: equity is the broker's: balance plus every position's unrealised PnL as the broker
/// reports it (`ProtoOAGetPositionUnrealizedPnLReq`, here with moneyDigits 8), an unconfigured
/// symbol's included. A 260 USD loss on a hand-opened US30 position breaks a 200 USD total-loss
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equity_is_the_brokers_with_every_positions_pnl() {
    let env = start_env_on(EnvSpec {
        write: write_eurusd_and_us30,
        symbols: EURUSD_ONLY,
        extra: r#""risk": { "initial_balance": 1000000, "max_total_loss_pct": 0.02 },"#,
        sim_args: &["--balance", "1000000", "--money-digits", "8"],
        ..EnvSpec::default_with(5000)
    })
    .await;
    let mut c = ws::hello(env.run.addr).await;
    // Within the limit: an open goes through (and is closed again by WAIT).
    let ack = signal_on_next_bar(&mut c, "EURUSD", "LONG_WEAK").await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{ack}");
    let ack = signal_on_next_bar(&mut c, "EURUSD", "WAIT").await;
    assert!(ack.starts_with("ACK|EURUSD|WAIT|OK|"), "{ack}");
    // 100 US30 contracts bought at ask + slippage: 2.6 USD each below the bid, 260 USD.
    open_by_hand(&env, 10_000).await;
    // The executor asks the broker for the account every ACCOUNT_REFRESH_PERIOD.
    tokio::time::sleep(executor::feed::ACCOUNT_REFRESH_PERIOD + std::time::Duration::from_secs(1))
        .await;
    let ack = signal_on_next_bar(&mut c, "EURUSD", "LONG_WEAK").await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|FAIL|TOTAL_LOSS|"),
        "{ack}"
    );
    drop(c);
    env.run.stop().await;
}

/// Issue 11: a NETTED account (one position per symbol) is refused at startup, with a message that
/// names the account type and the fix, before any order can go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netted_account_is_refused_at_startup() {
    let (_dir, _sim, cfg) = prepare_env(EnvSpec {
        sim_args: &["--account-type", "netted"],
        ..EnvSpec::default_with(5000)
    });
    let err = executor::Executor::start(cfg, None)
        .await
        .expect_err("a netted account must be refused");
    let text = err.to_string();
    assert!(
        text.contains("NETTED") && text.contains("HEDGED") && text.contains("account_id"),
        "{text}"
    );
}

/// Issue 13: a started executor's `Debug` (what a test's panic or a `{:?}` in a log prints) shows
/// none of its secrets: the IPC token, the cTrader client secret, the access and refresh tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_executors_debug_shows_no_secret() {
    let (_dir, _sim, cfg) = prepare_env(EnvSpec::default_with(5000));
    let exec = executor::Executor::start(cfg, None).await.unwrap();
    let shown = format!("{exec:?}");
    assert!(
        shown.contains("CtraderBroker"),
        "the live book is in it: {shown}"
    );
    for secret in [
        common::TOKEN,
        "sim-client-secret",
        "sim-access-token",
        "sim-refresh-token",
    ] {
        assert!(!shown.contains(secret), "{secret} in Debug: {shown}");
    }
}

/// TLS sessions the simulator has accepted so far (its log line per connection).
fn sim_connections(env: &Env) -> usize {
    std::fs::read_to_string(env.dir.path().join("sim.log"))
        .unwrap_or_default()
        .matches("client connected")
        .count()
}

/// Issue 11: the access and the refresh token are revoked (ProtoOAAccountsTokenInvalidatedEvent,
/// then both refused). The executor stops trading the account at once (FAIL|NOT_CONNECTED), makes
/// no further connection attempts, and trades again once the token file holds a new pair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_trading_until_the_token_file_holds_a_new_pair() {
    let env = start_env(5000).await;
    let mut c = ws::hello(env.run.addr).await;
    let l = recv_until(&mut c, "BAR|EURUSD|").await;
    let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
        panic!("{l}")
    };
    assert!(control(&env, "token-invalidate all").starts_with("OK"));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after_refusal = sim_connections(&env);
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{}|N:1", bar.time),
    )
    .await;
    let ack = recv_until(&mut c, "ACK|").await;
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|FAIL|NOT_CONNECTED|"),
        "{ack}"
    );
    // The executor's backoff would have retried several times in these 4 s.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        sim_connections(&env),
        after_refusal,
        "no blind reconnect loop"
    );
    // The account holder authorises again (`executor auth` writes the token file).
    assert!(control(&env, "grant-tokens sim-access-2 sim-refresh-2").starts_with("OK"));
    secret(
        &env.dir.path().join("secrets/ct_tokens.json"),
        r#"{"access_token":"sim-access-2","refresh_token":"sim-refresh-2"}"#,
    );
    // No BAR flows until the client has re-read the file (every TOKEN_FILE_POLL, 5 s) and set up a
    // new connection, so the silence before the next BAR can exceed `recv`'s 5 s under load.
    let quiet = ctrader::client::authorization::TOKEN_FILE_POLL * 6;
    let deadline = tokio::time::Instant::now() + quiet;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws::recv_within(&mut c, left).await {
            Some(l) if l.starts_with("BAR|EURUSD|") => break,
            Some(_) => {}
            None => {
                panic!("connection closed while waiting for the first BAR on the new token pair")
            }
        }
    }
    let ack = signal_on_next_bar(&mut c, "EURUSD", "LONG_WEAK").await;
    assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{ack}");
    assert_eq!(sim_connections(&env), after_refusal + 1);
    drop(c);
    env.run.stop().await;
}
