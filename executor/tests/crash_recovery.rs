//! The real `executor` binary SIGKILLed between sending an order and learning its fate, against the
//! real `ctrader-sim` binary: after a restart on the same state directory the executor resolves the
//! journaled intent by its label before serving signals, and the preditor's repeated signal (the same
//! symbol, B: and N:, as a restarted preditor sends it) and the next bar's signal leave exactly one
//! position at the broker — checked independently with our own Open API client.
//!
//! Four ways the answer can be missing at the kill: delayed (`delay`), swallowed
//! (`drop-responses`), swallowed with the connection dropped (the executor answers FAIL first), and
//! the order itself still on its way (a TCP relay in the test holds the bytes the executor wrote
//! until after the restart's recovery). The last one is why recovery answers the bar FAIL instead
//! of letting the repeated signal send the same order again.
//!
//! Needs the simulator binary next to the executor's (`cargo test --workspace`, as scripts/test.sh
//! runs it, builds it; alone: `cargo build -p ctrader-sim --bin ctrader-sim`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::system::{Sim, free_port, secret};
use common::ws::{Ws, recv_within, send};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use protocol::Line;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z
/// The simulator's EURUSD symbol id (the common cTrader one).
const EURUSD_ID: i64 = 1;
const ACCOUNT: i64 = 1_000_001;
/// Bars per second of the simulator. One H1 bar every 10 s of wall time: a signal for bar B stays
/// fresh (B + 1 h + 60 s of market time) until the next step, which is the window the kill, the
/// restart and the repeated signal must fit in.
const SPEED: &str = "0.1";
const STEP: Duration = Duration::from_secs(10);

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing running.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP relay between the executor and the simulator (TLS passes through untouched). It can hold
/// back what the connections open so far send to the simulator: bytes the executor has written
/// that reach the broker only later, as an order still on its way when its sender dies.
struct Proxy {
    port: u16,
    holds: Arc<Mutex<Vec<watch::Sender<bool>>>>,
    held_bytes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let holds: Arc<Mutex<Vec<watch::Sender<bool>>>> = Arc::default();
        let held_bytes = Arc::new(AtomicUsize::new(0));
        let (h, b) = (holds.clone(), held_bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                let (hold_tx, hold) = watch::channel(false);
                h.lock().unwrap().push(hold_tx);
                let (mut down_rd, mut down_wr) = down.into_split();
                let (mut up_rd, mut up_wr) = up.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_rd, &mut down_wr).await;
                });
                // Reads eagerly (so nothing is lost when the sender dies), writes when not held.
                let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
                let counting = hold.clone();
                let b = b.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = down_rd.read(&mut buf).await
                        && n > 0
                    {
                        if *counting.borrow() {
                            b.fetch_add(n, Ordering::SeqCst);
                        }
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                });
                let mut hold = hold;
                tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        if hold.wait_for(|held| !held).await.is_err()
                            || up_wr.write_all(&chunk).await.is_err()
                        {
                            return;
                        }
                    }
                    let _ = up_wr.shutdown().await;
                });
            }
        });
        Proxy {
            port,
            holds,
            held_bytes,
            task,
        }
    }

    /// Holds back everything the connections open now send to the simulator from here on.
    fn hold_open_connections(&self) {
        for h in self.holds.lock().unwrap().iter() {
            h.send_replace(true);
        }
    }

    fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::SeqCst)
    }

    /// Delivers what was held, in order, and stops holding.
    fn release(&self) {
        for h in self.holds.lock().unwrap().iter() {
            h.send_replace(false);
        }
    }
}

