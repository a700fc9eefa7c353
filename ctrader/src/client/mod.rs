//! An async cTrader Open API client over TLS.
//!
//! [`connect`] validates the configuration, spawns the session task and returns a cloneable
//! [`Client`] plus the [`EventStream`]. The session connects, authorises the application then the
//! account, restores subscriptions, reconciles, and reports each step as a
//! [`ConnectionEvent`]; when the link dies it fails the requests in flight with
//! [`ClientError::Disconnected`], backs off (or waits out an announced maintenance) and starts over.
//!
//! - [`backoff`], [`rate_limit`], [`requests`], [`history`]: the pure decision parts, tested with
//!   injected time.
//! - [`token_store`]: atomic 0600 persistence of single-use refresh tokens.
//! - [`accounts`]: the accounts an access token reaches, on a connection of its own.
//! - `session`: the socket task — the reconnect loop and shared state (`session/mod.rs`), a new
//!   connection's setup (`setup`), the ready connection's read/write loop (`serve`), an incoming
//!   message to its request or the event stream (`dispatch`).
//!
//! Requests made while connecting wait (up to their timeout); requests made while disconnected fail
//! at once, so an order is never sent late. Historical requests wait their turn under the rate
//! limit however long the queue, and their timeout starts when they are sent. After a timeout or disconnect the outcome of an order
//! is unknown: reconcile before retrying.

pub mod accounts;
pub mod authorization;
pub mod backoff;
pub mod config;
pub mod error;
pub mod events;
pub mod history;
pub mod rate_limit;
pub mod requests;
mod session;
pub mod token_store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

pub use accounts::{TokenAccount, token_accounts};
pub use config::{ClientConfig, DEFAULT_PORT, DEMO_HOST, LIVE_HOST, WallClock, system_clock_ms};
pub use error::{ClientError, SetupFault};
pub use events::{ClientEvent, ConnectionEvent, EventStream};
pub use rate_limit::RequestClass;
pub use session::LinkState;
pub use token_store::{TokenStore, TokenStoreError, Tokens};

use crate::domain::{ErrorCode, OrderEnd, OrderProgress, Timeframe, TrendbarPeriod, closed_bar};
use crate::messages::*;
use events::EventSink;
use history::TrendbarPager;
use protocol::Bar;
use requests::{Answer, Completion};
use session::{Command, Shared, Subscriptions, expect, lock, pace, wait_historical_turn};

/// A handle to the session. Cheap to clone; the session stops when the last handle is dropped.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    cmds: mpsc::Sender<Command>,
    state: watch::Receiver<LinkState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.shared.config.addr())
            .field("account_id", &self.shared.config.account_id)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

