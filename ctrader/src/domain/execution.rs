//! One order's execution events folded into what happened to it: a state machine that only moves
//! forward, so a repeated or late event (an ORDER_ACCEPTED after its ORDER_FILLED, the same deal
//! twice) changes nothing.
//!
//! What the server sends, from Spotware's "Trading Events Flow example"
//! (connect.spotware.com/docs/api-reference/developer-library/trading-events-flow-example, the
//! "open API response" column):
//! - a market (IOC) order filled at once: `ORDER_ACCEPTED` (`order.executedVolume` 0, no position),
//!   then `ORDER_FILLED` (`executedVolume` = `tradeData.volume`, a snapshot of the position);
//! - filled by several deals: one `ORDER_FILLED` per deal, each with the order's `executedVolume`
//!   so far (the trading server's own event for the first ones is `ORDER_PARTIAL_FILL`, which the
//!   Open API may send as such); the order is done when `executedVolume` reaches its volume;
//! - filled in part: `ORDER_CANCELLED` with `executedVolume` = the part filled and a snapshot of the
//!   position (`ProtoOAOrderStatus` in OpenApiModelMessages.proto: CANCELLED and EXPIRED "might be
//!   valid for orders with partially filled volume"); the rest will never fill.
//!
//! `ProtoOAPosition.price` is the "VWAP price of the position based on all executions"; each
//! `ProtoOADeal` has its own `filledVolume` and `executionPrice`.

use crate::messages::{ProtoOaDeal, ProtoOaExecutionEvent, ProtoOaExecutionType, ProtoOaPosition};

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEnd {
    /// Its whole volume was executed.
    Filled,
    /// The broker (or its liquidity provider) cancelled the rest; `executed_volume` may be > 0.
    Cancelled,
    /// It expired; `executed_volume` may be > 0.
    Expired,
    /// Refused after validation (`errorCode` says why).
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing seen yet.
    Sent,
    Accepted,
    /// Part of the volume executed, more may come.
    Filling,
    Done(OrderEnd),
}

/// Whether an event changed the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It moved the order forward.
    News,
    /// Already known, or older than what is known: ignored.
    Stale,
    /// It is about another order: ignored.
    Foreign,
}

/// One order as its execution events describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderProgress {
    order_id: Option<i64>,
    volume: Option<i64>,
    executed: i64,
    closing: bool,
    stage: Stage,
    deals: Vec<ProtoOaDeal>,
    position: Option<ProtoOaPosition>,
    error_code: Option<String>,
    /// The execution type of the last event that was news.
    last_kind: Option<i32>,
}

impl Default for OrderProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderProgress {
    /// An order just sent.
    pub fn new() -> Self {
        Self {
            order_id: None,
            volume: None,
            executed: 0,
            closing: false,
            stage: Stage::Sent,
            deals: Vec::new(),
            position: None,
            error_code: None,
            last_kind: None,
        }
    }

