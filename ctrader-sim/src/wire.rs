//! The simulated book's positions, orders and deals as Open API messages. Monetary fields are
//! scaled to the account's `moneyDigits` ([`Money`]).

use super::book::{Deal, Order, OrderStatus, Position, PositionStatus, Side};
use super::money::Money;
use ctrader::messages::*;

fn side_to_wire(side: Side) -> i32 {
    match side {
        Side::Buy => ProtoOaTradeSide::Buy as i32,
        Side::Sell => ProtoOaTradeSide::Sell as i32,
    }
}

pub fn position_to_wire(p: &Position, m: Money) -> ProtoOaPosition {
    ProtoOaPosition {
        position_id: p.id,
        trade_data: ProtoOaTradeData {
            symbol_id: p.symbol_id,
            volume: p.volume,
            trade_side: side_to_wire(p.side),
            open_timestamp: Some(p.open_ms),
            label: p.label.clone(),
            comment: p.comment.clone(),
            ..Default::default()
        },
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        position_status: match p.status {
            PositionStatus::Created => ProtoOaPositionStatus::PositionStatusCreated,
            PositionStatus::Open => ProtoOaPositionStatus::PositionStatusOpen,
            PositionStatus::Closed => ProtoOaPositionStatus::PositionStatusClosed,
        } as i32,
        swap: 0,
        price: (p.status != PositionStatus::Created).then_some(p.entry_price),
        utc_last_update_timestamp: Some(p.last_update_ms),
        commission: Some(0),
        margin_rate: Some(p.margin_rate),
        used_margin: u64::try_from(m.wire(p.used_margin_cents)).ok(),
        money_digits: Some(m.digits()),
        ..Default::default()
    }
}

pub fn order_to_wire(o: &Order) -> ProtoOaOrder {
    ProtoOaOrder {
        order_id: o.id,
        trade_data: ProtoOaTradeData {
            symbol_id: o.symbol_id,
            volume: o.volume,
            trade_side: side_to_wire(o.side),
            open_timestamp: Some(o.open_ms),
            label: o.label.clone(),
            comment: o.comment.clone(),
            ..Default::default()
        },
        order_type: if o.protection {
            ProtoOaOrderType::StopLossTakeProfit
        } else {
            ProtoOaOrderType::Market
        } as i32,
        order_status: match o.status {
            OrderStatus::Accepted => ProtoOaOrderStatus::OrderStatusAccepted,
            OrderStatus::Filled => ProtoOaOrderStatus::OrderStatusFilled,
            OrderStatus::Cancelled => ProtoOaOrderStatus::OrderStatusCancelled,
            OrderStatus::Expired => ProtoOaOrderStatus::OrderStatusExpired,
        } as i32,
        stop_loss: o.stop_loss,
        take_profit: o.take_profit,
        execution_price: o.execution_price,
        executed_volume: Some(o.executed_volume),
        utc_last_update_timestamp: Some(o.last_update_ms),
        base_slippage_price: Some(o.base_slippage_price),
        closing_order: Some(o.closing_order),
        client_order_id: o.client_order_id.clone(),
        time_in_force: Some(if o.protection {
            ProtoOaTimeInForce::GoodTillCancel
        } else {
            ProtoOaTimeInForce::ImmediateOrCancel
        } as i32),
        position_id: Some(o.position_id),
        ..Default::default()
    }
}

pub fn deal_to_wire(d: &Deal, m: Money) -> ProtoOaDeal {
    ProtoOaDeal {
        deal_id: d.id,
        order_id: d.order_id,
        position_id: d.position_id,
        volume: d.volume,
        filled_volume: d.filled_volume,
        symbol_id: d.symbol_id,
        create_timestamp: d.create_ms,
        execution_timestamp: d.execution_ms,
        utc_last_update_timestamp: Some(d.execution_ms),
        execution_price: Some(d.execution_price),
        trade_side: side_to_wire(d.side),
        deal_status: ProtoOaDealStatus::Filled as i32,
        margin_rate: Some(d.margin_rate),
        // Charges are negative amounts, as the executor (and OpenApiPy's samples) add
        // grossProfit + swap + commission for the net.
        commission: Some(-d.close.as_ref().map_or(0, |c| m.wire(c.commission_cents))),
        close_position_detail: d.close.as_ref().map(|c| ProtoOaClosePositionDetail {
            entry_price: c.entry_price,
            gross_profit: m.wire(c.gross_profit_cents),
            swap: 0,
            // "Amount of realized commission related to closed volume" (ProtoOAClosePositionDetail).
            commission: -m.wire(c.commission_cents),
            balance: m.wire(c.balance_after_cents),
            quote_to_deposit_conversion_rate: Some(c.quote_to_deposit_rate),
            closed_volume: Some(c.closed_volume),
            money_digits: Some(m.digits()),
            ..Default::default()
        }),
        money_digits: Some(m.digits()),
        ..Default::default()
    }
}
