//! The loop: wait for the first event of any source, take whatever else that source already has
//! (a bar boundary's spots, a preditor message's lines: their BARs go out as one message and their
//! SIGNALs are decided as one batch), hand the batch to [`Core::handle`], repeat until shutdown.
//!
//! Sources only turn I/O into [`Event`]s ([`Source`]): the preditor's connections (the accept loop's
//! channel), the broker's link (the cTrader client's event stream), the answers of tasks the loop
//! started, the operator's commands (SIGHUP's reloads, and the channel `Executor::commands` hands
//! out), and the timers the feed asked for. A new source is a type that implements [`Source`] and
//! a field of [`Sources`]; what its events mean is decided in `Core::handle`, never here.

use std::future::Future;
use std::time::Duration;

use ctrader::client::EventStream;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};

use super::Core;
use super::event::{Command, CommandRequest, Event, Tick};
use crate::broker::Broker;
use crate::ipc::ConnEvent;

/// Queued events handled in one turn of the core loop: enough for a bar boundary of every symbol
/// (a spot, a live trendbar and their updates: up to about 5 broker events per symbol) and for
/// every symbol's SIGNAL to form one batch, few enough that timers are not starved.
const MAX_EVENTS_PER_TURN: usize = 512;
/// Times the core loop lets the I/O driver run to collect the rest of a burst (a bar boundary's
/// spots, a preditor message's lines) before acting on it: each costs microseconds, while acting on
/// half a burst makes the other half wait a whole broker round trip.
const MAX_YIELDS_PER_TURN: usize = 2;

/// Something that yields events for the loop.
pub trait Source {
    /// The next event; `None` once the source has ended (it is not asked again).
    fn next(&mut self) -> impl Future<Output = Option<Event>>;
    /// An event already waiting, if any, without waiting.
    fn ready(&mut self) -> Option<Event>;
}

impl Source for mpsc::Receiver<ConnEvent> {
    async fn next(&mut self) -> Option<Event> {
        self.recv().await.map(Event::Preditor)
    }
    fn ready(&mut self) -> Option<Event> {
        self.try_recv().ok().map(Event::Preditor)
    }
}

/// The answers of tasks the loop started (WARMUP blocks, probes, account refreshes).
impl Source for mpsc::UnboundedReceiver<Event> {
    async fn next(&mut self) -> Option<Event> {
        self.recv().await
    }
    fn ready(&mut self) -> Option<Event> {
        self.try_recv().ok()
    }
}

/// Operator commands from `executor ctl` (the control socket's tasks).
impl Source for mpsc::Receiver<crate::ops::ctl::CtlCall> {
    async fn next(&mut self) -> Option<Event> {
        self.recv().await.map(Event::Operator)
    }
    fn ready(&mut self) -> Option<Event> {
        self.try_recv().ok().map(Event::Operator)
    }
}

/// Commands the hub link received (raw, verified on the loop).
#[derive(Debug)]
pub struct HubCommands(pub mpsc::Receiver<Vec<u8>>);

impl Source for HubCommands {
    async fn next(&mut self) -> Option<Event> {
        self.0.recv().await.map(Event::HubCommand)
    }
    fn ready(&mut self) -> Option<Event> {
        self.0.try_recv().ok().map(Event::HubCommand)
    }
}

/// Config reloads asked for (SIGHUP), as commands.
#[derive(Debug)]
pub struct Reloads(pub mpsc::Receiver<()>);

impl Source for Reloads {
    async fn next(&mut self) -> Option<Event> {
        self.0.recv().await?;
        Some(Event::Command(CommandRequest::new(Command::Reload)))
    }
    fn ready(&mut self) -> Option<Event> {
        self.0.try_recv().ok()?;
        Some(Event::Command(CommandRequest::new(Command::Reload)))
    }
}

/// Operator commands (`Executor::commands`).
impl Source for mpsc::Receiver<CommandRequest> {
    async fn next(&mut self) -> Option<Event> {
        self.recv().await.map(Event::Command)
    }
    fn ready(&mut self) -> Option<Event> {
        self.try_recv().ok().map(Event::Command)
    }
}

/// The cTrader client's events. The client drops spots and live trendbars the loop does not read
/// in time; a rise of its count is reported first, as [`Event::MarketDataLost`], so no bar is built
/// from what is left of them.
#[derive(Debug)]
pub struct BrokerLink {
    stream: EventStream,
    dropped: u64,
    /// An event received while a loss was reported ahead of it.
    held: Option<ctrader::client::ClientEvent>,
}

impl BrokerLink {
    pub fn new(stream: EventStream) -> Self {
        BrokerLink {
            stream,
            dropped: 0,
            held: None,
        }
    }

    fn loss(&mut self) -> Option<Event> {
        let dropped = self.stream.dropped_market_data();
        (dropped != self.dropped).then(|| {
            self.dropped = dropped;
            Event::MarketDataLost { dropped }
        })
    }
}

