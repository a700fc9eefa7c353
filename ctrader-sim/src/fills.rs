//! How the simulated market executes one order, and the steps the server reports for it.
//!
//! By default a market order is filled whole by one deal: ORDER_ACCEPTED then ORDER_FILLED
//! ("IOC order full fill" in Spotware's Trading Events Flow example,
//! connect.spotware.com/docs/api-reference/developer-library/trading-events-flow-example). The
//! `fill-deals`, `cancel-fill` and `expire-fill` faults ([`super::faults`]) give the other flows
//! of that page: several deals, each reported with the order's executed volume so far, and a fill
//! cut short by the liquidity provider (ORDER_CANCELLED or ORDER_EXPIRED carrying the executed part
//! and the position).

use super::book::{
    Book, CloseDetail, Deal, MarketOrder, Order, OrderStatus, Position, PositionStatus, TradeError,
};

/// How an order ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanEnd {
    /// Its whole volume executes.
    Filled,
    /// Part of it executes, the rest is cancelled (ORDER_CANCELLED).
    Cancelled,
    /// Part of it executes, the rest expires (ORDER_EXPIRED).
    Expired,
}

/// What the market does with the next order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillPlan {
    /// Deals the executed volume is split into (at least 1; fewer when the volume has fewer
    /// steps).
    pub deals: u32,
    pub end: PlanEnd,
    /// The part of the volume that executes when the order is cut short, in `[0, 1)`.
    pub fraction: f64,
}

impl FillPlan {
    /// One deal for the whole volume: what a market order normally gets.
    pub const WHOLE: FillPlan = FillPlan {
        deals: 1,
        end: PlanEnd::Filled,
        fraction: 1.0,
    };

    /// The volume that executes out of `volume`, in whole `step`s.
    pub fn executed(&self, volume: i64, step: i64) -> i64 {
        match self.end {
            PlanEnd::Filled => volume,
            PlanEnd::Cancelled | PlanEnd::Expired => {
                let step = step.max(1);
                let part = (volume as f64 * self.fraction.clamp(0.0, 1.0) / step as f64).floor();
                ((part as i64) * step).clamp(0, volume)
            }
        }
    }

    /// `executed` split into deals of whole steps, the remainder in the last one.
    pub fn deal_volumes(&self, executed: i64, step: i64) -> Vec<i64> {
        if executed <= 0 {
            return Vec::new();
        }
        let step = step.max(1);
        let steps = (executed / step).max(1);
        let n = i64::from(self.deals.max(1)).min(steps);
        let each = steps / n * step;
        let mut out = vec![each; n as usize];
        if let Some(last) = out.last_mut() {
            *last = executed - each * (n - 1);
        }
        out
    }

    /// Deals reported as events of their own. A cut-short order with a single deal reports it
    /// inside its ORDER_CANCELLED / ORDER_EXPIRED ("IOC order partial fill"), with several deals
    /// each one first ("... with several deals").
    pub fn reports_deals_apart(&self) -> bool {
        self.end == PlanEnd::Filled || self.deals > 1
    }
}

/// What one event of an order reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A deal (ORDER_FILLED, or ORDER_PARTIAL_FILL before the last one when the fault asks).
    Deal,
    /// The rest cancelled (ORDER_CANCELLED).
    Cancelled,
    /// The rest expired (ORDER_EXPIRED).
    Expired,
}

/// One event after ORDER_ACCEPTED: the order with its executed volume so far, the position after
/// it (absent when the order never opened one), the deal it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: StepKind,
    pub order: Order,
    pub position: Option<Position>,
    pub deal: Option<Deal>,
}

/// An order's whole report: ORDER_ACCEPTED (with the position being closed, or none for an
/// opening order: "position is absent"), then its steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub accepted_order: Order,
    pub accepted_position: Option<Position>,
    pub steps: Vec<Step>,
}

impl Execution {
    /// The position after the last step.
    pub fn position(&self) -> Option<&Position> {
        self.steps.iter().rev().find_map(|s| s.position.as_ref())
    }

