//! Shared helpers for the executor's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use executor::config::ExecutorConfig;

pub mod system;

/// The IPC token of the tests: 32 random-looking bytes as hex, like the installer's.
pub const TOKEN: &str = "5f0c1e7a9b3d42c8a6e1f07b2d9c4e385a1b7c0d9e2f4a6b8c3d5e7f9a0b1c2d";

/// Writes the IPC token (0600) and a `bars/` dir into `dir`, then `config.json` from `json`
/// (which may refer to `secrets/ipc.token` and `bars`). Returns the config path.
pub fn write_config(dir: &Path, json: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::create_dir_all(dir.join("bars")).unwrap();
    let tok = dir.join("secrets/ipc.token");
    std::fs::write(&tok, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = dir.join("config.json");
    std::fs::write(&p, json).unwrap();
    p
}

pub fn load(dir: &Path, json: &str) -> ExecutorConfig {
    let p = write_config(dir, json);
    ExecutorConfig::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// A paper-mode config body with the given symbols JSON and risk JSON.
pub fn paper_config(symbols: &str, risk: &str, extra: &str) -> String {
    format!(
        r#"{{
  "timeframe": "H1",
  "stale_signal_max_age_secs": 60,
  "clock": "feed",
  "log_dir": "log",
  "state_dir": "state",
  "ipc": {{ "bind": "127.0.0.1:0", "token_file": "secrets/ipc.token", "hello_timeout_secs": 3 }},
  "broker": {{ "mode": "paper", "paper": {{ "initial_balance": 10000, "leverage": 30, "bars_dir": "bars", "replay_bars_per_second": 20, "start_bar": 3 {extra} }} }},
  "risk": {risk},
  "symbols": {symbols}
}}"#
    )
}

/// 40 hourly EURUSD bars from `t0` (a CSV for `ctrader-sim --data`), cycling over five closes.
pub fn sim_eurusd_csv(t0: i64) -> String {
    let mut eur = String::from("time,open,high,low,close,volume\n");
    for i in 0..40i64 {
        let c = 1.1 + 0.0007 * ((i % 5) as f64);
        eur.push_str(&format!(
            "{},{c:.5},{:.5},{:.5},{:.5},{}\n",
            t0 + i * 3600,
            c + 0.0010,
            c - 0.0010,
            c + 0.0003,
            100 + i
        ));
    }
    eur
}

/// Waits (10 s at most) for a child sent SIGTERM to exit, returning its status.
pub fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Marks a SIGNAL's bar as published (as the executor does when it sends that BAR), for tests that
/// drive an engine or desk directly with signals for real bars.
pub fn publish(engine: &mut executor::desk::engine::SignalEngine, sig: &protocol::Signal) {
    let tf = engine.rules().symbols.get(&sig.symbol).map(|c| c.timeframe);
    if let (Some(tf), Some(bar)) = (tf, sig.bar_time) {
        engine.on_bar_published(&sig.symbol, tf, bar);
    }
}

/// A desk's parts on a paper book: the config's symbols and risk limits, every symbol quoted at
/// 1.1, a journal in a temporary directory (kept alive by `dir`).
pub mod paper_desk {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::PathBuf;

    use executor::broker::paper::PaperBroker;
    use executor::desk::engine::{EngineRules, SignalEngine};
    use executor::desk::risk::RiskGuard;
    use executor::journal::Journal;

    pub struct Parts {
        pub dir: tempfile::TempDir,
        pub engine: SignalEngine,
        pub paper: PaperBroker,
        pub journal: Journal,
        pub journal_path: PathBuf,
    }

    /// `symbols` and `risk` are the config's JSON objects (see [`super::paper_config`]).
    pub fn parts(symbols: &str, risk: &str) -> Parts {
        let dir = tempfile::tempdir().unwrap();
        let cfg = super::load(dir.path(), &super::paper_config(symbols, risk, ""));
        let rules = EngineRules {
            symbols: cfg.symbols.clone(),
            model_symbols: Default::default(),
            stale_max_age_secs: 60,
        };
        let mut paper = PaperBroker::open_book(cfg.symbols.clone(), 10_000.0, 30.0, None).unwrap();
        for s in cfg.symbols.keys() {
            paper.on_bar_close(s, 1.1, 0);
        }
        let journal_path = dir.path().join("journal.jsonl");
        let journal = Journal::open(&journal_path).unwrap();
        Parts {
            engine: SignalEngine::new(rules, RiskGuard::new(cfg.risk.clone(), None)),
            paper,
            journal,
            journal_path,
            dir,
        }
    }
}

