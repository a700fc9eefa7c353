//! The simulated trading account: quotes, positions, orders, deals, balance and margin.
//!
//! Pure and synchronous: every call gets the market time it happens at, so scenarios are exact.
//! The account is hedged (cTrader's default): each market order opens its own position; closing is
//! by position id, partial or full. Money is kept in cents of the deposit currency (USD, moneyDigits
//! 2); volumes in cents of a unit, as on the wire.

use std::collections::{BTreeMap, HashMap};

use super::symbols::SymbolSpec;

/// The current top of book of a symbol (bid/ask, already rounded to its digits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quote {
    pub bid: f64,
    pub ask: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub(super) fn sign(self) -> f64 {
        match self {
            Self::Buy => 1.0,
            Self::Sell => -1.0,
        }
    }

    pub fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

/// A market order as the client asked for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketOrder {
    pub symbol_id: i64,
    pub side: Option<Side>,
    pub volume: i64,
    pub label: Option<String>,
    pub comment: Option<String>,
    pub client_order_id: Option<String>,
    /// Set when the order closes (part of) an existing position.
    pub position_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionStatus {
    Created,
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub id: i64,
    pub symbol_id: i64,
    pub side: Side,
    /// Open volume (cents of a unit); 0 before the first fill and after the close.
    pub volume: i64,
    pub entry_price: f64,
    pub open_ms: i64,
    pub last_update_ms: i64,
    pub label: Option<String>,
    pub comment: Option<String>,
    pub used_margin_cents: i64,
    /// Effective leverage the margin was computed with (for `marginRate`).
    pub margin_rate: f64,
    pub status: PositionStatus,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// The STOP_LOSS_TAKE_PROFIT order holding its protection, once it has one.
    pub protection_order_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Accepted,
    Filled,
    Cancelled,
    Expired,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: i64,
    pub symbol_id: i64,
    pub side: Side,
    pub volume: i64,
    pub status: OrderStatus,
    pub position_id: i64,
    pub closing_order: bool,
    pub label: Option<String>,
    pub comment: Option<String>,
    pub client_order_id: Option<String>,
    pub open_ms: i64,
    pub last_update_ms: i64,
    pub execution_price: Option<f64>,
    pub executed_volume: i64,
    /// The price the order was priced from (bid or ask before slippage).
    pub base_slippage_price: f64,
    /// A position's STOP_LOSS_TAKE_PROFIT order rather than a market order.
    pub protection: bool,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

/// What a closing deal realised.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseDetail {
    pub entry_price: f64,
    pub gross_profit_cents: i64,
    /// Commission charged for the closed volume (>= 0, debited from the balance).
    pub commission_cents: i64,
    pub balance_after_cents: i64,
    pub closed_volume: i64,
    pub quote_to_deposit_rate: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub id: i64,
    pub order_id: i64,
    pub position_id: i64,
    pub symbol_id: i64,
    pub side: Side,
    pub volume: i64,
    pub filled_volume: i64,
    pub create_ms: i64,
    pub execution_ms: i64,
    pub execution_price: f64,
    pub margin_rate: f64,
    pub close: Option<CloseDetail>,
}

/// What an SL/TP amend did to a position's protection order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendKind {
    /// The position had none: a STOP_LOSS_TAKE_PROFIT order was created (ORDER_ACCEPTED).
    Created,
    /// Its protection order was changed (ORDER_REPLACED).
    Replaced,
    /// Both levels cleared: the protection order is gone (ORDER_CANCELLED).
    Removed,
}

/// The answer to an SL/TP amend.
#[derive(Debug, Clone, PartialEq)]
pub struct Amendment {
    pub kind: AmendKind,
    pub order: Order,
    pub position: Position,
}