    /// The order as it ended.
    pub fn final_order(&self) -> &Order {
        self.steps.last().map_or(&self.accepted_order, |s| &s.order)
    }

    /// The deals, in order.
    pub fn deals(&self) -> impl Iterator<Item = &Deal> {
        self.steps.iter().filter_map(|s| s.deal.as_ref())
    }

    /// The last deal.
    pub fn last_deal(&self) -> Option<&Deal> {
        self.deals().last()
    }
}

impl Book {
    /// Places a market order filled whole by one deal (see [`Book::place_market_order_with`]).
    pub fn place_market_order(
        &mut self,
        order: &MarketOrder,
        now_ms: i64,
    ) -> Result<Execution, TradeError> {
        self.place_market_order_with(order, now_ms, FillPlan::WHOLE)
    }

    /// Places a market order: opens a new position, or closes (part of) `order.position_id`. The
    /// market executes it as `plan` says: deal `i` (from 0) fills `i` points worse than the first,
    /// so a fill in several deals has a volume-weighted price of its own.
    pub fn place_market_order_with(
        &mut self,
        order: &MarketOrder,
        now_ms: i64,
        plan: FillPlan,
    ) -> Result<Execution, TradeError> {
        let side = order.side.ok_or(TradeError::MissingSide)?;
        if let Some(position_id) = order.position_id {
            let position = self
                .positions
                .get(&position_id)
                .filter(|p| p.status == PositionStatus::Open);
            let position = position.ok_or(TradeError::PositionNotFound(position_id))?;
            if position.side == side {
                return Err(TradeError::SameSideAsPosition(position_id));
            }
            return self.close_position_with(position_id, order.volume, now_ms, plan);
        }
        let spec = self
            .specs
            .get(&order.symbol_id)
            .ok_or(TradeError::SymbolNotFound(order.symbol_id))?
            .clone();
        Self::check_volume(&spec, order.volume)?;
        let q = self
            .quote(spec.id)
            .ok_or_else(|| TradeError::MarketClosed(spec.name.clone()))?;
        let (base_price, price) = self.fill_price(&spec, side, q);
        let margin = self.margin_cents(&spec, order.volume, price);
        let free = self.free_margin_cents();
        if margin > free {
            return Err(TradeError::NotEnoughMoney {
                required_cents: margin,
                free_cents: free,
            });
        }
        let position_id = self.take_id();
        let order_id = self.take_id();
        let leverage = self.effective_leverage(&spec);
        let mut position = Position {
            id: position_id,
            symbol_id: spec.id,
            side,
            volume: 0,
            entry_price: 0.0,
            open_ms: now_ms,
            last_update_ms: now_ms,
            label: order.label.clone(),
            comment: order.comment.clone(),
            used_margin_cents: 0,
            margin_rate: leverage,
            status: PositionStatus::Created,
            stop_loss: None,
            take_profit: None,
            protection_order_id: None,
        };
        let accepted = Order {
            id: order_id,
            symbol_id: spec.id,
            side,
            volume: order.volume,
            status: OrderStatus::Accepted,
            position_id,
            closing_order: false,
            label: order.label.clone(),
            comment: order.comment.clone(),
            client_order_id: order.client_order_id.clone(),
            open_ms: now_ms,
            last_update_ms: now_ms,
            execution_price: None,
            executed_volume: 0,
            base_slippage_price: base_price,
            protection: false,
            stop_loss: None,
            take_profit: None,
        };
        let mut steps = Vec::new();
        let (mut done, mut cost) = (0, 0.0);
        let executed = plan.executed(order.volume, spec.step_volume);
        for (i, filled) in plan
            .deal_volumes(executed, spec.step_volume)
            .into_iter()
            .enumerate()
        {
            let deal_price = spec.round_price(price + side.sign() * i as f64 * spec.point());
            done += filled;
            cost += filled as f64 * deal_price;
            let vwap = cost / done as f64;
            position = Position {
                volume: done,
                entry_price: vwap,
                used_margin_cents: self.margin_cents(&spec, done, vwap),
                status: PositionStatus::Open,
                ..position
            };
            let deal = Deal {
                id: self.take_id(),
                order_id,
                position_id,
                symbol_id: spec.id,
                side,
                volume: order.volume,
                filled_volume: filled,
                create_ms: now_ms,
                execution_ms: now_ms,
                execution_price: deal_price,
                margin_rate: leverage,
                close: None,
            };
            self.deals.push(deal.clone());
            if plan.reports_deals_apart() {
                steps.push(Step {
                    kind: StepKind::Deal,
                    order: progress(&accepted, done, vwap),
                    position: Some(position.clone()),
                    deal: Some(deal),
                });
            }
        }
        let opened = done > 0;
        if let Some(step) = cut_short(plan, &accepted, done, cost, opened.then_some(&position)) {
            steps.push(step);
        }
        if opened {
            self.positions.insert(position_id, position);
        }
        let execution = Execution {
            accepted_order: accepted,
            accepted_position: None,
            steps,
        };
        self.orders.push(execution.final_order().clone());
        Ok(execution)
    }

