//! What one of our cTrader orders did, in the book's terms: the lots executed over every deal at
//! their volume-weighted price, or why nothing (or not all of a close) was. Pure; the order's
//! events are folded by [`ctrader::domain::OrderProgress`] (Spotware's Trading Events Flow).

use ctrader::domain::{OrderEnd, OrderProgress};

use super::BrokerError;
use crate::orders::{Fill, Side};

/// The fill an ended order amounts to. `lots_of` turns the symbol's broker volume into lots;
/// `reference` is the quote the order was sent at (for slippage), `side` the deal's side;
/// `money_digits` scales realised PnL when a deal does not say.
///
/// - Filled: every deal's volume at their volume-weighted price.
/// - Cancelled or expired with nothing executed: [`BrokerError::Cancelled`] (not a fill of 0).
/// - An open cut short: the part executed is a real position, a fill of that many lots (logged).
/// - A close cut short: [`BrokerError::Cancelled`]; the rest of the position is still open.
pub fn fill_of(
    order: &OrderProgress,
    lots_of: &dyn Fn(i64) -> Option<f64>,
    reference: Option<f64>,
    side: Side,
    money_digits: u32,
) -> Result<Fill, BrokerError> {
    let how = match order.end() {
        Some(OrderEnd::Filled) => None,
        Some(OrderEnd::Cancelled) => Some("cancelled"),
        Some(OrderEnd::Expired) => Some("expired"),
        // The client answers only with ended orders and turns a rejection into an error.
        Some(OrderEnd::Rejected) | None => {
            return Err(BrokerError::Rejected {
                code: order.error_code().unwrap_or("ORDER_REJECTED").to_string(),
                description: "the order did not end in a fill".into(),
            });
        }
    };
    let executed = order.executed_volume();
    let lots = lots_of(executed);
    let reason = order
        .error_code()
        .map_or(String::new(), |c| format!(" ({c})"));
    match how {
        Some(how) if executed <= 0 => {
            return Err(BrokerError::Cancelled(format!(
                "{how} after it was accepted, nothing executed{reason}"
            )));
        }
        Some(how) if order.is_closing() => {
            let left = order.position().map_or(0, |p| p.trade_data.volume);
            return Err(BrokerError::Cancelled(format!(
                "{how} after closing {} lots, {} lots still open{reason}",
                shown(lots),
                shown(lots_of(left))
            )));
        }
        Some(how) => tracing::warn!(
            lots = shown(lots),
            requested = shown(order.volume().and_then(lots_of)),
            "the broker filled the open in part, the rest {how}{reason}: the position held is smaller than the target"
        ),
        None => {}
    }
    let position_id = order
        .position()
        .map(|p| p.position_id)
        .or_else(|| order.deals().first().map(|d| d.position_id))
        .unwrap_or_default();
    let price = order.average_price();
    Ok(Fill {
        position_id: position_id as u64,
        price,
        lots,
        slippage: price.zip(reference).map(|(p, r)| (p - r) * side.sign()),
        realized_pnl: order.realized(money_digits),
    })
}

