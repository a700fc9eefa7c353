//! The live path against a small executor written here (HELLO, HISTORY, BARs from the golden bars.csv,
//! reading SIGNALs): the real `preditor run` binary must send, at every bar, exactly the signal the
//! backtest (and the Python reference) decides — also when it is SIGKILLed at random bars and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::{Decimal, Line, Signal};
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "5f0c1e7a9b3d42c8a6e1f07b2d9c4e385a1b7c0d9e2f4a6b8c3d5e7f9a0b1c2d";
const W: usize = 350;

/// One golden bar as the executor sends it (prices keep the CSV text).
#[derive(Debug, Clone)]
struct WireBar {
    time: String,
    line: String,
}

fn golden_bars(dir: &Path) -> Vec<WireBar> {
    let mut r = csv::Reader::from_path(dir.join("bars.csv")).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let line = format!(
                "BAR|EURUSD|H1|{}|{}|{}|{}|{}|{}",
                &rec[0], &rec[1], &rec[2], &rec[3], &rec[4], &rec[5]
            );
            WireBar {
                time: rec[0].to_string(),
                line,
            }
        })
        .collect()
}

/// Expected SIGNAL per bar time, from the golden steps (the reference's decisions).
fn expected_signals(dir: &Path) -> BTreeMap<String, String> {
    let mut r = csv::Reader::from_path(dir.join("steps.csv")).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (t, reg, act, pnl, held) = (
        col("time"),
        col("regime"),
        col("action"),
        col("virtual_pnl"),
        col("held"),
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let action = protocol::Action::from_index(rec[act].parse().unwrap()).unwrap();
            let pnl = Decimal::from_f64(rec[pnl].parse().unwrap(), Signal::PNL_DECIMALS).unwrap();
            let line = format!(
                "SIGNAL|EURUSD|{}|{}|{}|B:{}|N:{}",
                action.as_str(),
                &rec[reg],
                pnl.as_str(),
                &rec[t],
                &rec[held]
            );
            (rec[t].to_string(), line)
        })
        .collect()
}

/// What the fake executor has done so far.
#[derive(Debug, Default)]
struct Book {
    /// Bars delivered (history or live): the next live bar is `bars[cursor]`.
    cursor: usize,
    /// Every SIGNAL received, by bar time (duplicates kept to check they agree).
    signals: BTreeMap<String, Vec<String>>,
    connections: usize,
    bad_hello: usize,
    /// Only the newest connection delivers bars (a dead one must not steal a bar from its successor).
    generation: usize,
    /// Cursor values at which the executor drops the connection (once each) instead of sending a bar.
    drop_at: Vec<usize>,
    /// WARMUPs still to answer `ERROR|HISTORY_UNAVAILABLE` (a broker timeout) before serving one.
    unavailable: usize,
    /// When each WARMUP arrived.
    warmups: Vec<std::time::Instant>,
}

#[derive(Debug)]
struct FakeExecutor {
    bars: Vec<WireBar>,
    book: Mutex<Book>,
    /// Longest history it will serve (a broker keeps limited history).
    history_cap: usize,
    progress: Notify,
}