    /// Closes `volume` of a position (all of it when `volume` ≥ its open volume), in one deal.
    pub fn close_position(
        &mut self,
        position_id: i64,
        volume: i64,
        now_ms: i64,
    ) -> Result<Execution, TradeError> {
        self.close_position_with(position_id, volume, now_ms, FillPlan::WHOLE)
    }

    /// Closes `volume` of a position as `plan` says (see [`Book::place_market_order_with`]).
    pub fn close_position_with(
        &mut self,
        position_id: i64,
        volume: i64,
        now_ms: i64,
        plan: FillPlan,
    ) -> Result<Execution, TradeError> {
        let position = self
            .positions
            .get(&position_id)
            .filter(|p| p.status == PositionStatus::Open)
            .ok_or(TradeError::PositionNotFound(position_id))?
            .clone();
        let spec = self
            .specs
            .get(&position.symbol_id)
            .ok_or(TradeError::SymbolNotFound(position.symbol_id))?
            .clone();
        let full = volume >= position.volume;
        if volume <= 0 || (!full && volume % spec.step_volume != 0) {
            return Err(TradeError::BadVolume {
                symbol: spec.name.clone(),
                volume,
                min: spec.step_volume,
                max: position.volume,
                step: spec.step_volume,
            });
        }
        let to_close = volume.min(position.volume);
        let q = self
            .quote(spec.id)
            .ok_or_else(|| TradeError::MarketClosed(spec.name.clone()))?;
        let side = position.side.opposite();
        let (base_price, price) = self.fill_price(&spec, side, q);
        let order_id = self.take_id();
        let accepted = Order {
            id: order_id,
            symbol_id: spec.id,
            side,
            volume: to_close,
            status: OrderStatus::Accepted,
            position_id,
            closing_order: true,
            label: position.label.clone(),
            comment: position.comment.clone(),
            client_order_id: None,
            open_ms: now_ms,
            last_update_ms: now_ms,
            execution_price: None,
            executed_volume: 0,
            base_slippage_price: base_price,
            protection: false,
            stop_loss: None,
            take_profit: None,
        };
        let mut steps = Vec::new();
        let mut after = position.clone();
        let (mut done, mut cost) = (0, 0.0);
        let executed = plan.executed(to_close, spec.step_volume);
        for (i, closed) in plan
            .deal_volumes(executed, spec.step_volume)
            .into_iter()
            .enumerate()
        {
            let deal_price = spec.round_price(price + side.sign() * i as f64 * spec.point());
            let gross = self.pnl_cents(
                &spec,
                position.side,
                position.entry_price,
                deal_price,
                closed,
            );
            let commission = self.close_commission_cents(&spec, closed);
            self.balance_cents += gross - commission;
            self.balance_version += 1;
            done += closed;
            cost += closed as f64 * deal_price;
            let remaining = position.volume - done;
            after = Position {
                volume: remaining,
                last_update_ms: now_ms,
                used_margin_cents: if remaining == 0 {
                    0
                } else {
                    (position.used_margin_cents as f64 * remaining as f64 / position.volume as f64)
                        .round() as i64
                },
                status: if remaining == 0 {
                    PositionStatus::Closed
                } else {
                    PositionStatus::Open
                },
                ..position.clone()
            };
            let deal = Deal {
                id: self.take_id(),
                order_id,
                position_id,
                symbol_id: spec.id,
                side,
                volume: to_close,
                filled_volume: closed,
                create_ms: now_ms,
                execution_ms: now_ms,
                execution_price: deal_price,
                margin_rate: position.margin_rate,
                close: Some(CloseDetail {
                    entry_price: position.entry_price,
                    gross_profit_cents: gross,
                    commission_cents: commission,
                    balance_after_cents: self.balance_cents,
                    closed_volume: closed,
                    quote_to_deposit_rate: self.to_deposit_rate(&spec.quote_asset),
                }),
            };
            self.deals.push(deal.clone());
            if plan.reports_deals_apart() {
                steps.push(Step {
                    kind: StepKind::Deal,
                    order: progress(&accepted, done, cost / done as f64),
                    position: Some(after.clone()),
                    deal: Some(deal),
                });
            }
        }
        if let Some(step) = cut_short(plan, &accepted, done, cost, Some(&after)) {
            steps.push(step);
        }
        self.positions.insert(position_id, after);
        let execution = Execution {
            accepted_order: accepted,
            accepted_position: Some(position),
            steps,
        };
        self.orders.push(execution.final_order().clone());
        Ok(execution)
    }
}