/// Lots for a message: `?` when the symbol's volume rules are unknown.
fn shown(lots: Option<f64>) -> String {
    lots.map_or_else(|| "?".to_string(), |l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrader::messages::{
        ProtoOaClosePositionDetail, ProtoOaDeal, ProtoOaExecutionEvent, ProtoOaExecutionType,
        ProtoOaOrder, ProtoOaPosition, ProtoOaPositionStatus, ProtoOaTradeData,
    };
    use protocol::Reason;

    const VOLUME: i64 = 700_000;

    fn lots(v: i64) -> Option<f64> {
        Some(v as f64 / 10_000_000.0)
    }

    /// One step: (type, executed so far, deal (id, volume, price), position volume left or held,
    /// its price).
    type StepSpec = (ProtoOaExecutionType, i64, Option<(i64, i64, f64)>, i64, f64);

    /// An order of VOLUME (`closing` or not) after these steps.
    fn order(closing: bool, steps: &[StepSpec]) -> OrderProgress {
        let mut o = OrderProgress::new();
        for &(kind, executed, deal, held, price) in steps {
            o.apply(&ProtoOaExecutionEvent {
                execution_type: kind as i32,
                order: Some(ProtoOaOrder {
                    order_id: 1,
                    trade_data: ProtoOaTradeData {
                        volume: VOLUME,
                        ..Default::default()
                    },
                    executed_volume: Some(executed),
                    closing_order: Some(closing),
                    ..Default::default()
                }),
                deal: deal.map(|(id, v, p)| ProtoOaDeal {
                    deal_id: id,
                    position_id: 9,
                    filled_volume: v,
                    execution_price: Some(p),
                    close_position_detail: closing.then(|| ProtoOaClosePositionDetail {
                        gross_profit: 1_000,
                        money_digits: Some(2),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                position: Some(ProtoOaPosition {
                    position_id: 9,
                    trade_data: ProtoOaTradeData {
                        volume: held,
                        ..Default::default()
                    },
                    position_status: ProtoOaPositionStatus::PositionStatusOpen as i32,
                    price: Some(price),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert!(o.is_done());
        o
    }

    use ProtoOaExecutionType::{
        OrderAccepted as Acc, OrderCancelled as Can, OrderExpired as Exp, OrderFilled as Fil,
    };

    #[test]
    fn three_deals_are_one_fill_of_the_whole_volume_at_their_vwap() {
        let o = order(
            false,
            &[
                (Acc, 0, None, 0, 0.0),
                (Fil, 200_000, Some((1, 200_000, 1.0)), 200_000, 1.0),
                (Fil, 400_000, Some((2, 200_000, 1.1)), 400_000, 1.05),
                (Fil, VOLUME, Some((3, 300_000, 1.2)), VOLUME, 1.1),
            ],
        );
        let f = fill_of(&o, &lots, Some(1.0), Side::Buy, 2).unwrap();
        let vwap = (0.2 * 1.0 + 0.2 * 1.1 + 0.3 * 1.2) / 0.7;
        assert_eq!((f.position_id, f.lots), (9, Some(0.07)));
        let (price, slippage) = (f.price.unwrap(), f.slippage.unwrap());
        assert!((price - vwap).abs() < 1e-12, "{price}");
        assert!((slippage - (vwap - 1.0)).abs() < 1e-12);
        assert_eq!(f.realized_pnl, None);
    }

    #[test]
    fn nothing_executed_is_cancelled_not_a_fill_of_zero_lots() {
        for end in [Can, Exp] {
            let o = order(false, &[(Acc, 0, None, 0, 0.0), (end, 0, None, 0, 0.0)]);
            let e = fill_of(&o, &lots, None, Side::Sell, 2).unwrap_err();
            assert!(
                matches!(&e, BrokerError::Cancelled(m) if m.contains("nothing executed")),
                "{e}"
            );
            assert_eq!(e.reason(), Reason::Cancelled);
            assert!(!e.is_ambiguous());
        }
    }

    #[test]
    fn an_open_cut_short_is_a_fill_of_the_part_executed() {
        let o = order(
            false,
            &[(Acc, 0, None, 0, 0.0), (Can, 300_000, None, 300_000, 1.3)],
        );
        let f = fill_of(&o, &lots, None, Side::Buy, 2).unwrap();
        assert_eq!((f.position_id, f.lots, f.price), (9, Some(0.03), Some(1.3)));
    }

    #[test]
    fn a_close_cut_short_is_cancelled_and_says_what_is_left() {
        let o = order(
            true,
            &[
                (Fil, 300_000, Some((1, 300_000, 1.4)), 400_000, 1.0),
                (Exp, 300_000, None, 400_000, 1.0),
            ],
        );
        let e = fill_of(&o, &lots, None, Side::Sell, 2).unwrap_err();
        assert_eq!(
            e,
            BrokerError::Cancelled("expired after closing 0.03 lots, 0.04 lots still open".into())
        );
    }

    #[test]
    fn a_close_in_two_deals_realises_both() {
        let o = order(
            true,
            &[
                (Fil, 300_000, Some((1, 300_000, 1.4)), 400_000, 1.0),
                (Fil, VOLUME, Some((2, 400_000, 1.5)), 0, 1.0),
            ],
        );
        let f = fill_of(&o, &lots, None, Side::Sell, 2).unwrap();
        assert_eq!(f.realized_pnl, Some(20.0));
        assert!((f.price.unwrap() - (0.3 * 1.4 + 0.4 * 1.5) / 0.7).abs() < 1e-12);
    }
}