impl FakeExecutor {
    async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = me.connection(ws).await;
                }
            });
        }
    }

    async fn connection(
        &self,
        mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let generation = {
            let mut b = self.book.lock().unwrap();
            b.connections += 1;
            b.generation += 1;
            b.generation
        };
        // The handshake first (PROTOCOL.md §7): HELLO, ours with our proof, AUTH with theirs.
        let key = protocol::handshake::IpcKey::from_token(TOKEN)?;
        let first = next_text(&mut ws).await?;
        let Line::Hello(hello) = first.parse::<Line>()? else {
            self.book.lock().unwrap().bad_hello += 1;
            return Ok(());
        };
        let (hs, ours) = protocol::handshake::ExecutorHandshake::answer(
            &key,
            "0.1.0",
            protocol::Mode::Paper,
            &hello,
        )?;
        ws.send(Message::text(Line::Hello(ours).to_string()))
            .await?;
        let auth = next_text(&mut ws).await?;
        let authenticated = match auth.parse::<Line>()? {
            Line::Auth(a) => hs.finish(&a).is_ok(),
            _ => false,
        };
        if !authenticated {
            self.book.lock().unwrap().bad_hello += 1;
            return Ok(());
        }
        let w = loop {
            let warmup = next_text(&mut ws).await?;
            let Line::Warmup(w) = warmup.parse::<Line>()? else {
                return Err(format!("expected WARMUP, got {warmup}").into());
            };
            let refuse = {
                let mut b = self.book.lock().unwrap();
                b.warmups.push(std::time::Instant::now());
                let refuse = b.unavailable > 0;
                b.unavailable = b.unavailable.saturating_sub(1);
                refuse
            };
            self.progress.notify_waiters();
            if !refuse {
                break w;
            }
            ws.send(Message::text(
                "ERROR|HISTORY_UNAVAILABLE|EURUSD H1: the broker's history request failed (timeout); send WARMUP again",
            ))
            .await?;
        };
        let cursor = self.book.lock().unwrap().cursor;
        let n = (w.count as usize).min(self.history_cap).min(cursor);
        let mut block = vec![format!("HISTORY|EURUSD|H1|{n}")];
        block.extend(self.bars[cursor - n..cursor].iter().map(|b| b.line.clone()));
        block.push("HISTORY_END|EURUSD|H1".into());
        // One message per line, as a real executor does.
        for l in block {
            ws.send(Message::text(l)).await?;
        }
        loop {
            // Read every SIGNAL already there, then deliver the next bar.
            let next = {
                let book = self.book.lock().unwrap();
                if book.generation != generation {
                    return Ok(());
                }
                let cursor = book.cursor;
                drop(book);
                let mut book = self.book.lock().unwrap();
                if let Some(i) = book.drop_at.iter().position(|&c| c == cursor) {
                    book.drop_at.remove(i);
                    return Ok(()); // the socket is dropped: the preditor must reconnect and resume
                }
                (book.cursor < self.bars.len()).then(|| self.bars[book.cursor].clone())
            };
            if let Some(bar) = &next {
                ws.send(Message::text(bar.line.clone())).await?;
                self.book.lock().unwrap().cursor += 1;
                self.progress.notify_waiters();
            }
            // Wait for this bar's SIGNAL (resent signals of older bars are recorded on the way).
            loop {
                let text =
                    match tokio::time::timeout(Duration::from_secs(30), next_text(&mut ws)).await {
                        Ok(t) => t?,
                        Err(_) => return Err("no SIGNAL within 30 s".into()),
                    };
                // A message may carry several lines (the SIGNALs of missed bars after a resume).
                let mut this_bar = false;
                for raw in text.lines() {
                    let Line::Signal(s) = raw.parse::<Line>()? else {
                        continue;
                    };
                    let bt = s.bar_time.map(|b| b.to_string()).unwrap_or_default();
                    self.book
                        .lock()
                        .unwrap()
                        .signals
                        .entry(bt.clone())
                        .or_default()
                        .push(raw.to_string());
                    self.progress.notify_waiters();
                    ws.send(Message::text(format!(
                        "ACK|EURUSD|{}|OK",
                        s.action.as_str()
                    )))
                    .await?;
                    this_bar |= next.as_ref().is_none_or(|b| b.time == bt);
                }
                if this_bar {
                    break;
                }
            }
        }
    }
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(_))) | None => return Err("closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    models: PathBuf,
    state: PathBuf,
    token: PathBuf,
    log: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(
        common::repo_root().join("models/EURUSD_H1.zip"),
        models.join("EURUSD_H1.zip"),
    )
    .unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        state: tmp.path().join("state"),
        log: tmp.path().join("preditor.log"),
        models,
        token,
        _tmp: tmp,
    }
}

