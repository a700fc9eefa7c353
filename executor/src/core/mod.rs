//! The core: one loop ([`run`]) over one event type ([`event::Event`]), each event handed to
//! [`Core::handle`]. One task owns the books, the journal, the feed and the preditor link and
//! handles events one at a time, so signals are executed in arrival order and no lock guards
//! trading state. Everything slow (a WARMUP's history, a probe, an account refresh) runs in a task
//! of its own and comes back as an event.
//!
//! - [`event`]: the events, the timers' ticks and the operator commands.
//! - [`run`]: the sources and the loop.
//! - [`books`]: the primary desk, the shadow desk, the journal.
//! - [`sink`]: where happenings are reported besides the preditor (drift.csv, systemd, …).
//! - `signals`, `bars`, `link`, `commands`: the handlers, by what the event is about; `operate`: the
//!   operator commands of `executor ctl` (`Event::Operator`), the status document and `/metrics`.
//!
//! What plugs in, without touching the loop's logic:
//! - a command: a [`event::Command`] variant and its arm in `Core::command` (`commands.rs`); it is
//!   sent as a [`event::CommandRequest`] (with a reply) on [`Executor::commands`], from any task;
//! - an output (a hub publisher, `/metrics`): a [`sink::Sink`] given to [`Executor::with_sink`],
//!   told every [`sink::Report`] on the loop; it must return at once (bounded queue, drop when full);
//! - an input: a [`run::Source`] and a field of [`run::Sources`]; `Core::handle` decides what its
//!   events mean.
//!
//! From `main()` to the signal decision: [`crate::startup`] builds an [`Executor`] (a [`Core`] and
//! its sources), [`Executor::run`] starts the IPC server and [`run::serve`]s; a SIGNAL line is an
//! `Event::Preditor`, which `Core::handle` batches into `Core::on_signals`, which runs
//! [`crate::desk::Desk::handle_batch`] on each book, whose [`crate::desk::engine::SignalEngine`]
//! decides.

