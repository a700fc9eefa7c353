//! Brokers behind one trait: [`paper::PaperBroker`] (simulated fills, persisted book) and, when the
//! cTrader client is available, a cTrader adapter. The engine never talks to a broker directly; the
//! desk ([`crate::desk`]) executes the engine's plans through this trait.

pub mod account;
pub mod ctrader;
pub mod live_book;
pub mod outcome;
pub mod paper;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use protocol::Reason;

use crate::desk::risk::RiskApproved;
use crate::orders::{Book, BookSnapshot, CloseIntent, Fill, OpenIntent};

/// A broker failure, cloneable so it can travel into journals and drift rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BrokerError {
    #[error("request timed out")]
    Timeout,
    #[error("connection lost")]
    Disconnected,
    #[error("not connected")]
    NotConnected,
    #[error("not enough money: {0}")]
    NotEnoughMoney(String),
    #[error("market closed: {0}")]
    MarketClosed(String),
    #[error("bad volume: {0}")]
    BadVolume(String),
    #[error("position {0} not found")]
    PositionNotFound(u64),
    /// The broker accepted the order, then cancelled it or let it expire: nothing of an open
    /// executed, or part of a close did not.
    #[error("cancelled by the broker: {0}")]
    Cancelled(String),
    #[error("no price for {0}")]
    NoQuote(String),
    #[error("broker error {code}: {description}")]
    Rejected { code: String, description: String },
    #[error("state file: {0}")]
    Persist(String),
    /// The desk never sent the order: a close of its plan failed first, or the risk guard refused
    /// it once the closes were confirmed. Its intent was journaled, so this is its result.
    #[error("not sent (NOT_SENT): {0}")]
    NotSent(String),
}

impl BrokerError {
    /// The ACK reason for this failure.
    pub fn reason(&self) -> Reason {
        match self {
            BrokerError::Timeout => Reason::Timeout,
            BrokerError::Disconnected => Reason::Disconnected,
            BrokerError::NotConnected => Reason::NotConnected,
            BrokerError::NotEnoughMoney(_) => Reason::Margin,
            BrokerError::MarketClosed(_) | BrokerError::NoQuote(_) => Reason::MarketClosed,
            BrokerError::BadVolume(_) => Reason::BadVolume,
            BrokerError::Cancelled(_) => Reason::Cancelled,
            BrokerError::PositionNotFound(_)
            | BrokerError::Rejected { .. }
            | BrokerError::Persist(_)
            | BrokerError::NotSent(_) => Reason::BrokerError,
        }
    }

    /// The outcome of the request is unknown: reconcile before doing anything else.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, BrokerError::Timeout | BrokerError::Disconnected)
    }
}

/// The broker's answer to one order, still on its way. It borrows nothing from the book, so the
/// orders of a batch are all on the wire before the first answer is awaited (the 20th symbol's
/// order must not wait for the first 19 round trips).
pub type Ticket<R> = Pin<Box<dyn Future<Output = Result<R, BrokerError>> + Send>>;

/// A ticket that is already answered (paper fills, orders refused before sending).
pub fn answered<R: Send + 'static>(answer: Result<R, BrokerError>) -> Ticket<R> {
    Box::pin(std::future::ready(answer))
}

/// One trading book. Orders go in two steps: `submit_*` does everything that needs the book and
/// sends the order; [`Broker::settle`] books the answer once the ticket resolves.
pub trait Broker {
    /// What a ticket yields before it is booked (a fill for paper, an execution event for cTrader).
    type Receipt: Send + 'static;

    /// The book it keeps (names it in the journal, the desk file and the drift log).
    fn book(&self) -> Book;

    /// Account, positions and the symbol's quote, as known now.
    fn snapshot(&self, symbol: &protocol::Symbol) -> BookSnapshot;

    /// Asks the broker for its positions and account (after a (re)connect or an ambiguous failure).
    fn reconcile(&mut self) -> impl Future<Output = Result<BookSnapshot, BrokerError>>;

    /// Sends a market open; only a risk-approved intent is accepted.
    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<Self::Receipt>;

    /// Sends the close of a whole position.
    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<Self::Receipt>;

    /// Books a resolved ticket into this book.
    fn settle(&mut self, answer: Result<Self::Receipt, BrokerError>) -> Result<Fill, BrokerError>;

    /// Why this book must be reconciled before it is trusted (something the broker said
    /// contradicted it), if it must.
    fn suspect(&self) -> Option<String> {
        None
    }

    /// Marks the book as not to be trusted until the next reconcile (an order's outcome is still
    /// unknown: it may fill after the lookup).
    fn distrust(&mut self, _why: String) {}

    /// How often the desk reconciles this book when nothing contradicts it; `None` for a book
    /// that is its own truth (paper).
    fn reconcile_every(&self) -> Option<Duration> {
        None
    }

    /// Makes the book's own state durable. The desk calls it once per batch, after the fills and
    /// before it journals their results, so a crash in between leaves intents that recovery resolves
    /// against the book as it was saved.
    fn commit(&mut self) -> Result<(), BrokerError> {
        Ok(())
    }
}