fn spawn(s: &Setup, port: u16) -> Child {
    run_command(Command::new(env!("CARGO_BIN_EXE_preditor")), s, port)
        .spawn()
        .unwrap()
}

/// `preditor run` against the executor on `port`, logging to `s.log`; `cmd` is the program (or a
/// wrapper that execs it).
fn run_command(mut cmd: Command, s: &Setup, port: u16) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.log)
        .unwrap();
    cmd.arg("run")
        .arg("--executor")
        .arg(format!("ws://127.0.0.1:{port}"))
        .arg("--token-file")
        .arg(&s.token)
        .arg("--models")
        .arg(&s.models)
        .arg("--state-dir")
        .arg(&s.state)
        .env("RUST_LOG", "info,tract_linalg=warn")
        .stdout(Stdio::null())
        .stderr(log);
    cmd
}

async fn start(bars: Vec<WireBar>, cursor: usize, history_cap: usize) -> (Arc<FakeExecutor>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let exec = Arc::new(FakeExecutor {
        bars,
        book: Mutex::new(Book {
            cursor,
            ..Book::default()
        }),
        history_cap,
        progress: Notify::new(),
    });
    tokio::spawn(Arc::clone(&exec).serve(listener));
    (exec, port)
}

/// Waits until `done(book)` holds, failing after `secs`.
async fn wait_until(exec: &FakeExecutor, secs: u64, what: &str, done: impl Fn(&Book) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let notified = exec.progress.notified();
        if done(&exec.book.lock().unwrap()) {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let b = exec.book.lock().unwrap();
            panic!(
                "timed out waiting for {what}: cursor {}, {} signals, {} connections",
                b.cursor,
                b.signals.len(),
                b.connections
            );
        }
    }
}

/// Every decided bar got a signal, all copies of it identical to the reference's.
fn check_signals(book: &Book, expected: &BTreeMap<String, String>, log: &Path) {
    let mut problems = Vec::new();
    for (time, want) in expected {
        match book.signals.get(time) {
            None => problems.push(format!("{time}: no SIGNAL; expected {want}")),
            Some(got) => {
                for g in got {
                    if g != want {
                        problems.push(format!("{time}: got {g}, expected {want}"));
                    }
                }
            }
        }
    }
    for time in book.signals.keys() {
        if !expected.contains_key(time) {
            problems.push(format!("{time}: SIGNAL for a bar that has no decision"));
        }
    }
    if !problems.is_empty() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        panic!(
            "{} signal mismatches (first 20):\n{}\n--- preditor log tail ---\n{}",
            problems.len(),
            problems
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_signals_equal_the_backtest_at_every_bar_across_reconnects() {
    let case = common::case("EURUSD_H1");
    let bars = golden_bars(&case.dir);
    let expected = expected_signals(&case.dir);
    let total = bars.len();
    // The executor has delivered the first W bars (the first decision bar included) before we start.
    let (exec, port) = start(bars, W, 100_000).await;
    // The executor drops the connection twice mid-stream: the same process reconnects and resumes.
    exec.book.lock().unwrap().drop_at = vec![W + 100, W + 400];
    let s = setup();
    let mut child = spawn(&s, port);
    wait_until(&exec, 300, "all bars", |b| {
        b.cursor == total && b.signals.contains_key(&exec.bars[total - 1].time)
    })
    .await;
    // Clean shutdown on SIGTERM.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "preditor did not exit cleanly on SIGTERM: {status}"
    );
    let book = exec.book.lock().unwrap();
    check_signals(&book, &expected, &s.log);
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.contains("> SIGNAL|EURUSD|") && log.contains("< ACK|EURUSD|"),
        "wire lines are logged"
    );
    assert!(
        log.contains("> HELLO|preditor|0.1.0|***") && !log.contains(TOKEN),
        "token never logged"
    );
    assert!(log.contains("stopped cleanly"));
    assert!(
        log.contains("reconnecting"),
        "the dropped connections were re-established"
    );
    assert_eq!(book.connections, 3);
    assert!(book.drop_at.is_empty());
}

