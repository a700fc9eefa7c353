//! Brokers behind one trait: [`paper::PaperBroker`] (simulated fills, persisted book) and
//! [`ctrader::CtraderBroker`] (the live book over the cTrader client). The engine never talks to a
//! broker directly; the desk ([`crate::desk`]) executes the engine's plans through this trait, and
//! the core loop ([`crate::core`]) hands it what its link pushes and the bars that closed, without
//! asking which broker it is.

pub mod account;
pub mod ctrader;
pub mod live_book;
pub mod outcome;
pub mod paper;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use protocol::{Reason, Symbol};

use crate::config::SymbolConfig;
use crate::desk::risk::RiskApproved;
use crate::orders::{Book, BookSnapshot, CloseIntent, Fill, OpenIntent};

/// The account figures a broker reports on request ([`Broker::account_request`]).
pub use self::ctrader::AccountRefresh as AccountFigures;
/// What a broker's own link pushes: market data, executions, connection steps (the cTrader
/// client's events). A paper book has no link.
pub use ::ctrader::client::ClientEvent as BrokerEvent;

/// A request for the account figures, running off the core loop.
pub type AccountRequest =
    Pin<Box<dyn Future<Output = Result<AccountFigures, BrokerError>> + Send + 'static>>;

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

    /// The symbols' specs after a config reload (open positions keep what they were opened with).
    fn set_specs(&mut self, _specs: BTreeMap<Symbol, SymbolConfig>) {}

    /// A bar closed at `close` (its close time `time`, Unix seconds): a book priced from bars
    /// quotes it.
    fn on_bar_close(&mut self, _symbol: &Symbol, _close: f64, _time: i64) {}

    /// An event of the broker's link (`now`: Unix seconds, for a quote without a server time).
    fn on_event(&mut self, _ev: &BrokerEvent, _now: i64) {}

    /// Anything the book must ask the broker after a burst of link events (the volume rules of a
    /// symbol that appeared in a position). Failures are the book's to log.
    fn after_events(&mut self) -> impl Future<Output = ()> {
        std::future::ready(())
    }

    /// A request for the account figures to run off the loop, if there is an account to ask now.
    fn account_request(&self) -> Option<AccountRequest> {
        None
    }

    /// Books the figures an [`Broker::account_request`] brought back.
    fn apply_account(&mut self, _figures: &AccountFigures) {}

    /// A position's open PnL, account currency, as far as the book knows it (`executor ctl
    /// status`).
    fn open_pnl(&self, _position: &crate::orders::BrokerPosition) -> Option<f64> {
        None
    }

    /// The broker's volume rules of each symbol it knows (a SetLots is checked against them);
    /// empty for a book without any (paper).
    fn volume_rules(&self) -> BTreeMap<Symbol, ::ctrader::domain::SymbolVolume> {
        BTreeMap::new()
    }
}