/// Why an order was refused; `code()` is the Open API error code string the real server sends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TradeError {
    #[error("Symbol {0} not found")]
    SymbolNotFound(i64),
    #[error(
        "Order volume {volume} of {symbol} is invalid: min {min}, max {max}, step {step} (cents of a unit)"
    )]
    BadVolume {
        symbol: String,
        volume: i64,
        min: i64,
        max: i64,
        step: i64,
    },
    #[error("Market is closed for {0}")]
    MarketClosed(String),
    #[error(
        "Not enough money: required margin {required_cents} cents, free margin {free_cents} cents"
    )]
    NotEnoughMoney {
        required_cents: i64,
        free_cents: i64,
    },
    #[error("Position not found with id {0}")]
    PositionNotFound(i64),
    #[error("The simulator fills MARKET orders only")]
    UnsupportedOrderType,
    #[error("Order side must be opposite to position {0}'s side to close it")]
    SameSideAsPosition(i64),
    #[error("Order has no valid trade side")]
    MissingSide,
    #[error("Stop loss / take profit must be positive prices")]
    BadStops,
}

impl TradeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::SymbolNotFound(_) => "SYMBOL_NOT_FOUND",
            Self::BadVolume { .. } => "TRADING_BAD_VOLUME",
            Self::MarketClosed(_) => "MARKET_CLOSED",
            Self::NotEnoughMoney { .. } => "NOT_ENOUGH_MONEY",
            Self::PositionNotFound(_) => "POSITION_NOT_FOUND",
            Self::UnsupportedOrderType | Self::SameSideAsPosition(_) => "TRADING_NOT_ALLOWED",
            Self::MissingSide => "INVALID_REQUEST",
            Self::BadStops => "TRADING_BAD_STOPS",
        }
    }
}

/// Account-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    pub account_id: i64,
    pub balance_cents: i64,
    /// 1:100 is 10_000, as `ProtoOATrader.leverageInCents`.
    pub leverage_in_cents: u32,
    /// Adverse slippage applied to every market fill, in points.
    pub slippage_points: i64,
    /// Charge each catalog symbol its demo model's training costs instead (`--model-costs`): its
    /// own slippage, and its round-turn commission per lot at close.
    pub model_costs: bool,
}

#[derive(Debug, Clone)]
pub struct Book {
    pub config: AccountConfig,
    pub(super) specs: BTreeMap<i64, SymbolSpec>,
    quotes: HashMap<i64, Quote>,
    pub(super) balance_cents: i64,
    pub(super) balance_version: i64,
    pub(super) positions: BTreeMap<i64, Position>,
    pub(super) orders: Vec<Order>,
    pub(super) deals: Vec<Deal>,
    next_id: i64,
}

impl Book {
    pub fn new(config: AccountConfig, specs: impl IntoIterator<Item = SymbolSpec>) -> Self {
        Self {
            balance_cents: config.balance_cents,
            config,
            specs: specs.into_iter().map(|s| (s.id, s)).collect(),
            quotes: HashMap::new(),
            balance_version: 0,
            positions: BTreeMap::new(),
            orders: Vec::new(),
            deals: Vec::new(),
            next_id: 1,
        }
    }

    pub fn spec(&self, symbol_id: i64) -> Option<&SymbolSpec> {
        self.specs.get(&symbol_id)
    }

    pub fn specs(&self) -> impl Iterator<Item = &SymbolSpec> {
        self.specs.values()
    }

    /// Sets (or with `None` removes: market closed) a symbol's current quote.
    pub fn set_quote(&mut self, symbol_id: i64, quote: Option<Quote>) {
        match quote {
            Some(q) => self.quotes.insert(symbol_id, q),
            None => self.quotes.remove(&symbol_id),
        };
    }

    pub fn quote(&self, symbol_id: i64) -> Option<Quote> {
        self.quotes.get(&symbol_id).copied()
    }

    pub fn balance_cents(&self) -> i64 {
        self.balance_cents
    }

    pub fn balance_version(&self) -> i64 {
        self.balance_version
    }

    /// A deposit (or, negative, a withdrawal) of `cents`: the balance changes outside trading.
    pub fn deposit(&mut self, cents: i64) {
        self.balance_cents = self.balance_cents.saturating_add(cents);
        self.balance_version += 1;
    }

