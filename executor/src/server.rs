//! The running executor: startup (lock, NTP check, secrets, books, reconcile), the loopback
//! WebSocket server, and the core loop that owns every book and answers the preditor.
//!
//! Concurrency: one task per connection moves bytes and runs the pure [`Session`]; a single core
//! task owns the desks, journal and logs and handles events one at a time, so signals are executed
//! in arrival order and no lock guards trading state.
//!
//! One preditor at a time: a second connection that authenticates **replaces** the first, which gets
//! `ERROR|REPLACED|...` and is closed. Refusing it instead would let a half-open connection (a
//! preditor killed without a FIN, a NAT/firewall drop) lock the real, restarted preditor out until
//! TCP keepalive noticed; the newcomer has to prove it holds the 0600 token (PROTOCOL.md §7), so
//! only a process that may read the secret can take over.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::handshake::{IpcKey, TokenError};
use protocol::{BarLine, ErrorCode, ErrorLine, Line, Mode, Signal, Warmup};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::barfeed::{BarBuilder, BarsError, CsvBarSource};
use crate::broker::ctrader::{CtraderBroker, CtraderStartError};
use crate::broker::paper::PaperBroker;
use crate::broker::{Broker, BrokerError, Ticket, answered};
use crate::clock::{Clock, FeedClock, SystemClock};
use crate::config::{ClockSource, ExecutorConfig};
use crate::desk::{Desk, DeskError, DeskOutcome, describe_target};
use crate::drift::{BookOutcome, DriftLog, DriftRow};
use crate::engine::{EngineRules, SignalEngine, ack_reason};
use crate::ipc::{ConnEvent, Outbound, accept_loop};
use crate::journal::{Journal, JournalError};
use crate::notify::SystemdNotifier;
use crate::ntp::{NtpStatus, kernel_ntp_status};
use crate::orders::{BookSnapshot, CloseIntent, Fill, OpenIntent};
use crate::risk::{RiskApproved, RiskGuard};
use crate::secrets::{SecretError, read_secret};
use crate::signals_log::{Dir, SignalsLog};
use crate::state::{StateError, StateLock};
use crate::warmup::{Fetch, HistoryAnswer, Warming};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use crate::ipc::{MAX_MESSAGE_BYTES, WS_PING_PERIOD};
/// In live/shadow mode, a broker round trip (a version request) when the broker has been quiet this
/// long: a closed market sends no spots, and the client's heartbeats are not passed on as events.
pub const BROKER_PROBE_PERIOD: Duration = Duration::from_secs(10);

/// How often the cTrader account (balance, leverage, every position's unrealised PnL) is asked of
/// the broker: the risk guard's equity is at most this old (plus a round trip). Two requests per
/// period, far under the server's 50/s.
pub const ACCOUNT_REFRESH_PERIOD: Duration = Duration::from_secs(5);

/// Queued events handled in one turn of the core loop: enough for a bar boundary of every symbol
/// (a spot, a live trendbar and their updates: up to about 5 broker events per symbol) and for
/// every symbol's SIGNAL to form one batch, few enough that timers are not starved.
const MAX_EVENTS_PER_TURN: usize = 512;
/// Times the core loop lets the I/O driver run to collect the rest of a burst (a bar boundary's
/// spots, a preditor message's lines) before acting on it: each costs microseconds, while acting on
/// half a burst makes the other half wait a whole broker round trip.
const MAX_YIELDS_PER_TURN: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: TokenError,
    },
    #[error(transparent)]
    Bars(#[from] BarsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ctrader(#[from] CtraderStartError),
}

/// The broker behind the primary desk.
#[derive(Debug)]
pub enum AnyBroker {
    Paper(PaperBroker),
    Ctrader(Box<CtraderBroker>),
}

impl Broker for AnyBroker {
    type Receipt = AnyReceipt;

    fn name(&self) -> &'static str {
        match self {
            AnyBroker::Paper(b) => b.name(),
            AnyBroker::Ctrader(b) => b.name(),
        }
    }
    fn snapshot(&self, symbol: &protocol::Symbol) -> BookSnapshot {
        match self {
            AnyBroker::Paper(b) => b.snapshot(symbol),
            AnyBroker::Ctrader(b) => b.snapshot(symbol),
        }
    }
    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        match self {
            AnyBroker::Paper(b) => b.reconcile().await,
            AnyBroker::Ctrader(b) => b.reconcile().await,
        }
    }
    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<AnyReceipt> {
        match self {
            AnyBroker::Paper(b) => answered(b.open_sync(order).map(AnyReceipt::Paper)),
            AnyBroker::Ctrader(b) => {
                let t = b.submit_open(order);
                Box::pin(async move { t.await.map(|x| AnyReceipt::Ctrader(Box::new(x))) })
            }
        }
    }
    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<AnyReceipt> {
        match self {
            AnyBroker::Paper(b) => answered(b.close_sync(intent).map(AnyReceipt::Paper)),
            AnyBroker::Ctrader(b) => {
                let t = b.submit_close(intent);
                Box::pin(async move { t.await.map(|x| AnyReceipt::Ctrader(Box::new(x))) })
            }
        }
    }
    fn settle(&mut self, answer: Result<AnyReceipt, BrokerError>) -> Result<Fill, BrokerError> {
        match (self, answer?) {
            (AnyBroker::Paper(b), AnyReceipt::Paper(f)) => b.settle(Ok(f)),
            (AnyBroker::Ctrader(b), AnyReceipt::Ctrader(x)) => b.settle(Ok(*x)),
            // Unreachable: a book only settles its own tickets.
            _ => Err(BrokerError::Rejected {
                code: "INTERNAL".into(),
                description: "a ticket was settled on another book".into(),
            }),
        }
    }
    fn commit(&mut self) -> Result<(), BrokerError> {
        match self {
            AnyBroker::Paper(b) => b.commit(),
            AnyBroker::Ctrader(b) => b.commit(),
        }
    }
    fn suspect(&self) -> Option<String> {
        match self {
            AnyBroker::Paper(b) => b.suspect(),
            AnyBroker::Ctrader(b) => b.suspect(),
        }
    }
    fn distrust(&mut self, why: String) {
        match self {
            AnyBroker::Paper(b) => b.distrust(why),
            AnyBroker::Ctrader(b) => b.distrust(why),
        }
    }
    fn reconcile_every(&self) -> Option<Duration> {
        match self {
            AnyBroker::Paper(b) => b.reconcile_every(),
            AnyBroker::Ctrader(b) => b.reconcile_every(),
        }
    }
}

