//! Trading requests: market orders, closes, SL/TP amends, the deal and order lists, and how their
//! execution is reported to every session of the account.

use ctrader::messages::*;

use super::*;

impl Session<'_> {
    pub(super) fn order_error(&mut self, account: i64, err: &TradeError, position_id: Option<i64>) {
        let m = ProtoOaOrderErrorEvent {
            ctid_trader_account_id: account,
            error_code: err.code().to_string(),
            position_id,
            description: Some(err.to_string()),
            ..Default::default()
        };
        self.respond(&m);
    }

    /// One order's events to every session on the account; only the requester's copies carry
    /// its clientMsgId.
    pub(super) fn broadcast(&mut self, account: i64, events: &[ProtoOaExecutionEvent]) {
        let conns = self.core.account_conns(account);
        for event in events {
            for &c in &conns {
                let mine = c == self.conn;
                self.reply.out.push(Outgoing {
                    conn: c,
                    kind: if mine { Kind::Response } else { Kind::Event },
                    delay: Duration::ZERO,
                    message: event.wrap(if mine { self.msg_id.clone() } else { None }),
                });
            }
        }
    }

    /// ORDER_ACCEPTED, then each step: a deal (ORDER_FILLED with the executed volume so far, or
    /// ORDER_PARTIAL_FILL before the last deal when the fault asks), or the ORDER_CANCELLED /
    /// ORDER_EXPIRED that cuts the order short.
    pub(super) fn report_execution(&mut self, account: i64, ex: &Execution) {
        let partial_events = self.core.faults.partial_fill_events;
        let money = self.core.config.money;
        let mut events = vec![ProtoOaExecutionEvent {
            ctid_trader_account_id: account,
            execution_type: ProtoOaExecutionType::OrderAccepted as i32,
            position: ex
                .accepted_position
                .as_ref()
                .map(|p| position_to_wire(p, money)),
            order: Some(order_to_wire(&ex.accepted_order)),
            ..Default::default()
        }];
        for step in &ex.steps {
            let execution_type = match step.kind {
                StepKind::Deal
                    if partial_events && step.order.executed_volume < step.order.volume =>
                {
                    ProtoOaExecutionType::OrderPartialFill
                }
                StepKind::Deal => ProtoOaExecutionType::OrderFilled,
                StepKind::Cancelled => ProtoOaExecutionType::OrderCancelled,
                StepKind::Expired => ProtoOaExecutionType::OrderExpired,
            };
            events.push(ProtoOaExecutionEvent {
                ctid_trader_account_id: account,
                execution_type: execution_type as i32,
                position: step.position.as_ref().map(|p| position_to_wire(p, money)),
                order: Some(order_to_wire(&step.order)),
                deal: step.deal.as_ref().map(|d| deal_to_wire(d, money)),
                ..Default::default()
            });
        }
        self.broadcast(account, &events);
    }

    pub(super) fn new_order(&mut self, r: &ProtoOaNewOrderReq) {
        let account = r.ctid_trader_account_id;
        if !self.authorized(account) {
            return;
        }
        let symbol_name = self
            .core
            .by_id
            .get(&r.symbol_id)
            .map(|&i| self.core.specs[i].name.clone());
        if let Some(name) = &symbol_name
            && let Some(latency) = self.core.latency.order_received(name, self.now)
        {
            tracing::debug!(symbol = %name, latency_us = latency.as_micros() as u64, "bar close -> order");
        }
        if r.order_type != ProtoOaOrderType::Market as i32 {
            return self.order_error(account, &TradeError::UnsupportedOrderType, r.position_id);
        }
        if let Some(name) = &symbol_name
            && self.core.faults.margin_fail.contains(name)
        {
            let err = TradeError::NotEnoughMoney {
                required_cents: 0,
                free_cents: self.core.book.free_margin_cents(),
            };
            return self.order_error(account, &err, r.position_id);
        }
        let side = match ProtoOaTradeSide::try_from(r.trade_side) {
            Ok(ProtoOaTradeSide::Buy) => Some(Side::Buy),
            Ok(ProtoOaTradeSide::Sell) => Some(Side::Sell),
            Err(_) => None,
        };
        let order = MarketOrder {
            symbol_id: r.symbol_id,
            side,
            volume: r.volume,
            label: r.label.clone(),
            comment: r.comment.clone(),
            client_order_id: r.client_order_id.clone(),
            position_id: r.position_id,
        };
        let market_ms = self.core.market_time(self.now);
        let plan = self.core.faults.take_fill_plan(
            symbol_name.as_deref().unwrap_or_default(),
            r.position_id.is_some(),
        );
        match self
            .core
            .book
            .place_market_order_with(&order, market_ms, plan)
        {
            Ok(ex) => self.report_execution(account, &ex),
            Err(e) => self.order_error(account, &e, r.position_id),
        }
    }

    pub(super) fn close_position(&mut self, r: &ProtoOaClosePositionReq) {
        let account = r.ctid_trader_account_id;
        if !self.authorized(account) {
            return;
        }
        let symbol = self
            .core
            .book
            .open_positions()
            .find(|p| p.id == r.position_id)
            .and_then(|p| self.core.by_id.get(&p.symbol_id))
            .map(|&i| self.core.specs[i].name.clone());
        if let Some(name) = &symbol {
            self.core.latency.order_received(name, self.now);
        }
        let market_ms = self.core.market_time(self.now);
        let plan = self
            .core
            .faults
            .take_fill_plan(symbol.as_deref().unwrap_or_default(), true);
        match self
            .core
            .book
            .close_position_with(r.position_id, r.volume, market_ms, plan)
        {
            Ok(ex) => self.report_execution(account, &ex),
            Err(e) => self.order_error(account, &e, Some(r.position_id)),
        }
    }

    /// ORDER_ACCEPTED when the position gets its first protection (a STOP_LOSS_TAKE_PROFIT
    /// order passes validation), ORDER_REPLACED when it is changed, ORDER_CANCELLED when both
    /// levels are cleared (see SIM.md).
    pub(super) fn amend_position_sltp(&mut self, r: &ProtoOaAmendPositionSltpReq) {
        let account = r.ctid_trader_account_id;
        if !self.authorized(account) {
            return;
        }
        let market_ms = self.core.market_time(self.now);
        match self
            .core
            .book
            .amend_protection(r.position_id, r.stop_loss, r.take_profit, market_ms)
        {
            Ok(a) => {
                let execution_type = match a.kind {
                    AmendKind::Created => ProtoOaExecutionType::OrderAccepted,
                    AmendKind::Replaced => ProtoOaExecutionType::OrderReplaced,
                    AmendKind::Removed => ProtoOaExecutionType::OrderCancelled,
                };
                let event = ProtoOaExecutionEvent {
                    ctid_trader_account_id: account,
                    execution_type: execution_type as i32,
                    position: Some(position_to_wire(&a.position, self.core.config.money)),
                    order: Some(order_to_wire(&a.order)),
                    ..Default::default()
                };
                self.broadcast(account, &[event]);
            }
            Err(e) => self.order_error(account, &e, Some(r.position_id)),
        }
    }

    pub(super) fn deal_list(&mut self, r: &ProtoOaDealListReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        let max_rows = r.max_rows.map_or(10_000, |n| n.max(0) as usize);
        let (deals, has_more) =
            self.core
                .book
                .deals_between(r.from_timestamp, r.to_timestamp, max_rows);
        self.respond(&ProtoOaDealListRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            deal: deals
                .iter()
                .map(|d| deal_to_wire(d, self.core.config.money))
                .collect(),
            has_more,
            ..Default::default()
        });
    }

    pub(super) fn order_list(&mut self, r: &ProtoOaOrderListReq) {
        if !self.authorized(r.ctid_trader_account_id) {
            return;
        }
        let orders = self
            .core
            .book
            .orders_between(r.from_timestamp, r.to_timestamp);
        self.respond(&ProtoOaOrderListRes {
            ctid_trader_account_id: r.ctid_trader_account_id,
            order: orders.iter().map(order_to_wire).collect(),
            has_more: false,
            ..Default::default()
        });
    }
}