    /// Open positions, by id.
    pub fn open_positions(&self) -> impl Iterator<Item = &Position> {
        self.positions
            .values()
            .filter(|p| p.status == PositionStatus::Open)
    }

    pub fn orders(&self) -> &[Order] {
        &self.orders
    }

    pub fn deals(&self) -> &[Deal] {
        &self.deals
    }

    /// Value of one unit of `asset` in the deposit currency (USD), from the current quotes' mids.
    /// Falls back to 1.0 when no USD pair is quoted (documented in SIM.md).
    pub fn to_deposit_rate(&self, asset: &str) -> f64 {
        if asset.eq_ignore_ascii_case("USD") {
            return 1.0;
        }
        for spec in self.specs.values() {
            let Some(q) = self.quotes.get(&spec.id) else {
                continue;
            };
            let mid = (q.bid + q.ask) / 2.0;
            if spec.base_asset.eq_ignore_ascii_case(asset)
                && spec.quote_asset.eq_ignore_ascii_case("USD")
            {
                return mid;
            }
            if spec.quote_asset.eq_ignore_ascii_case(asset)
                && spec.base_asset.eq_ignore_ascii_case("USD")
                && mid > 0.0
            {
                return 1.0 / mid;
            }
        }
        1.0
    }

    pub(super) fn effective_leverage(&self, spec: &SymbolSpec) -> f64 {
        let account = f64::from(self.config.leverage_in_cents) / 100.0;
        account.min(f64::from(spec.max_leverage)).max(1.0)
    }

    /// Margin (cents) that `volume` of `spec` at `price` takes.
    pub fn margin_cents(&self, spec: &SymbolSpec, volume: i64, price: f64) -> i64 {
        let units = volume as f64 / 100.0;
        let notional = units * price * self.to_deposit_rate(&spec.quote_asset);
        (notional / self.effective_leverage(spec) * 100.0).round() as i64
    }

    pub fn used_margin_cents(&self) -> i64 {
        self.open_positions().map(|p| p.used_margin_cents).sum()
    }

    /// Unrealised PnL of a position at the current quotes (cents); 0 when its market is closed.
    pub fn unrealized_cents(&self, position: &Position) -> i64 {
        let (Some(spec), Some(q)) = (
            self.specs.get(&position.symbol_id),
            self.quote(position.symbol_id),
        ) else {
            return 0;
        };
        let exit = match position.side {
            Side::Buy => q.bid,
            Side::Sell => q.ask,
        };
        self.pnl_cents(
            spec,
            position.side,
            position.entry_price,
            exit,
            position.volume,
        )
    }

    pub(super) fn pnl_cents(
        &self,
        spec: &SymbolSpec,
        side: Side,
        entry: f64,
        exit: f64,
        volume: i64,
    ) -> i64 {
        let units = volume as f64 / 100.0;
        let quote_pnl = (exit - entry) * side.sign() * units;
        (quote_pnl * self.to_deposit_rate(&spec.quote_asset) * 100.0).round() as i64
    }

    pub fn equity_cents(&self) -> i64 {
        self.balance_cents
            + self
                .open_positions()
                .map(|p| self.unrealized_cents(p))
                .sum::<i64>()
    }

    pub fn free_margin_cents(&self) -> i64 {
        self.equity_cents() - self.used_margin_cents()
    }

    pub(super) fn take_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn check_volume(spec: &SymbolSpec, volume: i64) -> Result<(), TradeError> {
        if volume < spec.min_volume || volume > spec.max_volume || volume % spec.step_volume != 0 {
            return Err(TradeError::BadVolume {
                symbol: spec.name.clone(),
                volume,
                min: spec.min_volume,
                max: spec.max_volume,
                step: spec.step_volume,
            });
        }
        Ok(())
    }

