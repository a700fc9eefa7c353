//! The live shell: a WebSocket client to the executor.
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
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use protocol::handshake::{IpcKey, PreditorHandshake};
use protocol::{ErrorCode, ErrorLine, Hello, Line, Symbol, Timeframe, Warmup};
use service::Backoff;
use tokio_tungstenite::tungstenite::Message;

use crate::bars::{Bar, format_time};
use crate::model::Model;
use crate::notify::SystemdNotifier;
use crate::session::{BarOutcome, SymbolTwin};
use crate::state::StateStore;
use crate::sync::{BarRoute, CatchUp, Sync};
use crate::twin::Decision;
use crate::warmup_retry::named_pair;

mod endpoint;
mod wire;

pub use endpoint::{executor_url, read_key, read_token};
pub use wire::signal_line;
use wire::{send, send_all};

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
        })
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

    /// Applies every line of one received message; returns the lines to send, as one message:
    /// the SIGNALs of a bar close's 20 BARs reach the executor together, as one batch of orders.
    /// Nothing decided here is saved before the caller has sent them.
    fn handle_text(&mut self, text: &str) -> Vec<Line> {
        let mut out = Vec::new();
        for line in protocol::parse_message(text) {
            match line {
                Ok(line) => {
                    tracing::info!(target: "wire", "< {}", line.redacted());
                    out.extend(self.handle(line));
                }
                Err(e) => {
                    tracing::warn!(target: "wire", error = %e, "< (malformed)");
                }
            }
        }
        out
    }

    /// Applies one received line; returns the lines to send (signals).
    fn handle(&mut self, line: Line) -> Vec<Line> {
        match line {
            Line::History(h) => {
                if let Some(&i) = self.index.get(&(h.symbol.clone(), h.timeframe)) {
                    let slot = &mut self.slots[i];
                    slot.sync.on_history(slot.twin.history_capacity(h.count));
                } else {
                    tracing::warn!(symbol = %h.symbol, "HISTORY for a symbol without a model");
                }
                Vec::new()
            }
            Line::Bar(b) => {
                let Some(&i) = self.index.get(&(b.symbol.clone(), b.timeframe)) else {
                    tracing::debug!(symbol = %b.symbol, "BAR for a symbol without a model; ignored");
                    return Vec::new();
                };
                let bar = b.to_bar();
                let slot = &mut self.slots[i];
                if let Err(e) = slot.twin.check_bar(&bar) {
                    tracing::warn!(symbol = %b.symbol, time = %b.time, error = %e, "bar refused");
                    return Vec::new();
                }
                let (limit, window) = (slot.twin.warmup_count(), slot.twin.model.spec.window);
                match slot.sync.on_bar(bar, limit, window) {
                    BarRoute::Step(bar) => self.live_bar(i, bar).into_iter().collect(),
                    BarRoute::Kept => Vec::new(),
                    BarRoute::Dropped => {
                        tracing::warn!(symbol = %b.symbol, time = %b.time, "more HISTORY bars than asked for; dropped");
                        Vec::new()
                    }
                    BarRoute::WarmFromLive(history) => {
                        tracing::warn!(symbol = %slot.symbol, "no HISTORY received; warming up from live bars");
                        let early = Vec::new();
                        self.consume_history(i, CatchUp { history, early })
                    }
                }
            }
            Line::HistoryEnd(h) => {
                let Some(&i) = self.index.get(&(h.symbol.clone(), h.timeframe)) else {
                    return Vec::new();
                };
                let Some(catch_up) = self.slots[i].sync.on_history_end() else {
                    tracing::warn!(symbol = %h.symbol, "HISTORY_END without HISTORY; ignored");
                    return Vec::new();
                };
                self.consume_history(i, catch_up)
            }
            Line::Ack(_) | Line::Hello(_) | Line::Auth(_) => Vec::new(),
            Line::Error(e) => {
                tracing::warn!(code = %e.code, text = %e.text, "executor reported an error");
                if e.code == ErrorCode::HistoryUnavailable {
                    self.history_unavailable(&e);
                }
                Vec::new()
            }
            Line::Warmup(_) | Line::Signal(_) => {
                tracing::warn!("unexpected line from the executor; ignored");
                Vec::new()
            }
        }
    }

    /// The WARMUP for slot `i`.
    fn warmup(&self, i: usize) -> Line {
        let slot = &self.slots[i];
        Line::Warmup(Warmup {
            symbol: slot.symbol.clone(),
            timeframe: slot.timeframe,
            count: u32::try_from(slot.twin.warmup_count()).unwrap_or(u32::MAX),
        })
    }

    /// The executor could not serve a WARMUP this time: ask again after a backoff, for the pair
    /// the text names, or for every pair still waiting when it names none.
    fn history_unavailable(&mut self, e: &ErrorLine) {
        let now = tokio::time::Instant::now();
        let named = named_pair(&e.text).and_then(|pair| self.index.get(&pair).copied());
        let slots: Vec<usize> = match named {
            Some(i) => vec![i],
            None => (0..self.slots.len()).collect(),
        };
        for i in slots {
            let slot = &mut self.slots[i];
            if slot.sync.history_unavailable(now) {
                tracing::info!(symbol = %slot.symbol, "asking WARMUP again after HISTORY_UNAVAILABLE");
            }
        }
    }

    /// Rebuilds a twin from history bars, then applies the live bars that arrived meanwhile.
    /// Nothing is saved here: the signals of earlier lines of the same message are not sent yet.
    fn consume_history(&mut self, i: usize, catch_up: CatchUp) -> Vec<Line> {
        let CatchUp {
            history: bars,
            early,
        } = catch_up;
        let mut out = Vec::new();
        let slot = &mut self.slots[i];
        match slot.twin.on_history(&bars) {
            Ok(outcome) => {
                slot.sync.synced();
                tracing::info!(symbol = %slot.symbol, bars = bars.len(), replayed = outcome.replayed,
                            mode = ?outcome.mode, signals = outcome.signals.len(), "history consumed");
                // Saved after the signals go out, like a live bar (see `live_bar`).
                slot.unsaved |= outcome.replayed > 0;
                for d in &outcome.signals {
                    out.extend(self.signal(i, d));
                }
            }
            // Still waiting: the next HISTORY, or a window of live bars, syncs it.
            Err(e) => tracing::error!(symbol = %slot.symbol, error = %e, "history refused"),
        }
        for bar in early {
            out.extend(self.live_bar(i, bar));
        }
        out
    }

    /// Steps one live bar. The SIGNAL is returned to be sent BEFORE the state is saved (the caller
    /// saves once the whole batch of received bars is signalled): an fsync costs milliseconds and
    /// 20 symbols close together. Safe because the step is deterministic: if the process dies after
    /// the send but before the save, the restart resumes from the previous state, replays this bar
    /// and sends the same SIGNAL with the same `B:`, which the executor answers again without
    /// executing twice. Not saved here either when the twin has unsaved bars: one message can hold
    /// several bars of a symbol (those held back during its WARMUP, a backfill), and saving the
    /// previous bar's state before its SIGNAL is sent would lose that SIGNAL to a kill.
    fn live_bar(&mut self, i: usize, bar: Bar) -> Option<Line> {
        let slot = &mut self.slots[i];
        match slot.twin.on_bar(bar) {
            Ok(BarOutcome::Decided(d)) => {
                slot.unsaved = true;
                self.signal(i, &d)
            }
            Ok(BarOutcome::WarmingUp { have, need }) => {
                tracing::info!(symbol = %slot.symbol, have, need, "warming up: no decision yet");
                None
            }
            Ok(BarOutcome::AlreadyDecided) => {
                tracing::debug!(symbol = %slot.symbol, time = %format_time(bar.time), "bar already decided");
                None
            }
            Err(e) => {
                tracing::warn!(symbol = %slot.symbol, time = %format_time(bar.time), error = %e, "bar refused");
                None
            }
        }
    }

    /// Saves a twin's state if it decided bars since the last save; a failure is logged loudly (the
    /// next decided bar retries) and does not stop trading.
    fn persist_if_unsaved(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !std::mem::take(&mut slot.unsaved) {
            return;
        }
        if let Err(e) = self.store.save(&slot.twin.persisted()) {
            tracing::error!(symbol = %slot.symbol, error = %e, "could not persist the twin state");
        }
        // Off the signal path too: the next bar's recursions, so that bar costs one step of each.
        slot.twin.prepare_next();
    }

    /// Saves every twin with unsaved decisions (once each).
    fn persist_unsaved(&mut self) {
        for i in 0..self.slots.len() {
            self.persist_if_unsaved(i);
        }
    }

    fn signal(&self, i: usize, d: &Decision) -> Option<Line> {
        let slot = &self.slots[i];
        signal_line(&slot.symbol, d)
            .map_err(|e| tracing::error!(symbol = %slot.symbol, error = %e, "cannot format SIGNAL"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
}
