//! How the simulated market executes one order, and the steps the server reports for it.
//!
//! By default a market order is filled whole by one deal: ORDER_ACCEPTED then ORDER_FILLED
//! ("IOC order full fill" in Spotware's Trading Events Flow example,
//! connect.spotware.com/docs/api-reference/developer-library/trading-events-flow-example). The
//! `fill-deals`, `cancel-fill` and `expire-fill` faults ([`super::faults`]) give the other flows
//! of that page: several deals, each reported with the order's executed volume so far, and a fill
//! cut short by the liquidity provider (ORDER_CANCELLED or ORDER_EXPIRED carrying the executed part
//! and the position).

use super::book::{Deal, Order, Position};

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
