//! Brokers behind one trait: [`paper::PaperBroker`] (simulated fills, persisted book) and, when the
//! cTrader client is available, a cTrader adapter. The engine never talks to a broker directly; the
//! desk ([`crate::desk`]) executes the engine's plans through this trait.

pub mod ctrader;
pub mod paper;

use std::future::Future;

use protocol::Reason;

use crate::orders::{BookSnapshot, CloseIntent, Fill, OpenIntent};
use crate::risk::RiskApproved;

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
    #[error("no price for {0}")]
    NoQuote(String),
    #[error("broker error {code}: {description}")]
    Rejected { code: String, description: String },
    #[error("state file: {0}")]
    Persist(String),
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
            BrokerError::PositionNotFound(_)
            | BrokerError::Rejected { .. }
            | BrokerError::Persist(_) => Reason::BrokerError,
        }
    }

    /// The outcome of the request is unknown: reconcile before doing anything else.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, BrokerError::Timeout | BrokerError::Disconnected)
    }
}

/// One trading book. `async` because the cTrader one does network I/O; the paper one completes at once.
pub trait Broker {
    /// Short name for logs and the drift log (`paper`, `live`).
    fn name(&self) -> &'static str;

    /// Account, positions and the symbol's quote, as known now.
    fn snapshot(&self, symbol: &protocol::Symbol) -> BookSnapshot;

    /// Asks the broker for its positions and account (after a (re)connect or an ambiguous failure).
    fn reconcile(&mut self) -> impl Future<Output = Result<BookSnapshot, BrokerError>>;

    /// Opens a market position; only a risk-approved intent is accepted.
    fn open(
        &mut self,
        order: &RiskApproved<OpenIntent>,
    ) -> impl Future<Output = Result<Fill, BrokerError>>;

    /// Closes a position in full.
    fn close(&mut self, intent: &CloseIntent) -> impl Future<Output = Result<Fill, BrokerError>>;
}
