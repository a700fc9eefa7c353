//! The paper book: market orders filled at the latest bar close (taken as the bid, as cTrader's
//! trendbars are) plus the modeled spread and slippage; positions, balance, equity and margin,
//! persisted at every commit (once per batch of signals, before their results are journaled) so a
//! restart resumes the same book.

use std::collections::BTreeMap;
use std::path::PathBuf;

use protocol::Symbol;
use serde::{Deserialize, Serialize};

use super::{Broker, BrokerError, Ticket, answered};
use crate::config::{QuoteConversion, SymbolConfig};
use crate::desk::risk::{RiskApproved, required_margin};
use crate::orders::{
    AccountSnapshot, Book, BookSnapshot, BrokerPosition, CloseIntent, Fill, OpenIntent, Quote, Side,
};
use crate::state;

/// The persisted part of a paper book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperBook {
    pub balance: f64,
    pub leverage: f64,
    pub next_position_id: u64,
    pub positions: Vec<BrokerPosition>,
    pub quotes: BTreeMap<String, Quote>,
    /// Realised PnL per symbol since the book was created, account currency.
    pub realized: BTreeMap<String, f64>,
}

impl PaperBook {
    pub fn new(initial_balance: f64, leverage: f64) -> Self {
        PaperBook {
            balance: initial_balance,
            leverage,
            next_position_id: 1,
            positions: Vec::new(),
            quotes: BTreeMap::new(),
            realized: BTreeMap::new(),
        }
    }
}

/// A paper broker: the book plus the per-symbol specs that price it.
#[derive(Debug, Clone)]
pub struct PaperBroker {
    pub book: PaperBook,
    specs: BTreeMap<Symbol, SymbolConfig>,
    state_path: Option<PathBuf>,
    /// Fills since the last commit.
    dirty: bool,
}

impl PaperBroker {
    /// A book persisted at `state_path` (loaded if it exists), or in memory when `None`.
    pub fn open_book(
        specs: BTreeMap<Symbol, SymbolConfig>,
        initial_balance: f64,
        leverage: f64,
        state_path: Option<PathBuf>,
    ) -> Result<Self, state::StateError> {
        let book = match &state_path {
            Some(p) => state::read_json::<PaperBook>(p)?,
            None => None,
        }
        .unwrap_or_else(|| PaperBook::new(initial_balance, leverage));
        Ok(PaperBroker {
            book,
            specs,
            state_path,
            dirty: false,
        })
    }

    /// New symbol specs after a config reload (open positions keep their entry and margin).
    pub fn set_specs(&mut self, specs: BTreeMap<Symbol, SymbolConfig>) {
        self.specs = specs;
    }

    fn spec(&self, symbol: &str) -> Result<&SymbolConfig, BrokerError> {
        symbol
            .parse::<Symbol>()
            .ok()
            .and_then(|s| self.specs.get(&s))
            .ok_or_else(|| BrokerError::Rejected {
                code: "SYMBOL_NOT_FOUND".into(),
                description: format!("paper book has no spec for {symbol}"),
            })
    }

    /// A closed bar's close becomes the quote: bid = close, ask = close + modeled spread.
    pub fn on_bar_close(&mut self, symbol: &Symbol, close: f64, time: i64) {
        let spread = self.specs.get(symbol).map_or(0.0, |s| s.spread);
        self.book.quotes.insert(
            symbol.as_str().to_string(),
            Quote {
                bid: close,
                ask: close + spread,
                time,
            },
        );
    }

    /// Balance plus the open positions marked at the current quotes.
    pub fn account(&self) -> AccountSnapshot {
        let mut unrealized = 0.0;
        let mut used_margin = 0.0;
        for p in &self.book.positions {
            used_margin += p.margin;
            if let (Some(q), Ok(spec), Some(entry)) = (
                self.book.quotes.get(&p.symbol),
                self.spec(&p.symbol),
                p.entry_price,
            ) {
                // A long is closed by selling at the bid, a short by buying at the ask.
                let exit = q.price_for(opposite(p.side));
                unrealized += to_account(
                    spec,
                    (exit - entry) * p.side.sign() * p.lots * spec.contract_size,
                    exit,
                );
            }
        }
        AccountSnapshot {
            balance: self.book.balance,
            equity: self.book.balance + unrealized,
            used_margin,
            leverage: self.book.leverage,
        }
    }