/// Issue 19: a WARMUP the executor could not serve this time (its broker request failed) is asked
/// again on the same connection, after 200 ms then 400 ms, until the history comes; the twin then
/// signals exactly as the backtest. Before, the preditor never asked again: the twin waited for 350
/// live bars (a held replay sends none) and missed the model's entries meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmup_answered_history_unavailable_is_asked_again_with_backoff() {
    let case = common::case("EURUSD_H1");
    let bars = golden_bars(&case.dir);
    let expected = expected_signals(&case.dir);
    let (exec, port) = start(bars, W, 100_000).await;
    exec.book.lock().unwrap().unavailable = 2;
    let s = setup();
    let mut child = spawn(&s, port);
    wait_until(&exec, 60, "the history served and 20 live bars", |b| {
        b.cursor >= W + 20 && b.signals.contains_key(&exec.bars[W + 19].time)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let book = exec.book.lock().unwrap();
    assert_eq!(book.connections, 1, "asked again, not reconnected");
    assert_eq!(book.warmups.len(), 3, "two refusals, then served");
    let gaps: Vec<Duration> = book.warmups.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(190) && gaps[1] >= Duration::from_millis(390),
        "backoff 200 ms, then 400 ms: {gaps:?}"
    );
    assert!(gaps.iter().all(|g| *g < Duration::from_secs(3)), "{gaps:?}");
    // Every bar from the first decision bar on, each signal the reference's.
    for bar in &exec.bars[W - 1..W + 20] {
        let got = book.signals.get(&bar.time);
        assert!(
            got.is_some_and(|g| g.iter().all(|g| Some(g) == expected.get(&bar.time))),
            "{}: got {got:?}, expected {:?}",
            bar.time,
            expected.get(&bar.time)
        );
    }
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        !log.contains("warming up from live bars"),
        "the twin warmed up from its history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_bars_still_gives_identical_signals() {
    let case = common::case("EURUSD_H1");
    let bars = golden_bars(&case.dir);
    let expected = expected_signals(&case.dir);
    let total = bars.len();
    // A broker with short history: after a restart only W + 60 bars come back, so identical signals
    // prove the resume from persisted state (a replay from FLAT over 60 bars would not match the PnL).
    let (exec, port) = start(bars, W, W + 60).await;
    let s = setup();
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("kill seed {seed} (rerun with KILL_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut child = spawn(&s, port);
    loop {
        let at = exec.book.lock().unwrap().cursor + rng.random_range(5..120);
        if at >= total - 5 || kills == 6 {
            break;
        }
        wait_until(&exec, 300, "the kill bar", |b| b.cursor >= at).await;
        // Sometimes right after the BAR went out (mid-decision), sometimes a little later.
        if rng.random_bool(0.5) {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..15))).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        child = spawn(&s, port);
    }
    wait_until(&exec, 300, "all bars", |b| {
        b.cursor == total && b.signals.contains_key(&exec.bars[total - 1].time)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let book = exec.book.lock().unwrap();
    assert!(kills >= 3, "only {kills} kills happened");
    assert_eq!(book.bad_hello, 0);
    eprintln!("{kills} SIGKILLs, {} connections", book.connections);
    check_signals(&book, &expected, &s.log);
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        log.contains("mode=Resume"),
        "restarts resumed from the persisted state"
    );
}