/// The order after `done` of its volume executed at a volume-weighted `vwap`.
fn progress(accepted: &Order, done: i64, vwap: f64) -> Order {
    Order {
        status: if done >= accepted.volume {
            OrderStatus::Filled
        } else {
            OrderStatus::Accepted
        },
        executed_volume: done,
        execution_price: Some(vwap),
        ..accepted.clone()
    }
}

/// The ORDER_CANCELLED / ORDER_EXPIRED that ends an order cut short, with what executed.
fn cut_short(
    plan: FillPlan,
    accepted: &Order,
    done: i64,
    cost: f64,
    position: Option<&Position>,
) -> Option<Step> {
    let (kind, status) = match plan.end {
        PlanEnd::Filled => return None,
        PlanEnd::Cancelled => (StepKind::Cancelled, OrderStatus::Cancelled),
        PlanEnd::Expired => (StepKind::Expired, OrderStatus::Expired),
    };
    Some(Step {
        kind,
        order: Order {
            status,
            executed_volume: done,
            execution_price: (done > 0).then(|| cost / done as f64),
            ..accepted.clone()
        },
        position: position.cloned(),
        deal: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_split_into_whole_steps() {
        let plan = |deals, end, fraction| FillPlan {
            deals,
            end,
            fraction,
        };
        assert_eq!(FillPlan::WHOLE.deal_volumes(300, 100), vec![300]);
        assert_eq!(
            plan(3, PlanEnd::Filled, 1.0).deal_volumes(700, 100),
            vec![200, 200, 300]
        );
        assert_eq!(
            plan(5, PlanEnd::Filled, 1.0).deal_volumes(200, 100),
            vec![100, 100],
            "no more deals than steps"
        );
        let half = plan(1, PlanEnd::Cancelled, 0.5);
        assert_eq!(half.executed(700, 100), 300, "rounded down to a step");
        assert_eq!(plan(1, PlanEnd::Expired, 0.0).executed(700, 100), 0);
        assert!(half.deal_volumes(0, 100).is_empty());
        assert!(!half.reports_deals_apart());
        assert!(plan(2, PlanEnd::Cancelled, 0.5).reports_deals_apart());
        assert!(FillPlan::WHOLE.reports_deals_apart());
    }
}