/// Builds the TLS client: webpki roots plus the configured extra certificate, ring crypto.
fn tls_connector(cfg: &ClientConfig) -> Result<TlsConnector, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &cfg.extra_ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Tls(format!("reading {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| ClientError::Tls(format!("{}: bad PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                ClientError::Tls(format!("{}: unusable certificate: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::Tls(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Validates `config` and starts the session in the background (must be called inside a tokio
/// runtime). Returns at once; watch the events or call [`Client::wait_ready`].
pub fn connect(config: ClientConfig) -> Result<(Client, EventStream), ClientError> {
    config.validate()?;
    let tls = tls_connector(&config)?;
    let (events, stream) = EventSink::channel(config.event_buffer);
    let (state_tx, state_rx) = watch::channel(LinkState::Connecting);
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        limiter: Mutex::new(rate_limit::RateLimiter::new(
            config.normal_rate_per_sec,
            config.historical_rate_per_sec,
        )),
        historical_queue: tokio::sync::Mutex::new(()),
        tokens: Mutex::new(config.tokens.clone()),
        subs: Mutex::new(Subscriptions::default()),
        config,
        tls,
        state: state_tx,
        events,
        last_setup_failure: Mutex::new(None),
    });
    tokio::spawn(session::run(shared.clone(), cmd_rx));
    Ok((
        Client {
            shared,
            cmds: cmd_tx,
            state: state_rx,
        },
        stream,
    ))
}

impl Client {
    /// The trading account this client serves.
    pub fn account_id(&self) -> i64 {
        self.shared.config.account_id
    }

    /// The link state now.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// The current tokens (after any refresh).
    pub fn tokens(&self) -> Tokens {
        lock(&self.shared.tokens).clone()
    }

    /// The last connection attempt's setup failure (step and error); `None` once a setup succeeds.
    pub fn last_setup_failure(&self) -> Option<(&'static str, ClientError)> {
        lock(&self.shared.last_setup_failure).clone()
    }

    /// Waits until the session is ready (authorised, resubscribed, reconciled). Transient setup
    /// failures are retried with backoff meanwhile; one that no retry can fix (a wrong account,
    /// bad application credentials, a revoked token: [`ClientError::setup_fault`]) ends the wait
    /// at once with [`ClientError::SetupRefused`]. After `within`, [`ClientError::NotReady`] names
    /// the last failure. The session itself keeps retrying until every handle is dropped.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), ClientError> {
        let mut rx = self.state.clone();
        let ready = async {
            loop {
                if *rx.borrow_and_update() == LinkState::Ready {
                    return Ok(());
                }
                if let Some((step, error)) = self.last_setup_failure()
                    && error.setup_fault().is_some()
                {
                    return Err(ClientError::SetupRefused {
                        step,
                        error: Box::new(error),
                    });
                }
                if rx.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        };
        tokio::time::timeout(within, ready)
            .await
            .map_err(|_| ClientError::NotReady {
                addr: self.shared.config.addr(),
                within,
                last: self
                    .last_setup_failure()
                    .map(|(step, e)| format!("{step} failed: {e}")),
            })?
    }

    async fn send<M: OpenApiMessage>(
        &self,
        msg: &M,
        completion: Completion,
    ) -> Result<Answer, ClientError> {
        let timeout = self.shared.config.request_timeout;
        let deadline = match RequestClass::of(M::PAYLOAD_TYPE) {
            // Queued behind the historical limit, then the timeout is for the server's answer.
            RequestClass::Historical => {
                wait_historical_turn(&self.shared).await;
                Instant::now() + timeout
            }
            // An order that cannot go out within its timeout is refused rather than sent late.
            class => {
                let deadline = Instant::now() + timeout;
                pace(&self.shared, class, M::NAME, deadline).await?;
                deadline
            }
        };
        let (reply, rx) = oneshot::channel();
        let cmd = Command {
            envelope: msg.wrap(None),
            request: M::NAME,
            completion,
            deadline,
            reply,
        };
        self.cmds.send(cmd).await.map_err(|_| ClientError::Closed)?;
        // The session enforces the deadline; the extra second only guards against a stuck session.
        match tokio::time::timeout(timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout {
                request: M::NAME,
                after: timeout,
            }),
        }
    }

    async fn call<M, R>(&self, msg: &M) -> Result<R, ClientError>
    where
        M: OpenApiMessage,
        R: OpenApiMessage + TryFrom<Payload, Error = Payload>,
    {
        expect::<R>(
            self.send(msg, Completion::Reply)
                .await
                .and_then(message::<M>),
        )
    }

    /// An order answered by every execution event up to the one that ends it (filled in full,
    /// cancelled, expired). A rejection is an error; a cancel or expiry is not: part of the volume
    /// may have been executed, and the caller must know what it now holds.
    async fn execute_order<M: OpenApiMessage>(
        &self,
        msg: &M,
    ) -> Result<OrderProgress, ClientError> {
        let order = match self.send(msg, Completion::Order).await? {
            Answer::Order(order) => *order,
            Answer::Message(other) => {
                return Err(ClientError::UnexpectedResponse {
                    request: M::NAME,
                    got: other.name(),
                });
            }
        };
        if order.end() == Some(OrderEnd::Rejected) {
            return Err(rejected::<M>(order.error_code()));
        }
        Ok(order)
    }

    /// A request answered by one execution event (an amend, a cancel); a rejection is an error.
    async fn execute_once<M: OpenApiMessage>(
        &self,
        msg: &M,
    ) -> Result<ProtoOaExecutionEvent, ClientError> {
        let answer = self.send(msg, Completion::Execution).await;
        let ev = expect::<ProtoOaExecutionEvent>(answer.and_then(message::<M>))?;
        let refused = [
            ProtoOaExecutionType::OrderRejected,
            ProtoOaExecutionType::OrderCancelRejected,
        ]
        .map(|t| t as i32);
        if refused.contains(&ev.execution_type) {
            return Err(rejected::<M>(ev.error_code.as_deref()));
        }
        Ok(ev)
    }

    fn account(&self) -> i64 {
        self.shared.config.account_id
    }

    /// The server's protocol version.
    pub async fn version(&self) -> Result<String, ClientError> {
        let res: ProtoOaVersionRes = self.call(&ProtoOaVersionReq::default()).await?;
        Ok(res.version)
    }

    /// The accounts the access token can trade.
    pub async fn accounts_for_token(&self) -> Result<Vec<ProtoOaCtidTraderAccount>, ClientError> {
        let access_token = self.tokens().access_token;
        let req = ProtoOaGetAccountListByAccessTokenReq {
            access_token,
            ..Default::default()
        };
        let res: ProtoOaGetAccountListByAccessTokenRes = self.call(&req).await?;
        Ok(res.ctid_trader_account)
    }

    /// All symbols of the account (id and name).
    pub async fn symbols(&self) -> Result<Vec<ProtoOaLightSymbol>, ClientError> {
        let req = ProtoOaSymbolsListReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        let res: ProtoOaSymbolsListRes = self.call(&req).await?;
        Ok(res.symbol)
    }

    /// Full details (digits, lotSize, step/min/max volume, …) of the given symbols.
    pub async fn symbol_details(
        &self,
        symbol_ids: &[i64],
    ) -> Result<Vec<ProtoOaSymbol>, ClientError> {
        let req = ProtoOaSymbolByIdReq {
            ctid_trader_account_id: self.account(),
            symbol_id: symbol_ids.to_vec(),
            ..Default::default()
        };
        let res: ProtoOaSymbolByIdRes = self.call(&req).await?;
        Ok(res.symbol)
    }

    /// The account: balance, leverage, money digits.
    pub async fn trader(&self) -> Result<ProtoOaTrader, ClientError> {
        let req = ProtoOaTraderReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        let res: ProtoOaTraderRes = self.call(&req).await?;
        Ok(res.trader)
    }

    /// The unrealised PnL of every open position as the broker computes it (gross and net of swaps
    /// and commissions, in the deposit currency scaled by the answer's `moneyDigits`).
    pub async fn unrealized_pnl(&self) -> Result<ProtoOaGetPositionUnrealizedPnLRes, ClientError> {
        let req = ProtoOaGetPositionUnrealizedPnLReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        self.call(&req).await
    }

    /// Open positions and pending orders as the broker holds them.
    pub async fn reconcile(&self) -> Result<ProtoOaReconcileRes, ClientError> {
        let req = ProtoOaReconcileReq {
            ctid_trader_account_id: self.account(),
            ..Default::default()
        };
        self.call(&req).await
    }

    /// Subscribes to spot quotes; restored automatically after a reconnect.
    pub async fn subscribe_spots(&self, symbol_ids: &[i64]) -> Result<(), ClientError> {
        let req = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: self.account(),
            symbol_id: symbol_ids.to_vec(),
            subscribe_to_spot_timestamp: Some(self.shared.config.spot_timestamps),
            ..Default::default()
        };
        let _: ProtoOaSubscribeSpotsRes = self.call(&req).await?;
        lock(&self.shared.subs).spots.extend(symbol_ids);
        Ok(())
    }

    /// Ends spot subscriptions (and forgets them for reconnects).
    pub async fn unsubscribe_spots(&self, symbol_ids: &[i64]) -> Result<(), ClientError> {
        {
            let mut subs = lock(&self.shared.subs);
            for id in symbol_ids {
                subs.spots.remove(id);
            }
        }
        let req = ProtoOaUnsubscribeSpotsReq {
            ctid_trader_account_id: self.account(),
            symbol_id: symbol_ids.to_vec(),
            ..Default::default()
        };
        let _: ProtoOaUnsubscribeSpotsRes = self.call(&req).await?;
        Ok(())
    }

    /// Subscribes to live trendbars of one symbol and period (the symbol's spots must be
    /// subscribed first, as the server requires); restored after a reconnect.
    pub async fn subscribe_trendbars(
        &self,
        symbol_id: i64,
        timeframe: Timeframe,
    ) -> Result<(), ClientError> {
        let req = ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: self.account(),
            period: timeframe.to_proto() as i32,
            symbol_id,
            ..Default::default()
        };
        let _: ProtoOaSubscribeLiveTrendbarRes = self.call(&req).await?;
        lock(&self.shared.subs)
            .trendbars
            .insert((symbol_id, timeframe));
        Ok(())
    }

    /// Ends a live trendbar subscription.
    pub async fn unsubscribe_trendbars(
        &self,
        symbol_id: i64,
        timeframe: Timeframe,
    ) -> Result<(), ClientError> {
        lock(&self.shared.subs)
            .trendbars
            .remove(&(symbol_id, timeframe));
        let req = ProtoOaUnsubscribeLiveTrendbarReq {
            ctid_trader_account_id: self.account(),
            period: timeframe.to_proto() as i32,
            symbol_id,
            ..Default::default()
        };
        let _: ProtoOaUnsubscribeLiveTrendbarRes = self.call(&req).await?;
        Ok(())
    }

    /// Historical bars with open time in `[from_ms, to_ms]`, oldest first, the latest `count` if
    /// given; fetched in as many windows as the server's range limit requires.
    pub async fn get_trendbars(
        &self,
        symbol_id: i64,
        timeframe: Timeframe,
        from_ms: i64,
        to_ms: i64,
        count: Option<usize>,
    ) -> Result<Vec<Bar>, ClientError> {
        let mut pager = TrendbarPager::new(timeframe, from_ms, to_ms, count);
        while let Some((from, to, count)) = pager.next_window() {
            let req = ProtoOaGetTrendbarsReq {
                ctid_trader_account_id: self.account(),
                from_timestamp: from,
                to_timestamp: to,
                period: timeframe.to_proto() as i32,
                symbol_id,
                count,
                ..Default::default()
            };
            let res: ProtoOaGetTrendbarsRes = self.call(&req).await?;
            let bars = res
                .trendbar
                .iter()
                .map(closed_bar)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ClientError::Protocol(format!("symbol {symbol_id} {timeframe}: {e}"))
                })?;
            pager.accept(from, bars);
        }
        Ok(pager.finish())
    }

    /// Sends a market order and waits until it ends: filled in full (in one deal or several),
    /// or cancelled / expired by the broker with part or none of it executed. `volume` is in 0.01
    /// base units (see [`crate::domain::SymbolVolume::lots_to_volume`]). `label` and
    /// `client_order_id` let a reconcile recognise the order after a timeout.
    pub async fn new_market_order(
        &self,
        symbol_id: i64,
        side: ProtoOaTradeSide,
        volume: i64,
        label: Option<&str>,
        client_order_id: Option<&str>,
    ) -> Result<OrderProgress, ClientError> {
        let req = ProtoOaNewOrderReq {
            ctid_trader_account_id: self.account(),
            symbol_id,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: side as i32,
            volume,
            label: label.map(str::to_string),
            client_order_id: client_order_id.map(str::to_string),
            ..Default::default()
        };
        self.execute_order(&req).await
    }

    /// Closes `volume` of a position (all of it when equal to the position's volume); answered
    /// as [`Client::new_market_order`] (the close is a market order on the opposite side).
    pub async fn close_position(
        &self,
        position_id: i64,
        volume: i64,
    ) -> Result<OrderProgress, ClientError> {
        let req = ProtoOaClosePositionReq {
            ctid_trader_account_id: self.account(),
            position_id,
            volume,
            ..Default::default()
        };
        self.execute_order(&req).await
    }

    /// Sets or clears a position's stop loss and take profit (absolute prices, already rounded to
    /// the symbol's digits). Answered by one execution event: ORDER_ACCEPTED when the position
    /// had no protection yet, ORDER_REPLACED when it had, ORDER_CANCELLED when both are cleared.
    pub async fn amend_position_sltp(
        &self,
        position_id: i64,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
    ) -> Result<ProtoOaExecutionEvent, ClientError> {
        let req = ProtoOaAmendPositionSltpReq {
            ctid_trader_account_id: self.account(),
            position_id,
            stop_loss,
            take_profit,
            ..Default::default()
        };
        self.execute_once(&req).await
    }

    /// Cancels a pending order.
    pub async fn cancel_order(&self, order_id: i64) -> Result<ProtoOaExecutionEvent, ClientError> {
        let req = ProtoOaCancelOrderReq {
            ctid_trader_account_id: self.account(),
            order_id,
            ..Default::default()
        };
        self.execute_once(&req).await
    }

    /// Deals executed in `[from_ms, to_ms]`; `has_more` says the list was cut at `max_rows`.
    pub async fn deal_list(
        &self,
        from_ms: i64,
        to_ms: i64,
        max_rows: Option<i32>,
    ) -> Result<ProtoOaDealListRes, ClientError> {
        let req = ProtoOaDealListReq {
            ctid_trader_account_id: self.account(),
            from_timestamp: from_ms,
            to_timestamp: to_ms,
            max_rows,
            ..Default::default()
        };
        self.call(&req).await
    }

    /// Orders in `[from_ms, to_ms]`.
    pub async fn order_list(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ProtoOaOrderListRes, ClientError> {
        let req = ProtoOaOrderListReq {
            ctid_trader_account_id: self.account(),
            from_timestamp: from_ms,
            to_timestamp: to_ms,
            ..Default::default()
        };
        self.call(&req).await
    }

    /// Exchanges the refresh token for a new pair, persists it (before anything else can fail:
    /// the old refresh token is now spent) and uses it for later re-authorisations.
    pub async fn refresh_token(&self) -> Result<Tokens, ClientError> {
        let refresh_token = self.tokens().refresh_token;
        let req = ProtoOaRefreshTokenReq {
            refresh_token,
            ..Default::default()
        };
        let res: ProtoOaRefreshTokenRes = self.call(&req).await?;
        session::store_tokens(&self.shared, &res)
    }
}

/// The message of a one-message answer.
fn message<M: OpenApiMessage>(answer: Answer) -> Result<Payload, ClientError> {
    match answer {
        Answer::Message(p) => Ok(*p),
        Answer::Order(_) => Err(ClientError::UnexpectedResponse {
            request: M::NAME,
            got: "an order's execution events",
        }),
    }
}

/// The error for a request the server refused in an execution event.
fn rejected<M: OpenApiMessage>(code: Option<&str>) -> ClientError {
    ClientError::Broker {
        request: M::NAME,
        code: ErrorCode::parse(code.unwrap_or("ORDER_REJECTED")),
        description: None,
        maintenance_end_ms: None,
    }
}
