//! The live book: an adapter over `ctrader::client`. It keeps a cache of the account (balance,
//! leverage, the broker's unrealised PnL: [`super::account`]), positions and quotes, fed by the
//! client's events, by reconciles and by periodic account refreshes, so the engine can decide on a
//! snapshot without a network round trip; orders go out with the deterministic label and client
//! order id, so a reconcile finds them after a timeout.
//!
//! Positions on symbols the config does not trade are kept too (opened by hand, or by another
//! tool): they hold margin and position slots, and the risk guard must count them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use ctrader::client::{
    Client, ClientConfig, ClientError, ClientEvent, ConnectionEvent, EventStream, SetupFault,
    TokenStore,
};
use ctrader::domain::{OrderProgress, SymbolVolume};
use ctrader::messages::{
    ProtoOaExecutionEvent, ProtoOaGetPositionUnrealizedPnLRes, ProtoOaReconcileRes,
    ProtoOaTradeSide, ProtoOaTrader,
};
use protocol::{Symbol, Timeframe};

use super::account::{AccountRefused, BrokerAccount, check_tradable};
use super::outcome::fill_of;
use super::{AccountRequest, Broker, BrokerError, BrokerEvent, Ticket, answered};
use crate::broker::live_book::{Effect, LiveBook, RECONCILE_EVERY};
use crate::config::{CtraderConfig, SymbolConfig};
use crate::desk::risk::RiskApproved;
use crate::onboarding::accounts::explain;
use crate::orders::{
    AccountSnapshot, Book, BookSnapshot, CloseIntent, Fill, OpenIntent, Quote, Side,
};
use crate::secrets::read_secret;

mod errors;
mod positions;

use errors::log_session_event;
pub use errors::map_error;
use positions::PositionTerms;

/// One tradable symbol at the broker.
#[derive(Debug, Clone)]
pub struct Instrument {
    pub id: i64,
    pub volume: SymbolVolume,
    pub timeframe: Timeframe,
}

#[derive(Debug)]
pub struct CtraderBroker {
    client: Client,
    pub instruments: BTreeMap<Symbol, Instrument>,
    by_id: HashMap<i64, Symbol>,
    /// Positions (with their broker volumes, for full closes), kept from events and reconciles;
    /// positions on unconfigured symbols too.
    book: LiveBook,
    quotes: HashMap<Symbol, Quote>,
    account: BrokerAccount,
    /// How the broker's positions read in the book's terms, on every symbol it lists.
    terms: PositionTerms,
    /// Symbols whose rules were asked for since the last reconcile (each is asked once).
    looked_up: BTreeSet<i64>,
    specs: BTreeMap<Symbol, SymbolConfig>,
    connected: bool,
}

/// The account as the broker reports it, fetched off the core loop ([`CtraderBroker::account_refresh`]).
#[derive(Debug)]
pub struct AccountRefresh {
    trader: ProtoOaTrader,
    pnl: ProtoOaGetPositionUnrealizedPnLRes,
    /// The account's balance epoch when the request was sent.
    epoch: u64,
}

