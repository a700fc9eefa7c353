//! The real binaries as separate processes: `ctrader-sim` alone ([`Sim`]) or the whole system
//! ([`System`]: `ctrader-sim` + `executor run` in shadow mode + `preditor run` with shipped models),
//! each in its own tempdir with its config and 0600 secrets, killed (and reaped) on drop so that a
//! failing test leaves no process behind.
//!
//! The binaries are found next to the executor's (`target/<profile>/`); `cargo test --workspace`
//! builds all of them, `cargo test -p executor` only the executor.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ctrader::client::{ClientConfig, Tokens};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The simulator's account and credentials (its defaults; the configs below name them).
pub const ACCOUNT: i64 = 1_000_001;
pub const SIM_CLIENT_ID: &str = "sim-client-id";
pub const SIM_CLIENT_SECRET: &str = "sim-client-secret";
pub const SIM_ACCESS_TOKEN: &str = "sim-access-token";
pub const SIM_REFRESH_TOKEN: &str = "sim-refresh-token";

/// The repository root (the executor crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `name` built next to the executor binary, or a panic saying how to build it.
pub fn sibling_binary(name: &str, package: &str) -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_executor"));
    let p = exe.parent().unwrap().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test.sh) or build it with `cargo build -p {package} --bin {name}` (same profile and target dir)",
        p.display()
    );
    p
}

