//! Orders whose fate the desk does not know (a timeout, a lost link, a crash, a close the broker
//! answered POSITION_NOT_FOUND) looked up in the broker's positions after a reconcile. Pure. An open
//! is found by its deterministic label; a close is done when the position is no longer held
//! (closed by us, or before by a stop-out or by hand: either way it is not held). Nothing is
//! resent.

use crate::broker::BrokerError;
use crate::orders::{BookSnapshot, Fill};

/// The result must be looked up at the broker before it is believed.
pub fn needs_lookup(r: &Result<Fill, BrokerError>) -> bool {
    r.as_ref()
        .is_err_and(|e| e.is_ambiguous() || matches!(e, BrokerError::PositionNotFound(_)))
}

/// The open labelled `coid`, if the broker holds it: a fill of what it holds (slippage unknown).
pub fn open_found(coid: &str, snap: &BookSnapshot) -> Option<Fill> {
    snap.positions
        .iter()
        .find(|p| p.label.as_deref() == Some(coid))
        .map(|p| Fill {
            position_id: p.position_id,
            price: p.entry_price,
            lots: p.lots,
            slippage: f64::NAN,
            realized_pnl: None,
        })
}

/// The close of `position_id` (`lots`), if the broker no longer holds it (price unknown).
pub fn close_found(position_id: u64, lots: f64, snap: &BookSnapshot) -> Option<Fill> {
    (!snap.positions.iter().any(|p| p.position_id == position_id)).then_some(Fill {
        position_id,
        price: f64::NAN,
        lots,
        slippage: f64::NAN,
        realized_pnl: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{BrokerPosition, Side};

    fn snap() -> BookSnapshot {
        BookSnapshot {
            positions: vec![BrokerPosition {
                position_id: 4,
                symbol: "EURUSD".into(),
                side: Side::Buy,
                lots: 0.02,
                entry_price: 1.1,
                margin: 0.0,
                label: Some("OT-EURUSD-1-2O".into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn opens_are_found_by_label_closes_by_absence() {
        let s = snap();
        let f = open_found("OT-EURUSD-1-2O", &s).unwrap();
        assert_eq!((f.position_id, f.lots, f.price), (4, 0.02, 1.1));
        assert!(open_found("OT-EURUSD-2-2O", &s).is_none());
        assert!(close_found(4, 0.02, &s).is_none(), "still held: not closed");
        assert_eq!(close_found(5, 0.01, &s).map(|f| f.position_id), Some(5));
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
    }
}
