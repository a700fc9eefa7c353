//! Every operator command against the real binaries (`ctrader-sim`, `executor run` in shadow mode,
//! `preditor run`), through `executor ctl` as an operator types it: status, pause, the settings
//! commands and their refusals, a repeated id, flatten with its confirmation, the kill switch
//! winning over resume, a ctl call from another user, and the overlay across a restart and a
//! reload. The simulator is asked with a client of our own what it holds.
//!
//! Needs `ctrader-sim` and `preditor` built next to the executor (`cargo test --workspace`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::system::{System, SystemSpec, acks, ctl_as, field};
use fleet::{CommandOutcome, CommandResult, RefusalCode, StatusDocument};
use nix::sys::signal::Signal;
use serde_json::Value;

const SYMBOLS: [&str; 2] = ["EURUSD", "GBPUSD"];

fn spec() -> SystemSpec {
    SystemSpec {
        symbols: SYMBOLS.to_vec(),
        bars: 400 + 400,
        start_bar: 400,
        speed: 4.0,
        request_timeout_ms: 2000,
    }
}

fn count(acks: &[String], symbol: &str) -> usize {
    acks.iter()
        .filter(|a| a.starts_with(&format!("ACK|{symbol}|")))
        .count()
}

fn wait_acks(sys: &mut System, what: &str, per_symbol: usize) {
    let base: Vec<usize> = SYMBOLS
        .iter()
        .map(|s| count(&acks(&sys.wire()), s))
        .collect();
    sys.wait_wire(what, Duration::from_secs(120), |w| {
        let a = acks(w);
        SYMBOLS
            .iter()
            .zip(&base)
            .all(|(s, b)| count(&a, s) >= b + per_symbol)
    });
}

