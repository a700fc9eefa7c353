//! The live shell: a WebSocket client to the executor (protocol/PROTOCOL.md).
//!
//! Thin async I/O around [`crate::session::SymbolTwin`] (the decisions) and [`crate::sync::Sync`]
//! (where each twin stands with the executor, where a received bar goes): the handshake (HELLO,
//! the executor's proof checked before anything else is sent, AUTH), WARMUP per model, HISTORY →
//! replay, BAR → step → SIGNAL → persist. Every line sent or received is logged verbatim
//! (handshake values redacted) under the `wire` target so `tail -f` shows the conversation. On a
//! lost connection it reconnects with backoff and asks WARMUP again; the persisted last bar tells
//! which bars were already decided, so no bar is lost; a bar decided but not yet persisted is
//! decided again identically (same `B:`).
//!
//! Persistence is off the signal path: every BAR that arrives while the executor is busy (one
//! WebSocket message, or messages a few milliseconds apart) is stepped and signalled first; each
//! touched symbol is saved once the executor has been quiet for `SAVE_AFTER_QUIET`. A state is
//! saved only once the SIGNALs of the bars it has decided are sent: a kill before that resumes
//! from the older state, which decides those bars again and sends them.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use protocol::handshake::{IpcKey, PreditorHandshake};
use protocol::{Hello, Line, Symbol, Timeframe};
use service::Backoff;
use tokio_tungstenite::tungstenite::Message;

use crate::bars::format_time;
use crate::model::Model;
use crate::notify::SystemdNotifier;
use crate::session::SymbolTwin;
use crate::state::StateStore;
use crate::sync::Sync;

mod lines;

pub use lines::signal_line;