    /// Fill price for `side` at the current quote: ask for buys, bid for sells, plus adverse slippage.
    pub(super) fn fill_price(&self, spec: &SymbolSpec, side: Side, q: Quote) -> (f64, f64) {
        let points = match (self.config.model_costs, spec.model_costs) {
            (true, Some(c)) => c.slippage_points,
            _ => self.config.slippage_points,
        };
        let slip = points as f64 * spec.point();
        let base = match side {
            Side::Buy => q.ask,
            Side::Sell => q.bid,
        };
        (base, spec.round_price(base + side.sign() * slip))
    }

    /// The commission charged on closing `volume` (cents of a unit) of `spec`, in cents of the
    /// deposit currency: the round turn at close, only under `--model-costs`.
    pub(super) fn close_commission_cents(&self, spec: &SymbolSpec, volume: i64) -> i64 {
        match (self.config.model_costs, spec.model_costs) {
            (true, Some(c)) if spec.lot_size > 0 => {
                (c.commission_per_lot * volume as f64 / spec.lot_size as f64 * 100.0).round() as i64
            }
            _ => 0,
        }
    }

    /// Sets or clears a position's stop loss and take profit. Only the levels are kept: the
    /// simulator never triggers them (SIM.md).
    pub fn amend_protection(
        &mut self,
        position_id: i64,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        now_ms: i64,
    ) -> Result<Amendment, TradeError> {
        let valid = |p: Option<f64>| p.is_none_or(|p| p.is_finite() && p > 0.0);
        if !valid(stop_loss) || !valid(take_profit) {
            return Err(TradeError::BadStops);
        }
        let position = self
            .positions
            .get(&position_id)
            .filter(|p| p.status == PositionStatus::Open)
            .ok_or(TradeError::PositionNotFound(position_id))?
            .clone();
        let clear = stop_loss.is_none() && take_profit.is_none();
        let (kind, order_id) = match position.protection_order_id {
            None => (AmendKind::Created, self.take_id()),
            Some(id) if clear => (AmendKind::Removed, id),
            Some(id) => (AmendKind::Replaced, id),
        };
        let position = Position {
            stop_loss,
            take_profit,
            protection_order_id: (kind != AmendKind::Removed).then_some(order_id),
            last_update_ms: now_ms,
            ..position
        };
        let order = Order {
            id: order_id,
            symbol_id: position.symbol_id,
            side: position.side.opposite(),
            volume: position.volume,
            status: if kind == AmendKind::Removed {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Accepted
            },
            position_id,
            closing_order: true,
            label: position.label.clone(),
            comment: position.comment.clone(),
            client_order_id: None,
            open_ms: now_ms,
            last_update_ms: now_ms,
            execution_price: None,
            executed_volume: 0,
            base_slippage_price: 0.0,
            protection: true,
            stop_loss,
            take_profit,
        };
        self.positions.insert(position_id, position.clone());
        Ok(Amendment {
            kind,
            order,
            position,
        })
    }

    /// Deals executed in `[from_ms, to_ms]`, oldest first, at most `max_rows`; and whether more exist.
    pub fn deals_between(&self, from_ms: i64, to_ms: i64, max_rows: usize) -> (Vec<Deal>, bool) {
        let all: Vec<&Deal> = self
            .deals
            .iter()
            .filter(|d| (from_ms..=to_ms).contains(&d.execution_ms))
            .collect();
        let more = all.len() > max_rows;
        (all.into_iter().take(max_rows).cloned().collect(), more)
    }