pub mod ws {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::time::Duration;

    use executor::Executor;
    use executor::config::ExecutorConfig;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpStream;
    use tokio::sync::{mpsc, oneshot};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    /// A preditor-side WebSocket that reads line by line: one message may carry several lines
    /// (PROTOCOL.md: the executor sends a bar close's BARs, and a batch's ACKs, in one message).
    /// Derefs to the stream for raw frames.
    pub struct Ws {
        inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
        pending: VecDeque<String>,
    }

    impl std::ops::Deref for Ws {
        type Target = WebSocketStream<MaybeTlsStream<TcpStream>>;
        fn deref(&self) -> &Self::Target {
            &self.inner
        }
    }

    impl std::ops::DerefMut for Ws {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.inner
        }
    }

    pub struct Running {
        pub addr: SocketAddr,
        pub stop: Option<oneshot::Sender<()>>,
        pub reload: mpsc::Sender<()>,
        pub task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        pub async fn stop(mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    pub async fn start(cfg: ExecutorConfig) -> Running {
        let ex = Executor::start(cfg, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            ex.run(
                listener,
                async move {
                    let _ = stop_rx.await;
                },
                reload_rx,
            )
            .await
            .unwrap();
        });
        Running {
            addr,
            stop: Some(stop_tx),
            reload: reload_tx,
            task,
        }
    }

    pub async fn connect(addr: SocketAddr) -> Ws {
        let (inner, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap();
        Ws {
            inner,
            pending: VecDeque::new(),
        }
    }

    pub async fn send(ws: &mut Ws, text: &str) {
        ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// The next text line, or None when the connection closed. Panics after 5 s of silence.
    pub async fn recv(ws: &mut Ws) -> Option<String> {
        recv_within(ws, Duration::from_secs(5)).await
    }

    /// The next text line within `within`, or None when the connection closed.
    pub async fn recv_within(ws: &mut Ws, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(line) = ws.pending.pop_front() {
                return Some(line);
            }
            let m = tokio::time::timeout_at(deadline, ws.inner.next())
                .await
                .unwrap_or_else(|_| panic!("no message from the executor within {within:?}"));
            match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => ws.pending.extend(t.lines().map(str::to_string)),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until a line starting with `prefix` (skipping others, e.g. BARs), returning it.
    pub async fn recv_until(ws: &mut Ws, prefix: &str) -> String {
        loop {
            match recv(ws).await {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => continue,
                None => panic!("connection closed while waiting for {prefix}"),
            }
        }
    }

    /// The preditor's side of the handshake (PROTOCOL.md §7) with `token` and `version`: our
    /// HELLO, the executor's checked, our AUTH. `Err` with what went wrong.
    pub async fn handshake(ws: &mut Ws, token: &str, version: &str) -> Result<(), String> {
        use protocol::handshake::{IpcKey, PreditorHandshake};
        let key = IpcKey::from_token(token).map_err(|e| e.to_string())?;
        let (hs, hello) = PreditorHandshake::start(&key, version).map_err(|e| e.to_string())?;
        send(ws, &protocol::Line::Hello(hello).to_string()).await;
        let h = recv(ws).await.ok_or("closed before the executor's HELLO")?;
        let Ok(protocol::Line::Hello(theirs)) = h.parse::<protocol::Line>() else {
            return Err(format!("expected the executor's HELLO, got {h}"));
        };
        let (auth, _) = hs.finish(&theirs).map_err(|e| e.to_string())?;
        send(ws, &protocol::Line::Auth(auth).to_string()).await;
        Ok(())
    }

    /// A connection authenticated with the tests' token.
    pub async fn hello(addr: SocketAddr) -> Ws {
        hello_as(addr, "0.1.0").await
    }

    /// [`hello`] announcing `version`.
    pub async fn hello_as(addr: SocketAddr, version: &str) -> Ws {
        let mut ws = connect(addr).await;
        handshake(&mut ws, super::TOKEN, version)
            .await
            .unwrap_or_else(|e| panic!("handshake: {e}"));
        ws
    }
}