    /// A position's open PnL at the current quote, account currency (`None` without a quote).
    pub fn position_pnl(&self, p: &crate::orders::BrokerPosition) -> Option<f64> {
        let q = self.book.quotes.get(&p.symbol)?;
        let spec = self.spec(&p.symbol).ok()?;
        let exit = q.price_for(opposite(p.side));
        Some(to_account(
            spec,
            (exit - p.entry_price?) * p.side.sign() * p.lots * spec.contract_size,
            exit,
        ))
    }

    pub fn snapshot_sync(&self, symbol: &Symbol) -> BookSnapshot {
        BookSnapshot {
            account: Some(self.account()),
            positions: self.book.positions.clone(),
            quote: self.book.quotes.get(symbol.as_str()).copied(),
        }
    }

    pub fn open_sync(&mut self, order: &RiskApproved<OpenIntent>) -> Result<Fill, BrokerError> {
        let o = order.item();
        let spec = self.spec(o.symbol.as_str())?.clone();
        if !(o.lots > 0.0 && o.lots.is_finite()) {
            return Err(BrokerError::BadVolume(format!("{} lots", o.lots)));
        }
        let q = *self
            .book
            .quotes
            .get(o.symbol.as_str())
            .ok_or_else(|| BrokerError::NoQuote(o.symbol.to_string()))?;
        let reference = q.price_for(o.side);
        let price = reference + o.side.sign() * spec.slippage;
        let margin = required_margin(&spec, o.lots, price, self.book.leverage);
        let acct = self.account();
        if margin > acct.free_margin() {
            return Err(BrokerError::NotEnoughMoney(format!(
                "needs {margin:.2}, free {:.2}",
                acct.free_margin()
            )));
        }
        let position_id = self.book.next_position_id;
        self.book.next_position_id += 1;
        self.book.positions.push(BrokerPosition {
            position_id,
            symbol: o.symbol.to_string(),
            side: o.side,
            lots: o.lots,
            entry_price: Some(price),
            margin,
            label: Some(o.client_order_id.clone()),
        });
        self.dirty = true;
        Ok(Fill {
            position_id,
            price: Some(price),
            lots: Some(o.lots),
            slippage: Some((price - reference) * o.side.sign()),
            realized_pnl: None,
        })
    }

    pub fn close_sync(&mut self, intent: &CloseIntent) -> Result<Fill, BrokerError> {
        let idx = self
            .book
            .positions
            .iter()
            .position(|p| p.position_id == intent.position_id)
            .ok_or(BrokerError::PositionNotFound(intent.position_id))?;
        let pos = self.book.positions[idx].clone();
        let spec = self.spec(&pos.symbol)?.clone();
        let q = *self
            .book
            .quotes
            .get(&pos.symbol)
            .ok_or_else(|| BrokerError::NoQuote(pos.symbol.clone()))?;
        // Every paper fill has a price: a position without one comes from a damaged book file.
        let entry = pos.entry_price.ok_or_else(|| {
            BrokerError::Persist(format!(
                "paper position {} has no entry price; fix or restore paper_book.json",
                pos.position_id
            ))
        })?;
        let exit_side = opposite(pos.side);
        let reference = q.price_for(exit_side);
        let price = reference + exit_side.sign() * spec.slippage;
        // The round-turn commission is charged at close, as the twin charges it (ENV.md §6).
        let pnl = to_account(
            &spec,
            (price - entry) * pos.side.sign() * pos.lots * spec.contract_size,
            price,
        ) - spec.commission_per_lot * pos.lots;
        self.book.positions.remove(idx);
        self.book.balance += pnl;
        *self.book.realized.entry(pos.symbol.clone()).or_insert(0.0) += pnl;
        self.dirty = true;
        Ok(Fill {
            position_id: pos.position_id,
            price: Some(price),
            lots: Some(pos.lots),
            slippage: Some((price - reference) * exit_side.sign()),
            realized_pnl: Some(pnl),
        })
    }