    /// Orders last updated in `[from_ms, to_ms]`, oldest first.
    pub fn orders_between(&self, from_ms: i64, to_ms: i64) -> Vec<Order> {
        self.orders
            .iter()
            .filter(|o| (from_ms..=to_ms).contains(&o.last_update_ms))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::catalog_spec;

    fn book(balance_cents: i64) -> Book {
        let specs = ["EURUSD", "USDJPY", "GER40"].map(|s| catalog_spec(s).unwrap());
        let mut b = Book::new(
            AccountConfig {
                account_id: 7,
                balance_cents,
                leverage_in_cents: 10_000,
                slippage_points: 2,
                model_costs: false,
            },
            specs,
        );
        b.set_quote(
            1,
            Some(Quote {
                bid: 1.10000,
                ask: 1.10008,
            }),
        );
        b.set_quote(
            4,
            Some(Quote {
                bid: 150.000,
                ask: 150.010,
            }),
        );
        b
    }

    fn buy(symbol_id: i64, volume: i64) -> MarketOrder {
        MarketOrder {
            symbol_id,
            side: Some(Side::Buy),
            volume,
            label: Some("L".into()),
            ..Default::default()
        }
    }

    #[test]
    fn buy_fills_at_ask_plus_slippage_and_reports_accept_then_fill() {
        let mut b = book(1_000_000);
        let ex = b.place_market_order(&buy(1, 10_000_000), 5_000).unwrap();
        assert_eq!(ex.accepted_order.status, OrderStatus::Accepted);
        assert_eq!(
            ex.accepted_position, None,
            "an opening order's ACCEPTED has no position"
        );
        assert_eq!(ex.final_order().status, OrderStatus::Filled);
        assert!(
            (ex.last_deal().unwrap().execution_price - 1.10010).abs() < 1e-9,
            "{}",
            ex.last_deal().unwrap().execution_price
        );
        assert_eq!(ex.position().unwrap().volume, 10_000_000);
        assert_eq!(ex.position().unwrap().label.as_deref(), Some("L"));
        // 100,000 EUR at 1.1001 USD with 1:100 leverage = 1100.10 USD of margin.
        assert_eq!(b.used_margin_cents(), 110_010);
        // Marked at the bid, the spread and slippage are an immediate loss: (1.1 - 1.1001) * 100k = -10 USD.
        assert_eq!(b.equity_cents(), 1_000_000 - 1_000);
    }

    #[test]
    fn model_costs_charge_the_symbols_training_slippage_and_commission() {
        // EURUSD's demo model: 2 points of slippage per fill, 7 USD per lot round turn.
        let mut b = book(1_000_000);
        b.config.slippage_points = 1;
        b.config.model_costs = true;
        let ex = b.place_market_order(&buy(1, 1_000_000), 0).unwrap(); // 0.1 lot
        let entry = ex.last_deal().unwrap().execution_price;
        assert!(
            (entry - 1.10010).abs() < 1e-9,
            "ask + 2 points, got {entry}"
        );
        let id = ex.position().unwrap().id;
        let close = b.close_position(id, 1_000_000, 10).unwrap();
        let deal = close.last_deal().unwrap();
        assert!((deal.execution_price - 1.09998).abs() < 1e-9);
        let detail = deal.close.clone().unwrap();
        // (1.09998 - 1.10010) * 10,000 = -1.20 USD gross; 0.1 lot * 7 USD = 0.70 USD commission.
        assert_eq!(detail.gross_profit_cents, -120);
        assert_eq!(detail.commission_cents, 70);
        assert_eq!(b.balance_cents(), 1_000_000 - 120 - 70);
        let wire = crate::wire::deal_to_wire(deal, crate::money::Money::new(2).unwrap());
        let cpd = wire.close_position_detail.unwrap();
        assert_eq!((cpd.gross_profit, cpd.commission), (-120, -70));
        // Without the option the same trade costs the flat slippage and no commission.
        let mut flat = book(1_000_000);
        flat.config.slippage_points = 1;
        let id = flat
            .place_market_order(&buy(1, 1_000_000), 0)
            .unwrap()
            .position()
            .unwrap()
            .id;
        let c = flat.close_position(id, 1_000_000, 10).unwrap();
        assert_eq!(
            c.last_deal()
                .unwrap()
                .close
                .clone()
                .unwrap()
                .commission_cents,
            0
        );
    }

    #[test]
    fn sell_fills_at_bid_minus_slippage() {
        let mut b = book(1_000_000);
        let order = MarketOrder {
            side: Some(Side::Sell),
            ..buy(1, 100_000)
        };
        let ex = b.place_market_order(&order, 0).unwrap();
        assert!((ex.last_deal().unwrap().execution_price - 1.09998).abs() < 1e-9);
    }

    #[test]
    fn partial_then_full_close_realises_pnl_into_balance() {
        let mut b = book(1_000_000);
        let ex = b.place_market_order(&buy(1, 10_000_000), 0).unwrap();
        let id = ex.position().unwrap().id;
        b.set_quote(
            1,
            Some(Quote {
                bid: 1.10112,
                ask: 1.10120,
            }),
        );
        let part = b.close_position(id, 4_000_000, 10).unwrap();
        assert_eq!(part.position().unwrap().volume, 6_000_000);
        assert_eq!(part.position().unwrap().status, PositionStatus::Open);
        assert!(part.final_order().closing_order);
        // Sold 40,000 at 1.10110 (bid - 2 points) vs entry 1.10010: +40 USD.
        let detail = part.last_deal().unwrap().close.clone().unwrap();
        assert_eq!(detail.gross_profit_cents, 4_000);
        assert_eq!(detail.balance_after_cents, 1_004_000);
        let rest = b.close_position(id, 6_000_000, 20).unwrap();
        assert_eq!(rest.position().unwrap().status, PositionStatus::Closed);
        assert_eq!(b.balance_cents(), 1_004_000 + 6_000);
        assert_eq!(b.used_margin_cents(), 0);
        assert_eq!(b.open_positions().count(), 0);
        assert_eq!(b.deals().len(), 3);
        assert_eq!(b.deals_between(10, 20, 1).0.len(), 1);
        assert!(b.deals_between(10, 20, 1).1);
        assert_eq!(
            b.close_position(id, 1, 30),
            Err(TradeError::PositionNotFound(id))
        );
    }

    #[test]
    fn jpy_pnl_is_converted_to_usd() {
        let mut b = book(1_000_000);
        let ex = b.place_market_order(&buy(4, 10_000_000), 0).unwrap();
        assert!((ex.last_deal().unwrap().execution_price - 150.012).abs() < 1e-9);
        b.set_quote(
            4,
            Some(Quote {
                bid: 151.514,
                ask: 151.524,
            }),
        );
        let close = b
            .close_position(ex.position().unwrap().id, 10_000_000, 1)
            .unwrap();
        // (151.512 - 150.012) * 100k = 150,000 JPY at 1/151.519 USD/JPY = 989.97 USD.
        let gross = close
            .last_deal()
            .unwrap()
            .close
            .clone()
            .unwrap()
            .gross_profit_cents;
        let expected = (1.5 * 100_000.0 / 151.519 * 100.0_f64).round() as i64;
        assert_eq!(gross, expected);
    }

    #[test]
    fn refusals_carry_the_real_error_codes() {
        let mut b = book(100_000); // 1,000 USD: one lot of EURUSD needs 1,100 USD of margin.
        let e = b.place_market_order(&buy(1, 10_000_000), 0).unwrap_err();
        assert_eq!(e.code(), "NOT_ENOUGH_MONEY");
        assert_eq!(
            b.place_market_order(&buy(1, 150_000), 0)
                .unwrap_err()
                .code(),
            "TRADING_BAD_VOLUME"
        );
        assert_eq!(
            b.place_market_order(&buy(1, 0), 0).unwrap_err().code(),
            "TRADING_BAD_VOLUME"
        );
        assert_eq!(
            b.place_market_order(&buy(10_017, 100), 0)
                .unwrap_err()
                .code(),
            "MARKET_CLOSED"
        );
        assert_eq!(
            b.place_market_order(&buy(999, 100), 0).unwrap_err().code(),
            "SYMBOL_NOT_FOUND"
        );
        assert_eq!(
            b.close_position(42, 100_000, 0).unwrap_err().code(),
            "POSITION_NOT_FOUND"
        );
        assert!(b.orders().is_empty() && b.deals().is_empty());
        // Fits: 0.5 lot needs 550 USD.
        assert!(b.place_market_order(&buy(1, 5_000_000), 0).is_ok());
    }

    #[test]
    fn order_with_position_id_closes_that_position() {
        let mut b = book(1_000_000);
        let ex = b.place_market_order(&buy(1, 200_000), 0).unwrap();
        let id = ex.position().unwrap().id;
        let same = MarketOrder {
            position_id: Some(id),
            ..buy(1, 200_000)
        };
        assert_eq!(
            b.place_market_order(&same, 1).unwrap_err(),
            TradeError::SameSideAsPosition(id)
        );
        let close = MarketOrder {
            side: Some(Side::Sell),
            ..same
        };
        let ex = b.place_market_order(&close, 2).unwrap();
        assert_eq!(ex.position().unwrap().status, PositionStatus::Closed);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::symbols::catalog_spec;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Open { buy: bool, lots: i64 },
        Close { which: usize, part: bool },
        Move { pips: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), 1i64..50).prop_map(|(buy, lots)| Op::Open { buy, lots }),
            (0usize..8, any::<bool>()).prop_map(|(which, part)| Op::Close { which, part }),
            (-200i64..200).prop_map(|pips| Op::Move { pips }),
        ]
    }

    proptest! {
        /// Whatever the sequence, money is conserved: balance = initial + realised PnL, margin is
        /// the sum over open positions, and an account with nothing open has equity = balance.
        #[test]
        fn money_is_conserved(ops in proptest::collection::vec(op(), 1..60)) {
            let spec = catalog_spec("EURUSD").unwrap();
            let mut b = Book::new(
                AccountConfig { account_id: 1, balance_cents: 10_000_000, leverage_in_cents: 10_000, slippage_points: 1, model_costs: false },
                [spec],
            );
            let mut bid = 1.10000f64;
            b.set_quote(1, Some(Quote { bid, ask: bid + 0.00007 }));
            let mut t = 0;
            for op in ops {
                t += 1;
                match op {
                    Op::Open { buy, lots } => {
                        let side = if buy { Side::Buy } else { Side::Sell };
                        let order = MarketOrder { symbol_id: 1, side: Some(side), volume: lots * 100_000, ..Default::default() };
                        match b.place_market_order(&order, t) {
                            Ok(ex) => prop_assert_eq!(ex.position().unwrap().volume, lots * 100_000),
                            Err(e) => prop_assert_eq!(e.code(), "NOT_ENOUGH_MONEY"),
                        }
                    }
                    Op::Close { which, part } => {
                        let open: Vec<(i64, i64)> = b.open_positions().map(|p| (p.id, p.volume)).collect();
                        if let Some(&(id, volume)) = open.get(which % open.len().max(1)) {
                            let v = if part && volume > 100_000 { 100_000 } else { volume };
                            b.close_position(id, v, t).unwrap();
                        }
                    }
                    Op::Move { pips } => {
                        bid = (bid + pips as f64 * 0.0001).max(0.5);
                        let bid_r = spec_round(bid);
                        b.set_quote(1, Some(Quote { bid: bid_r, ask: spec_round(bid_r + 0.00007) }));
                    }
                }
                let realised: i64 = b.deals().iter().filter_map(|d| d.close.as_ref()).map(|c| c.gross_profit_cents - c.commission_cents).sum();
                prop_assert_eq!(b.balance_cents(), 10_000_000 + realised);
                let margin: i64 = b.open_positions().map(|p| p.used_margin_cents).sum();
                prop_assert_eq!(b.used_margin_cents(), margin);
                prop_assert!(margin >= 0);
            }
            let open: Vec<i64> = b.open_positions().map(|p| p.id).collect();
            for id in open {
                b.close_position(id, i64::MAX, t + 1).unwrap();
            }
            prop_assert_eq!(b.used_margin_cents(), 0);
            prop_assert_eq!(b.equity_cents(), b.balance_cents());
        }
    }

    fn spec_round(p: f64) -> f64 {
        (p * 1e5).round() / 1e5
    }
}