/// How long to wait for the executor's HELLO before giving up on a connection.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect backoff: first retry after `BACKOFF_MIN`, doubling to `BACKOFF_MAX`, each delay
/// shortened by up to `BACKOFF_JITTER` of itself at random ([`service::Backoff`]).
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_JITTER: f64 = 0.3;
/// Most WebSocket messages handled before the pending states are saved (bounds the time between a
/// decision and its fsync when the executor floods us).
const MAX_BATCH: usize = 256;
/// How long the executor must be quiet before decided twins are saved. Far below any timeframe, and
/// a symbol's state is saved before its next bar is stepped anyway.
const SAVE_AFTER_QUIET: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("token file {path}: {what}")]
    Token { path: PathBuf, what: String },
    #[error(transparent)]
    Secret(#[from] service::SecretError),
    #[error(
        "--executor {url}: {what}; the IPC never leaves the machine: use ws://127.0.0.1:PORT or ws://[::1]:PORT"
    )]
    ExecutorAddress { url: String, what: String },
    #[error("the peer at the executor's address is not the executor: {0}")]
    Unauthenticated(String),
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("executor closed the connection")]
    Closed,
    #[error("no HELLO from the executor within {0:?}")]
    HelloTimeout(Duration),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("model {symbol} {timeframe}: {what}")]
    BadModel {
        symbol: String,
        timeframe: String,
        what: String,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// The `--executor` URL if it names a loopback IP address over plain `ws://`. A host name is refused:
/// what it resolves to is not ours to check at every reconnect.
pub fn executor_url(url: &str) -> Result<String, LiveError> {
    let bad = |what: &str| LiveError::ExecutorAddress {
        url: url.to_string(),
        what: what.to_string(),
    };
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(bad("the scheme must be ws://"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad("the host must be a loopback IP address, not a name"))?;
    if !ip.is_loopback() {
        return Err(bad("not a loopback address"));
    }
    if uri.port_u16().is_none() {
        return Err(bad("no port"));
    }
    Ok(url.to_string())
}

/// Reads the IPC token as the handshake's key; the file must not be readable by group or others
/// (0600) and the token must be long and random (see `protocol::handshake`).
pub fn read_key(path: &Path) -> Result<IpcKey, LiveError> {
    let token = read_token(path)?;
    IpcKey::from_token(&token).map_err(|e| LiveError::Token {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Reads the IPC token; the file must not be readable by group or others (0600).
pub fn read_token(path: &Path) -> Result<String, LiveError> {
    Ok(service::read_secret(path)?)
}

/// One loaded model wired to the protocol's symbol/timeframe.
#[derive(Debug)]
struct Slot {
    symbol: Symbol,
    timeframe: Timeframe,
    twin: SymbolTwin,
    /// Where the twin stands with the executor on this connection (the pure state machine).
    sync: Sync,
    /// The twin decided (and signalled) bars whose state is not yet on disk.
    unsaved: bool,
}

/// The running preditor: every symbol's twin and the state store.
#[derive(Debug)]
pub struct Preditor {
    slots: Vec<Slot>,
    index: HashMap<(Symbol, Timeframe), usize>,
    /// Symbols whose persisted state is unusable: not traded until it is fixed (see `open`).
    held: Vec<String>,
    store: StateStore,
    version: String,
    key: IpcKey,
    /// systemd STATUS/WATCHDOG/STOPPING; a no-op unless set with [`Preditor::with_notifier`].
    notifier: SystemdNotifier,
    /// `/metrics`; none unless set with [`Preditor::with_metrics`].
    pub(super) metrics: Option<Arc<crate::metrics::PreditorMetrics>>,
}

impl Preditor {
    /// Builds the twins, resuming each from the store when its state matches the model.
    pub fn new(
        models: Vec<Arc<Model>>,
        store: StateStore,
        version: &str,
        key: IpcKey,
    ) -> Result<Self, LiveError> {
        let mut slots = Vec::new();
        let mut index = HashMap::new();
        let mut held = Vec::new();
        for model in models {
            let bad = |what: String| LiveError::BadModel {
                symbol: model.symbol.clone(),
                timeframe: model.timeframe.clone(),
                what,
            };
            let symbol: Symbol = model
                .symbol
                .parse()
                .map_err(|e| bad(format!("symbol: {e}")))?;
            let timeframe: Timeframe = model
                .timeframe
                .parse()
                .map_err(|e| bad(format!("timeframe: {e}")))?;
            // An unusable state holds its symbol (no WARMUP, no SIGNAL) rather than restart it
            // from FLAT: the broker may hold the position that state describes.
            let twin = match SymbolTwin::open(model, &store, crate::session::system_clock()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(symbol = %symbol, timeframe = %timeframe, error = %e, "symbol held");
                    held.push(symbol.to_string());
                    continue;
                }
            };
            tracing::info!(symbol = %symbol, timeframe = %timeframe, mode = ?twin.mode(),
                last_bar = ?twin.state().last_bar_time.map(format_time), "twin ready");
            index.insert((symbol.clone(), timeframe), slots.len());
            slots.push(Slot {
                symbol,
                timeframe,
                twin,
                sync: Sync::default(),
                unsaved: false,
            });
        }
        Ok(Self {
            slots,
            index,
            held,
            store,
            version: version.to_string(),
            key,
            notifier: SystemdNotifier::disabled(),
            metrics: None,
        })
    }

    /// Counts bars and signals into `metrics` (the `/metrics` listener renders them).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::PreditorMetrics>) -> Self {
        for slot in &self.slots {
            if let Some(d) = slot.twin.state().last_decision() {
                metrics.on_twin(slot.symbol.as_str(), &d);
            }
        }
        self.metrics = Some(metrics);
        self
    }

    /// Reports to systemd through `notifier` (the caller already sent `READY=1`).
    pub fn with_notifier(mut self, notifier: SystemdNotifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Real progress for the systemd watchdog (a message from the executor, a reconnect attempt).
    fn progressed(&mut self) {
        self.notifier.progress(Instant::now());
    }

    /// `STATUS=` summary of the twins once connected: warming up until every twin is synced.
    fn report_sync(&mut self) {
        let synced = self.slots.iter().filter(|s| s.sync.is_live()).count();
        let total = self.slots.len();
        let mut status = if synced == total {
            format!("live: {total} twin(s) synced")
        } else {
            format!("connected, warming up: {synced}/{total} twin(s) synced")
        };
        if !self.held.is_empty() {
            status.push_str(&format!(
                "; held (unusable state, see the log): {}",
                self.held.join(" ")
            ));
        }
        self.notifier.status(&status);
    }

    /// Runs until `shutdown` resolves: connect, serve, reconnect with backoff on any failure.
    /// systemd is told `STOPPING=1` as soon as `shutdown` resolves.
    pub async fn run(
        &mut self,
        url: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LiveError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX, BACKOFF_JITTER);
        loop {
            tracing::info!(url, "connecting to the executor");
            // A reconnect attempt is progress: an executor outage must not become a restart loop.
            self.progressed();
            if let Some(m) = &self.metrics {
                m.on_connect_attempt();
            }
            let outcome = tokio::select! {
                () = &mut shutdown => { self.notifier.stopping(); return Ok(()); }
                // No Nagle: a SIGNAL must not wait for the ACK of the previous segment.
                r = tokio_tungstenite::connect_async_with_config(url, None, true) => r,
            };
            match outcome {
                Ok((ws, _)) => {
                    let result = self.serve(ws, shutdown.as_mut(), &mut backoff).await;
                    // Signals sent just before the connection ended (or shutdown) still get saved.
                    self.persist_unsaved();
                    match result {
                        Ok(()) => return Ok(()),
                        Err(e) => tracing::warn!(error = %e, "connection lost"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "connect failed"),
            }
            self.persist_unsaved();
            for slot in &mut self.slots {
                slot.sync.reset();
            }
            let delay = backoff.next_random_delay();
            tracing::info!(retry_in_ms = delay.as_millis() as u64, "reconnecting");
            self.notifier
                .status("disconnected from the executor; reconnecting");
            tokio::select! {
                () = &mut shutdown => { self.notifier.stopping(); return Ok(()); }
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One connection. `Ok` only on shutdown.
    async fn serve<S>(
        &mut self,
        mut ws: S,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
        backoff: &mut Backoff,
    ) -> Result<(), LiveError>
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
            + Unpin,
    {
        let (handshake, hello) = PreditorHandshake::start(&self.key, &self.version)
            .map_err(|e| LiveError::Protocol(format!("HELLO: {e}")))?;
        send(&mut ws, &Line::Hello(hello)).await?;
        let mut handshake = Some(handshake);
        // Wait for the executor's HELLO: nothing else is sent until its proof checks out, so a
        // process squatting the executor's port learns a nonce and nothing more.
        let deadline = tokio::time::sleep(HELLO_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            let msg = tokio::select! {
                () = &mut shutdown => {
                    self.notifier.stopping();
                    let _ = ws.close().await;
                    return Ok(());
                }
                () = &mut deadline => return Err(LiveError::HelloTimeout(HELLO_TIMEOUT)),
                m = ws.next() => m,
            };
            if let Some(Ok(_)) = &msg {
                self.progressed();
            }
            let text = match msg {
                None => return Err(LiveError::Closed),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) => return Err(LiveError::Closed),
                Some(Ok(_)) => continue,
            };
            let mut greeted = false;
            for line in protocol::parse_message(text.as_str()) {
                match line {
                    Ok(Line::Hello(h @ Hello::Executor { .. })) => {
                        tracing::info!(target: "wire", "< {}", Line::Hello(h.clone()).redacted());
                        let Some(hs) = handshake.take() else {
                            return Err(LiveError::Protocol(
                                "a second HELLO from the executor".into(),
                            ));
                        };
                        let (auth, executor) = hs
                            .finish(&h)
                            .map_err(|e| LiveError::Unauthenticated(e.to_string()))?;
                        tracing::info!(version = %executor.version, mode = %executor.mode, "executor authenticated");
                        send(&mut ws, &Line::Auth(auth)).await?;
                        greeted = true;
                        break;
                    }
                    Ok(other) => {
                        tracing::info!(target: "wire", "< {}", other.redacted());
                        if let Line::Error(_) = other {
                            return Err(LiveError::Protocol(format!("refused at HELLO: {other}")));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "wire", error = %e, "< (malformed) {}", text.as_str())
                    }
                }
            }
            if greeted {
                break;
            }
        }
        backoff.reset();
        self.report_sync();
        // A new connection: every twin waits for the history its WARMUP asks for.
        for i in 0..self.slots.len() {
            self.slots[i].sync.reset();
            send(&mut ws, &self.warmup(i)).await?;
        }
        let mut since_save = 0;
        loop {
            // Nothing is left unsaved for long: once the executor has been quiet for `SAVE_AFTER_QUIET`
            // (or after `MAX_BATCH` messages), every decided twin is saved. Not sooner: the BARs of
            // one bar close arrive as separate messages within about a millisecond, and saving
            // between them (two fsyncs per symbol) would hold back the later symbols' SIGNALs.
            let unsaved = self.slots.iter().any(|s| s.unsaved);
            if unsaved && since_save >= MAX_BATCH {
                self.persist_unsaved();
                since_save = 0;
            }
            let quiet = tokio::time::sleep(SAVE_AFTER_QUIET);
            let retry_at = self.slots.iter().filter_map(|s| s.sync.warmup_due()).min();
            let retry = async move {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut msg = tokio::select! {
                () = &mut shutdown => {
                    self.notifier.stopping();
                    tracing::info!("shutdown requested; closing the connection");
                    let _ = ws.close().await;
                    return Ok(());
                }
                () = quiet, if unsaved => {
                    self.persist_unsaved();
                    since_save = 0;
                    continue;
                }
                () = retry => {
                    let now = tokio::time::Instant::now();
                    let mut due = Vec::new();
                    for i in 0..self.slots.len() {
                        if self.slots[i].sync.take_warmup_due(now) {
                            due.push(self.warmup(i));
                        }
                    }
                    send_all(&mut ws, &due).await?;
                    continue;
                }
                m = ws.next() => m,
            };
            // Handle this message and every one already received (e.g. 20 symbols' BARs sent back to
            // back) before any fsync, so the last SIGNAL does not wait for the others' state saves.
            let mut handled = 0;
            loop {
                // Any message counts, the executor's 15 s Ping included: bars come once per timeframe.
                if let Some(Ok(_)) = &msg {
                    self.progressed();
                }
                match msg {
                    None => return Err(LiveError::Closed),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(Message::Close(_))) => return Err(LiveError::Closed),
                    Some(Ok(Message::Text(text))) => self.handle_message(&mut ws, &text).await?,
                    Some(Ok(_)) => {}
                }
                handled += 1;
                since_save += 1;
                if handled == MAX_BATCH {
                    break;
                }
                match ws.next().now_or_never() {
                    Some(m) => msg = m,
                    None => break,
                }
            }
            self.report_sync();
        }
    }

    /// Handles every line of one received message, sending the resulting signals at once.
    async fn handle_message<S>(&mut self, ws: &mut S, text: &str) -> Result<(), LiveError>
    where
        S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    {
        let out = self.handle_text(text);
        send_all(ws, &out).await
    }
}

/// Several lines as one message (`\n`-separated, PROTOCOL.md), each logged.
async fn send_all<S>(ws: &mut S, lines: &[Line]) -> Result<(), LiveError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        tracing::info!(target: "wire", "> {}", line.redacted());
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&line.to_string());
    }
    ws.send(Message::text(text)).await?;
    Ok(())
}

async fn send<S>(ws: &mut S, line: &Line) -> Result<(), LiveError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    tracing::info!(target: "wire", "> {}", line.redacted());
    ws.send(Message::text(line.to_string())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;
    use crate::twin::Decision;

    #[test]
    fn signal_line_matches_the_seed_format() {
        let d = Decision {
            time: 1_770_113_700, // 2026-02-03T10:15:00Z
            regime: 3,
            action: 1,
            direction: 1,
            intensity: 1,
            realised_pnl: -0.004,
            held: 1,
        };
        let line = signal_line(&"EURUSD".parse().unwrap(), &d).unwrap();
        assert_eq!(
            line.to_string(),
            "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1"
        );
        let d = Decision {
            action: 0,
            regime: 2,
            realised_pnl: -15.299999999,
            held: 4,
            ..d
        };
        let line = signal_line(&"EURUSD".parse().unwrap(), &d).unwrap();
        assert_eq!(
            line.to_string(),
            "SIGNAL|EURUSD|WAIT|2|-15.30|B:2026-02-03T10:15:00Z|N:4"
        );
    }

    /// The shipped GBPUSD model and its demo bars (what the system fault tests replay).
    fn gbpusd() -> (Arc<Model>, Vec<Bar>) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let model = Model::load(&root.join("models/GBPUSD_H1.zip")).unwrap();
        let bars = crate::bars::read_bars_csv(&root.join("data/demo/GBPUSD.csv")).unwrap();
        (Arc::new(model), bars)
    }

    fn bar_lines(bars: &[Bar]) -> Vec<String> {
        let (symbol, tf) = ("GBPUSD".parse().unwrap(), Timeframe::H1);
        bars.iter()
            .map(|b| Line::Bar(b.to_line(&symbol, tf, 5).unwrap()).to_string())
            .collect()
    }

    /// A HISTORY block of `bars` as the executor sends it (one message).
    fn history(bars: &[Bar]) -> String {
        let mut lines = vec![format!("HISTORY|GBPUSD|H1|{}", bars.len())];
        lines.extend(bar_lines(bars));
        lines.push("HISTORY_END|GBPUSD|H1".into());
        lines.join("\n")
    }

    /// The bars the SIGNALs are for, in order.
    fn signalled(out: &[Line]) -> Vec<i64> {
        out.iter()
            .map(|l| match l {
                Line::Signal(s) => s.bar_time.unwrap().unix_seconds(),
                other => panic!("not a SIGNAL: {other}"),
            })
            .collect()
    }

    /// The preditor of the GBPUSD model on `store`, as a (re)start builds it.
    fn start(model: &Arc<Model>, store: &StateStore) -> Preditor {
        let key = IpcKey::from_token(&"a1".repeat(32)).unwrap();
        Preditor::new(vec![Arc::clone(model)], store.clone(), "test", key).unwrap()
    }

    /// A kill between deciding a message's bars and sending their SIGNALs loses none of them:
    /// nothing is saved before the send, so the restart decides them again and sends them. Seen
    /// in the system fault test: the bars held back during a WARMUP arrive as one message after
    /// HISTORY_END, and saving bar 1's state before stepping bar 2 lost bar 1's SIGNAL.
    #[test]
    fn a_kill_before_the_signals_of_a_message_are_sent_loses_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let (model, bars) = gbpusd();
        let w = model.spec.window + 10;
        let mut p = start(&model, &store);
        assert_eq!(signalled(&p.handle_text(&history(&bars[..w]))).len(), 1);
        p.persist_unsaved(); // sent, the executor quiet: saved
        // Two live bars in one message, both decided; killed before the send.
        let out = p.handle_text(&bar_lines(&bars[w..w + 2]).join("\n"));
        assert_eq!(signalled(&out), [bars[w].time, bars[w + 1].time]);
        drop(p);

        // The restart resumes before both: its history replays them and sends both SIGNALs. A live
        // bar that came before the history is stepped after it, in the same message: killed again
        // before the send.
        let mut p = start(&model, &store);
        let mut msg = bar_lines(&bars[w + 2..w + 3]);
        msg.push(history(&bars[..w + 2]));
        let out = p.handle_text(&msg.join("\n"));
        let times = [bars[w].time, bars[w + 1].time, bars[w + 2].time];
        assert_eq!(signalled(&out), times);
        drop(p);

        let mut p = start(&model, &store);
        let out = p.handle_text(&history(&bars[..w + 3]));
        assert_eq!(signalled(&out), times, "every unsent SIGNAL is sent again");
        p.persist_unsaved();
        let saved = store.load("GBPUSD", "H1").unwrap().unwrap();
        assert_eq!(saved.twin.last_bar_time, Some(bars[w + 2].time));
    }

    #[test]
    fn the_executor_must_be_a_loopback_ip_over_ws() {
        for ok in ["ws://127.0.0.1:8765", "ws://127.0.0.2:1", "ws://[::1]:8765"] {
            assert_eq!(executor_url(ok).unwrap(), ok);
        }
        for (bad, why) in [
            ("ws://10.0.0.1:8765", "not a loopback address"),
            ("ws://192.0.2.7:8765", "not a loopback address"),
            ("ws://[2001:db8::1]:8765", "not a loopback address"),
            ("ws://localhost:8765", "not a name"),
            ("ws://executor.example:8765", "not a name"),
            ("wss://127.0.0.1:8765", "ws://"),
            ("http://127.0.0.1:8765", "ws://"),
            ("ws://127.0.0.1", "no port"),
            ("127.0.0.1:8765", "ws://"),
            ("not a url", "not a URL"),
        ] {
            let e = executor_url(bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("ws://127.0.0.1:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_key_needs_a_long_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_key(&p).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&p, format!("{}\n", "a1".repeat(32))).unwrap();
        assert!(read_key(&p).is_ok());
    }

    #[test]
    fn token_file_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "secret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(
            read_token(&p)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::write(&p, "  \n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&p).unwrap_err().to_string().contains("empty"));
    }
}
