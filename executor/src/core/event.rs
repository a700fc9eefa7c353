//! The one event type of the core loop. Every source (the preditor's connections, the broker's
//! link, the timers, the tasks that run requests off the loop, the operator) is a small task or
//! type that only turns its I/O into [`Event`]s; [`super::Core::handle`] decides what each means.

use protocol::Signal;
use tokio::sync::oneshot;

use crate::broker::{AccountFigures, BrokerError, BrokerEvent};
use crate::feed::ProbeResult;
use crate::ipc::ConnEvent;
use crate::ipc::warmup::HistoryAnswer;

#[derive(Debug)]
pub enum Event {
    /// A preditor connection authenticated, sent a line or a control line, or closed.
    Preditor(ConnEvent),
    /// A WARMUP's HISTORY block is ready (its task fetched and formatted it).
    History(HistoryAnswer),
    /// What the broker's link pushed: market data, executions, connection steps.
    Broker(Box<BrokerEvent>),
    /// The broker's link dropped market data the loop did not read in time (`dropped` so far).
    MarketDataLost { dropped: u64 },
    /// A timer fired.
    Tick(Tick),
    /// The answer of a link probe sent off the loop.
    Probe(ProbeResult),
    /// The account figures a refresh brought back.
    Account(Result<AccountFigures, BrokerError>),
    /// An operator command, and where its outcome goes.
    Command(CommandRequest),
    /// An operator command from `executor ctl` (`crate::ops`): the typed set of the `fleet`
    /// crate, with its id, journaled before it acts (`core/operate.rs`); or a state snapshot.
    Operator(crate::ops::ctl::CtlCall),
    /// A message on `oracle/{id}/commands` (the hub link's), unverified: `core/hub.rs` checks it.
    HubCommand(Vec<u8>),
}

impl Event {
    /// The SIGNAL this event carries, from connection `conn` (consecutive ones form one batch).
    pub fn signal(&self) -> Option<(u64, &Signal)> {
        match self {
            Event::Preditor(ConnEvent::Line {
                id,
                line: protocol::Line::Signal(s),
            }) => Some((*id, s)),
            _ => None,
        }
    }
}

/// The timers of the loop; which ones run is the feed's choice (`Feed::ticks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// The paper replay's next step.
    Replay,
    /// Bars may have closed by the clock (boundary + 1 s).
    BarClock,
    /// The live book may be due for a reconcile.
    Reconcile,
    /// The broker's link may need a probe (it has been quiet).
    Probe,
    /// The account figures are due for a refresh.
    AccountRefresh,
    /// The `/metrics` gauges are due for a refresh from the status document (every second).
    Metrics,
}

/// What an operator can ask of the running executor. Today: the config reload (SIGHUP, and the
/// operator's Reload) and the kill switch (the preditor's `CONTROL|KILL_SWITCH|ON/OFF`), sent on
/// `Executor::commands`, so every command reaches the books by one path: a new command is a
/// variant here and an arm of `Core::command` (`commands.rs`). The typed operator commands of
/// `executor ctl` (`fleet::Command`, with an id, journaled before they act) come as
/// [`Event::Operator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Re-read the config file (symbols, risk limits, staleness).
    Reload,
    /// Set or clear the kill switch on every book, kept across restarts.
    KillSwitch { on: bool },
}

/// A command and who waits for its outcome (`None`: nobody, e.g. a signal handler).
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    pub reply: Option<oneshot::Sender<CommandOutcome>>,
}

impl CommandRequest {
    /// A command nobody waits on.
    pub fn new(command: Command) -> Self {
        CommandRequest {
            command,
            reply: None,
        }
    }

    /// A command, and where its outcome will arrive.
    pub fn asking(command: Command) -> (Self, oneshot::Receiver<CommandOutcome>) {
        let (tx, rx) = oneshot::channel();
        let req = CommandRequest {
            command,
            reply: Some(tx),
        };
        (req, rx)
    }
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Done, as asked.
    Done,
    /// Not done, or not all of it (the text says what and why).
    Failed(String),
}
