//! The real `executor run` binary under a fake systemd: the test binds the `NOTIFY_SOCKET` unix
//! datagram socket itself and checks READY=1 (with a STATUS), WATCHDOG=1 while the paper replay
//! runs, WebSocket pings to the preditor, RELOADING=1/READY=1 around SIGHUP and STOPPING=1 on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::system::{Sim, secret};
use futures_util::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio_tungstenite::tungstenite::Message;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` hourly EURUSD bars: at 20 bars/s the replay outlasts the test.
fn write_bars(dir: &Path, n: i64) {
    let mut eur = String::from("time,open,high,low,close,volume\n");
    for i in 0..n {
        let c = 1.1 + 0.0001 * (i % 50) as f64;
        eur.push_str(&format!(
            "{},{c:.5},{:.5},{:.5},{c:.5},{}\n",
            T0 + i * 3600,
            c + 0.0005,
            c - 0.0005,
            100 + i
        ));
    }
    std::fs::write(dir.join("bars/EURUSD.csv"), eur).unwrap();
}

fn setup(dir: &Path) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let body = common::paper_config(r#"{ "EURUSD": { "enabled": true } }"#, "{}", "")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cfg = common::write_config(dir, &body);
    write_bars(dir, 2_000);
    (cfg, port)
}

/// Datagrams received on the notify socket, as they arrive.
struct FakeSystemd {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl FakeSystemd {
    fn bind(path: &Path) -> Self {
        let sock = UnixDatagram::bind(path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        FakeSystemd {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram for which `pred` holds; returns it.
    fn wait_for(&mut self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return m;
                    }
                }
                Err(_) => panic!("no {what} within {within:?}; got {:?}", self.seen),
            }
        }
    }

    /// Every datagram that arrives within `d`.
    fn collect(&mut self, d: Duration) -> Vec<String> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(m) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(m.clone());
            out.push(m);
        }
        out
    }
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// The executor as systemd's main process (`WATCHDOG_PID` is its pid, `exec` keeps the shell's) with
/// a 1 s watchdog, notifying `sock`; its stderr goes to `stderr`.
fn spawn_as_main_process(cfg: &Path, sock: &Path, stderr: &Path) -> Child {
    Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_executor"))
        .args(["run", "--config"])
        .arg(cfg)
        .env("NOTIFY_SOCKET", sock)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_pings_reload_and_stopping_under_a_fake_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, port) = setup(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let mut systemd = FakeSystemd::bind(&sock_path);
    let stderr_path = dir.path().join("stderr.log");
    // systemd sets WATCHDOG_PID to the main process; `exec` keeps the shell's pid for the executor.
    let mut child = spawn_as_main_process(&cfg, &sock_path, &stderr_path);
    let pid = Pid::from_raw(child.id() as i32);
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let ready = systemd.wait_for("READY=1", Duration::from_secs(20), |m| {
        has_line(m, "READY=1")
    });
    assert!(
        ready.contains("STATUS=mode paper, 1 symbols (1 enabled), no preditor"),
        "{ready}"
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // READY=1 is sent only once the listener is bound
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "READY before listening"
    );

    let mut c = common::ws::hello(addr).await;
    systemd.wait_for(
        "a STATUS with the preditor connected",
        Duration::from_secs(5),
        |m| m.contains("STATUS=") && m.contains("preditor connected"),
    );
    common::ws::recv_until(&mut c, "BAR|EURUSD|H1|").await;
    // WATCHDOG_USEC = 1 s: pings at most every 0.5 s while the replay advances
    let pings = systemd
        .collect(Duration::from_secs(3))
        .iter()
        .filter(|m| has_line(m, "WATCHDOG=1"))
        .count();
    assert!((2..=7).contains(&pings), "{pings} WATCHDOG=1 in 3 s");

    // the executor pings the preditor every 15 s, whatever the bars do
    let start = Instant::now();
    let got_ping = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match c.next().await {
                Some(Ok(Message::Ping(_))) => return true,
                Some(Ok(_)) => continue,
                _ => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(got_ping, "no WebSocket Ping within 20 s");
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "pinged too early"
    );

    kill(pid, Signal::SIGHUP).unwrap();
    let reloading = systemd.wait_for("RELOADING=1", Duration::from_secs(5), |m| {
        has_line(m, "RELOADING=1")
    });
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    systemd.wait_for("READY=1 after the reload", Duration::from_secs(5), |m| {
        has_line(m, "READY=1")
    });

    kill(pid, Signal::SIGTERM).unwrap();
    systemd.wait_for("STOPPING=1", Duration::from_secs(5), |m| {
        has_line(m, "STOPPING=1")
    });
    let status = common::wait_exit(&mut child);
    assert!(status.success(), "{status:?}\n{}", log());
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watchdog_pings_when_systemd_did_not_enable_the_watchdog_for_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, port) = setup(dir.path());
    let sock_path = dir.path().join("notify.sock");
    let mut systemd = FakeSystemd::bind(&sock_path);
    // WATCHDOG_PID names another process (as after a fork): the watchdog is not ours to feed
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("WATCHDOG_PID", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    systemd.wait_for("READY=1", Duration::from_secs(20), |m| {
        has_line(m, "READY=1")
    });
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = common::ws::hello(addr).await;
    common::ws::recv_until(&mut c, "BAR|EURUSD|H1|").await;
    let got = systemd.collect(Duration::from_secs(2));
    assert!(
        !got.iter().any(|m| has_line(m, "WATCHDOG=1")),
        "pinged a watchdog that is not enabled: {got:?}"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(common::wait_exit(&mut child).success());
}

/// Live mode against the real `ctrader-sim`: READY says the link is up, broker events feed the
/// watchdog; when the broker dies the STATUS says so and the reconnect attempts keep the watchdog
/// fed (an outage must not become a restart loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_broker_events_and_reconnect_attempts_feed_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bars");
    std::fs::create_dir_all(&data).unwrap();
    write_bars(dir.path(), 200);
    let cert = dir.path().join("sim-ca.pem");
    let mut sim = Sim::start(&data, &cert, &["--speed", "2", "--start-bar", "10"], None);
    let sim_port = sim.port;

    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    secret(&dir.path().join("secrets/ct_secret"), "sim-client-secret\n");
    secret(
        &dir.path().join("secrets/ct_tokens.json"),
        r#"{"access_token":"sim-access-token","refresh_token":"sim-refresh-token"}"#,
    );
    let port = free_port();
    let body = format!(
        r#"{{
  "timeframe": "H1", "clock": "feed", "log_dir": "log", "state_dir": "state",
  "ipc": {{ "bind": "127.0.0.1:{port}", "token_file": "secrets/ipc.token" }},
  "broker": {{
    "mode": "live",
    "ctrader": {{ "host": "127.0.0.1", "port": {sim_port}, "ca_file": "{cert}", "client_id": "sim-client-id",
                 "secret_file": "secrets/ct_secret", "token_file": "secrets/ct_tokens.json", "account_id": 1000001 }}
  }},
  "symbols": {{ "EURUSD": {{ "enabled": true, "digits": 5 }} }}
}}"#,
        cert = cert.display()
    );
    let cfg = common::write_config(dir.path(), &body);
    let sock_path = dir.path().join("notify.sock");
    let mut systemd = FakeSystemd::bind(&sock_path);
    let stderr_path = dir.path().join("stderr.log");
    let mut ex = spawn_as_main_process(&cfg, &sock_path, &stderr_path);
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let ready = systemd.wait_for("READY=1", Duration::from_secs(30), |m| {
        has_line(m, "READY=1")
    });
    assert!(
        ready.contains("STATUS=mode live, 1 symbols (1 enabled), no preditor, cTrader connected"),
        "{ready}"
    );
    // spots and live trendbars from the simulator, with no preditor connected
    systemd.wait_for(
        "WATCHDOG=1 from broker events",
        Duration::from_secs(10),
        |m| has_line(m, "WATCHDOG=1"),
    );

    sim.kill();
    systemd.wait_for(
        "a STATUS saying the broker is gone",
        Duration::from_secs(40),
        |m| m.contains("cTrader disconnected") || m.contains("cTrader reconnecting"),
    );
    // with the broker down, only the reconnect attempts are progress (backoff 1 s, 2 s, 4 s, ...)
    let pings = systemd
        .collect(Duration::from_secs(8))
        .iter()
        .filter(|m| has_line(m, "WATCHDOG=1"))
        .count();
    assert!(
        pings >= 2,
        "{pings} WATCHDOG=1 in 8 s of reconnecting\n{}",
        log()
    );

    kill(Pid::from_raw(ex.id() as i32), Signal::SIGTERM).unwrap();
    systemd.wait_for("STOPPING=1", Duration::from_secs(5), |m| {
        has_line(m, "STOPPING=1")
    });
    let status = common::wait_exit(&mut ex);
    assert!(status.success(), "{status:?}\n{}", log());
}
