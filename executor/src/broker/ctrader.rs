//! The live book: an adapter over `ctrader::client`. It keeps a cache of the account (balance,
//! leverage), positions and quotes, fed by the client's events and by reconciles, so the engine can
//! decide on a snapshot without a network round trip; orders go out with the deterministic label
//! and client order id, so a reconcile finds them after a timeout.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use ctrader::client::{
    Client, ClientConfig, ClientError, ClientEvent, ConnectionEvent, EventStream, TokenStore,
};
use ctrader::domain::SymbolVolume;
use ctrader::messages::{
    ProtoOaExecutionEvent, ProtoOaPosition, ProtoOaPositionStatus, ProtoOaReconcileRes,
    ProtoOaTradeSide, ProtoOaTrader,
};
use protocol::{Symbol, Timeframe};

use super::paper::to_account;
use super::{Broker, BrokerError, Ticket, answered};
use crate::config::{CtraderConfig, SymbolConfig};
use crate::orders::{
    AccountSnapshot, BookSnapshot, BrokerPosition, CloseIntent, Fill, OpenIntent, Quote, Side,
};
use crate::risk::RiskApproved;
use crate::secrets::read_secret;

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
    positions: Vec<BrokerPosition>,
    /// Broker volume (0.01 units) per position id, for full closes.
    volumes: HashMap<u64, i64>,
    quotes: HashMap<Symbol, Quote>,
    balance: f64,
    leverage: f64,
    money_digits: u32,
    specs: BTreeMap<Symbol, SymbolConfig>,
    connected: bool,
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
    #[error("cTrader symbol {symbol}: {why}")]
    Symbol { symbol: String, why: String },
}

fn pow10(d: u32) -> f64 {
    10f64.powi(d as i32)
}