    /// Writes the book to its state file (no-op for an in-memory book).
    pub fn persist(&self) -> Result<(), BrokerError> {
        match &self.state_path {
            Some(p) => state::write_json_atomic(p, &self.book)
                .map_err(|e| BrokerError::Persist(e.to_string())),
            None => Ok(()),
        }
    }
}

impl Broker for PaperBroker {
    type Receipt = Fill;

    fn open_pnl(&self, position: &crate::orders::BrokerPosition) -> Option<f64> {
        self.position_pnl(position)
    }

    fn book(&self) -> Book {
        Book::Paper
    }

    fn set_specs(&mut self, specs: BTreeMap<Symbol, SymbolConfig>) {
        PaperBroker::set_specs(self, specs);
    }

    fn on_bar_close(&mut self, symbol: &Symbol, close: f64, time: i64) {
        PaperBroker::on_bar_close(self, symbol, close, time);
    }

    fn snapshot(&self, symbol: &Symbol) -> BookSnapshot {
        self.snapshot_sync(symbol)
    }

    async fn reconcile(&mut self) -> Result<BookSnapshot, BrokerError> {
        Ok(BookSnapshot {
            account: Some(self.account()),
            positions: self.book.positions.clone(),
            quote: None,
        })
    }

    fn submit_open(&mut self, order: &RiskApproved<OpenIntent>) -> Ticket<Fill> {
        answered(self.open_sync(order))
    }

    fn submit_close(&mut self, intent: &CloseIntent) -> Ticket<Fill> {
        answered(self.close_sync(intent))
    }

    fn settle(&mut self, answer: Result<Fill, BrokerError>) -> Result<Fill, BrokerError> {
        answer
    }

    fn commit(&mut self) -> Result<(), BrokerError> {
        if self.dirty {
            self.persist()?;
            self.dirty = false;
        }
        Ok(())
    }
}

fn opposite(side: Side) -> Side {
    match side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    }
}

/// A PnL in the quote currency, in account currency.
pub fn to_account(spec: &SymbolConfig, pnl_quote: f64, price: f64) -> f64 {
    match spec.quote_to_account {
        QuoteConversion::Fixed(r) => pnl_quote * r,
        QuoteConversion::InversePrice if price > 0.0 => pnl_quote / price,
        QuoteConversion::InversePrice => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Action, BarTime};

    /// The twin pays its round-turn commission at close (ENV.md §6); the paper book did not, so it
    /// beat the model by the commission on every trade.
    #[test]
    fn a_close_charges_the_round_turn_commission_per_lot() {
        let eurusd = Symbol::new("EURUSD").unwrap();
        let spec = SymbolConfig {
            enabled: true,
            commission_per_lot: 7.0,
            ..SymbolConfig::defaults(protocol::Timeframe::H1)
        };
        let mut paper =
            PaperBroker::open_book([(eurusd.clone(), spec)].into(), 10_000.0, 30.0, None).unwrap();
        paper.on_bar_close(&eurusd, 1.10120, 0);
        paper.book.positions.push(BrokerPosition {
            position_id: 1,
            symbol: "EURUSD".into(),
            side: Side::Buy,
            lots: 0.03,
            entry_price: Some(1.10000),
            margin: 0.0,
            label: None,
        });
        let fill = paper
            .close_sync(&CloseIntent {
                symbol: eurusd,
                position_id: 1,
                lots: 0.03,
                bar: BarTime::from_unix(0).unwrap(),
                action: Action::Wait,
                client_order_id: "c".into(),
            })
            .unwrap();
        // 0.0012 × 3,000 units = 3.60 USD, minus 0.03 lot × 7 USD = 0.21.
        let pnl = fill.realized_pnl.unwrap();
        assert!((pnl - 3.39).abs() < 1e-9, "{pnl}");
        assert!((paper.book.balance - 10_003.39).abs() < 1e-9);
    }
}