/// Why the cTrader book could not be started.
#[derive(Debug, thiserror::Error)]
pub enum CtraderStartError {
    #[error("cTrader secret: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("cTrader token file: {0}")]
    Tokens(#[from] ctrader::client::TokenStoreError),
    #[error("cTrader: {0}")]
    Client(#[from] ClientError),
    /// A setup no retry can fix (wrong account, application credentials, revoked token).
    #[error("{0}")]
    SetupRefused(crate::onboarding::accounts::SetupRefusal),
    #[error("cTrader symbol {symbol}: {why}")]
    Symbol { symbol: String, why: String },
    #[error("{0}")]
    Account(#[from] AccountRefused),
}

/// The longest wait between two cTrader reconnect attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(20);

impl CtraderBroker {
    /// Connects, authorises, loads the configured symbols, reconciles and subscribes spots and live
    /// trendbars. Returns the broker and the client's event stream (the caller pumps it).
    pub async fn start(
        cfg: &CtraderConfig,
        specs: BTreeMap<Symbol, SymbolConfig>,
        ready_within: Duration,
    ) -> Result<(CtraderBroker, EventStream), CtraderStartError> {
        let secret = read_secret(&cfg.secret_file)?;
        let store = TokenStore::new(&cfg.token_file);
        let tokens = store.load()?;
        let mut cc = ClientConfig::new(
            cfg.host.clone(),
            cfg.port,
            cfg.client_id.clone(),
            secret,
            cfg.account_id,
            tokens,
        );
        cc.extra_ca_file = cfg.ca_file.clone();
        cc.token_store = Some(store);
        cc.request_timeout = Duration::from_millis(cfg.request_timeout_ms);
        // Each reconnect attempt is watchdog progress (crate::notify); with the client's default
        // 60 s cap a long outage would leave the executor silent for longer than `WatchdogSec=60`
        // and get it restarted. 20 s + the 10 s connect timeout keeps attempts inside half of it.
        cc.backoff_max = RECONNECT_BACKOFF_MAX;
        let (client, events) = ctrader::client::connect(cc.clone())?;
        if let Err(e) = client.wait_ready(ready_within).await {
            let Some(fault) = e.setup_fault() else {
                return Err(e.into());
            };
            // The session would retry for ever; stop it, then tell what the token does reach.
            cc.tokens = client.tokens();
            drop(client);
            let reachable = match fault {
                SetupFault::Account | SetupFault::AccessToken => {
                    Some(ctrader::client::token_accounts(&cc).await)
                }
                SetupFault::Application | SetupFault::AccountDisabled => None,
            };
            return Err(CtraderStartError::SetupRefused(explain(
                fault, &e, cfg, reachable,
            )));
        }
        // Before anything else: an account the executor cannot trade correctly is refused.
        check_tradable(&client.trader().await?)?;

        let light = client.symbols().await?;
        let all_names: HashMap<i64, String> = light
            .iter()
            .filter_map(|ls| Some((ls.symbol_id, ls.symbol_name.clone()?)))
            .collect();
        let mut ids = Vec::new();
        let mut names: HashMap<i64, Symbol> = HashMap::new();
        for ls in &light {
            if let Some(name) = &ls.symbol_name
                && let Ok(sym) = name.parse::<Symbol>()
                && specs.contains_key(&sym)
            {
                ids.push(ls.symbol_id);
                names.insert(ls.symbol_id, sym);
            }
        }
        for sym in specs.keys() {
            if !names.values().any(|s| s == sym) {
                tracing::warn!(symbol = %sym, "configured symbol is not offered by the broker; its signals will fail");
            }
        }
        let details = if ids.is_empty() {
            Vec::new()
        } else {
            client.symbol_details(&ids).await?
        };
        let mut instruments = BTreeMap::new();
        for d in &details {
            let Some(sym) = names.get(&d.symbol_id) else {
                continue;
            };
            let volume = SymbolVolume::from_symbol(sym.as_str(), d).map_err(|e| {
                CtraderStartError::Symbol {
                    symbol: sym.to_string(),
                    why: e.to_string(),
                }
            })?;
            let spec = &specs[sym];
            for lots in [spec.lots.weak, spec.lots.moderate, spec.lots.strong] {
                match volume.lots_to_volume(lots) {
                    Ok(v) if (volume.volume_to_lots(v) - lots).abs() > 1e-9 => tracing::warn!(
                        symbol = %sym, lots, traded = volume.volume_to_lots(v),
                        "lot size is not a multiple of the broker's step: the position would never match the target"
                    ),
                    Err(e) => tracing::warn!(symbol = %sym, error = %e, "lot size not tradable"),
                    Ok(_) => {}
                }
            }
            instruments.insert(
                sym.clone(),
                Instrument {
                    id: d.symbol_id,
                    volume,
                    timeframe: spec.timeframe,
                },
            );
        }
        let mut broker = CtraderBroker {
            client,
            by_id: instruments.iter().map(|(s, i)| (i.id, s.clone())).collect(),
            book: LiveBook::default(),
            quotes: HashMap::new(),
            account: BrokerAccount::default(),
            terms: PositionTerms {
                configured: instruments
                    .iter()
                    .map(|(s, i)| (i.id, (s.clone(), i.volume.clone())))
                    .collect(),
                names: all_names,
                other_volumes: HashMap::new(),
            },
            looked_up: BTreeSet::new(),
            instruments,
            specs,
            connected: true,
        };
        broker
            .reconcile_now()
            .await
            .map_err(|e| CtraderStartError::Symbol {
                symbol: "(reconcile)".into(),
                why: e.to_string(),
            })?;
        let sub_ids: Vec<i64> = broker.instruments.values().map(|i| i.id).collect();
        if !sub_ids.is_empty() {
            broker.client.subscribe_spots(&sub_ids).await?;
        }
        for inst in broker.instruments.values() {
            broker
                .client
                .subscribe_trendbars(inst.id, inst.timeframe)
                .await?;
        }
        Ok((broker, events))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The broker's open PnL of one position, account currency (from the last account refresh).
    pub fn position_pnl(&self, position_id: u64) -> Option<f64> {
        self.account.position_pnl(position_id)
    }

    /// The volume rules of every configured symbol.
    pub fn volume_rules(&self) -> BTreeMap<Symbol, SymbolVolume> {
        self.instruments
            .iter()
            .map(|(s, i)| (s.clone(), i.volume.clone()))
            .collect()
    }

    pub fn symbol_of(&self, id: i64) -> Option<&Symbol> {
        self.by_id.get(&id)
    }

    fn apply_trader(&mut self, t: &ProtoOaTrader) {
        self.account.apply_trader(t);
    }

    /// Applies the broker's open positions (a reconcile, or the one after a reconnect).
    fn apply_reconcile(&mut self, res: &ProtoOaReconcileRes) {
        self.looked_up.clear();
        let (terms, account) = (&self.terms, &self.account);
        self.book.apply_reconcile(res.position.iter(), &|p| {
            Some(terms.position_of(p, account))
        });
    }

    /// Symbols of open positions whose volume rules are unknown (neither configured nor fetched).
    fn unresolved_symbols(&self) -> BTreeSet<i64> {
        self.book
            .broker_positions()
            .map(|p| p.trade_data.symbol_id)
            .filter(|id| self.terms.volume_rules(*id).is_none() && !self.looked_up.contains(id))
            .collect()
    }

    /// Fetches the volume rules of unconfigured symbols that hold positions, so their lots count
    /// right in the risk guard. A no-op (no request) when there are none.
    pub async fn resolve_symbols(&mut self) -> Result<(), BrokerError> {
        let ids: Vec<i64> = self.unresolved_symbols().into_iter().collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.looked_up.extend(ids.iter().copied());
        let details = self.client.symbol_details(&ids).await.map_err(map_error)?;
        for d in &details {
            let name = self.terms.name(d.symbol_id);
            match SymbolVolume::from_symbol(&name, d) {
                Ok(v) => {
                    self.terms.other_volumes.insert(d.symbol_id, v);
                }
                Err(e) => {
                    tracing::warn!(symbol = %name, error = %e, "volume rules of an unconfigured symbol holding a position are unusable; its lots count as unbounded")
                }
            }
        }
        let (terms, account) = (&self.terms, &self.account);
        self.book.remap(&|p| Some(terms.position_of(p, account)));
        tracing::info!(symbols = ?ids, "positions on unconfigured symbols counted by the risk guard");
        Ok(())
    }

    /// The account as the broker reports it now: trader (balance, leverage, money digits) and
    /// every position's unrealised PnL. Runs without the book, so the core loop does not wait.
    pub fn account_refresh(
        &self,
    ) -> impl Future<Output = Result<AccountRefresh, ClientError>> + Send + 'static {
        let client = self.client.clone();
        let epoch = self.account.epoch();
        async move {
            let trader = client.trader().await?;
            let pnl = client.unrealized_pnl().await?;
            Ok(AccountRefresh { trader, pnl, epoch })
        }
    }

    /// A position the book no longer holds has its PnL in the balance now.
    fn forget_if_closed(&mut self, position_id: u64) {
        if self.book.position(position_id).is_none() {
            self.account.forget_position(position_id);
        }
    }

    async fn reconcile_now(&mut self) -> Result<(), BrokerError> {
        let trader = self.client.trader().await.map_err(map_error)?;
        self.apply_trader(&trader);
        let res = self.client.reconcile().await.map_err(map_error)?;
        self.apply_reconcile(&res);
        if let Err(e) = self.resolve_symbols().await {
            tracing::warn!(error = %e, "volume rules of unconfigured symbols holding positions could not be fetched; their lots count as unbounded");
        }
        let pnl = self.client.unrealized_pnl().await.map_err(map_error)?;
        self.account.apply_pnl(&pnl);
        Ok(())
    }

    /// A spot quote updates the cache (a quote that changes only the ask keeps the last bid).
    fn quote(&mut self, q: &ctrader::domain::SpotQuote, now: i64) {
        let Some(sym) = self.by_id.get(&q.symbol_id).cloned() else {
            return;
        };
        let time = q.timestamp_ms.map_or(now, |ms| ms.div_euclid(1000));
        let old = self.quotes.get(&sym).copied();
        let Some(bid) = q.bid.or(old.map(|o| o.bid)) else {
            return;
        };
        let ask = q.ask.or(old.map(|o| o.ask)).unwrap_or(bid);
        self.quotes.insert(sym, Quote { bid, ask, time });
    }

    /// Client events: quotes, connection state, executions, balance.
    fn apply_event(&mut self, ev: &ClientEvent, now: i64) {
        if let ClientEvent::Spot(q) = ev {
            self.quote(q, now);
            return;
        }
        log_session_event(ev);
        match ev {
            ClientEvent::Connection(ConnectionEvent::Reconciled(res)) => {
                self.connected = true;
                self.apply_reconcile(res);
            }
            ClientEvent::Connection(ConnectionEvent::Disconnected { .. }) => self.connected = false,
            ClientEvent::Execution(e) => self.apply_execution(e),
            ClientEvent::TraderUpdated(t) => self.apply_trader(t),
            _ => {}
        }
    }

    /// An execution event no request was waiting for: applied only if it is news (see
    /// [`crate::broker::live_book`]).
    fn apply_execution(&mut self, e: &ProtoOaExecutionEvent) {
        let (terms, account) = (&self.terms, &self.account);
        let effect = self
            .book
            .apply_event(e, &|p| Some(terms.position_of(p, account)));
        if effect == Effect::Stale {
            tracing::debug!(
                execution_type = e.execution_type,
                order = ?e.order.as_ref().map(|o| o.order_id),
                "late or repeated execution event ignored"
            );
            return;
        }
        if let Some(d) = &e.deal
            && let Some(c) = &d.close_position_detail
        {
            self.account.apply_close(c);
        }
        if let Some(p) = &e.position {
            self.forget_if_closed(p.position_id as u64);
        }
    }

    /// Balance, equity, margin and leverage as the broker reported them (see [`BrokerAccount`]).
    fn account(&self) -> AccountSnapshot {
        self.account.snapshot(&self.book.positions())
    }

    /// Books one of our orders once it ended and says what it did (see [`super::outcome`]).
    fn fill_from(&mut self, x: &Execution) -> Result<Fill, BrokerError> {
        let order = &x.order;
        let (terms, account) = (&self.terms, &self.account);
        self.book
            .apply_order(order, &|p| Some(terms.position_of(p, account)));
        if let Some(p) = order.position() {
            self.forget_if_closed(p.position_id as u64);
        }
        if let Some(c) = order
            .deals()
            .iter()
            .rev()
            .find_map(|d| d.close_position_detail.as_ref())
        {
            self.account.apply_close(c);
        }
        let symbol_id = order
            .position()
            .map(|p| p.trade_data.symbol_id)
            .or_else(|| order.deals().first().map(|d| d.symbol_id));
        let instrument = symbol_id
            .and_then(|id| self.by_id.get(&id))
            .and_then(|s| self.instruments.get(s));
        let lots_of = |volume: i64| instrument.map(|i| i.volume.volume_to_lots(volume));
        fill_of(
            order,
            &lots_of,
            x.reference,
            x.side,
            self.account.money_digits(),
        )
    }

    fn instrument(&self, symbol: &Symbol) -> Result<&Instrument, BrokerError> {
        self.instruments
            .get(symbol)
            .ok_or_else(|| BrokerError::Rejected {
                code: "SYMBOL_NOT_FOUND".into(),
                description: format!("{symbol} is not offered by the broker"),
            })
    }
}

/// The broker's answer to one order: every execution event up to its end, folded, and what the
/// fill is measured against (the quote when the order was sent, the side of the deal).
#[derive(Debug)]
pub struct Execution {
    order: OrderProgress,
    reference: Option<f64>,
    side: Side,
}

/// A ticket for an order request: the ended order, or the client's error as a broker error.
fn ticket(
    reference: Option<f64>,
    side: Side,
    request: impl Future<Output = Result<OrderProgress, ClientError>> + Send + 'static,
) -> Ticket<Execution> {
    Box::pin(async move {
        let order = request.await.map_err(map_error)?;
        Ok(Execution {
            order,
            reference,
            side,
        })
    })
}

impl Broker for CtraderBroker {
    type Receipt = Execution;

    fn open_pnl(&self, position: &crate::orders::BrokerPosition) -> Option<f64> {
        self.position_pnl(position.position_id)
    }

    fn volume_rules(&self) -> BTreeMap<Symbol, SymbolVolume> {
        CtraderBroker::volume_rules(self)
    }

    fn book(&self) -> Book {
        Book::Live
    }

    fn snapshot(&self, symbol: &Symbol) -> BookSnapshot {
        BookSnapshot {
            account: self.connected.then(|| self.account()),
            positions: self.book.positions(),
            quote: self.quotes.get(symbol).copied(),
        }
    }

    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        self.reconcile_now().await?;
        Ok(BookSnapshot {
            account: Some(self.account()),
            positions: self.book.positions(),
            quote: None,
        })
    }

    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<Execution> {
        let o = order.item();
        let inst = match self.instrument(&o.symbol) {
            Ok(inst) => inst,
            Err(e) => return answered(Err(e)),
        };
        let volume = match inst.volume.lots_to_volume(o.lots) {
            Ok(v) => v,
            Err(e) => return answered(Err(BrokerError::BadVolume(e.to_string()))),
        };
        let symbol_id = inst.id;
        let side = o.side;
        let trade_side = match side {
            Side::Buy => ProtoOaTradeSide::Buy,
            Side::Sell => ProtoOaTradeSide::Sell,
        };
        let reference = self.quotes.get(&o.symbol).map(|q| q.price_for(side));
        let label = o.client_order_id.clone();
        let client = self.client.clone();
        ticket(reference, side, async move {
            client
                .new_market_order(symbol_id, trade_side, volume, Some(&label), Some(&label))
                .await
        })
    }

    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<Execution> {
        let Some(pos) = self.book.position(intent.position_id) else {
            return answered(Err(BrokerError::PositionNotFound(intent.position_id)));
        };
        let Some(volume) = self.book.volume_of(intent.position_id) else {
            return answered(Err(BrokerError::PositionNotFound(intent.position_id)));
        };
        let side = match pos.side {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        };
        let reference = intent
            .symbol
            .as_str()
            .parse::<Symbol>()
            .ok()
            .and_then(|s| self.quotes.get(&s))
            .map(|q| q.price_for(side));
        let id = intent.position_id;
        let client = self.client.clone();
        let t = ticket(reference, side, async move {
            client.close_position(id as i64, volume).await
        });
        Box::pin(async move {
            t.await.map_err(|e| match e {
                BrokerError::PositionNotFound(_) => BrokerError::PositionNotFound(id),
                e => e,
            })
        })
    }

    fn settle(&mut self, answer: Result<Execution, BrokerError>) -> Result<Fill, BrokerError> {
        match answer {
            Ok(x) => self.fill_from(&x),
            Err(BrokerError::PositionNotFound(id)) => {
                self.book
                    .mark_suspect(format!("the broker has no position {id} to close"));
                Err(BrokerError::PositionNotFound(id))
            }
            Err(e) => Err(e),
        }
    }

    fn suspect(&self) -> Option<String> {
        self.book.suspect().map(str::to_string)
    }

    fn distrust(&mut self, why: String) {
        self.book.mark_suspect(why);
    }

    fn reconcile_every(&self) -> Option<Duration> {
        Some(RECONCILE_EVERY)
    }

    fn set_specs(&mut self, specs: BTreeMap<Symbol, SymbolConfig>) {
        self.specs = specs;
    }

    fn on_event(&mut self, ev: &BrokerEvent, now: i64) {
        self.apply_event(ev, now);
    }

    /// Positions on symbols the config does not trade count in the risk guard with their real
    /// lots: their volume rules are fetched when such a position appears (no request otherwise).
    async fn after_events(&mut self) {
        if let Err(e) = self.resolve_symbols().await {
            tracing::warn!(error = %e, "volume rules of an unconfigured symbol holding a position could not be fetched; its lots count as unbounded (no new opens pass the exposure limit)");
        }
    }

    /// Only while the link is up: a refresh would wait out a reconnect otherwise.
    fn account_request(&self) -> Option<AccountRequest> {
        if self.client.state() != ctrader::client::LinkState::Ready {
            return None;
        }
        let request = self.account_refresh();
        Some(Box::pin(async move { request.await.map_err(map_error) }))
    }

    fn apply_account(&mut self, r: &AccountRefresh) {
        self.account.apply_refresh(&r.trader, &r.pnl, r.epoch);
    }
}