#[test]
fn token_file_readable_by_others_is_refused() {
    let s = setup();
    std::fs::set_permissions(&s.token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_preditor"))
        .args(["run", "--executor", "ws://127.0.0.1:9", "--token-file"])
        .arg(&s.token)
        .arg("--models")
        .arg(&s.models)
        .arg("--state-dir")
        .arg(&s.state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

/// Every datagram received on the NOTIFY_SOCKET, with its arrival time, until one contains
/// `STOPPING=1` or `secs` pass.
fn collect_notifications(
    sock: std::os::unix::net::UnixDatagram,
    secs: u64,
) -> Vec<(std::time::Instant, String)> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut got: Vec<(std::time::Instant, String)> = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.iter().any(|(_, m)| m.contains("STOPPING=1")) && std::time::Instant::now() < deadline
    {
        match sock.recv(&mut buf) {
            Ok(n) => got.push((
                std::time::Instant::now(),
                String::from_utf8_lossy(&buf[..n]).to_string(),
            )),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("NOTIFY_SOCKET recv: {e}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_gets_ready_watchdog_on_bars_and_stopping() {
    let case = common::case("EURUSD_H1");
    // A short stream keeps the test fast: W bars of history, then 60 live bars.
    let bars: Vec<WireBar> = golden_bars(&case.dir).into_iter().take(W + 60).collect();
    let total = bars.len();
    let (exec, port) = start(bars, W, 100_000).await;
    let s = setup();
    let sock_path = s._tmp.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let collector = std::thread::spawn(move || collect_notifications(sock, 25));
    // systemd sets WATCHDOG_PID to the service's pid: a shell exports its own pid, then execs.
    // A 20 ms watchdog (pings ≥ 10 ms apart) so that bars flowing give several pings.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"export WATCHDOG_PID=$$; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_preditor"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "20000");
    let mut child = run_command(cmd, &s, port).spawn().unwrap();
    wait_until(&exec, 20, "all bars", |b| {
        b.cursor == total && b.signals.contains_key(&exec.bars[total - 1].time)
    })
    .await;
    // The executor is now silent (this one sends no Ping): no progress, so no ping may come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quiet_from = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet_to = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let got = collector.join().unwrap();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    let all: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert!(status.success(), "exit {status}; log:\n{log}");
    let first = all.first().copied().unwrap_or_default();
    assert!(
        first.contains("READY=1") && first.contains("STATUS=models loaded: 1 twin(s)"),
        "READY=1 first, got {all:?}\nlog:\n{log}"
    );
    assert_eq!(all.iter().filter(|m| m.contains("READY=1")).count(), 1);
    // One connect attempt (one ping at most); every other ping came from executor messages.
    assert_eq!(exec.book.lock().unwrap().connections, 1);
    let pings: Vec<std::time::Instant> = got
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        pings.len() >= 2,
        "WATCHDOG=1 while bars flowed: {all:?}\nlog:\n{log}"
    );
    assert!(
        !pings.iter().any(|t| (quiet_from..quiet_to).contains(t)),
        "a WATCHDOG=1 without progress: {all:?}"
    );
    assert!(
        all.iter()
            .any(|m| m.contains("STATUS=live: 1 twin(s) synced")),
        "{all:?}"
    );
    let last = all.last().copied().unwrap_or_default();
    assert!(
        last.contains("STOPPING=1"),
        "STOPPING=1 last, got {all:?}\nlog:\n{log}"
    );
}

/// Issue 12: `--executor` must be a loopback address. `0.0.0.0` is not loopback (it means "every
/// interface"), though connecting to it would reach this machine: no test traffic leaves the host
/// even if the check were missing.
#[test]
fn a_non_loopback_executor_address_is_refused_at_once() {
    let s = setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_preditor"))
        .arg("run")
        .arg("--executor")
        .arg("ws://0.0.0.0:9")
        .arg("--token-file")
        .arg(&s.token)
        .arg("--models")
        .arg(&s.models)
        .arg("--state-dir")
        .arg(&s.state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the preditor kept running with a non-loopback --executor");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("--executor ws://0.0.0.0:9: not a loopback address")
            && err.contains("127.0.0.1"),
        "{err}"
    );
}