/// The simulator, its addresses, and an executor config pointing at it (live mode).
struct World {
    dir: tempfile::TempDir,
    sim: Sim,
    /// Between the executor and the simulator (the executor's Open API traffic goes through it).
    proxy: Proxy,
    config: PathBuf,
    ipc: SocketAddr,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("simdata");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("EURUSD.csv"), common::sim_eurusd_csv(T0)).unwrap();
        let cert = dir.path().join("sim-ca.pem");
        let sim = Sim::start(&data, &cert, &["--speed", SPEED, "--start-bar", "10"], None);
        let sim_port = sim.port;

        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        secret(&dir.path().join("secrets/ct_secret"), "sim-client-secret\n");
        secret(
            &dir.path().join("secrets/ct_tokens.json"),
            r#"{"access_token":"sim-access-token","refresh_token":"sim-refresh-token"}"#,
        );
        let proxy = Proxy::start(sim_port).await;
        let ipc_port = free_port();
        // The request timeout is longer than the injected delays: the executor is still waiting
        // for the order's answer when it is killed.
        let body = format!(
            r#"{{
  "timeframe": "H1", "clock": "feed", "stale_signal_max_age_secs": 60,
  "log_dir": "log", "state_dir": "state",
  "ipc": {{ "bind": "127.0.0.1:{ipc_port}", "token_file": "secrets/ipc.token" }},
  "broker": {{
    "mode": "live",
    "ctrader": {{ "host": "127.0.0.1", "port": {proxy_port}, "ca_file": "{cert}", "client_id": "sim-client-id",
                 "secret_file": "secrets/ct_secret", "token_file": "secrets/ct_tokens.json", "account_id": {ACCOUNT},
                 "request_timeout_ms": 20000 }}
  }},
  "symbols": {{ "EURUSD": {{ "enabled": true, "digits": 5 }} }}
}}"#,
            cert = cert.display(),
            proxy_port = proxy.port,
        );
        let config = common::write_config(dir.path(), &body);
        World {
            ipc: format!("127.0.0.1:{ipc_port}").parse().unwrap(),
            dir,
            sim,
            proxy,
            config,
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.path().join("state/journal.jsonl")
    }

    fn journal(&self) -> String {
        std::fs::read_to_string(self.journal_path()).unwrap_or_default()
    }

    /// One command on the simulator's control socket; its one-line answer.
    fn control(&self, cmd: &str) -> String {
        self.sim.control(cmd)
    }

    /// Starts `executor run` on this world's config; `n` numbers its stderr log.
    fn spawn_executor(&self, n: u32) -> Proc {
        let log = self.dir.path().join(format!("executor-{n}.log"));
        Proc(
            Command::new(env!("CARGO_BIN_EXE_executor"))
                .args(["run", "--config"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    fn executor_log(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("executor-{n}.log")))
            .unwrap_or_default()
    }

    /// Waits for the executor's IPC listener (bound only after the lock, the books and the
    /// reconcile) and authenticates as the preditor.
    async fn preditor(&self, exe: &mut Proc, n: u32) -> Ws {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = exe.0.try_wait().unwrap() {
                panic!(
                    "executor #{n} exited with {status} before listening:\n{}",
                    self.executor_log(n)
                );
            }
            if tokio::net::TcpStream::connect(self.ipc).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "executor #{n} did not listen on {} within 30 s:\n{}",
                self.ipc,
                self.executor_log(n)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        common::ws::hello(self.ipc).await
    }

    /// The simulator's open positions on EURUSD, asked by a client of our own (not the executor's):
    /// `(position id, label)`.
    async fn sim_positions(&self) -> Vec<(i64, Option<String>)> {
        let client = self.sim.own_client().await;
        let res = client
            .reconcile()
            .await
            .unwrap_or_else(|e| panic!("reconcile: {e}"));
        res.position
            .iter()
            .filter(|p| p.trade_data.symbol_id == EURUSD_ID)
            .map(|p| (p.position_id, p.trade_data.label.clone()))
            .collect()
    }
}

/// The SIGNAL of the bar after `after`, same action (`N:2`): the position already is the target,
/// so the ACK is OK with that position's id and no order is needed.
async fn same_target_on_next_bar(c: &mut Ws, after: &str, pos_id: i64) {
    let b2 = loop {
        let nb = next_bar(c).await;
        if nb != after {
            break nb;
        }
    };
    send(c, &format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{b2}|N:2")).await;
    let ack2 = recv_until(c, "ACK|", Duration::from_secs(10)).await;
    assert!(ack2.starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{ack2}");
    assert_eq!(
        field(&ack2, "T:"),
        Some(pos_id.to_string().as_str()),
        "{ack2}"
    );
    eprintln!("next bar: {ack2}");
}

/// Reads until a line starting with `prefix` (skipping BARs and the like).
async fn recv_until(ws: &mut Ws, prefix: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {prefix} line within {within:?}");
        match recv_within(ws, left).await {
            Some(l) if l.starts_with(prefix) => return l,
            Some(_) => continue,
            None => panic!("connection closed while waiting for {prefix}"),
        }
    }
}

/// The next closed EURUSD bar's time, as the executor publishes it.
async fn next_bar(ws: &mut Ws) -> String {
    let l = recv_until(ws, "BAR|EURUSD|", STEP * 3).await;
    let Ok(Line::Bar(bar)) = l.parse::<Line>() else {
        panic!("not a BAR: {l}")
    };
    bar.time.to_string()
}

/// The journal's open intents for EURUSD (JSON lines).
fn open_intents(journal: &str) -> Vec<String> {
    journal
        .lines()
        .filter(|l| {
            l.contains("\"kind\":\"intent\"")
                && l.contains("\"leg\":\"Open\"")
                && l.contains("EURUSD")
        })
        .map(str::to_string)
        .collect()
}

fn coid_of(intent: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(intent).unwrap();
    v["coid"].as_str().unwrap().to_string()
}

/// Polls the journal until it holds an open intent for EURUSD; returns its client order id.
async fn wait_for_intent(w: &World) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = open_intents(&w.journal()).first() {
            return coid_of(i);
        }
        assert!(
            Instant::now() < deadline,
            "no open intent journaled within 5 s:\n{}",
            w.journal()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn field<'a>(ack: &'a str, prefix: &str) -> Option<&'a str> {
    ack.split('|').find_map(|f| f.strip_prefix(prefix))
}

/// How the order's answer is kept from the executor before it is killed.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Every answer is held back 5 s: the order is filled, its answer still in flight at the kill.
    DelayedAnswer,
    /// The order's answer (and its execution events) is swallowed: filled, never answered.
    LostAnswer,
    /// The answer is swallowed and the connection dropped; the executor answers FAIL before the
    /// kill (it cannot reconcile without a connection), although the order was filled.
    LostAnswerAndConnection,
}