/// A resolved ticket of either book.
#[derive(Debug)]
pub enum AnyReceipt {
    Paper(Fill),
    Ctrader(Box<crate::broker::ctrader::Execution>),
}

/// A started executor: books open and reconciled, logs open, state directory locked.
#[derive(Debug)]
pub struct Executor {
    cfg: ExecutorConfig,
    clock: Arc<dyn Clock>,
    feed_clock: Option<FeedClock>,
    primary: Desk<AnyBroker>,
    shadow: Option<Desk<PaperBroker>>,
    journal: Journal,
    drift: DriftLog,
    log: Arc<SignalsLog>,
    bars: Option<CsvBarSource>,
    /// cTrader modes: the client's events, and one closed-bar detector per symbol.
    ct_events: Option<ctrader::client::EventStream>,
    builders: BTreeMap<protocol::Symbol, BarBuilder>,
    /// Market-data events the client has dropped so far (see `check_market_data_loss`).
    market_data_dropped: u64,
    key: IpcKey,
    active: Option<(u64, mpsc::UnboundedSender<Outbound>)>,
    /// WARMUPs in flight for the active connection (`warmup.rs`), and where their answers return.
    warming: Warming,
    history_tx: Option<mpsc::UnboundedSender<HistoryAnswer>>,
    replay_done_logged: bool,
    notify: SystemdNotifier,
    /// The cTrader link as the last connection event described it (for `STATUS=`).
    broker_link: &'static str,
    /// End of a maintenance window the client announced it is waiting out, Unix ms.
    maintenance_until_ms: Option<i64>,
    _lock: StateLock,
}

fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn engine_rules(cfg: &ExecutorConfig) -> EngineRules {
    EngineRules {
        symbols: cfg.symbols.clone(),
        model_symbols: cfg.model_symbols(),
        stale_max_age_secs: cfg.stale_signal_max_age_secs as i64,
    }
}