    /// Applies one execution event. Only news changes anything.
    pub fn apply(&mut self, ev: &ProtoOaExecutionEvent) -> Applied {
        let order = ev.order.as_ref();
        if let (Some(known), Some(o)) = (self.order_id, order)
            && o.order_id != known
        {
            return Applied::Foreign;
        }
        if matches!(self.stage, Stage::Done(_)) {
            return Applied::Stale;
        }
        let kind = ProtoOaExecutionType::try_from(ev.execution_type).ok();
        let volume = order.map(|o| o.trade_data.volume).or(self.volume);
        let deal = ev.deal.as_ref().filter(|d| !self.has_deal(d.deal_id));
        // The order's executed volume so far; an ORDER_FILLED without it (an older server) is a
        // fill of everything.
        let dealt = deal.map_or(0, |d| d.filled_volume.max(0));
        let executed = match (kind, order.and_then(|o| o.executed_volume)) {
            (_, Some(reported)) => reported,
            (Some(ProtoOaExecutionType::OrderFilled), None) => {
                volume.unwrap_or(self.executed + dealt)
            }
            (_, None) => self.executed + dealt,
        };
        let next = match kind {
            Some(ProtoOaExecutionType::OrderAccepted) => match self.stage {
                Stage::Sent => Stage::Accepted,
                _ => return Applied::Stale,
            },
            Some(ProtoOaExecutionType::OrderFilled | ProtoOaExecutionType::OrderPartialFill) => {
                if executed < self.executed || (executed == self.executed && deal.is_none()) {
                    return Applied::Stale;
                }
                let whole = volume.is_none_or(|v| executed >= v);
                if kind == Some(ProtoOaExecutionType::OrderFilled) && whole {
                    Stage::Done(OrderEnd::Filled)
                } else {
                    Stage::Filling
                }
            }
            Some(ProtoOaExecutionType::OrderCancelled) => Stage::Done(OrderEnd::Cancelled),
            Some(ProtoOaExecutionType::OrderExpired) => Stage::Done(OrderEnd::Expired),
            Some(ProtoOaExecutionType::OrderRejected) => Stage::Done(OrderEnd::Rejected),
            // ORDER_REPLACED, ORDER_CANCEL_REJECTED, swaps, deposits: not steps of a market order.
            _ => return Applied::Stale,
        };
        if let Some(o) = order {
            self.order_id = Some(o.order_id);
            self.volume = Some(o.trade_data.volume);
            self.closing = o.closing_order.unwrap_or(self.closing);
        }
        self.executed = self.executed.max(executed);
        if let Some(d) = deal {
            self.deals.push(*d);
        }
        if let Some(p) = &ev.position {
            self.position = Some(p.clone());
        }
        if ev.error_code.is_some() {
            self.error_code.clone_from(&ev.error_code);
        }
        self.stage = next;
        self.last_kind = Some(ev.execution_type);
        Applied::News
    }

    fn has_deal(&self, id: i64) -> bool {
        self.deals.iter().any(|d| d.deal_id == id)
    }

    /// True once the order can change no more.
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    /// How it ended, once it has.
    pub fn end(&self) -> Option<OrderEnd> {
        match self.stage {
            Stage::Done(end) => Some(end),
            _ => None,
        }
    }

    /// The order's id, once an event named it.
    pub fn order_id(&self) -> Option<i64> {
        self.order_id
    }

    /// The volume asked for (0.01 units), once an event carried it.
    pub fn volume(&self) -> Option<i64> {
        self.volume
    }

    /// The volume executed so far (0.01 units).
    pub fn executed_volume(&self) -> i64 {
        self.executed
    }

    /// True for an order that closes (part of) a position.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The deals seen, in arrival order, each once.
    pub fn deals(&self) -> &[ProtoOaDeal] {
        &self.deals
    }

    /// The latest position snapshot.
    pub fn position(&self) -> Option<&ProtoOaPosition> {
        self.position.as_ref()
    }