/// Maps a client error to the broker error the engine understands.
pub fn map_error(e: ClientError) -> BrokerError {
    match e {
        ClientError::Timeout { .. } => BrokerError::Timeout,
        ClientError::Disconnected { .. } => BrokerError::Disconnected,
        ClientError::Closed | ClientError::Connect { .. } | ClientError::Tls(_) => {
            BrokerError::NotConnected
        }
        ClientError::Broker {
            code, description, ..
        } => {
            let d = description.unwrap_or_default();
            // Order errors arrive as code strings, not all of them in ProtoOAErrorCode.
            match code.as_str() {
                "NOT_ENOUGH_MONEY" => BrokerError::NotEnoughMoney(d),
                "MARKET_CLOSED" | "SYMBOL_HAS_HOLIDAY" | "NO_QUOTES" => {
                    BrokerError::MarketClosed(d)
                }
                "TRADING_BAD_VOLUME" => BrokerError::BadVolume(d),
                other => BrokerError::Rejected {
                    code: other.to_string(),
                    description: d,
                },
            }
        }
        other => BrokerError::Rejected {
            code: "CLIENT".into(),
            description: other.to_string(),
        },
    }
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
        let (client, events) = ctrader::client::connect(cc)?;
        client.wait_ready(ready_within).await?;

        let light = client.symbols().await?;
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
            instruments,
            positions: Vec::new(),
            volumes: HashMap::new(),
            quotes: HashMap::new(),
            balance: 0.0,
            leverage: 1.0,
            money_digits: 2,
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

    pub fn symbol_of(&self, id: i64) -> Option<&Symbol> {
        self.by_id.get(&id)
    }

    pub fn set_specs(&mut self, specs: BTreeMap<Symbol, SymbolConfig>) {
        self.specs = specs;
    }

    fn apply_trader(&mut self, t: &ProtoOaTrader) {
        self.money_digits = t.money_digits.unwrap_or(2);
        self.balance = t.balance as f64 / pow10(self.money_digits);
        if let Some(l) = t.leverage_in_cents {
            self.leverage = (f64::from(l) / 100.0).max(1.0);
        }
    }

    fn position(&self, p: &ProtoOaPosition) -> Option<(BrokerPosition, i64)> {
        let sym = self.by_id.get(&p.trade_data.symbol_id)?;
        let inst = self.instruments.get(sym)?;
        let side = if p.trade_data.trade_side == ProtoOaTradeSide::Buy as i32 {
            Side::Buy
        } else {
            Side::Sell
        };
        let md = p.money_digits.unwrap_or(self.money_digits);
        Some((
            BrokerPosition {
                position_id: p.position_id as u64,
                symbol: sym.to_string(),
                side,
                lots: inst.volume.volume_to_lots(p.trade_data.volume),
                entry_price: p.price.unwrap_or(0.0),
                margin: p.used_margin.unwrap_or(0) as f64 / pow10(md),
                label: p.trade_data.label.clone(),
            },
            p.trade_data.volume,
        ))
    }

    fn apply_reconcile(&mut self, res: &ProtoOaReconcileRes) {
        self.positions.clear();
        self.volumes.clear();
        for p in &res.position {
            if let Some((bp, vol)) = self.position(p) {
                self.volumes.insert(bp.position_id, vol);
                self.positions.push(bp);
            }
        }
    }

    /// Applies a position as an execution event reports it (opened, changed or closed).
    fn apply_position(&mut self, p: &ProtoOaPosition) {
        let id = p.position_id as u64;
        self.positions.retain(|x| x.position_id != id);
        self.volumes.remove(&id);
        let open = p.position_status == ProtoOaPositionStatus::PositionStatusOpen as i32
            && p.trade_data.volume > 0;
        if open && let Some((bp, vol)) = self.position(p) {
            self.volumes.insert(id, vol);
            self.positions.push(bp);
        }
    }

    async fn reconcile_now(&mut self) -> Result<(), BrokerError> {
        let trader = self.client.trader().await.map_err(map_error)?;
        self.apply_trader(&trader);
        let res = self.client.reconcile().await.map_err(map_error)?;
        self.apply_reconcile(&res);
        Ok(())
    }

    /// A spot quote: updates the cache and returns the symbol, bid and time (unix seconds).
    pub fn on_spot(
        &mut self,
        q: &ctrader::domain::SpotQuote,
        now: i64,
    ) -> Option<(Symbol, f64, i64)> {
        let sym = self.by_id.get(&q.symbol_id)?.clone();
        let time = q.timestamp_ms.map_or(now, |ms| ms.div_euclid(1000));
        let old = self.quotes.get(&sym).copied();
        let bid = q.bid.or(old.map(|o| o.bid))?;
        let ask = q.ask.or(old.map(|o| o.ask)).unwrap_or(bid);
        self.quotes.insert(sym.clone(), Quote { bid, ask, time });
        q.bid.map(|b| (sym, b, time))
    }

    /// Client events other than market data: connection state, executions, balance.
    pub fn on_event(&mut self, ev: &ClientEvent) {
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

    fn apply_execution(&mut self, e: &ProtoOaExecutionEvent) {
        if let Some(p) = &e.position {
            self.apply_position(p);
        }
        if let Some(d) = &e.deal
            && let Some(c) = &d.close_position_detail
        {
            self.balance = c.balance as f64 / pow10(c.money_digits.unwrap_or(self.money_digits));
        }
    }

    fn account(&self) -> AccountSnapshot {
        let mut unrealized = 0.0;
        let mut used = 0.0;
        for p in &self.positions {
            used += p.margin;
            if let Ok(sym) = p.symbol.parse::<Symbol>()
                && let (Some(q), Some(spec)) = (self.quotes.get(&sym), self.specs.get(&sym))
            {
                let exit = match p.side {
                    Side::Buy => q.bid,
                    Side::Sell => q.ask,
                };
                unrealized += to_account(
                    spec,
                    (exit - p.entry_price) * p.side.sign() * p.lots * spec.contract_size,
                    exit,
                );
            }
        }
        AccountSnapshot {
            balance: self.balance,
            equity: self.balance + unrealized,
            used_margin: used,
            leverage: self.leverage,
        }
    }

    fn fill_from(
        &mut self,
        e: &ProtoOaExecutionEvent,
        reference: Option<f64>,
        side: Side,
    ) -> Result<Fill, BrokerError> {
        self.apply_execution(e);
        let p = e.position.as_ref().ok_or_else(|| BrokerError::Rejected {
            code: "NO_POSITION".into(),
            description: "execution event without a position".into(),
        })?;
        let price = e
            .deal
            .as_ref()
            .and_then(|d| d.execution_price)
            .or(p.price)
            .unwrap_or(f64::NAN);
        let lots = e
            .deal
            .as_ref()
            .and_then(|d| {
                self.by_id
                    .get(&d.symbol_id)
                    .and_then(|s| self.instruments.get(s))
                    .map(|i| i.volume.volume_to_lots(d.filled_volume))
            })
            .unwrap_or(0.0);
        let realized = e
            .deal
            .as_ref()
            .and_then(|d| d.close_position_detail.as_ref())
            .map(|c| {
                let md = c.money_digits.unwrap_or(self.money_digits);
                (c.gross_profit + c.swap + c.commission) as f64 / pow10(md)
            });
        Ok(Fill {
            position_id: p.position_id as u64,
            price,
            lots,
            slippage: reference.map_or(0.0, |r| (price - r) * side.sign()),
            realized_pnl: realized,
        })
    }

    fn instrument(&self, symbol: &Symbol) -> Result<&Instrument, BrokerError> {
        self.instruments
            .get(symbol)
            .ok_or_else(|| BrokerError::Rejected {
                code: "SYMBOL_NOT_FOUND".into(),
                description: format!("{symbol} is not offered by the broker"),
            })
    }

    /// The bars of a symbol opened in `[from, to)` (unix seconds), oldest first: the bars a lost
    /// link kept the live feed from seeing whole.
    pub async fn bars_between(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        from: i64,
        to: i64,
    ) -> Result<Vec<ctrader::domain::Bar>, BrokerError> {
        let inst = self.instrument(symbol)?;
        let mut bars = self
            .client
            .get_trendbars(inst.id, timeframe, from * 1000, to * 1000, None)
            .await
            .map_err(map_error)?;
        bars.retain(|b| (from..to).contains(&b.open_time));
        Ok(bars)
    }

    /// The last `count` closed bars of a symbol, oldest first (paged and rate-limited by the client).
    pub async fn history(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
        now: i64,
    ) -> Result<Vec<ctrader::domain::Bar>, BrokerError> {
        let inst = self.instrument(symbol)?;
        let tf = timeframe;
        let period = timeframe.duration_secs().unwrap_or(60) as i64;
        // No lower bound: a stock CFD has ~7 H1 bars a day, a symbol may have halted for weeks.
        // The client pages back in windows the server accepts until it has `count` bars or the
        // broker has no more (see `ctrader::client::history`).
        let mut bars = self
            .client
            .get_trendbars(inst.id, tf, 0, now * 1000, Some(count + 1))
            .await
            .map_err(map_error)?;
        bars.retain(|b| b.open_time + period <= now);
        let skip = bars.len().saturating_sub(count);
        Ok(bars.split_off(skip))
    }
}

/// The broker's answer to one order: its final execution event, and what the fill is measured
/// against (the quote when the order was sent, the side of the deal).
#[derive(Debug)]
pub struct Execution {
    event: ProtoOaExecutionEvent,
    reference: Option<f64>,
    side: Side,
}

/// A ticket for an order request: its execution event, or the client's error as a broker error.
fn ticket(
    reference: Option<f64>,
    side: Side,
    request: impl Future<Output = Result<ProtoOaExecutionEvent, ClientError>> + Send + 'static,
) -> Ticket<Execution> {
    Box::pin(async move {
        let event = request.await.map_err(map_error)?;
        Ok(Execution {
            event,
            reference,
            side,
        })
    })
}

impl Broker for CtraderBroker {
    type Receipt = Execution;

    fn name(&self) -> &'static str {
        "live"
    }

    fn snapshot(&self, symbol: &Symbol) -> BookSnapshot {
        BookSnapshot {
            account: self.connected.then(|| self.account()),
            positions: self.positions.clone(),
            quote: self.quotes.get(symbol).copied(),
        }
    }

    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        self.reconcile_now().await?;
        Ok(BookSnapshot {
            account: Some(self.account()),
            positions: self.positions.clone(),
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
        let Some(pos) = self
            .positions
            .iter()
            .find(|p| p.position_id == intent.position_id)
        else {
            return answered(Err(BrokerError::PositionNotFound(intent.position_id)));
        };
        let Some(volume) = self.volumes.get(&intent.position_id).copied() else {
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
        let position_id = intent.position_id as i64;
        let client = self.client.clone();
        ticket(reference, side, async move {
            client.close_position(position_id, volume).await
        })
    }

    fn settle(&mut self, answer: Result<Execution, BrokerError>) -> Result<Fill, BrokerError> {
        let x = answer?;
        self.fill_from(&x.event, x.reference, x.side)
    }
}