impl Executor {
    /// Startup: directories, lock, NTP status, token, books, journal recovery, logs, bar source.
    /// `clock` overrides the configured clock (tests).
    pub async fn start(
        cfg: ExecutorConfig,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Executor, RunError> {
        std::fs::create_dir_all(&cfg.log_dir).map_err(io_err(&cfg.log_dir))?;
        std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
        let lock = StateLock::acquire(&cfg.state_dir)?;
        match kernel_ntp_status() {
            NtpStatus::Synchronized {
                est_error_us,
                max_error_us,
            } => {
                tracing::info!(
                    est_error_us,
                    max_error_us,
                    "kernel clock is NTP-synchronised"
                )
            }
            NtpStatus::Unsynchronized { max_error_us } => tracing::warn!(
                max_error_us,
                "kernel clock is NOT NTP-synchronised: staleness and bar closes may be judged wrong; enable chrony/ntpd"
            ),
            NtpStatus::Unavailable(why) => {
                tracing::warn!(%why, "cannot read the kernel's NTP status (adjtimex)")
            }
        }
        let key = IpcKey::from_token(&read_secret(&cfg.ipc.token_file)?).map_err(|source| {
            RunError::Token {
                path: cfg.ipc.token_file.clone(),
                source,
            }
        })?;

        let (clock, feed_clock): (Arc<dyn Clock>, Option<FeedClock>) = match (clock, cfg.clock) {
            (Some(c), _) => (c, None),
            (None, ClockSource::System) => (Arc::new(SystemClock), None),
            (None, ClockSource::Feed) => {
                let f = FeedClock::default();
                (Arc::new(f.clone()), Some(f))
            }
        };

        let new_engine =
            || SignalEngine::new(engine_rules(&cfg), RiskGuard::new(cfg.risk.clone(), None));
        let paper_broker = || {
            PaperBroker::open_book(
                cfg.symbols.clone(),
                cfg.broker.paper.initial_balance,
                cfg.broker.paper.leverage,
                Some(cfg.state_dir.join("paper_book.json")),
            )
        };
        let mut ct_events = None;
        let (primary, shadow) = match (cfg.broker.mode, &cfg.broker.ctrader) {
            (Mode::Paper, _) => {
                let b = AnyBroker::Paper(paper_broker()?);
                let d = Desk::new(
                    "paper",
                    new_engine(),
                    b,
                    Some(cfg.state_dir.join("paper_desk.json")),
                )?;
                (d, None)
            }
            (mode, Some(ct)) => {
                // Reconcile happens inside start(), before any signal is served.
                let (b, events) =
                    CtraderBroker::start(ct, cfg.symbols.clone(), Duration::from_secs(30)).await?;
                ct_events = Some(events);
                let d = Desk::new(
                    "live",
                    new_engine(),
                    AnyBroker::Ctrader(Box::new(b)),
                    Some(cfg.state_dir.join("live_desk.json")),
                )?;
                let shadow = if mode == Mode::Shadow {
                    Some(Desk::new(
                        "paper",
                        new_engine(),
                        paper_broker()?,
                        Some(cfg.state_dir.join("paper_desk.json")),
                    )?)
                } else {
                    None
                };
                (d, shadow)
            }
            (_, None) => {
                return Err(RunError::Ctrader(CtraderStartError::Symbol {
                    symbol: "(config)".into(),
                    why: "broker.ctrader is required in live and shadow modes".into(),
                }));
            }
        };
        let builders: BTreeMap<protocol::Symbol, BarBuilder> = if ct_events.is_some() {
            cfg.symbols
                .iter()
                .filter_map(|(s, c)| {
                    Some((
                        s.clone(),
                        BarBuilder::new(s.clone(), c.timeframe, c.digits)?,
                    ))
                })
                .collect()
        } else {
            BTreeMap::new()
        };

        let journal_path = cfg.state_dir.join("journal.jsonl");
        let entries = Journal::read_all(&journal_path)?;
        let mut journal = Journal::open(&journal_path)?;
        let mut ex_primary = primary;
        let mut ex_shadow: Option<Desk<PaperBroker>> = shadow;
        let now = clock.now();
        // The loss limits' baseline and the kill switch first: a lost desk file must not reset them.
        ex_primary.restore_guard(&entries, &mut journal, now)?;
        if let Some(s) = &mut ex_shadow {
            s.restore_guard(&entries, &mut journal, now)?;
        }
        let n = ex_primary.recover(&entries, &mut journal, now).await?;
        if let Some(s) = &mut ex_shadow {
            s.recover(&entries, &mut journal, now).await?;
        }
        tracing::info!(
            book = ex_primary.name,
            resolved = n,
            "reconciled with the broker before serving signals"
        );
        rotate_if_large(&mut journal);

        let drift_path = cfg.log_dir.join("drift.csv");
        let drift = DriftLog::open(&drift_path).map_err(io_err(&drift_path))?;
        let log_path = cfg.log_dir.join("signals.log");
        let log = Arc::new(SignalsLog::open(&log_path).map_err(io_err(&log_path))?);

        // CSV bars drive paper mode only; with cTrader the broker's feed is the one bar source.
        let bars = match (&cfg.broker.paper.bars_dir, cfg.broker.mode) {
            (Some(dir), Mode::Paper) => {
                let syms: Vec<_> = cfg
                    .symbols
                    .iter()
                    .map(|(s, c)| (s.clone(), c.timeframe, c.digits))
                    .collect();
                Some(CsvBarSource::load(dir, &syms, cfg.broker.paper.start_bar)?)
            }
            _ => None,
        };
        let mut ex = Executor {
            cfg,
            clock,
            feed_clock,
            primary: ex_primary,
            shadow: ex_shadow,
            journal,
            drift,
            log,
            bars,
            ct_events,
            builders,
            market_data_dropped: 0,
            key,
            active: None,
            warming: Warming::default(),
            history_tx: None,
            replay_done_logged: false,
            notify: SystemdNotifier::disabled(),
            broker_link: "connected",
            maintenance_until_ms: None,
            _lock: lock,
        };
        ex.seed_quotes_from_history();
        Ok(ex)
    }

    /// The paper books price from the last history bar until the replay publishes a new one.
    fn seed_quotes_from_history(&mut self) {
        let Some(src) = &self.bars else { return };
        let mut last: Vec<BarLine> = Vec::new();
        for sym in src.symbols() {
            if let Some(c) = self.cfg.symbols.get(sym)
                && let Some(mut h) = src.history(sym, c.timeframe, 1)
                && let Some(b) = h.pop()
            {
                last.push(b);
            }
        }
        for b in &last {
            self.apply_bar_to_books(b);
        }
    }

    fn apply_bar_to_books(&mut self, bar: &BarLine) {
        self.bar_published(bar);
        let close_time = bar_close(bar);
        if let Some(f) = &self.feed_clock
            && let Some(t) = chrono::DateTime::from_timestamp(close_time, 0)
        {
            f.observe(t);
        }
        let close = bar.close.to_f64();
        if let AnyBroker::Paper(p) = &mut self.primary.broker {
            p.on_bar_close(&bar.symbol, close, close_time);
        }
        if let Some(s) = &mut self.shadow {
            s.broker.on_bar_close(&bar.symbol, close, close_time);
        }
    }

    /// SIGNALs may be for this bar from now on (see `bar_memory.rs`).
    fn bar_published(&mut self, bar: &BarLine) {
        self.primary
            .engine
            .on_bar_published(&bar.symbol, bar.timeframe, bar.time);
        if let Some(s) = &mut self.shadow {
            s.engine
                .on_bar_published(&bar.symbol, bar.timeframe, bar.time);
        }
    }

    pub fn mode(&self) -> Mode {
        self.cfg.broker.mode
    }

    /// Reports readiness, status and watchdog progress to systemd through `notify` (the default
    /// notifier is disabled).
    pub fn with_notifier(mut self, notify: SystemdNotifier) -> Self {
        self.notify = notify;
        self
    }

    /// The one-line human summary sent as systemd `STATUS=`.
    pub fn status_line(&self) -> String {
        let enabled = self.cfg.symbols.values().filter(|s| s.enabled).count();
        let preditor = if self.active.is_some() {
            "preditor connected"
        } else {
            "no preditor"
        };
        let feed = match (&self.primary.broker, self.replay_done_logged) {
            (AnyBroker::Ctrader(_), _) => format!("cTrader {}", self.broker_link),
            (AnyBroker::Paper(_), _) if self.bars.is_none() => "no bar feed".to_string(),
            (AnyBroker::Paper(_), true) => "CSV replay finished".to_string(),
            (AnyBroker::Paper(_), false) => "CSV replay".to_string(),
        };
        format!(
            "mode {}, {} symbols ({} enabled), {}, {}",
            self.cfg.broker.mode.as_str(),
            self.cfg.symbols.len(),
            enabled,
            preditor,
            feed
        )
    }

    fn progress(&mut self) {
        self.notify.progress(std::time::Instant::now());
    }

    fn refresh_status(&mut self) {
        let s = self.status_line();
        self.notify.status(&s);
    }

    /// Serves until `shutdown` resolves. Each message on `reload` re-reads the config file.
    pub async fn run(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        mut reload: mpsc::Receiver<()>,
    ) -> Result<(), RunError> {
        let (ev_tx, mut ev_rx) = mpsc::channel::<ConnEvent>(1024);
        let (history_tx, mut history_rx) = mpsc::unbounded_channel::<HistoryAnswer>();
        self.history_tx = Some(history_tx);
        let accept = tokio::spawn(accept_loop(
            listener,
            ev_tx,
            self.key.clone(),
            self.cfg.broker.mode,
            Duration::from_secs(self.cfg.ipc.hello_timeout_secs),
            self.log.clone(),
        ));
        let period = self.cfg.broker.paper.replay_period();
        let mut replay = tokio::time::interval(period);
        replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bar closes by the clock (boundary + 1 s) are checked four times a second.
        let mut bar_clock = tokio::time::interval(Duration::from_millis(250));
        bar_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut ct_events = self.ct_events.take();
        let live_feed = ct_events.is_some();
        let mut probe = tokio::time::interval_at(
            tokio::time::Instant::now() + BROKER_PROBE_PERIOD,
            BROKER_PROBE_PERIOD,
        );
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (probe_tx, mut probe_rx) = mpsc::channel::<ProbeResult>(1);
        // The live book is reconciled on a schedule and as soon as it contradicted the broker
        // (the desk decides when: `Desk::reconcile_if_due`), between batches as well as before one.
        // Wall-clock time: a replay's market clock runs hours a second.
        let mut reconcile_tick = tokio::time::interval(Duration::from_secs(1));
        reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut probe_in_flight = false;
        let mut account_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + ACCOUNT_REFRESH_PERIOD,
            ACCOUNT_REFRESH_PERIOD,
        );
        account_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (account_tx, mut account_rx) = mpsc::channel::<
            Result<crate::broker::ctrader::AccountRefresh, ctrader::client::ClientError>,
        >(1);
        let mut account_in_flight = false;
        let mut last_broker_event = std::time::Instant::now();
        // The listener is bound and start() has reconciled the books: ready to serve.
        let status = self.status_line();
        self.notify.ready(&status);
        tracing::info!(%status, "ready");
        tokio::pin!(shutdown);
        loop {
            let next_ct = async {
                match &mut ct_events {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                Some(()) = reload.recv() => {
                    self.notify.reloading();
                    self.reload();
                    let status = self.status_line();
                    self.notify.ready(&status);
                }
                Some(answer) = history_rx.recv() => self.on_history(answer),
                Some(ev) = ev_rx.recv() => {
                    // Whatever else is already queued goes with it: the SIGNALs of one bar are
                    // decided together and their orders sent together (see `on_events`).
                    let mut evs = vec![ev];
                    let mut yields = 0;
                    while evs.len() < MAX_EVENTS_PER_TURN {
                        if let Ok(more) = ev_rx.try_recv() {
                            evs.push(more);
                            continue;
                        }
                        if yields == MAX_YIELDS_PER_TURN {
                            break;
                        }
                        yields += 1;
                        tokio::task::yield_now().await;
                    }
                    self.on_events(evs).await;
                }
                // Paper mode: the replay clock is the feed. It ticks in this loop even with no
                // preditor connected (bars are only stepped for one), so a tick handled here is
                // the proof that the core loop is alive; a wedged loop handles none.
                _ = replay.tick(), if !live_feed => {
                    if self.active.is_some() {
                        self.replay_step();
                    }
                    self.progress();
                }
                Some(ev) = next_ct => {
                    last_broker_event = std::time::Instant::now();
                    self.check_market_data_loss(ct_events.as_ref().map_or(0, |s| s.dropped_market_data()));
                    // The spots of one bar boundary arrive together: their BARs go out as one
                    // message, so the preditor decides every symbol in one go and its SIGNALs
                    // come back as one batch (one fsync, every order sent together).
                    let mut closed: Vec<BarLine> = self.on_ctrader_event(ev).into_iter().collect();
                    let mut handled = 1;
                    let mut yields = 0;
                    while handled < MAX_EVENTS_PER_TURN {
                        if let Some(more) = ct_events.as_mut().and_then(|s| s.try_recv()) {
                            self.check_market_data_loss(ct_events.as_ref().map_or(0, |s| s.dropped_market_data()));
                            closed.extend(self.on_ctrader_event(more));
                            handled += 1;
                            continue;
                        }
                        // The rest of a boundary's spots may be in the socket still: let the
                        // client read it (a yield runs the I/O driver) before publishing.
                        if closed.is_empty() || yields == MAX_YIELDS_PER_TURN {
                            break;
                        }
                        yields += 1;
                        tokio::task::yield_now().await;
                    }
                    self.publish_bars(closed);
                    self.fill_bar_gaps().await;
                    self.resolve_position_symbols().await;
                }
                // The account as the broker sees it, fetched off the loop: no signal waits for it.
                _ = account_tick.tick(), if live_feed && !account_in_flight => {
                    if let AnyBroker::Ctrader(b) = &self.primary.broker
                        && b.client().state() == ctrader::client::LinkState::Ready
                    {
                        account_in_flight = true;
                        let refresh = b.account_refresh();
                        let tx = account_tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(refresh.await).await;
                        });
                    }
                }
                Some(r) = account_rx.recv() => {
                    account_in_flight = false;
                    match (r, &mut self.primary.broker) {
                        (Ok(r), AnyBroker::Ctrader(b)) => b.apply_account_refresh(&r),
                        (Err(e), _) => tracing::warn!(error = %e, "the broker's account figures could not be refreshed; the risk guard uses the last ones"),
                        _ => {}
                    }
                }
                _ = bar_clock.tick(), if live_feed => {
                    self.on_bar_clock();
                    self.fill_bar_gaps().await;
                }
                _ = reconcile_tick.tick(), if live_feed => {
                    self.primary.reconcile_if_due(Some(std::time::Instant::now())).await;
                }
                _ = probe.tick(), if live_feed && !probe_in_flight => {
                    if last_broker_event.elapsed() >= BROKER_PROBE_PERIOD
                        && let AnyBroker::Ctrader(b) = &self.primary.broker
                    {
                        probe_in_flight = true;
                        let client = b.client().clone();
                        let tx = probe_tx.clone();
                        tokio::spawn(async move {
                            let _ = tx.send(ProbeResult::of(client.version().await)).await;
                        });
                    }
                }
                Some(r) = probe_rx.recv() => {
                    probe_in_flight = false;
                    match r {
                        ProbeResult::Answered => {
                            last_broker_event = std::time::Instant::now();
                            self.progress();
                        }
                        ProbeResult::Unanswered(why) => {
                            // The server announces the end in wall-clock time, whatever the feed's clock.
                            let now_ms = chrono::Utc::now().timestamp_millis();
                            if self.broker_link == "unauthorized" {
                                // Waiting for a new token by design (see `AuthorizationLost`): the
                                // loop is alive; a restart would not bring the token back.
                                self.progress();
                            } else if waiting_out_maintenance(self.maintenance_until_ms, now_ms) {
                                // Silence is expected until the announced end; the loop that
                                // handled this probe is alive, so the watchdog is fed.
                                tracing::info!(%why, until_ms = ?self.maintenance_until_ms, "broker in announced maintenance");
                                self.progress();
                            } else {
                                tracing::warn!(%why, "the broker did not answer a probe");
                            }
                        }
                    }
                }
            }
        }
        self.notify.stopping();
        tracing::info!("shutting down");
        if let Some((_, tx)) = self.active.take() {
            let _ = tx.send(Outbound::Close(ErrorLine::new(
                ErrorCode::Other("SHUTDOWN".into()),
                "executor stopping",
            )));
        }
        accept.abort();
        // Give connection tasks a moment to send their close frames.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    fn send(&self, line: &Line) {
        if let Some((id, tx)) = &self.active {
            let text = line.to_string();
            self.log.record(*id, Dir::Out, &text);
            let _ = tx.send(Outbound::Line(text));
        }
    }

    /// Several lines in one WebSocket message (`\n`-separated, PROTOCOL.md §2), each logged.
    fn send_all(&self, lines: &[Line]) {
        let Some((id, tx)) = &self.active else { return };
        if lines.is_empty() {
            return;
        }
        let texts: Vec<String> = lines.iter().map(Line::to_string).collect();
        for t in &texts {
            self.log.record(*id, Dir::Out, t);
        }
        let _ = tx.send(Outbound::Line(texts.join("\n")));
    }

    /// Handles queued events in order; consecutive SIGNALs from the active preditor are one batch
    /// (see [`Desk::handle_batch`]), so the last symbol of a bar does not wait for the round trips
    /// of the others.
    async fn on_events(&mut self, evs: Vec<ConnEvent>) {
        let mut batch: Vec<Signal> = Vec::new();
        for ev in evs {
            match ev {
                ConnEvent::Line {
                    id,
                    line: Line::Signal(sig),
                } if self.active.as_ref().is_some_and(|(a, _)| *a == id) => {
                    self.progress();
                    batch.push(sig);
                }
                other => {
                    if !batch.is_empty() {
                        self.on_signals(std::mem::take(&mut batch)).await;
                    }
                    self.on_event(other).await;
                }
            }
        }
        if !batch.is_empty() {
            self.on_signals(batch).await;
        }
    }

    async fn on_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Authenticated { id, version, tx } => {
                if let Some((old, old_tx)) = self.active.take() {
                    tracing::warn!(
                        old,
                        new = id,
                        "a newer preditor connection authenticated; closing the old one"
                    );
                    let _ = old_tx.send(Outbound::Close(ErrorLine::new(
                        ErrorCode::Other("REPLACED".into()),
                        "a newer authenticated preditor connection took over",
                    )));
                }
                tracing::info!(conn = id, %version, "preditor authenticated");
                self.active = Some((id, tx));
                self.warming.reset();
                self.refresh_status();
            }
            ConnEvent::Closed { id } => {
                if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
                    tracing::info!(conn = id, "preditor disconnected");
                    self.active = None;
                    self.warming.reset();
                    self.refresh_status();
                }
            }
            ConnEvent::Line { id, line } => {
                if self.active.as_ref().is_none_or(|(a, _)| *a != id) {
                    return; // from a connection that was just replaced
                }
                self.progress();
                match line {
                    Line::Signal(sig) => self.on_signals(vec![sig]).await,
                    Line::Warmup(w) => self.on_warmup(&w),
                    Line::Error(e) => {
                        tracing::warn!(code = %e.code, text = %e.text, "preditor reported an error")
                    }
                    other => tracing::debug!(line = %other, "ignored"),
                }
            }
            ConnEvent::Control { id, text } => {
                if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
                    self.on_control(&text);
                }
            }
        }
    }

    fn on_control(&mut self, text: &str) {
        let on = match text {
            "KILL_SWITCH|ON" => true,
            "KILL_SWITCH|OFF" => false,
            _ => {
                self.send(&Line::Error(ErrorLine::new(
                    ErrorCode::Malformed,
                    "control lines are CONTROL|KILL_SWITCH|ON and CONTROL|KILL_SWITCH|OFF",
                )));
                return;
            }
        };
        tracing::warn!(on, "kill switch set by control line");
        // Kept in each desk's file and the journal, so a restart does not forget it. In force at
        // once even if it cannot be saved; the preditor is told it would not survive a restart.
        let now = self.clock.now();
        let mut failed = Vec::new();
        if let Err(e) = self.primary.set_kill_switch(on, &mut self.journal, now) {
            failed.push(e.to_string());
        }
        if let Some(s) = &mut self.shadow
            && let Err(e) = s.set_kill_switch(on, &mut self.journal, now)
        {
            failed.push(e.to_string());
        }
        if !failed.is_empty() {
            tracing::error!(on, errors = ?failed, "kill switch set but not saved: a restart would forget it");
            self.send(&Line::Error(ErrorLine::new(
                ErrorCode::Internal,
                format!(
                    "kill switch set in memory but not saved (a restart would forget it): {}",
                    failed.join("; ")
                ),
            )));
        }
    }

    async fn on_signals(&mut self, sigs: Vec<Signal>) {
        let now = self.clock.now();
        let kill = self.cfg.risk.kill_switch_file.exists();
        // One outcome per signal: an ACK says what the broker did, whatever the disk did after.
        let primary: Vec<Option<DeskOutcome>> = self
            .primary
            .handle_batch(&sigs, now, kill, &mut self.journal)
            .await
            .into_iter()
            .map(Some)
            .collect();
        let acks: Vec<Line> = primary
            .iter()
            .flatten()
            .map(|o| Line::Ack(o.ack.clone()))
            .collect();
        self.send_all(&acks);
        let shadow: Vec<Option<DeskOutcome>> = match &mut self.shadow {
            Some(s) => s
                .handle_batch(&sigs, now, kill, &mut self.journal)
                .await
                .into_iter()
                .map(Some)
                .collect(),
            None => sigs.iter().map(|_| None).collect(),
        };
        for ((sig, primary), shadow) in sigs.iter().zip(&primary).zip(&shadow) {
            if primary.as_ref().is_some_and(|o| o.duplicate) {
                continue;
            }
            self.record_drift(sig, now, primary.as_ref(), shadow.as_ref());
        }
        // Between batches no order is in flight: the one safe moment to rotate.
        rotate_if_large(&mut self.journal);
    }

    /// One drift.csv row: what the model wanted and what each book did.
    fn record_drift(
        &mut self,
        sig: &Signal,
        now: chrono::DateTime<chrono::Utc>,
        primary: Option<&DeskOutcome>,
        shadow: Option<&DeskOutcome>,
    ) {
        let book = |o: Option<&DeskOutcome>| -> Option<BookOutcome> {
            let o = o?;
            Some(BookOutcome {
                position: o.position_after.clone(),
                fill: o.fill.as_ref().map(|f| f.price).filter(|p| p.is_finite()),
                slippage: o
                    .fill
                    .as_ref()
                    .map(|f| f.slippage)
                    .filter(|s| s.is_finite()),
                outcome: o.ack.outcome.as_str().to_string(),
                reason: ack_reason(&o.ack)
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                pnl: o.realized,
            })
        };
        let target = self
            .cfg
            .symbols
            .get(&sig.symbol)
            .map(|c| describe_target(&c.lots.target(sig.action)))
            .unwrap_or_default();
        let (mut live, mut paper) = (None, None);
        match self.primary.name {
            "live" => live = book(primary),
            _ => paper = book(primary),
        }
        if self.shadow.is_some() {
            paper = book(shadow);
        }
        let row = DriftRow {
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            symbol: sig.symbol.to_string(),
            bar: sig.bar_time.map(|b| b.to_string()).unwrap_or_default(),
            virtual_action: sig.action.to_string(),
            virtual_pnl: sig.virtual_pnl.to_string(),
            target,
            live,
            paper,
        };
        if let Err(e) = self.drift.append(&row) {
            tracing::warn!(error = %e, "cannot append to drift.csv");
        }
    }

    /// The client drops spots and live trendbars the core loop did not read in time
    /// (`EventStream::dropped_market_data`): a bar forming then may miss its last ticks, so it is
    /// taken from history like after a lost link.
    fn check_market_data_loss(&mut self, dropped: u64) {
        if dropped == self.market_data_dropped {
            return;
        }
        tracing::warn!(
            dropped,
            "market data was dropped (the core loop fell behind); the forming bars will come from history"
        );
        self.market_data_dropped = dropped;
        self.builders
            .values_mut()
            .for_each(BarBuilder::on_link_lost);
    }

    /// Market data and account events from the cTrader client.
    /// Returns the bar this event closed, if any, for the caller to publish.
    fn on_ctrader_event(&mut self, ev: ctrader::client::ClientEvent) -> Option<BarLine> {
        use ctrader::client::ClientEvent;
        let now = self.clock.now().timestamp();
        let AnyBroker::Ctrader(b) = &mut self.primary.broker else {
            return None;
        };
        let mut link_changed = false;
        let closed = match &ev {
            ClientEvent::Spot(q) => {
                let tick = b.on_spot(q, now);
                if let (Some(f), Some((_, _, t))) = (&self.feed_clock, &tick)
                    && let Some(dt) = chrono::DateTime::from_timestamp(*t, 0)
                {
                    f.observe(dt);
                }
                tick.and_then(|(sym, bid, t)| self.builders.get_mut(&sym)?.on_spot(t, bid))
            }
            ClientEvent::LiveBar {
                symbol_id,
                bar,
                bid,
                ..
            } => {
                let sym = b.symbol_of(*symbol_id).cloned();
                sym.and_then(|s| {
                    let builder = self.builders.get_mut(&s)?;
                    // Only the configured timeframe's trendbar is this symbol's bar.
                    (bar.timeframe == builder_timeframe(&self.cfg, &s)?).then_some(())?;
                    builder.on_trendbar(bar, *bid)
                })
            }
            ClientEvent::Connection(c) => {
                tracing::info!(event = ?c, "cTrader connection");
                if let Some(link) = link_state(c) {
                    link_changed = link != self.broker_link;
                    self.broker_link = link;
                }
                match c {
                    ctrader::client::ConnectionEvent::ReconnectScheduled {
                        maintenance_end_ms: Some(end),
                        ..
                    } => self.maintenance_until_ms = Some(*end),
                    ctrader::client::ConnectionEvent::Ready => self.maintenance_until_ms = None,

                    ctrader::client::ConnectionEvent::Disconnected { .. } => {
                        // Ticks are lost from now on: no bar is emitted from partial live data.
                        self.builders
                            .values_mut()
                            .for_each(BarBuilder::on_link_lost);
                    }
                    _ => {}
                }
                b.on_event(&ev);
                None
            }
            other => {
                b.on_event(other);
                None
            }
        };
        // Every client event is progress: market data, account events, and each step of a
        // reconnect (so a broker outage does not turn into a restart loop of the executor).
        self.progress();
        if link_changed {
            self.refresh_status();
        }
        closed
    }

    /// Bars a lost link kept from the live feed (see `barfeed.rs`) are fetched from the broker's
    /// history and published in order before any newer bar. A failed fetch is logged: the preditor
    /// then sees a gap (and logs it) rather than a wrong bar.
    async fn fill_bar_gaps(&mut self) {
        let gaps: Vec<(protocol::Symbol, i64, i64)> = self
            .builders
            .iter_mut()
            .filter_map(|(s, b)| b.take_gap().map(|(from, to)| (s.clone(), from, to)))
            .collect();
        for (symbol, from, to) in gaps {
            let AnyBroker::Ctrader(b) = &self.primary.broker else {
                return;
            };
            let Some(cfg) = self.cfg.symbols.get(&symbol) else {
                continue;
            };
            let (tf, digits) = (cfg.timeframe, cfg.digits);
            let bars = match b.bars_between(&symbol, tf, from, to).await {
                Ok(bars) => bars
                    .iter()
                    .filter_map(|x| history_bar(&symbol, tf, digits, x))
                    .collect(),
                Err(e) => {
                    tracing::error!(%symbol, from, to, error = %e,
                        "bars missed during a broker outage could not be fetched; the preditor will see a gap");
                    Vec::new()
                }
            };
            let Some(builder) = self.builders.get_mut(&symbol) else {
                continue;
            };
            let fresh = builder.accept_backfill(bars);
            tracing::info!(%symbol, from, to, bars = fresh.len(), "bars after a broker outage taken from history");
            self.publish_bars(fresh);
        }
    }

    /// Positions on symbols the config does not trade count in the risk guard with their real lots:
    /// their volume rules are fetched when such a position appears (no request otherwise).
    async fn resolve_position_symbols(&mut self) {
        if let AnyBroker::Ctrader(b) = &mut self.primary.broker
            && let Err(e) = b.resolve_symbols().await
        {
            tracing::warn!(error = %e, "volume rules of an unconfigured symbol holding a position could not be fetched; its lots count as unbounded (no new opens pass the exposure limit)");
        }
    }

    fn on_bar_clock(&mut self) {
        let now = self.clock.now().timestamp();
        let closed: Vec<BarLine> = self
            .builders
            .values_mut()
            .filter_map(|b| b.on_clock(now))
            .collect();
        self.publish_bars(closed);
    }

    /// Closed bars go to the paper books, then to the preditor in one message (except those of a
    /// pair being warmed up, held back until its HISTORY_END).
    fn publish_bars(&mut self, bars: Vec<BarLine>) {
        for b in &bars {
            self.apply_bar_to_books(b);
        }
        let lines: Vec<Line> = bars
            .into_iter()
            .filter_map(|b| self.warming.hold(b))
            .map(Line::Bar)
            .collect();
        self.send_all(&lines);
    }

    /// Starts answering a WARMUP in a task of its own (`warmup.rs`); the answer comes back to
    /// [`Self::on_history`]. Only a configured symbol is served: anything else is refused at once,
    /// so WARMUPs in flight are bounded by the config.
    fn on_warmup(&mut self, w: &Warmup) {
        let (Some((conn, _)), Some(answers)) = (&self.active, &self.history_tx) else {
            return;
        };
        let (conn, answers) = (*conn, answers.clone());
        let Some(digits) = self.cfg.symbols.get(&w.symbol).map(|c| c.digits) else {
            self.send(&Line::Error(ErrorLine::new(
                ErrorCode::UnknownSymbol,
                format!("no {} {} bars to serve", w.symbol, w.timeframe.as_str()),
            )));
            return;
        };
        if !self.warming.start(&w.symbol, w.timeframe) {
            tracing::debug!(symbol = %w.symbol, "WARMUP already being answered");
            return;
        }
        let fetch = match &self.primary.broker {
            AnyBroker::Ctrader(b) => {
                match b.history_request(
                    &w.symbol,
                    w.timeframe,
                    w.count as usize,
                    self.clock.now().timestamp(),
                ) {
                    Ok(request) => Fetch::Broker { request, digits },
                    Err(e) => {
                        tracing::warn!(symbol = %w.symbol, error = %e, "history request failed");
                        Fetch::Ready(None)
                    }
                }
            }
            AnyBroker::Paper(_) => Fetch::Ready(
                self.bars
                    .as_ref()
                    .and_then(|src| src.history(&w.symbol, w.timeframe, w.count as usize)),
            ),
        };
        crate::warmup::serve(conn, w.clone(), fetch, self.log.clone(), answers);
    }

    /// A HISTORY block is ready: its bars are published (SIGNALs may be for them), it goes out,
    /// then the pair's live bars held back meanwhile.
    fn on_history(&mut self, a: HistoryAnswer) {
        let Some((id, tx)) = &self.active else { return };
        if *id != a.conn {
            return; // for a connection that is gone
        }
        let tx = tx.clone();
        for t in &a.newest {
            self.primary
                .engine
                .on_bar_published(&a.symbol, a.timeframe, *t);
            if let Some(s) = &mut self.shadow {
                s.engine.on_bar_published(&a.symbol, a.timeframe, *t);
            }
        }
        // The shadow paper book prices from bar closes; right after a start none has closed on
        // the live feed yet, and the twin's first signal is its decision on this history's last
        // bar: that bar's close is the paper book's price until the feed publishes a newer one.
        if let (Some(s), Some(last)) = (&mut self.shadow, &a.last)
            && s.broker.snapshot_sync(&a.symbol).quote.is_none()
        {
            let close_time = bar_close(last);
            s.broker
                .on_bar_close(&last.symbol, last.close.to_f64(), close_time);
        }
        // The preditor has these bars now: the live feed must not send them again (a bar the
        // builder closes later, or a backfill after a lost link, is dropped by the builder; the
        // live bars held meanwhile are dropped by `Warming::finish`).
        if let (Some(last), Some(builder)) = (&a.last, self.builders.get_mut(&a.symbol))
            && builder_timeframe(&self.cfg, &a.symbol) == Some(a.timeframe)
        {
            builder.mark_delivered(last.time.unix_seconds());
        }
        // Already in signals.log (the task logged it).
        let _ = tx.send(Outbound::Line(a.text));
        let held = self
            .warming
            .finish(&a.symbol, a.timeframe, a.newest.first().copied());
        let lines: Vec<Line> = held.into_iter().map(Line::Bar).collect();
        self.send_all(&lines);
    }

    fn replay_step(&mut self) {
        let Some(src) = &mut self.bars else { return };
        let bars = src.step();
        if bars.is_empty() {
            if !self.replay_done_logged {
                tracing::info!("CSV replay finished: no more bars");
                self.replay_done_logged = true;
                self.refresh_status();
            }
            return;
        }
        self.publish_bars(bars);
    }

    /// SIGHUP: a valid new config replaces symbols, risk limits and staleness; an invalid one is
    /// refused with its problems logged and the running config kept. Broker, IPC and directories
    /// need a restart (a warning says so when they changed).
    fn reload(&mut self) {
        let loaded = ExecutorConfig::load(&self.cfg.path).map(ExecutorConfig::with_model_defaults);
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running config");
                return;
            }
        };
        if new.broker != self.cfg.broker
            || new.ipc != self.cfg.ipc
            || new.state_dir != self.cfg.state_dir
            || new.log_dir != self.cfg.log_dir
        {
            tracing::warn!(
                "broker/ipc/state_dir/log_dir changes need a restart; they are not applied"
            );
        }
        let rules = engine_rules(&new);
        self.primary
            .engine
            .set_rules(rules.clone(), new.risk.clone());
        match &mut self.primary.broker {
            AnyBroker::Paper(p) => p.set_specs(new.symbols.clone()),
            AnyBroker::Ctrader(c) => c.set_specs(new.symbols.clone()),
        }
        if let Some(s) = &mut self.shadow {
            s.engine.set_rules(rules, new.risk.clone());
            s.broker.set_specs(new.symbols.clone());
        }
        self.cfg.symbols = new.symbols;
        self.cfg.risk = new.risk;
        self.cfg.stale_signal_max_age_secs = new.stale_signal_max_age_secs;
        self.cfg.models_dir = new.models_dir;
        tracing::info!(symbols = self.cfg.symbols.len(), "config reloaded");
    }
}

