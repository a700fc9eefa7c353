//! Where the core loop reports what happened, besides the preditor: `drift.csv`, systemd's
//! notifications, the hub's outbox (`crate::hub`). A sink is called on the loop, once
//! per happening, and must return at once: append to a file, send on a bounded channel and drop
//! when it is full — never wait on a peer, since every symbol's next order waits behind it.

use tokio::time::Instant;

use fleet::{CommandOutcome, Telemetry};
use protocol::{Ack, BarLine, Signal};

use crate::drift::{DriftLog, DriftRow};
use crate::notify::SystemdNotifier;
use crate::orders::Book;

/// One happening.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    /// Serving; the status line.
    Ready(&'a str),
    /// A config reload started.
    Reloading,
    /// The status line changed.
    Status(&'a str),
    /// The loop handled real work at this instant (the watchdog's food).
    Progress(Instant),
    /// Shutting down.
    Stopping,
    /// A signal's outcome on every book.
    Drift(&'a DriftRow),
    /// A SIGNAL from the active preditor, before the books decide it.
    Signal(&'a Signal),
    /// The ACK a book answered.
    Ack(Book, &'a Ack),
    /// A closed bar sent to the preditor.
    Bar(&'a BarLine),
    /// The executor's figures (every second, from the status document `/metrics` shows).
    Telemetry(&'a Telemetry),
    /// The answer to a hub command (`core/hub.rs`).
    CommandResult(&'a CommandOutcome),
}

pub trait Sink: Send + std::fmt::Debug {
    fn report(&mut self, r: &Report<'_>);
}

impl Sink for DriftLog {
    fn report(&mut self, r: &Report<'_>) {
        if let Report::Drift(row) = r
            && let Err(e) = self.append(row)
        {
            tracing::warn!(error = %e, "cannot append to drift.csv");
        }
    }
}

impl Sink for SystemdNotifier {
    fn report(&mut self, r: &Report<'_>) {
        match *r {
            Report::Ready(status) => self.ready(status),
            Report::Reloading => self.reloading(),
            Report::Status(status) => self.status(status),
            Report::Progress(at) => self.progress(at.into_std()),
            Report::Stopping => self.stopping(),
            Report::Drift(_)
            | Report::Signal(_)
            | Report::Ack(..)
            | Report::Bar(_)
            | Report::Telemetry(_)
            | Report::CommandResult(_) => {}
        }
    }
}
