//! The hub under a compromised instance and a hard kill: hostile payloads change nothing but the
//! sender's refusal count; a SIGKILLed hub, restarted, has every record the broker held for it,
//! with no gap (SQLite and PostgreSQL); the recorded bars export as the CSV `preditor backtest`
//! reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use protocol::Mode;
use serde_json::{Value, json};
use support::Mosquitto;
use support::fleet_run::{Fleet, Spec};
use support::mqtt::{connect, options};
use support::web::{HubProc, Web};

const NOW_MS: fn() -> i64 = || chrono::Utc::now().timestamp_millis();

fn rec(seq: u64, body: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"v": 1, "seq": seq, "ts_ms": NOW_MS(), "body": body})).unwrap()
}

fn telemetry_body(equity: f64) -> Value {
    json!({"mode": "paper", "equity": equity, "balance": 10000.0, "day_pnl": 0.0,
        "daily_loss": {"used_pct": 0.0, "limit_pct": 5.0}, "total_loss": {"used_pct": 0.0, "limit_pct": 10.0},
        "broker_link": "none", "paused": false, "kill_switch": false, "open_positions": 0, "symbols": []})
}

#[test]
fn a_compromised_instance_cannot_crash_the_hub_or_touch_another() {
    let broker = Mosquitto::start();
    let ta = broker.add_instance("a");
    let tb = broker.add_instance("b");
    let hub = HubProc::start(&broker, None);
    let mut fleet = Fleet::new();
    fleet.add(
        &broker,
        &ta,
        &hub.public_key,
        Spec {
            id: "a",
            ..Spec::default()
        },
    );
    let mut web = Web::new(&hub.url);
    web.login(&hub.password);
    web.wait("/api/instances/a", 30, |v| {
        v["instance"]["telemetry"]["equity"].as_f64()
    })
    .expect("a reports");

    let rt = &fleet.rt;
    let evil = rt.block_on(async {
        let mut b = connect(options(&broker.url(), &broker.ca(), "b", "b", &tb), false);
        assert_eq!(b.connected().await, "Success");
        b
    });
    let xss = r#"<img src=x onerror="document.title='pwned'">"#;
    // Refused: 6 payloads (each counted once against b).
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("oracle/b/telemetry", b"\x00\xff not json at all".to_vec()),
        ("oracle/b/signals", {
            let mut v = rec(1, json!({"line": "x".repeat(100_000)}));
            v.truncate(100_000);
            v
        }),
        ("oracle/b/telemetry", rec(2, json!({"pad": "y".repeat(200 * 1024)}))),
        ("oracle/b/drift", format!(r#"{{"v":1,"seq":1,"ts_ms":1767225600000,"body":{}"#, "[".repeat(20_000)).into_bytes()),
        ("oracle/b/signals", serde_json::to_vec(&json!({"v": 1, "seq": u64::MAX, "ts_ms": NOW_MS(), "body": {"line": "SIGNAL|EURUSD|WAIT|0|0.00"}})).unwrap()),
        ("oracle/b/bars", rec(1, json!({"symbol": "EURUSD", "timeframe": "M1", "open_time": "2026-01-01T00:00:00Z", "open": 1.0, "high": 0.5, "low": 2.0, "close": 1.0, "volume": 1.0}))),
    ];
    // Accepted: b's own status (with hostile text) and out-of-order telemetry.
    let accepted: Vec<(&str, Vec<u8>)> = vec![
        (
            "oracle/b/status",
            rec(
                5,
                json!({"state": "online", "mode": "paper", "version": xss, "started_ms": NOW_MS()}),
            ),
        ),
        ("oracle/b/telemetry", rec(10, telemetry_body(11_000.0))),
        ("oracle/b/telemetry", rec(5, telemetry_body(5_000.0))),
        ("oracle/b/telemetry", rec(10, telemetry_body(99_999.0))),
        ("oracle/b/unknown", b"ignored".to_vec()),
    ];
    rt.block_on(async {
        for (t, p) in hostile.iter().chain(accepted.iter()) {
            evil.publish(t, p, false).await;
        }
    });
    let b = web
        .wait("/api/instances/b", 20, |v| {
            // Every payload above handled: the 6 refusals and the accepted status and telemetry
            // (the 6th refusal is counted before the records published after it are stored).
            let i = &v["instance"];
            (i["rejected"].as_i64() == Some(6)
                && i["status"] == "online"
                && i["telemetry_seq"] == 10)
                .then(|| i.clone())
        })
        .unwrap_or_else(|| {
            panic!(
                "b's refusals: {}\n{}",
                web.get("/api/instances/b").body,
                hub.log()
            )
        });
    assert_eq!(b["status"], "online");
    assert_eq!(b["version"], xss, "stored as text, shown as text");
    assert_eq!(b["telemetry_seq"], 10);
    assert_eq!(
        b["telemetry"]["equity"], 11_000.0,
        "an old seq and a replayed seq with other content change nothing"
    );
    assert!(b["last_rejection"].as_str().unwrap().len() <= 300);

    // A forged answer to a's command: b learns the id (worst case) and answers first.
    let r = web.post(
        "/api/instances/a/commands",
        &json!({"command": {"op": "status"}}),
    );
    assert_eq!(r.status, 202);
    let cid = r.json()["command_id"].as_str().unwrap().to_string();
    let forged = rec(
        1,
        json!({"command_id": cid, "origin": "hub", "op": "status", "result": "ok", "detail": "forged by b"}),
    );
    rt.block_on(evil.publish("oracle/b/commands/result", &forged, false));
    let answer = web
        .wait(&format!("/api/commands/{cid}"), 15, |v| {
            v["command"]["result_kind"]
                .as_str()
                .map(|_| v["command"].clone())
        })
        .expect("a answers");
    assert_eq!(
        answer["result_kind"], "status",
        "only a can answer a's command: {answer}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let again = web.get(&format!("/api/commands/{cid}")).json();
    assert_eq!(again["command"]["result_kind"], "status");

    // The hub is alive, a is untouched and still ingesting, no refusal was counted against a.
    assert_eq!(web.get("/api/health").body, "ok");
    let before = web.get("/api/instances/a").json()["instance"]["telemetry_seq"]
        .as_i64()
        .unwrap();
    let a = web
        .wait("/api/instances/a", 10, |v| {
            (v["instance"]["telemetry_seq"].as_i64() > Some(before)).then(|| v["instance"].clone())
        })
        .expect("a keeps reporting after the attack");
    assert_eq!(a["rejected"], 0);
    assert_eq!(a["status"], "online");
    // A session cookie from elsewhere or none at all still gets nothing.
    assert_eq!(Web::new(&hub.url).get("/api/instances/b").status, 401);
    fleet.stop();
}

fn restart_loses_nothing(database: Option<String>) {
    let broker = Mosquitto::start();
    let ta = broker.add_instance("a");
    let mut hub = HubProc::start(&broker, database);
    // The hub's session must exist before the instance publishes: from its first connection on,
    // the broker queues for it while it is away.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !hub.log().contains("hub connected to the broker") {
        assert!(std::time::Instant::now() < deadline, "{}", hub.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut fleet = Fleet::new();
    let symbols = ["EURUSD", "XAUUSD", "US500"];
    fleet.add(
        &broker,
        &ta,
        &hub.public_key,
        Spec {
            id: "a",
            mode: Mode::Paper,
            symbols: &symbols,
            bar_ms: 100,
            telemetry_ms: 500,
            signal_every: 0,
            seq_start: 0,
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    // The worst moment: whatever it is doing.
    hub.kill();
    std::thread::sleep(Duration::from_secs(3));
    hub.restart();
    std::thread::sleep(Duration::from_secs(2));
    fleet.stop();
    let mut web = Web::new(&hub.url);
    web.login(&hub.password);
    // Wait until ingest is idle (the instance stopped; the queue drains).
    let mut last = -1;
    let mut bars = Vec::new();
    for _ in 0..100 {
        let v = web.get("/api/instances/a/records/bars?limit=5000").json();
        bars = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect::<Vec<_>>();
        let max = bars.first().copied().unwrap_or(0);
        if max == last && max > 0 {
            break;
        }
        last = max;
        std::thread::sleep(Duration::from_millis(300));
    }
    let max = bars.first().copied().unwrap();
    let set: BTreeSet<i64> = bars.iter().copied().collect();
    assert_eq!(set.len(), bars.len(), "no duplicate rows");
    let missing: Vec<i64> = (1..=max).filter(|s| !set.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "bars missing after the hub's kill: {missing:?} of 1..={max}"
    );
    assert!(
        max >= 3 * 40,
        "the instance published over the whole run ({max} bars)"
    );
    // One candle per bar record.
    let mut candles = 0;
    let mut eurusd = Vec::new();
    for s in symbols {
        let c = web
            .get(&format!("/api/instances/a/candles?symbol={s}&timeframe=M1"))
            .json();
        let list = c["candles"].as_array().unwrap().clone();
        candles += list.len() as i64;
        if s == "EURUSD" {
            eurusd = list;
        }
    }
    assert_eq!(candles, max);
    let stats = web.get("/api/stats").json();
    assert!(stats["ingest"]["stored"].as_u64().unwrap() > 0);

    // export-bars writes what the workspace's one bars reader (the backtest's, the paper replay's,
    // the simulator's) reads, value for value.
    let out = hub.dir.path().join("EURUSD_M1.csv");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["export-bars", "--config"])
        .arg(&hub.config)
        .args([
            "--instance",
            "a",
            "--symbol",
            "EURUSD",
            "--timeframe",
            "M1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let parsed = protocol::bars_file::read_bars_csv(&out).unwrap();
    assert_eq!(parsed.len(), eurusd.len());
    for (p, c) in parsed.iter().zip(&eurusd) {
        assert_eq!(p.time, c["open_time"].as_i64().unwrap());
        assert_eq!(p.open, c["open"].as_f64().unwrap());
        assert_eq!(p.high, c["high"].as_f64().unwrap());
        assert_eq!(p.low, c["low"].as_f64().unwrap());
        assert_eq!(p.close, c["close"].as_f64().unwrap());
        assert_eq!(p.volume as f64, c["volume"].as_f64().unwrap());
    }
    let none = std::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["export-bars", "--config"])
        .arg(&hub.config)
        .args(["--instance", "a", "--symbol", "GBPUSD", "--timeframe", "M1"])
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no recorded GBPUSD M1 bars"));
}

#[test]
fn a_killed_hub_restarts_with_every_record_sqlite() {
    restart_loses_nothing(None);
}

#[test]
fn a_killed_hub_restarts_with_every_record_postgres() {
    let pg = support::Postgres::start();
    restart_loses_nothing(Some(pg.database("hub_restart")));
}
