#![allow(clippy::unwrap_used)]

use super::*;

fn sym(s: &str) -> protocol::Symbol {
    s.parse().unwrap()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn wire_lines_are_counted_with_bounded_labels_and_latencies() {
    let m = ExecutorMetrics::new([&sym("EURUSD")]);
    let t0 = Instant::now();
    m.on_line(
        Dir::Out,
        "BAR|EURUSD|H1|2026-02-03T10:00:00Z|1.1|1.2|1.0|1.15|100",
        t0,
    );
    m.on_line(
        Dir::In,
        "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:00:00Z|N:1",
        t0 + Duration::from_millis(3),
    );
    m.on_order_sent(
        &sym("EURUSD"),
        "2026-02-03T10:00:00Z".parse().unwrap(),
        t0 + Duration::from_millis(5),
    );
    m.on_line(
        Dir::Out,
        "ACK|EURUSD|LONG_WEAK|OK|T:7|P:1.15|B:2026-02-03T10:00:00Z",
        t0 + Duration::from_millis(9),
    );
    // A symbol not configured (a hostile or confused peer): one `other` label, never its name.
    for i in 0..50 {
        m.on_line(
            Dir::Out,
            &format!("ACK|ZZ{i}|WAIT|FAIL|UNKNOWN_SYMBOL|B:2026-02-03T10:00:00Z"),
            t0,
        );
    }
    m.on_line(Dir::Out, "ACK|EURUSD|WAIT|FAIL|NEWFANGLED", t0);
    // An inbound ACK or a garbage line counts nothing.
    m.on_line(Dir::In, "ACK|EURUSD|WAIT|OK", t0);
    m.on_line(Dir::Out, "ACK|not a line", t0);
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "oracle_executor_bars_published_total{symbol=\"EURUSD\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_acks_total{outcome=\"OK\",reason=\"none\",symbol=\"EURUSD\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_acks_total{outcome=\"FAIL\",reason=\"UNKNOWN_SYMBOL\",symbol=\"other\"}"
        ),
        Some(50.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_acks_total{outcome=\"FAIL\",reason=\"other\",symbol=\"EURUSD\"}"
        ),
        Some(1.0)
    );
    assert!(!text.contains("ZZ1"), "{text}");
    assert_eq!(
        sample(&text, "oracle_executor_new_bar_to_order_sent_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_new_bar_to_order_sent_seconds_bucket{le=\"0.005\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_new_bar_to_order_sent_seconds_bucket{le=\"0.002\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "oracle_executor_signal_to_ack_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_signal_to_ack_seconds_bucket{le=\"0.005\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "oracle_executor_signal_to_ack_seconds_bucket{le=\"0.01\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn reconnects_count_an_up_after_a_down() {
    let m = ExecutorMetrics::new([&sym("EURUSD")]);
    m.on_link(true);
    m.on_link(false);
    m.on_link(false);
    m.on_link(true);
    m.on_link(true);
    let text = m.encode();
    assert_eq!(
        sample(&text, "oracle_executor_broker_reconnects_total"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "oracle_executor_broker_link_up"), Some(1.0));
}

/// `promtool check metrics` (Debian's `prometheus` package) accepts the exposition: the test runs
/// it when it is installed (scripts/test.sh installs it) and says so when it is not.
#[test]
fn promtool_accepts_the_exposition() {
    let m = ExecutorMetrics::new([&sym("EURUSD")]);
    m.on_line(Dir::Out, "ACK|EURUSD|WAIT|OK", Instant::now());
    m.on_signals(&[]);
    m.on_fsync(Duration::from_micros(300));
    m.on_drift(Book::Paper, false, Some(&Reason::MissedEntry));
    m.on_command("pause", "ok");
    let text = m.encode();
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI: scripts/test.sh installs the prometheus package"
        );
        eprintln!("promtool not installed: skipped (apt-get install prometheus)");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