/// The timeframe a symbol's bars are built for.
fn builder_timeframe(
    cfg: &ExecutorConfig,
    symbol: &protocol::Symbol,
) -> Option<protocol::Timeframe> {
    cfg.symbols.get(symbol).map(|c| c.timeframe)
}

/// The cTrader link in a word, for `STATUS=`; `None` for steps that do not change it.
fn link_state(ev: &ctrader::client::ConnectionEvent) -> Option<&'static str> {
    use ctrader::client::ConnectionEvent as C;
    match ev {
        C::Connecting { .. } => Some("connecting"),
        C::Ready => Some("connected"),
        C::SetupFailed { .. } | C::Disconnected { .. } => Some("disconnected"),
        C::ReconnectScheduled { .. } => Some("reconnecting"),
        C::AuthorizationLost { .. } => Some("unauthorized"),
        _ => None,
    }
}

/// When a published bar closes (Unix s): the next bar's open, by the calendar for MN1.
fn bar_close(bar: &BarLine) -> i64 {
    bar.to_bar()
        .close_time(bar.timeframe)
        .unwrap_or(protocol::BarTime::MAX_UNIX)
}

/// A bar from the broker's history as a BAR line (`None` if a price does not fit `digits`).
pub(crate) fn history_bar(
    symbol: &protocol::Symbol,
    timeframe: protocol::Timeframe,
    digits: usize,
    x: &protocol::Bar,
) -> Option<BarLine> {
    x.to_line(symbol, timeframe, digits).ok()
}