    /// The server's error code (for a rejection, or the reason of a cancel).
    pub fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }

    /// The execution type of the last event that moved the order.
    pub fn last_execution_type(&self) -> Option<ProtoOaExecutionType> {
        self.last_kind
            .and_then(|k| ProtoOaExecutionType::try_from(k).ok())
    }

    /// The volume-weighted price of everything executed. From the deals when they add up to the
    /// executed volume; otherwise, for an order that opened the position, the position's own VWAP
    /// (a cancel can report the executed part without its deal); otherwise the deals that are
    /// known. `None` when nothing executed or no price was reported.
    pub fn average_price(&self) -> Option<f64> {
        let priced: Vec<(i64, f64)> = self
            .deals
            .iter()
            .filter_map(|d| Some((d.filled_volume, d.execution_price?)))
            .filter(|(v, p)| *v > 0 && p.is_finite())
            .collect();
        let dealt: i64 = priced.iter().map(|(v, _)| v).sum();
        let vwap = (dealt > 0)
            .then(|| priced.iter().map(|(v, p)| *v as f64 * p).sum::<f64>() / dealt as f64);
        if self.executed <= 0 {
            return None;
        }
        if dealt == self.executed {
            return vwap;
        }
        let position_price = self
            .position
            .as_ref()
            .and_then(|p| p.price)
            .filter(|p| p.is_finite() && *p > 0.0);
        match (self.closing, position_price) {
            (false, Some(p)) => Some(p),
            _ => vwap,
        }
    }

    /// Realised PnL of the closing deals (gross profit + swap + commission), in money units of
    /// `10^-digits` as each deal states them (`default_digits` when a deal does not).
    pub fn realized(&self, default_digits: u32) -> Option<f64> {
        let mut total = None;
        for d in &self.deals {
            if let Some(c) = &d.close_position_detail {
                let digits = c.money_digits.unwrap_or(default_digits);
                let raw = c.gross_profit + c.swap + c.commission;
                *total.get_or_insert(0.0) += raw as f64 / 10f64.powi(digits as i32);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{
        ProtoOaClosePositionDetail, ProtoOaOrder, ProtoOaPositionStatus, ProtoOaTradeData,
    };

    const ORDER: i64 = 7;
    const VOLUME: i64 = 2_000_000;

    /// An event of `kind` for the order, with its executed volume so far, an optional deal
    /// `(id, filled volume, price)` and, once something executed, a position of that volume.
    fn ev(
        kind: ProtoOaExecutionType,
        executed: i64,
        deal: Option<(i64, i64, f64)>,
        position_price: Option<f64>,
    ) -> ProtoOaExecutionEvent {
        ProtoOaExecutionEvent {
            execution_type: kind as i32,
            order: Some(ProtoOaOrder {
                order_id: ORDER,
                trade_data: ProtoOaTradeData {
                    volume: VOLUME,
                    ..Default::default()
                },
                executed_volume: Some(executed),
                ..Default::default()
            }),
            deal: deal.map(|(id, v, p)| ProtoOaDeal {
                deal_id: id,
                order_id: ORDER,
                filled_volume: v,
                execution_price: Some(p),
                ..Default::default()
            }),
            position: (executed > 0).then(|| ProtoOaPosition {
                position_id: 3,
                trade_data: ProtoOaTradeData {
                    volume: executed,
                    ..Default::default()
                },
                position_status: ProtoOaPositionStatus::PositionStatusOpen as i32,
                price: position_price,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    use ProtoOaExecutionType::{
        OrderAccepted as Acc, OrderCancelled as Can, OrderExpired as Exp, OrderFilled as Fil,
        OrderPartialFill as Part, OrderRejected as Rej, OrderReplaced as Rep,
    };

    /// Each row: the events in arrival order, what each did, then the end, executed volume and
    /// average price.
    #[test]
    fn events_table() {
        type Row = (
            &'static str,
            Vec<ProtoOaExecutionEvent>,
            Vec<Applied>,
            Option<OrderEnd>,
            i64,
            Option<f64>,
        );
        use Applied::{News, Stale};
        let rows: Vec<Row> = vec![
            (
                "accepted then filled in one deal",
                vec![
                    ev(Acc, 0, None, None),
                    ev(Fil, VOLUME, Some((1, VOLUME, 1.1)), Some(1.1)),
                ],
                vec![News, News],
                Some(OrderEnd::Filled),
                VOLUME,
                Some(1.1),
            ),
            (
                "filled reported before its accepted (reordered): the late accepted is stale",
                vec![
                    ev(Fil, VOLUME, Some((1, VOLUME, 1.1)), Some(1.1)),
                    ev(Acc, 0, None, None),
                ],
                vec![News, Stale],
                Some(OrderEnd::Filled),
                VOLUME,
                Some(1.1),
            ),
            (
                "two ORDER_FILLED deals, each with the executed volume so far: VWAP of both",
                vec![
                    ev(Acc, 0, None, None),
                    ev(Fil, 500_000, Some((1, 500_000, 1.0)), Some(1.0)),
                    ev(Fil, VOLUME, Some((2, 1_500_000, 2.0)), Some(1.75)),
                ],
                vec![News, News, News],
                Some(OrderEnd::Filled),
                VOLUME,
                Some(1.75),
            ),
            (
                "ORDER_PARTIAL_FILL then ORDER_FILLED",
                vec![
                    ev(Part, 500_000, Some((1, 500_000, 1.0)), Some(1.0)),
                    ev(Fil, VOLUME, Some((2, 1_500_000, 2.0)), Some(1.75)),
                ],
                vec![News, News],
                Some(OrderEnd::Filled),
                VOLUME,
                Some(1.75),
            ),
            (
                "the same deal twice and an older executed volume are stale",
                vec![
                    ev(Fil, 500_000, Some((1, 500_000, 1.0)), Some(1.0)),
                    ev(Fil, 500_000, Some((1, 500_000, 1.0)), Some(1.0)),
                    ev(Part, 400_000, None, None),
                ],
                vec![News, Stale, Stale],
                None,
                500_000,
                Some(1.0),
            ),
            (
                "the last deal first: done at the full volume, the position's VWAP",
                vec![ev(Fil, VOLUME, Some((2, 1_500_000, 2.0)), Some(1.75))],
                vec![News],
                Some(OrderEnd::Filled),
                VOLUME,
                Some(1.75),
            ),
            (
                "accepted then cancelled with nothing filled",
                vec![ev(Acc, 0, None, None), ev(Can, 0, None, None)],
                vec![News, News],
                Some(OrderEnd::Cancelled),
                0,
                None,
            ),
            (
                "a part filled, the rest cancelled in the same event (no deal): position VWAP",
                vec![ev(Acc, 0, None, None), ev(Can, 500_000, None, Some(1.2))],
                vec![News, News],
                Some(OrderEnd::Cancelled),
                500_000,
                Some(1.2),
            ),
            (
                "a deal, then expiry of the rest; anything after the end is stale",
                vec![
                    ev(Fil, 500_000, Some((1, 500_000, 1.3)), Some(1.3)),
                    ev(Exp, 500_000, None, Some(1.3)),
                    ev(Fil, VOLUME, Some((2, 1_500_000, 2.0)), Some(1.8)),
                ],
                vec![News, News, Stale],
                Some(OrderEnd::Expired),
                500_000,
                Some(1.3),
            ),
            (
                "rejected",
                vec![ev(Rej, 0, None, None)],
                vec![News],
                Some(OrderEnd::Rejected),
                0,
                None,
            ),
            (
                "a replace is not a step of a market order",
                vec![ev(Acc, 0, None, None), ev(Rep, 0, None, None)],
                vec![News, Stale],
                None,
                0,
                None,
            ),
        ];
        for (name, events, applied, end, executed, price) in rows {
            let mut o = OrderProgress::new();
            let got: Vec<Applied> = events.iter().map(|e| o.apply(e)).collect();
            assert_eq!(got, applied, "{name}");
            assert_eq!(o.end(), end, "{name}");
            assert_eq!(o.is_done(), end.is_some(), "{name}");
            assert_eq!(o.executed_volume(), executed, "{name}");
            match (o.average_price(), price) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{name}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "{name}"),
            }
        }
    }

    #[test]
    fn another_orders_event_is_foreign() {
        let mut o = OrderProgress::new();
        assert_eq!(o.apply(&ev(Acc, 0, None, None)), Applied::News);
        let mut other = ev(Fil, VOLUME, Some((9, VOLUME, 1.0)), Some(1.0));
        other.order.as_mut().unwrap().order_id = ORDER + 1;
        assert_eq!(o.apply(&other), Applied::Foreign);
        assert!(!o.is_done());
        assert_eq!(o.order_id(), Some(ORDER));
    }

    #[test]
    fn closing_deals_sum_their_realised_pnl_and_price_from_the_deals() {
        let mut o = OrderProgress::new();
        let mut first = ev(Fil, 500_000, Some((1, 500_000, 1.0)), Some(1.5));
        let mut second = ev(Fil, VOLUME, Some((2, 1_500_000, 2.0)), Some(1.5));
        for (e, gross) in [(&mut first, 1_000), (&mut second, -250)] {
            e.order.as_mut().unwrap().closing_order = Some(true);
            e.deal.as_mut().unwrap().close_position_detail = Some(ProtoOaClosePositionDetail {
                gross_profit: gross,
                commission: -50,
                money_digits: Some(2),
                ..Default::default()
            });
        }
        o.apply(&first);
        o.apply(&second);
        assert!(o.is_closing());
        assert_eq!(o.realized(2), Some((1_000 - 50 - 250 - 50) as f64 / 100.0));
        // The close price is the deals' VWAP, never the position's entry price.
        assert_eq!(o.average_price(), Some(1.75));
    }
}
