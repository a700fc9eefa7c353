//! The broker's positions in the book's terms, on every symbol the broker lists: a position the
//! config does not trade (opened by hand, or by another tool) still holds margin and a position
//! slot, so the risk guard must count it. Pure.

use std::collections::HashMap;

use ctrader::domain::SymbolVolume;
use ctrader::messages::{ProtoOaPosition, ProtoOaTradeSide};
use protocol::Symbol;

use crate::broker::account::BrokerAccount;
use crate::orders::{BrokerPosition, Side};

/// What turns a broker position into the book's terms: each configured symbol's name and volume
/// rules, every symbol's name at the broker, and the volume rules fetched for unconfigured symbols
/// that hold positions.
#[derive(Debug, Default)]
pub(super) struct PositionTerms {
    pub(super) configured: HashMap<i64, (Symbol, SymbolVolume)>,
    /// Every symbol the broker lists, by id (positions on unconfigured symbols are named by it).
    pub(super) names: HashMap<i64, String>,
    /// Volume rules of unconfigured symbols that hold positions.
    pub(super) other_volumes: HashMap<i64, SymbolVolume>,
}

impl PositionTerms {
    /// The volume rules of a position's symbol: the configured instrument's, or those fetched for
    /// an unconfigured symbol that holds positions.
    pub(super) fn volume_rules(&self, symbol_id: i64) -> Option<&SymbolVolume> {
        match self.configured.get(&symbol_id) {
            Some((_, volume)) => Some(volume),
            None => self.other_volumes.get(&symbol_id),
        }
    }

    /// A symbol's name: the configured one, the broker's, or `#id` when the broker never named it.
    pub(super) fn name(&self, symbol_id: i64) -> String {
        match self.configured.get(&symbol_id) {
            Some((sym, _)) => sym.to_string(),
            None => self
                .names
                .get(&symbol_id)
                .cloned()
                .unwrap_or_else(|| format!("#{symbol_id}")),
        }
    }

    /// A broker position in the book's terms and its broker volume, on any symbol: a position the
    /// config does not trade still holds margin and a position slot.
    pub(super) fn position_of(
        &self,
        p: &ProtoOaPosition,
        account: &BrokerAccount,
    ) -> (BrokerPosition, i64) {
        let symbol_id = p.trade_data.symbol_id;
        let side = if p.trade_data.trade_side == ProtoOaTradeSide::Buy as i32 {
            Side::Buy
        } else {
            Side::Sell
        };
        // Lots of a symbol whose volume rules are still unknown (`resolve_symbols` fetches them)
        // count as unbounded: the exposure limit refuses new opens rather than undercount.
        let lots = self
            .volume_rules(symbol_id)
            .map_or(f64::INFINITY, |v| v.volume_to_lots(p.trade_data.volume));
        (
            BrokerPosition {
                position_id: p.position_id as u64,
                symbol: self.name(symbol_id),
                side,
                lots,
                entry_price: p.price,
                margin: account.amount(p.used_margin.map_or(0, |m| m as i64), p.money_digits),
                label: p.trade_data.label.clone(),
            },
            p.trade_data.volume,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ctrader::messages::{ProtoOaTradeData, ProtoOaTrader};

    fn volume(symbol: &str, lot_size: i64) -> SymbolVolume {
        SymbolVolume {
            symbol: symbol.into(),
            lot_size,
            step_volume: 100,
            min_volume: 100,
            max_volume: 1_000_000_000,
            digits: 2,
        }
    }

    fn position(symbol_id: i64, volume: i64, used_margin: u64, md: Option<u32>) -> ProtoOaPosition {
        ProtoOaPosition {
            position_id: 9,
            trade_data: ProtoOaTradeData {
                symbol_id,
                volume,
                trade_side: ProtoOaTradeSide::Sell as i32,
                label: Some("by hand".into()),
                ..Default::default()
            },
            price: Some(40_000.0),
            used_margin: Some(used_margin),
            money_digits: md,
            ..Default::default()
        }
    }

    #[test]
    fn positions_on_every_symbol_are_mapped_with_unknown_lots_unbounded() {
        let mut terms = PositionTerms {
            configured: [(1, ("EURUSD".parse().unwrap(), volume("EURUSD", 10_000_000)))].into(),
            names: [(1, "EURUSD".to_string()), (15, "US30".to_string())].into(),
            other_volumes: HashMap::new(),
        };
        let mut account = BrokerAccount::default();
        account.apply_trader(&ProtoOaTrader {
            money_digits: Some(8),
            ..Default::default()
        });
        // A configured symbol: its lots; margin in the position's own money digits.
        let (p, v) = terms.position_of(&position(1, 2_000_000, 12_345, Some(2)), &account);
        assert_eq!(
            (p.symbol.as_str(), p.lots, p.margin, v),
            ("EURUSD", 0.2, 123.45, 2_000_000)
        );
        // An unconfigured one: named by the broker, lots unbounded until its rules are known,
        // margin in the account's money digits when the position has none.
        let us30 = position(15, 500, 25_000_000_000, None);
        let (p, v) = terms.position_of(&us30, &account);
        assert_eq!(
            (p.symbol.as_str(), p.side, p.margin, v),
            ("US30", Side::Sell, 250.0, 500)
        );
        assert_eq!(p.lots, f64::INFINITY);
        assert_eq!(p.label.as_deref(), Some("by hand"));
        terms.other_volumes.insert(15, volume("US30", 100));
        assert_eq!(terms.position_of(&us30, &account).0.lots, 5.0);
        // A symbol the broker never named.
        assert_eq!(
            terms
                .position_of(&position(77, 100, 0, None), &account)
                .0
                .symbol,
            "#77"
        );
    }
}