/// Archives the journal once it passes [`crate::journal::ROTATE_BYTES`] (see `journal.rs`). A failed
/// rotation is logged and the old file kept: it only grows.
fn rotate_if_large(journal: &mut Journal) {
    if journal.len_bytes() < crate::journal::ROTATE_BYTES {
        return;
    }
    // Wall-clock time names the archive (the feed's clock may repeat in a replay).
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    match journal.rotate(crate::engine::ANSWERED_PER_SYMBOL, &stamp) {
        Ok((archive, kept)) => {
            tracing::info!(archive = %archive.display(), kept, "journal rotated")
        }
        Err(e) => tracing::warn!(error = %e, "journal rotation failed; keeping the old file"),
    }
}

/// How long after an announced maintenance end an unanswered probe is still put down to it.
const MAINTENANCE_GRACE_MS: i64 = 5 * 60 * 1000;

/// Whether an unanswered broker probe is explained by an announced maintenance window (so the
/// watchdog is fed rather than restarting the executor into a server that is down on purpose).
/// Bounded: past the announced end plus a grace period, silence is a fault again.
fn waiting_out_maintenance(until_ms: Option<i64>, now_ms: i64) -> bool {
    until_ms.is_some_and(|end| now_ms <= end.saturating_add(MAINTENANCE_GRACE_MS))
}

/// The outcome of a broker probe, as far as the watchdog cares.
#[derive(Debug)]
enum ProbeResult {
    /// The server answered (even with an error): the link and the client are alive.
    Answered,
    /// No answer: timed out, disconnected or the client is gone.
    Unanswered(String),
}

impl ProbeResult {
    fn of(r: Result<String, ctrader::client::ClientError>) -> Self {
        use ctrader::client::ClientError as E;
        match r {
            Ok(_) | Err(E::Broker { .. }) => ProbeResult::Answered,
            Err(e) => ProbeResult::Unanswered(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_maintenance_explains_silence_until_its_end_plus_grace() {
        let end = 1_770_000_000_000;
        assert!(waiting_out_maintenance(Some(end), end - 60_000));
        assert!(waiting_out_maintenance(
            Some(end),
            end + MAINTENANCE_GRACE_MS
        ));
        assert!(!waiting_out_maintenance(
            Some(end),
            end + MAINTENANCE_GRACE_MS + 1
        ));
        assert!(!waiting_out_maintenance(None, end));
    }
}