/// SIGNAL → intent journaled → SIGKILL (before the answer, or for `LostAnswerAndConnection` after
/// the FAIL) → restart → the same SIGNAL again → the next bar's SIGNAL. One position throughout.
async fn kill_between_order_and_fill(fault: Fault) {
    let w = World::start().await;
    let mut exe = w.spawn_executor(1);
    let mut c = w.preditor(&mut exe, 1).await;
    let b = next_bar(&mut c).await;

    let armed = match fault {
        Fault::DelayedAnswer => w.control("delay 5s"),
        Fault::LostAnswer | Fault::LostAnswerAndConnection => w.control("drop-responses 1"),
    };
    assert!(armed.starts_with("OK"), "{armed}");
    let signal = format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{b}|N:1");
    send(&mut c, &signal).await;
    let coid = wait_for_intent(&w).await;
    let mut first_ack = None;
    // The order reaches the simulator (which fills it at once and holds or loses the answer)
    // before the kill or the drop: a journaled intent alone does not mean it was written yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.control("status").contains(" open_positions=1 ") {
        assert!(
            Instant::now() < deadline,
            "the order never reached ctrader-sim: {}",
            w.control("status")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Fault::LostAnswerAndConnection = fault {
        assert!(w.control("drop").starts_with("OK"));
        let ack = recv_until(&mut c, "ACK|", Duration::from_secs(25)).await;
        assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|FAIL|"), "{ack}");
        first_ack = Some(ack);
    }
    kill(Pid::from_raw(exe.0.id() as i32), Signal::SIGKILL).unwrap();
    let status = exe.0.wait().unwrap();
    assert_eq!(
        status.code(),
        None,
        "the executor was killed, not exited: {status}"
    );
    drop(exe);
    let journal = w.journal();
    if first_ack.is_none() {
        // Killed before it learnt the order's fate: the journal has the intent and nothing after.
        assert!(
            !journal.contains("\"kind\":\"result\""),
            "the executor got the order's answer before the kill (the fault did not hold it):\n{journal}"
        );
    }
    drop(c);
    assert!(w.control("clear").starts_with("OK"));

    // The filled order is at the broker under the intent's label, exactly once.
    let before = w.sim_positions().await;
    let labelled: Vec<_> = before
        .iter()
        .filter(|(_, l)| l.as_deref() == Some(coid.as_str()))
        .collect();
    assert_eq!(labelled.len(), 1, "the order {coid} at the sim: {before:?}");
    let pos_id = labelled[0].0;

    // Restart on the same state dir: the pending intent is resolved before any signal is served.
    let mut exe = w.spawn_executor(2);
    let mut c = w.preditor(&mut exe, 2).await;
    let journal = w.journal();
    if first_ack.is_none() {
        let resolved = journal
            .lines()
            .find(|l| l.contains("\"kind\":\"result\"") && l.contains(&coid))
            .unwrap_or_else(|| {
                panic!("the intent {coid} is unresolved when signals are served:\n{journal}")
            });
        assert!(
            resolved.contains("\"resolved_by\":\"reconcile\"") && resolved.contains("\"ok\":true"),
            "{resolved}"
        );
    }

    // The restarted preditor repeats its last signal.
    send(&mut c, &signal).await;
    let ack = recv_until(&mut c, "ACK|", Duration::from_secs(10)).await;
    if let Some(first) = &first_ack {
        // Already answered for this bar: the same ACK again, never re-executed.
        assert_eq!(&ack, first);
    } else {
        assert!(ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|"), "{ack}");
        assert_eq!(
            field(&ack, "T:"),
            Some(pos_id.to_string().as_str()),
            "{ack}"
        );
    }
    assert_eq!(field(&ack, "B:"), Some(b.as_str()), "{ack}");

    // The next bar, same action: the position is already the target, no order.
    same_target_on_next_bar(&mut c, &b, pos_id).await;

    let after = w.sim_positions().await;
    assert_eq!(
        after,
        vec![(pos_id, Some(coid.clone()))],
        "exactly one EURUSD position, the killed executor's order"
    );
    let journal = w.journal();
    assert_eq!(
        open_intents(&journal).len(),
        1,
        "one open intent, never resent:\n{journal}"
    );
    drop(c);
    kill(Pid::from_raw(exe.0.id() as i32), Signal::SIGTERM).unwrap();
    eprintln!("{fault:?}: {ack}\nsim positions: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_order_answer_is_delayed_then_restart_no_duplicate() {
    kill_between_order_and_fill(Fault::DelayedAnswer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_lost_answer_then_restart_no_duplicate() {
    kill_between_order_and_fill(Fault::LostAnswer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_dropped_connection_fail_then_restart_no_duplicate() {
    kill_between_order_and_fill(Fault::LostAnswerAndConnection).await;
}

/// The order is still on its way to the broker when the executor dies (the relay holds the bytes
/// the executor already wrote) and reaches it only after the restart's recovery has looked for it.
/// Whatever the executor answers the repeated signal, the broker must end with one position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_the_order_still_in_flight_then_restart_no_duplicate() {
    let w = World::start().await;
    let mut exe = w.spawn_executor(1);
    let mut c = w.preditor(&mut exe, 1).await;
    let b = next_bar(&mut c).await;

    w.proxy.hold_open_connections();
    let signal = format!("SIGNAL|EURUSD|LONG_WEAK|1|0.00|B:{b}|N:1");
    send(&mut c, &signal).await;
    let coid = wait_for_intent(&w).await;
    // The order follows its fsynced intent at once; it is written when the relay has it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.proxy.held_bytes() == 0 {
        assert!(
            Instant::now() < deadline,
            "the executor sent nothing after journaling {coid}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(Pid::from_raw(exe.0.id() as i32), Signal::SIGKILL).unwrap();
    exe.0.wait().unwrap();
    drop(exe);
    drop(c);
    assert_eq!(w.sim_positions().await, vec![], "the order is still held");

    let mut exe = w.spawn_executor(2);
    let mut c = w.preditor(&mut exe, 2).await;
    let journal = w.journal();
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"kind\":\"result\"") && l.contains(&coid)),
        "the intent {coid} is unresolved when signals are served:\n{journal}"
    );

    // The restarted preditor repeats its signal while the old order is still on its way.
    send(&mut c, &signal).await;
    let ack = recv_until(&mut c, "ACK|", Duration::from_secs(10)).await;
    // Now the old order arrives and is filled.
    w.proxy.release();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut positions = w.sim_positions().await;
    while !positions
        .iter()
        .any(|(_, l)| l.as_deref() == Some(coid.as_str()))
    {
        assert!(
            Instant::now() < deadline,
            "the held order never reached ctrader-sim (ACK {ack}): {positions:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        positions = w.sim_positions().await;
    }
    let journal = w.journal();
    eprintln!("ACK of the repeated signal: {ack}\nsim positions: {positions:?}\n{journal}");
    assert!(
        ack.starts_with("ACK|EURUSD|LONG_WEAK|OK|")
            || ack.starts_with("ACK|EURUSD|LONG_WEAK|FAIL|"),
        "{ack}"
    );
    assert_eq!(
        positions.len(),
        1,
        "DUPLICATE: the order in flight at the kill and a second one after the restart (ACK {ack}):\n{journal}"
    );
    assert_eq!(
        open_intents(&journal).len(),
        1,
        "the order was resent:\n{journal}"
    );

    // The next bar, same action: the late fill reached the restarted executor as an execution
    // event, so the position is the target and nothing is sent.
    let pos_id = positions[0].0;
    same_target_on_next_bar(&mut c, &b, pos_id).await;
    assert_eq!(w.sim_positions().await, positions, "no new order");
    assert_eq!(open_intents(&w.journal()).len(), 1);
    drop(c);
    kill(Pid::from_raw(exe.0.id() as i32), Signal::SIGTERM).unwrap();
}