impl Source for BrokerLink {
    async fn next(&mut self) -> Option<Event> {
        if let Some(e) = self.ready() {
            return Some(e);
        }
        let ev = self.stream.recv().await?;
        Some(match self.loss() {
            Some(lost) => {
                self.held = Some(ev);
                lost
            }
            None => Event::Broker(Box::new(ev)),
        })
    }
    fn ready(&mut self) -> Option<Event> {
        self.loss()
            .or_else(|| self.held.take().map(|e| Event::Broker(Box::new(e))))
            .or_else(|| self.stream.try_recv().map(|e| Event::Broker(Box::new(e))))
    }
}

/// The timers the feed asked for; one tick per turn.
#[derive(Debug)]
pub struct Timers(Vec<(Tick, Interval)>);

impl Timers {
    /// Each tick with its period and first delay. A tick missed while the loop was busy is not
    /// made up in a burst: the next comes a period after the late one.
    pub fn new(ticks: Vec<(Tick, Duration, Duration)>) -> Self {
        let now = tokio::time::Instant::now();
        Timers(
            ticks
                .into_iter()
                .map(|(tick, period, first)| {
                    let mut i = tokio::time::interval_at(now + first, period);
                    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    (tick, i)
                })
                .collect(),
        )
    }
}

impl Source for Timers {
    async fn next(&mut self) -> Option<Event> {
        if self.0.is_empty() {
            return None;
        }
        std::future::poll_fn(|cx| {
            for (tick, interval) in &mut self.0 {
                if interval.poll_tick(cx).is_ready() {
                    return std::task::Poll::Ready(Some(Event::Tick(*tick)));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
    fn ready(&mut self) -> Option<Event> {
        None
    }
}

/// A source the loop still listens to; once it has ended it is never polled again.
#[derive(Debug)]
struct Live<S>(Option<S>);

impl<S: Source> Live<S> {
    async fn next(&mut self) -> Event {
        if let Some(s) = &mut self.0 {
            match s.next().await {
                Some(e) => return e,
                None => self.0 = None,
            }
        }
        std::future::pending().await
    }

    /// Adds what the source already has to `batch` (letting the I/O driver run a little for the
    /// rest of a burst).
    async fn drain(&mut self, batch: &mut Vec<Event>) {
        let Some(s) = &mut self.0 else { return };
        let mut yields = 0;
        while batch.len() < MAX_EVENTS_PER_TURN {
            if let Some(e) = s.ready() {
                batch.push(e);
                continue;
            }
            if yields == MAX_YIELDS_PER_TURN {
                break;
            }
            yields += 1;
            tokio::task::yield_now().await;
        }
    }
}

/// Every source of the loop.
#[derive(Debug)]
pub struct Sources {
    preditor: Live<mpsc::Receiver<ConnEvent>>,
    answers: Live<mpsc::UnboundedReceiver<Event>>,
    reloads: Live<Reloads>,
    operator: Live<mpsc::Receiver<crate::ops::ctl::CtlCall>>,
    hub: Live<HubCommands>,
    commands: Live<mpsc::Receiver<CommandRequest>>,
    broker: Live<BrokerLink>,
    timers: Live<Timers>,
}

impl Sources {
    pub fn new(
        preditor: mpsc::Receiver<ConnEvent>,
        answers: mpsc::UnboundedReceiver<Event>,
        reloads: mpsc::Receiver<()>,
        commands: mpsc::Receiver<CommandRequest>,
        broker: Option<BrokerLink>,
        timers: Timers,
    ) -> Self {
        Sources {
            preditor: Live(Some(preditor)),
            answers: Live(Some(answers)),
            reloads: Live(Some(Reloads(reloads))),
            operator: Live(None),
            hub: Live(None),
            commands: Live(Some(commands)),
            broker: Live(broker),
            timers: Live(Some(timers)),
        }
    }

    /// Listens to operator commands on `calls` too.
    pub fn with_operator(mut self, calls: mpsc::Receiver<crate::ops::ctl::CtlCall>) -> Self {
        self.operator = Live(Some(calls));
        self
    }

    /// Listens to the hub link's commands too.
    pub fn with_hub(mut self, commands: mpsc::Receiver<Vec<u8>>) -> Self {
        self.hub = Live(Some(HubCommands(commands)));
        self
    }

    /// The next events: the first of any source, and what that source already has behind it.
    pub async fn next_batch(&mut self) -> Vec<Event> {
        let mut batch = Vec::new();
        tokio::select! {
            e = self.preditor.next() => {
                batch.push(e);
                self.preditor.drain(&mut batch).await;
            }
            e = self.broker.next() => {
                batch.push(e);
                self.broker.drain(&mut batch).await;
            }
            e = self.answers.next() => {
                batch.push(e);
                self.answers.drain(&mut batch).await;
            }
            e = self.reloads.next() => batch.push(e),
            // One command a turn: each is handled between batches, like a signal.
            e = self.operator.next() => batch.push(e),
            e = self.hub.next() => batch.push(e),
            e = self.commands.next() => batch.push(e),
            e = self.timers.next() => batch.push(e),
        }
        batch
    }
}

/// Runs `core` over `sources` until `shutdown` resolves.
pub async fn serve<B: Broker>(
    mut core: Core<B>,
    mut sources: Sources,
    shutdown: impl Future<Output = ()>,
) {
    core.ready();
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => break,
            b = sources.next_batch() => b,
        };
        core.handle(batch).await;
    }
    core.stop();
}
