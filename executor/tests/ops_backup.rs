//! Backups against the real binaries (`ctrader-sim`, `executor run` in shadow mode, `preditor run`):
//! scripts/backup.sh runs while bars flow and every archive it writes unpacks to a consistent state
//! (each journal line whole, each desk's risk baseline the journal's last guard for it); then the
//! state directories, the config and the IPC token are wiped and scripts/restore.sh puts the last
//! archive back: the executor and the preditor resume with the same positions, twin states and
//! daily-loss baseline, no order is sent twice, and the twins go on exactly as the model does.
//! Bad input (a wrong key, a torn archive, a missing directory, a non-empty target) is refused
//! with a message saying what was wrong, and nothing changes.
//!
//! Needs `ctrader-sim` and `preditor` built next to the executor (`cargo test --workspace`) and
//! Debian's `age` (scripts/test.sh installs it through scripts/ops_deps.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::system::{
    System, SystemSpec, acks, field, positions_match_latest_acks, repo_root, sibling_binary,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const SYMBOLS: [&str; 2] = ["EURUSD", "GBPUSD"];

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Keys {
    identity: PathBuf,
    recipients: PathBuf,
    other_identity: PathBuf,
}

fn keys(dir: &Path) -> Keys {
    let k = |name: &str| {
        let p = dir.join(name);
        let (c, _, e) = run(Command::new("age-keygen").arg("-o").arg(&p));
        assert_eq!(c, 0, "age-keygen: {e}");
        p
    };
    let identity = k("backup-key.txt");
    let other_identity = k("other-key.txt");
    let (c, public, e) = run(Command::new("age-keygen").arg("-y").arg(&identity));
    assert_eq!(c, 0, "age-keygen -y: {e}");
    let recipients = dir.join("backup-recipients.txt");
    std::fs::write(&recipients, public).unwrap();
    Keys {
        identity,
        recipients,
        other_identity,
    }
}

fn backup_cmd(sys: &System, keys: &Keys, dest: &Path) -> Command {
    let mut c = Command::new(repo_root().join("scripts/backup.sh"));
    c.arg("--executor-config")
        .arg(&sys.config)
        .arg("--preditor-state")
        .arg(sys.path("preditor-state"))
        .arg("--recipients")
        .arg(&keys.recipients)
        .arg("--dest")
        .arg(dest)
        .arg("--keep")
        .arg("3")
        .arg("--executor")
        .arg(sibling_binary("executor", "executor"));
    c
}

/// Runs backup.sh; the archive it wrote.
fn backup(sys: &System, keys: &Keys, dest: &Path) -> PathBuf {
    let (c, out, err) = run(&mut backup_cmd(sys, keys, dest));
    assert_eq!(c, 0, "backup.sh failed: {out}{err}");
    // The executor is running: its own copy, between two batches (not a copy of files in motion).
    assert!(
        out.contains("copied by the running executor between two batches"),
        "{out}"
    );
    eprintln!("{out}");
    let path = out
        .lines()
        .find_map(|l| l.strip_prefix("backup.sh: wrote "))
        .and_then(|l| l.split(" (").next())
        .unwrap_or_else(|| panic!("no archive named in: {out}"));
    PathBuf::from(path)
}

fn archives(dest: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar.age"))
        .collect();
    v.sort();
    v
}

/// Decrypts and unpacks an archive into a new directory.
fn unpack(archive: &Path, identity: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let tar = into.join("archive.tar");
    let (c, _, e) = run(Command::new("age")
        .args(["-d", "-i"])
        .arg(identity)
        .arg("-o")
        .arg(&tar)
        .arg(archive));
    assert_eq!(c, 0, "age -d: {e}");
    let (c, _, e) = run(Command::new("tar").arg("-C").arg(into).arg("-xf").arg(&tar));
    assert_eq!(c, 0, "tar: {e}");
    std::fs::remove_file(tar).unwrap();
}