/// `executor ctl --json …`, which must exit with `code`.
fn ctl_json(sys: &System, args: &[&str], code: i32) -> CommandOutcome {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (c, out, err) = sys.ctl(&all);
    assert_eq!(c, code, "executor ctl {args:?}: {out}{err}");
    serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn status(sys: &System) -> StatusDocument {
    match ctl_json(sys, &["status"], 0).result {
        CommandResult::Status(d) => *d,
        other => panic!("status answered {other:?}"),
    }
}

/// What commands can change: settings, limits, the pause.
fn settings(d: &StatusDocument) -> String {
    serde_json::to_string(&(&d.symbols, &d.risk, d.paused)).unwrap()
}

fn refusal(o: &CommandOutcome) -> (RefusalCode, Option<String>, String) {
    match &o.result {
        CommandResult::Refused(r) => (r.code, r.field.clone(), r.message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn journal(sys: &System) -> Vec<Value> {
    std::fs::read_to_string(sys.path("state/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Position ids the simulator holds on our symbols.
async fn held(sys: &System) -> BTreeSet<i64> {
    sys.sim
        .positions()
        .await
        .into_iter()
        .filter(|(s, _)| SYMBOLS.contains(&s.as_str()))
        .flat_map(|(_, v)| v.into_iter().map(|(id, _, _)| id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_works_against_the_simulator_and_bad_input_changes_nothing() {
    let mut sys = System::start(spec());
    wait_acks(&mut sys, "the first ACKs", 3);

    // --- status, as a person and as JSON
    let (c, text, err) = sys.ctl(&["status"]);
    assert_eq!(c, 0, "{err}");
    for words in [
        "mode shadow",
        "book live",
        "book paper",
        "EURUSD",
        "GBPUSD",
        "max_open_positions",
        "broker link: up",
        "last bar",
    ] {
        assert!(text.contains(words), "{words:?} not in\n{text}");
    }
    let before = status(&sys);
    assert_eq!(before.books.len(), 2);
    assert!(before.books[0].symbols.iter().all(|s| s.last_ack.is_some()));
    assert!(
        before
            .telemetry
            .symbols
            .iter()
            .all(|s| s.last_bar.is_some())
    );

    // --- bad input: refused, naming the field, and nothing changes
    let o = ctl_json(&sys, &["set-lots", "EURUSD", "0.01", "0.015", "0.05"], 1);
    let (code, f, m) = refusal(&o);
    assert_eq!(
        (code, f.as_deref()),
        (RefusalCode::InvalidField, Some("lot_moderate")),
        "{m}"
    );
    assert!(m.contains("step"), "{m}");
    let o = ctl_json(&sys, &["set-lots", "EURUSD", "0.01", "0.02", "5000"], 1);
    assert_eq!(refusal(&o).1.as_deref(), Some("lot_strong"));
    let o = ctl_json(&sys, &["set-risk-limits", "--max-daily-loss-pct", "150"], 1);
    assert_eq!(refusal(&o).1.as_deref(), Some("max_daily_loss_pct"));
    let o = ctl_json(&sys, &["set-enabled", "XAUUSD", "true"], 1);
    assert_eq!(refusal(&o).0, RefusalCode::UnknownSymbol);
    let (c, _, err) = sys.ctl(&["send", r#"{"op":"explode"}"#]);
    assert_eq!(c, 1);
    assert!(err.contains("unknown variant `explode`"), "{err}");
    let (c, _, err) = sys.ctl(&["set-lots", "EURUSD", "0.01", "lots", "0.05"]);
    assert_eq!(c, 2, "clap refuses a lot that is not a number: {err}");
    assert!(err.contains("<LOT_MODERATE>"), "{err}");
    // Raw garbage on the socket itself.
    let sock = sys.path("state/ctl.sock");
    for (bytes, words) in [
        (&b"{\"v\":1,\"id\":\"0123456789abcdef\",\"command\":{\"op\":\"set_lots\",\"symbol\":\"EURUSD\"}}\n"[..], "missing field"),
        (&b"\x00\xff garbage\n"[..], "expected"),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(bytes).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let o: CommandOutcome = serde_json::from_str(&line).unwrap();
        assert!(refusal(&o).2.contains(words), "{line}");
    }
    // Another user: first the socket's mode refuses it, then (mode loosened by hand) the peer
    // credentials do. The tempdir is opened up so that only the socket itself is in the way.
    let uid = 65534; // nobody
    let open = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(sys.dir.path(), 0o755);
    open(&sys.path("state"), 0o755);
    open(&sys.config, 0o644);
    let (c, _, err) = ctl_as(&sys.config, &["pause"], Some(uid));
    assert_eq!(c, 3, "{err}");
    assert!(
        err.contains("permission denied") && err.contains("sudo -u"),
        "{err}"
    );
    open(&sock, 0o666);
    let (c, out, err) = ctl_as(&sys.config, &["pause"], Some(uid));
    assert_eq!(c, 1, "{out}{err}");
    assert!(out.contains(&format!("uid {uid} may not control")), "{out}");
    open(&sock, 0o600);
    open(sys.dir.path(), 0o700);
    assert_eq!(
        settings(&status(&sys)),
        settings(&before),
        "refused commands changed nothing"
    );
    assert!(
        !journal(&sys).iter().any(|e| e["kind"] == "command"),
        "nothing refused was journaled as run"
    );

    // --- flatten: wait until the broker holds something of ours
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while held(&sys).await.is_empty() {
        sys.assert_alive();
        assert!(
            std::time::Instant::now() < deadline,
            "no position opened within 90 s\n{}",
            sys.log_tails(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // --- flatten: nothing without the confirmation; with it, every position closed at a price
    let positions = held(&sys).await;
    let (c, out, _) = sys.ctl(&["flatten"]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("not confirmed: nothing was done"), "{out}");
    assert_eq!(held(&sys).await, positions);
    let o = ctl_json(&sys, &["--yes", "flatten"], 0);
    let CommandResult::Flattened { closed, failed } = &o.result else {
        panic!("flatten answered {o:?}");
    };
    assert!(failed.is_empty(), "{failed:?}");
    let live_closed: BTreeSet<i64> = closed
        .iter()
        .filter(|c| c.book == fleet::Book::Live)
        .map(|c| c.position_id as i64)
        .collect();
    assert_eq!(live_closed, positions, "closed what the broker held");
    assert!(!live_closed.is_empty());
    assert!(status(&sys).paused, "a flatten pauses first");
    assert!(
        closed
            .iter()
            .all(|c| c.price.is_some_and(|p| p > 0.0) && c.lots > 0.0)
    );
    assert!(
        held(&sys).await.is_empty(),
        "the broker holds nothing of ours after a flatten"
    );
    eprintln!(
        "flatten closed {} positions ({} live)",
        closed.len(),
        live_closed.len()
    );
    let after_flatten = acks(&sys.wire()).len();
    wait_acks(&mut sys, "ACKs after the flatten", 8);
    assert!(
        held(&sys).await.is_empty(),
        "a flatten never reopens on its own"
    );
    let paused_acks = &acks(&sys.wire())[after_flatten..];
    eprintln!(
        "paused after the flatten: {} ACKs, {} FAIL|PAUSED",
        paused_acks.len(),
        paused_acks
            .iter()
            .filter(|a| a.contains("|FAIL|PAUSED"))
            .count()
    );

    // --- settings: applied, answered once per id, journaled before they act
    ctl_json(&sys, &["set-lots", "EURUSD", "0.02", "0.04", "0.06"], 0);
    ctl_json(&sys, &["set-enabled", "GBPUSD", "false"], 0);
    ctl_json(&sys, &["set-risk-limits", "--max-open-positions", "5"], 0);
    let first = ctl_json(
        &sys,
        &[
            "--id",
            "retry-0000000001",
            "set-risk-limits",
            "--max-total-lots",
            "50",
        ],
        0,
    );
    let again = ctl_json(
        &sys,
        &[
            "--id",
            "retry-0000000001",
            "set-risk-limits",
            "--max-total-lots",
            "7",
        ],
        0,
    );
    assert_eq!(first, again, "a repeated id is answered again");
    let s = status(&sys);
    assert_eq!(s.risk.max_total_lots, 50.0, "the repeat was not run");
    assert_eq!(s.risk.max_open_positions, 5);
    let eur = s
        .symbols
        .iter()
        .find(|x| x.symbol.as_str() == "EURUSD")
        .unwrap();
    assert_eq!(
        (
            eur.lots.lot_weak,
            eur.lots.lot_moderate,
            eur.lots.lot_strong
        ),
        (0.02, 0.04, 0.06)
    );
    assert!(
        !s.symbols
            .iter()
            .find(|x| x.symbol.as_str() == "GBPUSD")
            .unwrap()
            .enabled
    );
    let j = journal(&sys);
    assert_eq!(
        j.iter()
            .filter(|e| e["kind"] == "command" && e["id"] == "retry-0000000001")
            .count(),
        1
    );
    assert_eq!(
        j.iter().filter(|e| e["kind"] == "command").count(),
        j.iter().filter(|e| e["kind"] == "command_result").count()
    );

    // --- the kill switch wins over resume
    let kill = sys.path("state/KILL");
    std::fs::write(&kill, "").unwrap();
    let o = ctl_json(&sys, &["resume"], 1);
    assert_eq!(refusal(&o).0, RefusalCode::KillSwitch);
    assert!(status(&sys).paused);
    std::fs::remove_file(&kill).unwrap();
    ctl_json(&sys, &["resume"], 0);
    assert!(!status(&sys).paused);
    let at_resume = acks(&sys.wire()).len();
    wait_acks(&mut sys, "ACKs after resume", 6);
    let wire = sys.wire();
    let after: Vec<String> = acks(&wire)[at_resume..].to_vec();
    // A disabled symbol is refused; an open after resume only follows an action change (N:1).
    for a in after.iter().filter(|a| a.starts_with("ACK|GBPUSD|")) {
        assert!(a.contains("|FAIL|DISABLED"), "{a}");
    }
    for a in after
        .iter()
        .filter(|a| a.starts_with("ACK|EURUSD|") && a.contains("|OK|T:"))
    {
        let bar = field(a, "B:").unwrap();
        let sig = wire
            .iter()
            .rev()
            .find(|l| {
                l.inbound
                    && l.text.starts_with("SIGNAL|EURUSD|")
                    && field(&l.text, "B:") == Some(bar)
            })
            .unwrap();
        assert!(
            field(&sig.text, "N:") == Some("1") || a.contains("|WAIT|"),
            "an open after resume must be a new entry, not a chase: {} -> {a}",
            sig.text
        );
    }
    let missed = acks(&wire)[after_flatten..]
        .iter()
        .filter(|a| a.contains("WAIT_SYNC|MISSED_ENTRY"))
        .count();
    eprintln!("after the flatten: {missed} MISSED_ENTRY");

    // --- pause: no new opens, closes still go through
    let held_at_pause = held(&sys).await;
    let o = ctl_json(&sys, &["pause"], 0);
    assert!(matches!(o.result, CommandResult::Ok { .. }));
    assert!(status(&sys).paused);
    let acks_at_pause = acks(&sys.wire()).len();
    wait_acks(&mut sys, "ACKs while paused", 8);
    let paused_acks: Vec<String> = acks(&sys.wire())[acks_at_pause..].to_vec();
    let now_held = held(&sys).await;
    let new_positions: BTreeSet<i64> = now_held.difference(&held_at_pause).copied().collect();
    assert!(
        new_positions.is_empty(),
        "opened while paused: {new_positions:?}"
    );
    let refused_paused = paused_acks
        .iter()
        .filter(|a| a.contains("|FAIL|PAUSED"))
        .count();
    eprintln!(
        "while paused: {} ACKs, {refused_paused} FAIL|PAUSED, positions {} -> {}",
        paused_acks.len(),
        held_at_pause.len(),
        now_held.len()
    );

    // --- the overlay survives a restart (and executor check shows it), and a reload
    let (c, out, err) = {
        let o = std::process::Command::new(common::system::sibling_binary("executor", "executor"))
            .args(["check", "--config"])
            .arg(&sys.config)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(c, Some(0), "{err}");
    for words in [
        "EURUSD.lot_weak = 0.02 (the file says",
        "GBPUSD.enabled = false (the file says true)",
        "risk.max_open_positions = 5",
    ] {
        assert!(out.contains(words), "{words:?} not in\n{out}");
    }
    let before_restart = settings(&status(&sys));
    sys.executor
        .as_mut()
        .unwrap()
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(20));
    sys.executor = None;
    sys.start_executor();
    let s = status(&sys);
    assert_eq!(
        settings(&s),
        before_restart,
        "what commands set survives a restart"
    );
    assert!(s.paused, "a pause survives a restart");
    assert_eq!(s.risk.max_open_positions, 5);
    assert!(
        !s.symbols
            .iter()
            .find(|x| x.symbol.as_str() == "GBPUSD")
            .unwrap()
            .enabled
    );
    let o = ctl_json(&sys, &["reload"], 0);
    assert!(matches!(o.result, CommandResult::Ok { .. }), "{o:?}");
    let s2 = status(&sys);
    assert_eq!(settings(&s2), settings(&s), "the overlay outlives a reload");
    // A repeated id after the restart is still answered, never run again.
    let again = ctl_json(
        &sys,
        &[
            "--id",
            "retry-0000000001",
            "set-risk-limits",
            "--max-total-lots",
            "9",
        ],
        0,
    );
    assert_eq!(again, first);
    sys.assert_alive();
}