mod bars;
pub mod books;
mod commands;
pub mod event;
mod hub;
mod link;
mod operate;
pub(crate) use operate::{Operations, fleet_book, journaled_commands};
pub mod run;
mod signals;
pub mod sink;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use protocol::handshake::IpcKey;
use protocol::{ErrorCode, ErrorLine, Line, Mode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use self::books::Books;
use self::event::{CommandRequest, Event, Tick};
use self::run::{BrokerLink, Sources, Timers};
use self::sink::{Report, Sink};
use crate::broker::Broker;
use crate::broker::ctrader::CtraderBroker;
use crate::broker::paper::PaperBroker;
use crate::clock::Clock;
use crate::config::ExecutorConfig;
use crate::feed::Feed;
use crate::ipc::{ConnEvent, Preditor};
use crate::notify::SystemdNotifier;
use crate::state::StateLock;

pub use crate::startup::RunError;

/// Hub commands waiting for the loop (the link waits when it is full; commands are rare).
const HUB_COMMAND_QUEUE: usize = 16;

/// How often the `/metrics` gauges are refreshed from the status document.
const METRICS_PERIOD: Duration = Duration::from_secs(1);

/// Everything the loop owns.
#[derive(Debug)]
pub struct Core<B> {
    cfg: ExecutorConfig,
    clock: Arc<dyn Clock>,
    books: Books<B>,
    feed: Feed,
    preditor: Preditor,
    sinks: Vec<Box<dyn Sink>>,
    /// Where the tasks the loop starts send their results back as events.
    answers: mpsc::UnboundedSender<Event>,
    account_in_flight: bool,
    /// The last `STATUS=` line reported.
    status: String,
    /// Operator commands, status, metrics (`operate.rs`).
    ops: operate::Operations,
    _lock: StateLock,
}

/// A started executor: books open and reconciled, logs open, state directory locked; the broker
/// behind the primary book is decided here, once.
#[derive(Debug)]
pub enum Executor {
    Paper(Box<Started<PaperBroker>>),
    Live(Box<Started<CtraderBroker>>),
}

/// A core and what its loop will listen to.
#[derive(Debug)]
pub struct Started<B> {
    pub(crate) core: Core<B>,
    pub(crate) answers: mpsc::UnboundedReceiver<Event>,
    /// Operator commands (`Executor::commands`), and the sender handed out.
    pub(crate) commands: mpsc::Receiver<CommandRequest>,
    pub(crate) commands_tx: mpsc::Sender<CommandRequest>,
    pub(crate) broker: Option<BrokerLink>,
    pub(crate) key: IpcKey,
    /// The hub link and its outbox's reading side (`crate::hub`), when configured.
    pub(crate) hub: Option<(crate::hub::Link, crate::hub::outbox::Reader)>,
}

impl Executor {
    pub fn mode(&self) -> Mode {
        match self {
            Executor::Paper(s) => s.core.cfg.broker.mode,
            Executor::Live(s) => s.core.cfg.broker.mode,
        }
    }

    /// The metrics this executor feeds (for the `/metrics` listener).
    pub fn metrics(&self) -> Arc<crate::ops::metrics::ExecutorMetrics> {
        match self {
            Executor::Paper(s) => s.core.metrics(),
            Executor::Live(s) => s.core.metrics(),
        }
    }

    /// Reports readiness, status and watchdog progress to systemd through `notify` (without it
    /// nothing is sent).
    pub fn with_notifier(self, notify: SystemdNotifier) -> Self {
        self.with_sink(Box::new(notify))
    }

    /// Reports every happening ([`Report`]) to `sink` too, on the loop: it must return at once
    /// (append, or send on a bounded channel and drop when full), never wait on a peer.
    pub fn with_sink(mut self, sink: Box<dyn Sink>) -> Self {
        match &mut self {
            Executor::Paper(s) => s.core.sinks.push(sink),
            Executor::Live(s) => s.core.sinks.push(sink),
        }
        self
    }

    /// Where operator commands go (an `executor ctl` socket, the hub's link): each reaches the
    /// books as [`Event::Command`], by the same path as SIGHUP's reload and the preditor's kill
    /// switch, and its outcome comes back on the request's `reply`. Clone it freely.
    pub fn commands(&self) -> mpsc::Sender<CommandRequest> {
        match self {
            Executor::Paper(s) => s.commands_tx.clone(),
            Executor::Live(s) => s.commands_tx.clone(),
        }
    }

    /// Serves the preditor on `listener` until `shutdown` resolves. Each message on `reload`
    /// re-reads the config file.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        reload: mpsc::Receiver<()>,
    ) -> Result<(), RunError> {
        let (tx, rx) = mpsc::channel::<ConnEvent>(1024);
        let (key, mode, cfg) = match &self {
            Executor::Paper(s) => (s.key.clone(), s.core.cfg.broker.mode, &s.core.cfg),
            Executor::Live(s) => (s.key.clone(), s.core.cfg.broker.mode, &s.core.cfg),
        };
        let hello_timeout = Duration::from_secs(cfg.ipc.hello_timeout_secs);
        let log = match &self {
            Executor::Paper(s) => s.core.preditor.log().clone(),
            Executor::Live(s) => s.core.preditor.log().clone(),
        };
        let accept = tokio::spawn(crate::ipc::accept_loop(
            listener,
            tx,
            key,
            mode,
            hello_timeout,
            log,
        ));
        self.serve(rx, shutdown, reload).await;
        accept.abort();
        // Give connection tasks a moment to send their close frames.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    /// The loop over the connections' events arriving on `preditor` (what [`Executor::run`]'s
    /// accept loop sends; a test can send them itself), until `shutdown` resolves.
    pub async fn serve(
        self,
        preditor: mpsc::Receiver<ConnEvent>,
        shutdown: impl Future<Output = ()>,
        reload: mpsc::Receiver<()>,
    ) {
        match self {
            Executor::Paper(s) => s.serve(preditor, shutdown, reload).await,
            Executor::Live(s) => s.serve(preditor, shutdown, reload).await,
        }
    }
}

impl<B: Broker> Started<B> {
    async fn serve(
        self,
        preditor: mpsc::Receiver<ConnEvent>,
        shutdown: impl Future<Output = ()>,
        reload: mpsc::Receiver<()>,
    ) {
        let mut ticks = self.core.feed.ticks();
        ticks.push((Tick::Metrics, METRICS_PERIOD, METRICS_PERIOD));
        let timers = Timers::new(ticks);
        // The loop's own sender goes: the commands source ends when every handed-out one has.
        drop(self.commands_tx);
        let (ctl_tx, ctl_rx) = mpsc::channel::<crate::ops::ctl::CtlCall>(16);
        let mut core = self.core;
        let ctl = core.ops.ctl_listener.take().map(|l| {
            tokio::spawn(crate::ops::ctl::serve(
                l,
                ctl_tx,
                crate::ops::ctl::Allowed::me(),
            ))
        });
        let socket = crate::ops::ctl::socket_path(&core.cfg.state_dir);
        let sources = Sources::new(
            preditor,
            self.answers,
            reload,
            self.commands,
            self.broker,
            timers,
        )
        .with_operator(ctl_rx);
        let (sources, hub) = match self.hub {
            None => (sources, None),
            Some((link, reader)) => {
                let (tx, rx) = mpsc::channel(HUB_COMMAND_QUEUE);
                (
                    sources.with_hub(rx),
                    crate::hub::link::spawn(link, reader, tx),
                )
            }
        };
        run::serve(core, sources, shutdown).await;
        if let Some(c) = ctl {
            c.abort();
        }
        // The loop reported Stopping: the link says offline and disconnects, within its grace.
        if let Some(done) = hub {
            let _ =
                tokio::time::timeout(crate::hub::link::STOP_GRACE + Duration::from_secs(1), done)
                    .await;
        }
        let _ = std::fs::remove_file(socket);
    }
}

impl<B: Broker> Core<B> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: ExecutorConfig,
        clock: Arc<dyn Clock>,
        books: Books<B>,
        feed: Feed,
        preditor: Preditor,
        sinks: Vec<Box<dyn Sink>>,
        answers: mpsc::UnboundedSender<Event>,
        ops: operate::Operations,
        lock: StateLock,
    ) -> Self {
        let mut core = Core {
            cfg,
            clock,
            books,
            feed,
            preditor,
            sinks,
            answers,
            account_in_flight: false,
            status: String::new(),
            ops,
            _lock: lock,
        };
        core.ops.metrics.on_link(true);
        core.seed_quotes_from_history();
        core
    }

    /// One batch of events from one source, in arrival order. Consecutive SIGNALs of the active
    /// preditor are decided together ([`crate::desk::Desk::handle_batch`]), so the last symbol of
    /// a bar does not wait for the round trips of the others; the bars a burst of broker events
    /// closed go out as one message.
    pub async fn handle(&mut self, batch: Vec<Event>) {
        let mut signals = Vec::new();
        let mut closed = Vec::new();
        let mut broker_events = false;
        for ev in batch {
            if let Some((id, _)) = ev.signal()
                && self.preditor.is_active(id)
            {
                self.progress();
                if let Some(sig) = into_signal(ev) {
                    signals.push(sig);
                }
                continue;
            }
            if !signals.is_empty() {
                self.on_signals(std::mem::take(&mut signals)).await;
            }
            match ev {
                Event::Preditor(c) => self.on_preditor(c).await,
                Event::History(a) => self.on_history(a),
                Event::Broker(e) => {
                    broker_events = true;
                    closed.extend(self.on_broker_event(&e));
                }
                Event::MarketDataLost { dropped } => self.feed.market_data_lost(dropped),
                Event::Tick(t) => self.on_tick(t).await,
                Event::Probe(r) => self.on_probe(r),
                Event::Account(r) => self.on_account(r),
                Event::Command(c) => self.on_command(c),
                // Between batches, like a signal: journaled before it acts.
                Event::Operator(call) => self.on_ctl(call).await,
                Event::HubCommand(raw) => self.on_hub_command(raw).await,
            }
        }
        if !signals.is_empty() {
            self.on_signals(signals).await;
        }
        if broker_events {
            self.publish_bars(closed);
            let backfill = self.feed.fill_gaps().await;
            self.publish_bars(backfill);
            self.books.primary.broker.after_events().await;
        }
        self.refresh_status();
    }

    async fn on_preditor(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Authenticated { id, version, tx } => {
                self.preditor.authenticated(id, &version, tx)
            }
            ConnEvent::Closed { id } => {
                self.preditor.closed(id);
            }
            // From a connection that was just replaced.
            ConnEvent::Line { id, .. } | ConnEvent::Control { id, .. }
                if !self.preditor.is_active(id) => {}
            ConnEvent::Line { line, .. } => {
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
            ConnEvent::Control { text, .. } => self.on_control(&text),
        }
    }

    async fn on_tick(&mut self, tick: Tick) {
        match tick {
            Tick::Replay => {
                // Bars are only stepped for a connected preditor; the tick itself is progress.
                if self.preditor.connection().is_some() {
                    let bars = self.feed.on_tick(tick, self.clock.now().timestamp());
                    self.publish_bars(bars);
                }
                self.progress();
            }
            Tick::BarClock => {
                let bars = self.feed.on_tick(tick, self.clock.now().timestamp());
                self.publish_bars(bars);
                let backfill = self.feed.fill_gaps().await;
                self.publish_bars(backfill);
            }
            Tick::Reconcile => {
                let at = self.clock.instant();
                self.books.primary.reconcile_if_due(Some(at)).await;
            }
            Tick::Probe => self.probe(),
            Tick::AccountRefresh => self.refresh_account(),
            Tick::Metrics => self.refresh_metrics(),
        }
    }

    /// The one-line human summary sent as systemd `STATUS=`.
    pub fn status_line(&self) -> String {
        let enabled = self.cfg.symbols.values().filter(|s| s.enabled).count();
        let preditor = if self.preditor.connection().is_some() {
            "preditor connected"
        } else {
            "no preditor"
        };
        format!(
            "mode {}, {} symbols ({} enabled), {}, {}",
            self.cfg.broker.mode.as_str(),
            self.cfg.symbols.len(),
            enabled,
            preditor,
            self.feed.status()
        )
    }

    fn report(&mut self, r: Report<'_>) {
        for s in &mut self.sinks {
            s.report(&r);
        }
    }

    fn progress(&mut self) {
        let at = self.clock.instant();
        self.report(Report::Progress(at));
    }

    /// Reports the status line when it changed.
    fn refresh_status(&mut self) {
        let s = self.status_line();
        if s != self.status {
            self.report(Report::Status(&s));
            self.status = s;
        }
    }

    /// The listener is bound and startup has reconciled the books: ready to serve.
    fn ready(&mut self) {
        let s = self.status_line();
        self.report(Report::Ready(&s));
        tracing::info!(status = %s, "ready");
        self.status = s;
    }

    fn stop(&mut self) {
        self.report(Report::Stopping);
        tracing::info!("shutting down");
        self.preditor
            .close(ErrorLine::new(ErrorCode::Shutdown, "executor stopping"));
    }
}

fn into_signal(ev: Event) -> Option<protocol::Signal> {
    match ev {
        Event::Preditor(ConnEvent::Line {
            line: Line::Signal(s),
            ..
        }) => Some(s),
        _ => None,
    }
}