/// Writes a secret file with mode 0600.
pub fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A loopback port free right now (bind, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed with SIGKILL and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `sig` and waits for the exit (at most `within`; SIGKILL after that).
    pub fn signal_and_wait(&mut self, sig: Signal, within: Duration) -> ExitStatus {
        let _ = kill(self.pid(), sig);
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{} did not exit within {within:?} of {sig}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `ctrader-sim` and what its first stdout line says.
#[derive(Debug)]
pub struct Sim {
    pub proc: Proc,
    /// The Open API TLS port.
    pub port: u16,
    /// `host:port` of the control socket.
    pub control: String,
    /// The certificate it wrote (`--cert-out`), the clients' extra CA.
    pub cert: PathBuf,
    /// The first line, verbatim.
    pub first_line: String,
}

impl Sim {
    /// Starts `ctrader-sim --listen 127.0.0.1:0 --control 127.0.0.1:0 --data <data> --cert-out
    /// <cert> <extra…>` and reads its first line (the bound addresses). stderr goes to `log`, or
    /// nowhere.
    pub fn start(data: &Path, cert: &Path, extra: &[&str], log: Option<&Path>) -> Sim {
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let mut child = Command::new(sibling_binary("ctrader-sim", "ctrader-sim"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .arg("--cert-out")
            .arg(cert)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let proc = Proc {
            name: "ctrader-sim",
            child,
        };
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let field = |k: &str| {
            first
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("unexpected first line from ctrader-sim: {first:?}"))
                .to_string()
        };
        let port: u16 = field("listening=")
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let control = field("control=");
        Sim {
            proc,
            port,
            control,
            cert: cert.to_path_buf(),
            first_line: first.trim().to_string(),
        }
    }

    /// One command on the control socket; its one-line answer.
    pub fn control(&self, cmd: &str) -> String {
        let mut s = std::net::TcpStream::connect(&self.control).unwrap();
        writeln!(s, "{cmd}").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// `control(cmd)` that must answer `OK…`.
    pub fn control_ok(&self, cmd: &str) -> String {
        let a = self.control(cmd);
        assert!(a.starts_with("OK"), "ctrader-sim `{cmd}`: {a}");
        a
    }

    /// Kills the simulator now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }

    /// A ready Open API client of our own (not the executor's), straight to the simulator.
    pub async fn own_client(&self) -> ctrader::client::Client {
        let tokens = Tokens {
            access_token: SIM_ACCESS_TOKEN.into(),
            refresh_token: SIM_REFRESH_TOKEN.into(),
            expires_at: None,
        };
        let mut cc = ClientConfig::new(
            "127.0.0.1",
            self.port,
            SIM_CLIENT_ID,
            SIM_CLIENT_SECRET,
            ACCOUNT,
            tokens,
        );
        cc.extra_ca_file = Some(self.cert.clone());
        cc.request_timeout = Duration::from_secs(5);
        let (client, _events) = ctrader::client::connect(cc).unwrap();
        client
            .wait_ready(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("our own client could not reach ctrader-sim: {e}"));
        client
    }

    /// The open positions at the simulator, asked by a client of our own (not the executor's):
    /// symbol name → `(position id, buy?, volume in 0.01 units)`.
    pub async fn positions(&self) -> BTreeMap<String, Vec<(i64, bool, i64)>> {
        let client = self.own_client().await;
        let names: BTreeMap<i64, String> = client
            .symbols()
            .await
            .unwrap_or_else(|e| panic!("symbols: {e}"))
            .into_iter()
            .filter_map(|s| Some((s.symbol_id, s.symbol_name?)))
            .collect();
        let res = client
            .reconcile()
            .await
            .unwrap_or_else(|e| panic!("reconcile: {e}"));
        let mut out: BTreeMap<String, Vec<(i64, bool, i64)>> = BTreeMap::new();
        for p in &res.position {
            let t = &p.trade_data;
            let name = names
                .get(&t.symbol_id)
                .cloned()
                .unwrap_or_else(|| t.symbol_id.to_string());
            let buy = t.trade_side == ctrader::messages::ProtoOaTradeSide::Buy as i32;
            out.entry(name)
                .or_default()
                .push((p.position_id, buy, t.volume));
        }
        out
    }
}

/// What the whole system runs on.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// Symbols with a shipped model (`models/<SYM>_H1.zip`) and demo bars (`data/demo/<SYM>.csv`).
    pub symbols: Vec<&'static str>,
    /// Rows of each demo file given to the simulator (the replay ends there).
    pub bars: usize,
    /// Bars of history before the replay (the simulator's `--start-bar`).
    pub start_bar: usize,
    /// Replay speed, bars per second.
    pub speed: f64,
    /// The executor's cTrader request timeout.
    pub request_timeout_ms: u64,
}

/// One line of the executor's `signals.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireLine {
    /// The WebSocket connection number (`c<n>`).
    pub conn: u64,
    /// `true` for a line from the preditor (`<`), `false` for one to it (`>`).
    pub inbound: bool,
    pub text: String,
}

/// `ctrader-sim` + `executor run` (shadow mode) + `preditor run`, all real binaries, in a tempdir.
pub struct System {
    pub dir: tempfile::TempDir,
    pub spec: SystemSpec,
    pub sim: Sim,
    pub executor: Option<Proc>,
    pub preditor: Option<Proc>,
    pub ipc: SocketAddr,
    /// The executor's and the preditor's /healthz + /metrics listeners.
    pub http_executor: SocketAddr,
    pub http_preditor: SocketAddr,
    pub config: PathBuf,
    /// How many times the preditor has been started.
    pub preditor_starts: u32,
}

impl Drop for System {
    fn drop(&mut self) {
        // The preditor first (it would reconnect), then the executor, then the simulator.
        drop(self.preditor.take());
        drop(self.executor.take());
        self.sim.kill();
        // A failing test keeps its logs (signals.log, the three daemons' logs, the preditor's
        // state) for inspection; a passing one leaves nothing behind.
        if std::thread::panicking() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("the system's files are kept in {}", dir.keep().display());
        }
    }
}

impl System {
    /// Writes the bars, models, secrets and config, then starts the simulator and the executor
    /// (waiting until it serves) and the preditor.
    pub fn start(spec: SystemSpec) -> System {
        Self::start_with(spec, serde_json::Value::Null)
    }

    /// [`System::start`] with `extra`'s top-level keys added to the executor's config (e.g. a
    /// `hub` section).
    pub fn start_with(spec: SystemSpec, extra: serde_json::Value) -> System {
        // Every binary is checked before anything starts.
        for (bin, pkg) in [
            ("ctrader-sim", "ctrader-sim"),
            ("executor", "executor"),
            ("preditor", "preditor"),
        ] {
            sibling_binary(bin, pkg);
        }
        let root = repo_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["simdata", "models", "secrets", "preditor-state"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for sym in &spec.symbols {
            let csv = std::fs::read_to_string(root.join(format!("data/demo/{sym}.csv"))).unwrap();
            let head: Vec<&str> = csv.lines().take(spec.bars + 1).collect();
            assert_eq!(
                head.len(),
                spec.bars + 1,
                "data/demo/{sym}.csv is too short"
            );
            std::fs::write(d.join(format!("simdata/{sym}.csv")), head.join("\n") + "\n").unwrap();
            std::os::unix::fs::symlink(
                root.join(format!("models/{sym}_H1.zip")),
                d.join(format!("models/{sym}_H1.zip")),
            )
            .unwrap();
        }
        secret(&d.join("secrets/ipc.token"), &format!("{}\n", super::TOKEN));
        secret(
            &d.join("secrets/ct_secret"),
            &format!("{SIM_CLIENT_SECRET}\n"),
        );
        secret(
            &d.join("secrets/ct_tokens.json"),
            &serde_json::json!({"access_token": SIM_ACCESS_TOKEN, "refresh_token": SIM_REFRESH_TOKEN})
                .to_string(),
        );

        // Rate limits lifted: these tests are about orders and recovery, and at the simulator's 5
        // historical requests/s every preditor start would wait for its WARMUP pages
        // (tests/warmup_pacing.rs runs the warm-up at the default limits).
        let sim = Sim::start(
            &d.join("simdata"),
            &d.join("sim-ca.pem"),
            &[
                "--speed",
                &spec.speed.to_string(),
                "--start-bar",
                &spec.start_bar.to_string(),
                "--rate-limit",
                "0",
                "--historical-rate-limit",
                "0",
            ],
            Some(&d.join("ctrader-sim.log")),
        );

        // The shipped demo config's entries for these symbols (lots, digits, spreads, ...).
        let shipped: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("executor_config.json")).unwrap(),
        )
        .unwrap();
        let mut symbols = serde_json::Map::new();
        for sym in &spec.symbols {
            let entry = shipped["symbols"][*sym].clone();
            assert!(entry.is_object(), "executor_config.json has no {sym}");
            symbols.insert(sym.to_string(), entry);
        }
        let ipc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http_executor: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http_preditor: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = serde_json::json!({
            "http": { "bind": http_executor.to_string() },
            "timeframe": "H1",
            "models_dir": "models",
            "stale_signal_max_age_secs": 60,
            "clock": "feed",
            "log_dir": "log",
            "state_dir": "state",
            "ipc": { "bind": ipc.to_string(), "token_file": "secrets/ipc.token", "hello_timeout_secs": 3 },
            "broker": {
                "mode": "shadow",
                "ctrader": {
                    "host": "127.0.0.1", "port": sim.port, "ca_file": sim.cert,
                    "client_id": SIM_CLIENT_ID, "secret_file": "secrets/ct_secret",
                    "token_file": "secrets/ct_tokens.json", "account_id": ACCOUNT,
                    "request_timeout_ms": spec.request_timeout_ms
                },
                "paper": { "initial_balance": 100000, "leverage": 30 }
            },
            "symbols": symbols
        });
        let mut config = config;
        if let (Some(c), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
            c.extend(extra);
        }
        let config_path = d.join("config.json");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

        let mut sys = System {
            dir,
            spec,
            sim,
            executor: None,
            preditor: None,
            ipc,
            http_executor,
            http_preditor,
            config: config_path,
            preditor_starts: 0,
        };
        sys.start_executor();
        sys.start_preditor();
        sys
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn executor_log(&self) -> String {
        self.read("executor.log")
    }

    pub fn preditor_log(&self) -> String {
        self.read("preditor.log")
    }

    pub fn sim_log(&self) -> String {
        self.read("ctrader-sim.log")
    }

    /// The last `n` lines of each daemon's log, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        let tail = |s: String| {
            let v: Vec<&str> = s.lines().collect();
            v[v.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- executor.log ---\n{}\n--- preditor.log ---\n{}\n--- ctrader-sim.log ---\n{}",
            tail(self.executor_log()),
            tail(self.preditor_log()),
            tail(self.sim_log())
        )
    }

    /// Starts `executor run` and waits until it serves the preditor (after lock, books, reconcile).
    pub fn start_executor(&mut self) {
        assert!(self.executor.is_none(), "the executor is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("executor.log"))
            .unwrap();
        let child = Command::new(sibling_binary("executor", "executor"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let serving_before = self.executor_log().matches("serving the preditor").count();
        self.executor = Some(Proc {
            name: "executor",
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.executor_log().matches("serving the preditor").count() == serving_before {
            if let Some(s) = self.executor.as_mut().unwrap().exited() {
                panic!(
                    "executor exited with {s} before serving\n{}",
                    self.log_tails(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "executor not serving within 60 s\n{}",
                self.log_tails(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `preditor run` (state dir kept across restarts; stderr appended to preditor.log).
    pub fn start_preditor(&mut self) {
        assert!(self.preditor.is_none(), "the preditor is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("preditor.log"))
            .unwrap();
        let child = Command::new(sibling_binary("preditor", "preditor"))
            .arg("run")
            .arg("--executor")
            .arg(format!("ws://{}", self.ipc))
            .arg("--token-file")
            .arg(self.path("secrets/ipc.token"))
            .arg("--models")
            .arg(self.path("models"))
            .arg("--state-dir")
            .arg(self.path("preditor-state"))
            .arg("--http")
            .arg(self.http_preditor.to_string())
            .env("RUST_LOG", "info,tract_linalg=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.preditor = Some(Proc {
            name: "preditor",
            child,
        });
        self.preditor_starts += 1;
    }

    /// `executor ctl --config <this system's config> <args>`: exit code, stdout, stderr.
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        ctl_as(&self.config, args, None)
    }

    /// SIGKILLs the preditor and reaps it.
    pub fn kill_preditor(&mut self) {
        let mut p = self.preditor.take().expect("no preditor running");
        kill(p.pid(), Signal::SIGKILL).unwrap();
        let status = p.child.wait().unwrap();
        assert_eq!(status.code(), None, "the preditor was killed, not exited");
    }

    /// Panics (with the logs) if a daemon exited on its own.
    pub fn assert_alive(&mut self) {
        let mut dead = Vec::new();
        for p in [self.executor.as_mut(), self.preditor.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(s) = p.exited() {
                dead.push(format!("the {} died: {s}", p.name));
            }
        }
        assert!(
            dead.is_empty(),
            "{}\n{}",
            dead.join("; "),
            self.log_tails(40)
        );
        if let Some(s) = self.sim.proc.exited() {
            panic!("ctrader-sim died: {s}\n{}", self.log_tails(40));
        }
    }

    /// Every line of the executor's `signals.log` so far.
    pub fn wire(&self) -> Vec<WireLine> {
        self.read("log/signals.log")
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(4, ' ');
                let _ts = f.next()?;
                let conn = f.next()?.strip_prefix('c')?.parse().ok()?;
                let inbound = match f.next()? {
                    "<" => true,
                    ">" => false,
                    _ => return None,
                };
                Some(WireLine {
                    conn,
                    inbound,
                    text: f.next()?.to_string(),
                })
            })
            .collect()
    }

    /// Polls `done` over [`Self::wire`] every 50 ms, checking the daemons are alive, for `within`.
    pub fn wait_wire(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(&[WireLine]) -> bool,
    ) -> Vec<WireLine> {
        let deadline = Instant::now() + within;
        loop {
            let w = self.wire();
            if done(&w) {
                return w;
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}\n{}",
                self.log_tails(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `preditor backtest` of `symbol`'s model over the bars the simulator replays: one row per
    /// decided bar, in order.
    pub fn backtest(&self, symbol: &str) -> Vec<BacktestRow> {
        let out = self.path(&format!("backtest-{symbol}.csv"));
        let res = Command::new(sibling_binary("preditor", "preditor"))
            .arg("backtest")
            .arg("--model")
            .arg(self.path(&format!("models/{symbol}_H1.zip")))
            .arg("--bars")
            .arg(self.path(&format!("simdata/{symbol}.csv")))
            .arg("--out")
            .arg(&out)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "preditor backtest {symbol}: {}\n{}",
            res.status,
            String::from_utf8_lossy(&res.stderr)
        );
        parse_backtest(symbol, &std::fs::read_to_string(&out).unwrap())
    }
}

/// `executor ctl --config <config> <args>`, as another user when `uid` is given (through
/// util-linux's `setpriv`): exit code, stdout, stderr.
pub fn ctl_as(config: &Path, args: &[&str], uid: Option<u32>) -> (i32, String, String) {
    let exe = sibling_binary("executor", "executor");
    let mut cmd = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={u}"))
                .arg(format!("--regid={u}"))
                .arg("--clear-groups")
                .arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = cmd
        .arg("ctl")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A plain HTTP/1.1 GET on loopback: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// One row of `preditor backtest`'s CSV, with the SIGNAL the live twin must send for that bar.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRow {
    pub time: String,
    pub action: String,
    /// `SIGNAL|SYM|ACTION|REGIME|PNL|B:<time>|N:<held>`.
    pub signal: String,
}

/// Parses the backtest CSV (`time,regime,action,position,intensity,virtual_pnl`); `N:` counts the
/// bars the action has been held, as the twin does (1 on a change, from the first decision).
pub fn parse_backtest(symbol: &str, csv: &str) -> Vec<BacktestRow> {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,regime,action,position,intensity,virtual_pnl"),
        "backtest CSV header"
    );
    let mut rows: Vec<BacktestRow> = Vec::new();
    let mut held = 0u32;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 6, "backtest row {l:?}");
        let (time, regime, action, pnl) = (f[0], f[1], f[2], f[5]);
        held = match rows.last() {
            Some(prev) if prev.action == action => held + 1,
            _ => 1,
        };
        let pnl = protocol::Decimal::from_f64(pnl.parse().unwrap(), protocol::Signal::PNL_DECIMALS)
            .unwrap();
        rows.push(BacktestRow {
            time: time.to_string(),
            action: action.to_string(),
            signal: format!(
                "SIGNAL|{symbol}|{action}|{regime}|{}|B:{time}|N:{held}",
                pnl.as_str()
            ),
        });
    }
    rows
}

/// The field `prefix` (e.g. `B:`) of a protocol line.
pub fn field<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.split('|').find_map(|f| f.strip_prefix(prefix))
}

/// The ACK lines the executor sent, in order.
pub fn acks(wire: &[WireLine]) -> Vec<String> {
    wire.iter()
        .filter(|l| !l.inbound && l.text.starts_with("ACK|"))
        .map(|l| l.text.clone())
        .collect()
}

/// The outcome of an ACK line: `OK`, or `FAIL|<reason>` / `WAIT_SYNC|<reason>`.
pub fn ack_outcome(ack: &str) -> String {
    let f: Vec<&str> = ack.split('|').collect();
    match f.get(3) {
        Some(&"OK") => "OK".into(),
        Some(k) => format!("{k}|{}", f.get(4).unwrap_or(&"")),
        None => panic!("not an ACK: {ack}"),
    }
}

/// The broker's volume (0.01 units of a 100,000-unit forex lot: SIM.md's catalog for the forex
/// symbols) that `action` asks for on `symbol`, from the system's config.
pub fn target_volume(config: &serde_json::Value, symbol: &str, action: &str) -> i64 {
    let lots_key = match action.rsplit('_').next().unwrap() {
        "WEAK" => "lot_weak",
        "MODERATE" => "lot_moderate",
        _ => "lot_strong",
    };
    let lots = config["symbols"][symbol][lots_key].as_f64().unwrap();
    (lots * 10_000_000.0).round() as i64
}

/// Each symbol's latest ACK against what the broker holds (`Sim::positions`): an OK for a
/// position is exactly that position (id, side, the config's volume), an OK for WAIT and a missed
/// entry are flat. Refusals leave the position as it was, so they are not compared; a symbol
/// without any ACK is a mismatch. Returns one line per symbol checked, or the mismatches.
pub fn positions_match_latest_acks(
    symbols: &[&str],
    all_acks: &[String],
    positions: &BTreeMap<String, Vec<(i64, bool, i64)>>,
    config: &serde_json::Value,
) -> Result<Vec<String>, Vec<String>> {
    let (mut checked, mut wrong) = (Vec::new(), Vec::new());
    for s in symbols {
        let Some(last) = all_acks
            .iter()
            .rev()
            .find(|a| a.starts_with(&format!("ACK|{s}|")))
        else {
            wrong.push(format!("{s}: no ACK at all"));
            continue;
        };
        let held = positions.get(*s).cloned().unwrap_or_default();
        let action = last.split('|').nth(2).unwrap();
        let ok = match ack_outcome(last).as_str() {
            "OK" if action == "WAIT" => held.is_empty(),
            "OK" => {
                let id: i64 = field(last, "T:").unwrap().parse().unwrap();
                held == vec![(
                    id,
                    action.starts_with("LONG"),
                    target_volume(config, s, action),
                )]
            }
            "WAIT_SYNC|MISSED_ENTRY" => held.is_empty(),
            _ => continue,
        };
        let line = format!("{s}: {last} ⇔ {held:?}");
        if ok {
            checked.push(line)
        } else {
            wrong.push(line)
        }
    }
    if wrong.is_empty() {
        Ok(checked)
    } else {
        Err(wrong)
    }
}
