//! A real Prometheus server (Debian's `prometheus` package, started here on a free port with its
//! own config and data directory, stopped by pid) scrapes both daemons during a simulator run. The
//! ACK figures it stored must equal the ACK lines in `signals.log`, the preditor's SIGNAL count the
//! SIGNAL lines; `promtool check metrics` must accept both expositions; `/healthz` answers 200.
//!
//! Needs `ctrader-sim` and `preditor` built next to the executor (`cargo test --workspace`), and
//! `prometheus` + `promtool` (scripts/test.sh installs them; without them the test says so and
//! passes outside CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::system::{Proc, System, SystemSpec, ack_outcome, acks, free_port, http_get};
use serde_json::Value;

const SYMBOLS: [&str; 2] = ["EURUSD", "GBPUSD"];

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An instant query: each series' labels and value.
fn query(prom: std::net::SocketAddr, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let enc: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    let (code, body) = http_get(prom, &format!("/api/v1/query?query={enc}"));
    assert_eq!(code, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (labels, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

fn promtool_accepts(text: &str, who: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the {who}'s exposition: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_stores_the_ack_counts_of_signals_log() {
    if !have("prometheus") || !have("promtool") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have prometheus and promtool (scripts/test.sh installs the prometheus package)"
        );
        eprintln!("prometheus/promtool not installed: skipped (apt-get install prometheus)");
        return;
    }
    let mut sys = System::start(SystemSpec {
        symbols: SYMBOLS.to_vec(),
        bars: 400 + 60,
        start_bar: 400,
        speed: 6.0,
        request_timeout_ms: 2000,
    });
    let prom: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dir = sys.path("prometheus");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: executor\n    static_configs:\n      - targets: ['{}']\n  - job_name: preditor\n    static_configs:\n      - targets: ['{}']\n",
            sys.http_executor, sys.http_preditor
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _prometheus = Proc {
        name: "prometheus",
        child,
    };

    // The run: every bar replayed and answered, then quiet.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        sys.assert_alive();
        let n = acks(&sys.wire()).len();
        if n != last {
            (last, since) = (n, Instant::now());
        }
        if n >= 2 * 40 && since.elapsed() > Duration::from_secs(4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not settle\n{}",
            sys.log_tails(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both targets up, and a scrape after the last ACK.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(prom, "up");
        if up.len() == 2 && up.iter().all(|(_, v)| *v == 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus targets not up: {up:?}\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));

    let wire = sys.wire();
    let mut logged: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for a in acks(&wire) {
        let sym = a.split('|').nth(1).unwrap().to_string();
        let o = ack_outcome(&a);
        let (outcome, reason) = o.split_once('|').unwrap_or((o.as_str(), "none"));
        *logged
            .entry((sym, outcome.to_string(), reason.to_string()))
            .or_default() += 1.0;
    }
    let stored: BTreeMap<(String, String, String), f64> = query(prom, "oracle_executor_acks_total")
        .into_iter()
        .map(|(l, v)| {
            (
                (
                    l["symbol"].clone(),
                    l["outcome"].clone(),
                    l["reason"].clone(),
                ),
                v,
            )
        })
        .collect();
    assert_eq!(
        stored, logged,
        "Prometheus's ACK figures against signals.log"
    );
    let signals_in = wire
        .iter()
        .filter(|l| l.inbound && l.text.starts_with("SIGNAL|"))
        .count() as f64;
    let sent = query(prom, "sum(oracle_preditor_signals_total)");
    assert_eq!(
        sent[0].1, signals_in,
        "the preditor's SIGNALs against signals.log"
    );
    let handled = query(prom, "sum(oracle_executor_signals_total)");
    assert_eq!(
        handled[0].1, signals_in,
        "the executor's SIGNALs against signals.log"
    );
    let latency = query(prom, "oracle_executor_signal_to_ack_seconds_count");
    assert!(latency[0].1 > 0.0, "{latency:?}");
    eprintln!(
        "stored ACKs: {} series, {} ACKs = signals.log's; SIGNALs {signals_in}; signal->ACK observations {}",
        stored.len(),
        logged.values().sum::<f64>(),
        latency[0].1
    );
    for q in [
        "histogram_quantile(0.5, oracle_executor_new_bar_to_order_sent_seconds_bucket)",
        "histogram_quantile(0.99, oracle_executor_new_bar_to_order_sent_seconds_bucket)",
        "histogram_quantile(0.5, oracle_executor_signal_to_ack_seconds_bucket)",
        "histogram_quantile(0.99, oracle_executor_signal_to_ack_seconds_bucket)",
        "histogram_quantile(0.5, oracle_executor_journal_fsync_seconds_bucket)",
        "oracle_executor_new_bar_to_order_sent_seconds_count",
    ] {
        eprintln!("{q} = {:?}", query(prom, q).first().map(|x| x.1));
    }

    for (addr, who) in [
        (sys.http_executor, "executor"),
        (sys.http_preditor, "preditor"),
    ] {
        let (code, body) = http_get(addr, "/metrics");
        assert_eq!(code, 200);
        promtool_accepts(&body, who);
        let (code, body) = http_get(addr, "/healthz");
        assert_eq!(code, 200, "{who} /healthz: {body}");
    }
}
