//! What the client reports: market data, account events and every step of the connection's life.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::client::error::ClientError;
use crate::domain::{ErrorCode, LiveTrendbar, SpotQuote, Timeframe};
use crate::messages::{
    Payload, ProtoOaExecutionEvent, ProtoOaOrderErrorEvent, ProtoOaReconcileRes, ProtoOaTrader,
};

/// One step in the connection's life, in the order they happen.
#[derive(Debug, Clone)]
pub enum ConnectionEvent {
    /// A connection attempt starts (`attempt` failures since the last success).
    Connecting {
        /// Failed attempts so far.
        attempt: u32,
    },
    /// TCP and TLS are up.
    TransportUp,
    /// The application is authorised.
    AppAuthorized,
    /// The access token was refreshed (and persisted, if a token store is configured).
    TokenRefreshed,
    /// The trading account is authorised.
    AccountAuthorized {
        /// The account.
        account_id: i64,
    },
    /// Spot and live-trendbar subscriptions were restored.
    Resubscribed {
        /// Symbols with spot subscriptions.
        spots: Vec<i64>,
        /// Live trendbar subscriptions.
        trendbars: Vec<(i64, Timeframe)>,
    },
    /// Positions and orders as the broker holds them, right after (re)connecting.
    Reconciled(Box<ProtoOaReconcileRes>),
    /// The session is ready for requests.
    Ready,
    /// A setup step failed; a reconnect follows.
    SetupFailed {
        /// The failed step.
        step: &'static str,
        /// Why.
        error: ClientError,
    },
    /// The connection is gone; requests in flight failed with `Disconnected`.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// The broker refused the account's token, and the token file and one refresh did not help:
    /// the session sends nothing (requests fail with `ClientError::Unauthorized`) until the token
    /// file holds a different pair, read every `authorization::TOKEN_FILE_POLL`.
    AuthorizationLost {
        /// The account.
        account_id: i64,
        /// What was refused, with the server's answer.
        reason: String,
    },
    /// A token pair other than the one in use was read from the token file (written by someone
    /// else: a re-authorisation, another refresh); the next setup uses it.
    TokensReloaded,
    /// The next attempt is scheduled.
    ReconnectScheduled {
        /// Failed attempts so far.
        attempt: u32,
        /// Wait before it.
        delay: Duration,
        /// Maintenance end being waited for, Unix ms.
        maintenance_end_ms: Option<i64>,
    },
}

/// An event from the server or about the connection.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Connection life cycle.
    Connection(ConnectionEvent),
    /// A spot quote.
    Spot(SpotQuote),
    /// The current state of a live trendbar (the bar still forming). The server sends no close
    /// for it: the bar's last price is the bid, given here when the same spot event carried one
    /// (otherwise the bid is unchanged since the last spot).
    LiveBar {
        /// The symbol.
        symbol_id: i64,
        /// The bar so far, without a close.
        bar: LiveTrendbar,
        /// The bid of the spot event that carried the bar, if it changed.
        bid: Option<f64>,
        /// The spot event's server time, Unix ms.
        timestamp_ms: Option<i64>,
    },
    /// An execution event not consumed as the answer to a request (stop-outs, SL/TP, late answers).
    Execution(Box<ProtoOaExecutionEvent>),
    /// An order error not consumed as the answer to a request.
    OrderError(ProtoOaOrderErrorEvent),
    /// Balance or account settings changed.
    TraderUpdated(Box<ProtoOaTrader>),
    /// Symbol details changed; fetch them again.
    SymbolChanged {
        /// The symbols.
        symbol_ids: Vec<i64>,
    },
    /// An error not tied to a request.
    ServerError {
        /// The code.
        code: ErrorCode,
        /// The description.
        description: Option<String>,
        /// Announced maintenance end, Unix ms.
        maintenance_end_ms: Option<i64>,
    },
    /// The server is closing this application's connection.
    ClientDisconnected {
        /// The server's reason.
        reason: Option<String>,
    },
    /// The server logged the account out of this connection.
    AccountDisconnected {
        /// The account.
        account_id: i64,
    },
    /// The access token no longer authorises these accounts.
    TokenInvalidated {
        /// The accounts.
        account_ids: Vec<i64>,
        /// The server's reason.
        reason: Option<String>,
    },
    /// Any other message (including late answers to timed-out requests).
    Other(Box<Payload>),
}

/// The receiving end of the client's events. Ends (`None`) when the client has shut down.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<ClientEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventStream {
    /// The next event.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.rx.try_recv().ok()
    }

    /// Market-data events dropped because this stream was not read fast enough.
    pub fn dropped_market_data(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The session's sending side.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<ClientEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    pub(crate) fn channel(capacity: usize) -> (Self, EventStream) {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Self {
                tx,
                dropped: dropped.clone(),
            },
            EventStream { rx, dropped },
        )
    }

    /// Events that must not be lost wait for room. A closed stream is not an error: nobody listens.
    pub(crate) async fn send(&self, ev: ClientEvent) {
        let _ = self.tx.send(ev).await;
    }

    /// Market data is superseded by the next quote, so a slow reader loses it rather than stalling
    /// the connection (and its heartbeats).
    pub(crate) fn send_lossy(&self, ev: ClientEvent) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(ev) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) async fn connection(&self, ev: ConnectionEvent) {
        tracing::info!(event = ?ev, "ctrader connection");
        self.send(ClientEvent::Connection(ev)).await;
    }
}
