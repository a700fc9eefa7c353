//! Orders whose fate the desk does not know, looked up in the broker's positions after a
//! reconcile. Pure, and the one rule for both moments the desk needs it (`crate::desk`): in the run
//! (an answer lost to a timeout or a dropped link, a close the broker answered POSITION_NOT_FOUND)
//! and at startup (intents a crash left without a result).
//!
//! An open is found by its deterministic label. A close is done once the position is no longer
//! held: closed by us, or before by a stop-out or by hand — either way it is not held. Nothing is
//! resent: what the lookup cannot find is not done *as far as the broker shows now*; in the run it
//! may still happen (the desk distrusts the book until the next reconcile), after a restart the
//! desk answers the bar FAIL so the order is never sent again.

use crate::broker::BrokerError;
use crate::orders::{BookSnapshot, Fill};

/// An order to look up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lookup<'a> {
    /// An open, under the label (client order id) it was sent with.
    Open { coid: &'a str },
    /// The close of a whole position of `lots`.
    Close { position_id: u64, lots: f64 },
}

/// What the broker's positions say about an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// It was executed: an open's position (its entry price and lots), or a close (whose price the
    /// positions do not tell).
    Done(Fill),
    /// No trace of it: no position under the open's label, or the position to close still held.
    NotDone,
}

impl Lookup<'_> {
    /// Why it counts as never executed once a restart found it not done.
    pub fn not_done_after_restart(&self) -> &'static str {
        match self {
            Lookup::Open { .. } => "not at the broker after restart: never filled",
            Lookup::Close { .. } => "position still open after restart",
        }
    }
}

/// Looks `order` up in `snap` (the broker's positions after a reconcile).
pub fn resolve(order: &Lookup<'_>, snap: &BookSnapshot) -> Resolution {
    let done = match *order {
        Lookup::Open { coid } => snap
            .positions
            .iter()
            .find(|p| p.label.as_deref() == Some(coid))
            .map(|p| Fill {
                position_id: p.position_id,
                price: p.entry_price,
                lots: Some(p.lots),
                slippage: None,
                realized_pnl: None,
            }),
        Lookup::Close { position_id, lots } => {
            (!snap.positions.iter().any(|p| p.position_id == position_id)).then_some(Fill {
                position_id,
                price: None,
                lots: Some(lots),
                slippage: None,
                realized_pnl: None,
            })
        }
    };
    done.map_or(Resolution::NotDone, Resolution::Done)
}

/// The result must be looked up at the broker before it is believed: its outcome is unknown, or
/// the broker says the position to close is gone (closed before, or by this very order).
pub fn needs_lookup(r: &Result<Fill, BrokerError>) -> bool {
    r.as_ref()
        .is_err_and(|e| e.is_ambiguous() || matches!(e, BrokerError::PositionNotFound(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{BrokerPosition, Side};

    const LABEL: &str = "OT-EURUSD-1-2O";

    fn held(id: u64, label: Option<&str>) -> BrokerPosition {
        BrokerPosition {
            position_id: id,
            symbol: "EURUSD".into(),
            side: Side::Buy,
            lots: 0.02,
            entry_price: Some(1.1),
            margin: 0.0,
            label: label.map(str::to_string),
        }
    }

    fn fill(position_id: u64, price: Option<f64>, lots: f64) -> Resolution {
        Resolution::Done(Fill {
            position_id,
            price,
            lots: Some(lots),
            slippage: None,
            realized_pnl: None,
        })
    }

    /// Each row: the order, the broker's positions, what the lookup concludes.
    #[test]
    fn resolution_table() {
        let open = Lookup::Open { coid: LABEL };
        let close4 = Lookup::Close {
            position_id: 4,
            lots: 0.02,
        };
        let rows: Vec<(&str, Lookup, Vec<BrokerPosition>, Resolution)> = vec![
            (
                "an open found by its label filled, at its entry price and lots",
                open,
                vec![held(3, None), held(4, Some(LABEL))],
                fill(4, Some(1.1), 0.02),
            ),
            (
                "an open under another label, or none, was not filled",
                open,
                vec![held(4, Some("OT-EURUSD-2-2O")), held(5, None)],
                Resolution::NotDone,
            ),
            (
                "an open with no position at all",
                open,
                vec![],
                Resolution::NotDone,
            ),
            (
                "a close whose position is gone is done (price unknown)",
                close4,
                vec![held(5, Some(LABEL))],
                fill(4, None, 0.02),
            ),
            (
                "a close whose position is still held is not",
                close4,
                vec![held(4, None)],
                Resolution::NotDone,
            ),
        ];
        for (name, order, positions, want) in rows {
            let snap = BookSnapshot {
                positions,
                ..Default::default()
            };
            assert_eq!(resolve(&order, &snap), want, "{name}");
        }
    }

    #[test]
    fn only_unknown_outcomes_are_looked_up() {
        assert!(needs_lookup(&Err(BrokerError::Timeout)));
        assert!(needs_lookup(&Err(BrokerError::Disconnected)));
        assert!(needs_lookup(&Err(BrokerError::PositionNotFound(3))));
        assert!(!needs_lookup(&Err(BrokerError::NotEnoughMoney(
            String::new()
        ))));
        assert!(!needs_lookup(&Err(BrokerError::Cancelled(String::new()))));
        assert!(!needs_lookup(&Err(BrokerError::NotSent(String::new()))));
    }
}