/// The executor's part of an unpacked archive is one consistent state: every journal line is a
/// whole entry, and each desk file's risk baseline and kill switch are its book's last guard.
fn assert_consistent(unpacked: &Path) -> usize {
    let state = unpacked.join("executor-config/state");
    let journal = std::fs::read_to_string(state.join("journal.jsonl")).unwrap();
    let mut last_guard: BTreeMap<String, Value> = BTreeMap::new();
    let mut n = 0;
    for (i, l) in journal.lines().enumerate() {
        let e: executor::journal::Entry = serde_json::from_str(l)
            .unwrap_or_else(|err| panic!("journal line {} is torn ({err}): {l}", i + 1));
        if let executor::journal::Entry::Guard {
            book,
            risk,
            kill_switch,
            ..
        } = e
        {
            last_guard.insert(
                book.to_string(),
                serde_json::json!({"risk": risk, "kill_switch": kill_switch}),
            );
        }
        n += 1;
    }
    assert!(journal.ends_with('\n'), "the journal ends mid-line");
    for (book, guard) in &last_guard {
        let desk: Value = serde_json::from_str(
            &std::fs::read_to_string(state.join(format!("{book}_desk.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            serde_json::json!({"risk": desk["risk"], "kill_switch": desk["kill_switch"]}),
            *guard,
            "{book}_desk.json and the journal's last guard disagree: a torn snapshot"
        );
    }
    assert!(!last_guard.is_empty(), "no guard in the journal yet");
    n
}

fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// What a restore must bring back: each book's positions (id, side, lots, entry), its daily-loss
/// baseline, and what the broker holds.
#[derive(Debug, PartialEq)]
struct Held {
    books: Value,
    baselines: BTreeMap<String, Value>,
    broker: BTreeMap<String, Vec<(i64, bool, i64)>>,
}

async fn held(sys: &System) -> Held {
    let (c, out, err) = sys.ctl(&["--json", "status"]);
    assert_eq!(c, 0, "ctl status: {err}");
    let outcome: fleet::CommandOutcome = serde_json::from_str(out.trim()).unwrap();
    let fleet::CommandResult::Status(doc) = outcome.result else {
        panic!("status answered {out}");
    };
    // Only what a restore must keep: equity and open PnL move with the quote.
    let books: Vec<Value> = doc
        .books
        .iter()
        .map(|b| {
            let symbols: Vec<Value> = b
                .symbols
                .iter()
                .map(|s| {
                    let positions: Vec<Value> = s
                        .positions
                        .iter()
                        .map(|p| {
                            let mut v = serde_json::to_value(p).unwrap();
                            v.as_object_mut().unwrap().remove("pnl");
                            v
                        })
                        .collect();
                    serde_json::json!({"symbol": s.symbol, "positions": positions})
                })
                .collect();
            serde_json::json!({"book": b.book, "symbols": symbols})
        })
        .collect();
    let books = Value::Array(books);
    let baselines = ["live", "paper"]
        .iter()
        .map(|b| {
            let desk: Value = serde_json::from_str(
                &std::fs::read_to_string(sys.path(&format!("state/{b}_desk.json"))).unwrap(),
            )
            .unwrap();
            (b.to_string(), desk["risk"].clone())
        })
        .collect();
    Held {
        books,
        baselines,
        broker: sys.sim.positions().await,
    }
}

/// Waits until the wire has not changed for `quiet` (the paused replay has nothing more to say).
fn settle(sys: &mut System, quiet: Duration) {
    let mut last = sys.wire().len();
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the wire never went quiet");
        std::thread::sleep(Duration::from_millis(100));
        let n = sys.wire().len();
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
}

fn stop(p: &mut Option<common::system::Proc>) {
    let s = p
        .take()
        .unwrap()
        .signal_and_wait(Signal::SIGTERM, Duration::from_secs(30));
    assert!(s.success(), "stopped with {s}");
}

/// The live book's order intents as (symbol, bar, leg): an order sent twice shows up twice.
fn live_intents(journal: &str) -> Vec<(String, i64, String)> {
    journal
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "intent" && e["book"] == "live")
        .map(|e| {
            (
                e["symbol"].as_str().unwrap().to_string(),
                e["bar"].as_i64().unwrap(),
                e["leg"].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_a_run_restores_positions_twins_and_the_daily_loss_baseline() {
    if !have("age") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have age (scripts/test.sh installs it through scripts/ops_deps.sh)"
        );
        eprintln!("age not installed: skipped (apt-get install age)");
        return;
    }
    let mut sys = System::start(SystemSpec {
        symbols: SYMBOLS.to_vec(),
        bars: 400 + 120,
        start_bar: 400,
        speed: 4.0,
        request_timeout_ms: 2000,
    });
    let keys = keys(sys.dir.path());
    let dest = sys.path("backups");
    std::fs::create_dir(&dest).unwrap();

    // --- bad input before anything is written: each names what is wrong, no archive appears
    let (c, _, err) = run(backup_cmd(&sys, &keys, &dest)
        .arg("--preditor-state")
        .arg(sys.path("no-such-dir")));
    assert_ne!(c, 0);
    assert!(err.contains("no-such-dir does not exist"), "{err}");
    let (c, _, err) = run(backup_cmd(&sys, &keys, &dest)
        .arg("--recipients")
        .arg(sys.path("no-recipients.txt")));
    assert_ne!(c, 0);
    assert!(
        err.contains("recipients file") && err.contains("age-keygen"),
        "{err}"
    );
    assert!(archives(&dest).is_empty(), "{:?}", archives(&dest));

    sys.wait_wire("ACKs with a position open", Duration::from_secs(120), |w| {
        let a = acks(w);
        a.len() >= 8
            && a.iter()
                .any(|l| l.contains("|OK|") && field(l, "T:").is_some())
    });

    // --- backups while bars flow: each one unpacks to a consistent state; three are kept
    let mut entries = Vec::new();
    for i in 0..4 {
        let a = backup(&sys, &keys, &dest);
        let into = sys.path(&format!("unpacked-{i}"));
        unpack(&a, &keys.identity, &into);
        entries.push(assert_consistent(&into));
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(
        entries.windows(2).any(|w| w[1] > w[0]),
        "the journal never grew between backups ({entries:?}): they were not taken during the run"
    );
    assert_eq!(
        archives(&dest).len(),
        3,
        "rotation keeps 3: {:?}",
        archives(&dest)
    );

    // --- the backup to restore, the replay held so that what the daemons hold stays put
    sys.sim.control_ok("pause");
    settle(&mut sys, Duration::from_secs(3));
    let archive = backup(&sys, &keys, &dest);
    let before = held(&sys).await;
    let twins_before = files(&sys.path("preditor-state"));
    let journal_before = std::fs::read_to_string(sys.path("state/journal.jsonl")).unwrap();
    let wire_before = sys.wire();
    assert!(
        before.broker.values().any(|v| !v.is_empty()),
        "no position held: nothing to restore ({before:?})"
    );
    assert_eq!(
        twins_before.len(),
        SYMBOLS.len(),
        "{:?}",
        twins_before.keys()
    );
    assert!(
        before.baselines.values().all(Value::is_object),
        "a book without a daily-loss baseline yet: {:?}",
        before.baselines
    );
    eprintln!("restoring {archive:?}: {before:?}");
    stop(&mut sys.preditor);
    stop(&mut sys.executor);
    // Stopped, the executor is copied under its lock (it cannot start mid-copy).
    let (c, out, err) = run(&mut backup_cmd(&sys, &keys, &dest));
    assert_eq!(c, 0, "{out}{err}");
    assert!(
        out.contains("no executor running: copied under its lock"),
        "{out}"
    );

    // --- wiped: both state directories, the config, the IPC token
    let state = sys.path("state");
    for d in [&state, &sys.path("preditor-state")] {
        std::fs::remove_dir_all(d).unwrap();
    }
    std::fs::remove_file(&sys.config).unwrap();
    std::fs::remove_file(sys.path("secrets/ipc.token")).unwrap();

    let restore = || {
        let mut c = Command::new(repo_root().join("scripts/restore.sh"));
        c.arg("--identity").arg(&keys.identity);
        c
    };
    // A wrong key, a torn archive: refused by name, nothing restored.
    let (c, _, err) = run(Command::new(repo_root().join("scripts/restore.sh"))
        .arg("--identity")
        .arg(&keys.other_identity)
        .arg(&archive));
    assert_ne!(c, 0);
    assert!(err.contains("wrong key"), "{err}");
    let torn = sys.path("torn.tar.age");
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&torn, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (c, _, err) = run(restore().arg(&torn));
    assert_ne!(c, 0);
    assert!(err.contains("damaged or incomplete"), "{err}");
    let (c, _, err) = run(restore().arg(sys.path("no-such.tar.age")));
    assert_ne!(c, 0);
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !state.exists() && !sys.config.exists(),
        "a refused restore wrote something"
    );

    let (c, out, err) = run(restore().arg(&archive));
    assert_eq!(c, 0, "restore.sh: {out}{err}");
    assert_eq!(files(&sys.path("preditor-state")), twins_before);
    assert!(sys.config.is_file() && sys.path("secrets/ipc.token").is_file());
    // A second restore over the restored state is refused without --force, and changes nothing.
    let (c, _, err) = run(restore().arg(&archive));
    assert_ne!(c, 0);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );

    // --- both resume: the same positions and baselines, the twins where they were
    sys.start_executor();
    sys.start_preditor();
    let n_before = wire_before.len();
    sys.wait_wire(
        "the restarted preditor's signals answered",
        Duration::from_secs(120),
        |w| {
            let new_acks = acks(&w[n_before.min(w.len())..]);
            SYMBOLS
                .iter()
                .all(|s| new_acks.iter().any(|a| a.starts_with(&format!("ACK|{s}|"))))
        },
    );
    settle(&mut sys, Duration::from_secs(3));
    let after = held(&sys).await;
    assert_eq!(
        after, before,
        "the restore did not bring back what was held"
    );
    assert_eq!(
        files(&sys.path("preditor-state")),
        twins_before,
        "the twins moved"
    );
    // The repeated signals are answered with the journaled ACKs, not executed again.
    let last_ack = |w: &[common::system::WireLine], s: &str| {
        acks(w)
            .into_iter()
            .rev()
            .find(|a| a.starts_with(&format!("ACK|{s}|")))
    };
    for s in SYMBOLS {
        assert_eq!(
            last_ack(&sys.wire()[n_before..], s),
            last_ack(&wire_before, s),
            "{s}: the repeated signal got another answer"
        );
    }
    let journal_after = std::fs::read_to_string(sys.path("state/journal.jsonl")).unwrap();
    assert_eq!(
        live_intents(&journal_after),
        live_intents(&journal_before),
        "an order was sent after the restore with nothing new to do"
    );

    // --- the replay goes on: the twins decide exactly as the model over the whole series, and
    // the broker holds exactly what the latest ACKs say (one position each, no duplicate)
    sys.sim.control_ok("resume");
    let n_resumed = sys.wire().len();
    sys.wait_wire("three more bars", Duration::from_secs(120), |w| {
        let a = acks(&w[n_resumed.min(w.len())..]);
        SYMBOLS.iter().all(|s| {
            a.iter()
                .filter(|l| l.starts_with(&format!("ACK|{s}|")))
                .count()
                >= 3
        })
    });
    sys.sim.control_ok("pause");
    settle(&mut sys, Duration::from_secs(3));
    let wire = sys.wire();
    for s in SYMBOLS {
        let expected: BTreeMap<String, String> = sys
            .backtest(s)
            .into_iter()
            .map(|r| (r.time, r.signal))
            .collect();
        let sent: BTreeSet<&str> = wire
            .iter()
            .filter(|l| l.inbound && l.text.starts_with(&format!("SIGNAL|{s}|")))
            .map(|l| l.text.as_str())
            .collect();
        assert!(sent.len() >= 4, "{s}: {sent:?}");
        for line in &sent {
            let bar = field(line, "B:").unwrap();
            assert_eq!(
                Some(*line),
                expected.get(bar).map(String::as_str),
                "{s}: the twin's signal for {bar} differs from the model's"
            );
        }
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(&sys.config).unwrap()).unwrap();
    let positions = sys.sim.positions().await;
    if let Err(wrong) = positions_match_latest_acks(&SYMBOLS, &acks(&wire), &positions, &config) {
        panic!("the broker does not hold what the ACKs say: {wrong:?}");
    }
    let mut seen = BTreeSet::new();
    for i in live_intents(&std::fs::read_to_string(sys.path("state/journal.jsonl")).unwrap()) {
        assert!(seen.insert(i.clone()), "an order sent twice: {i:?}");
    }
}
