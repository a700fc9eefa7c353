//! Prices on the wire are integers in 1e-5 units ("1/100000 of the unit of the quote currency"),
//! whatever the symbol's display digits; orders take plain `double` prices rounded to those digits.

use crate::messages::ProtoOaSpotEvent;

/// Wire price units per unit of price.
pub const PRICE_SCALE: f64 = 100_000.0;

/// A wire price (1e-5 units) as a price.
pub fn price_from_units(units: i64) -> f64 {
    units as f64 / PRICE_SCALE
}

/// A price as wire units, to the nearest unit.
pub fn price_to_units(price: f64) -> i64 {
    (price * PRICE_SCALE).round() as i64
}

/// Rounds a price to a symbol's `digits` (e.g. 5 for EURUSD, 3 for USDJPY), as the server requires
/// for SL/TP and limit prices. Digits above 10 are treated as 10: no symbol quotes finer.
pub fn round_to_digits(price: f64, digits: u32) -> f64 {
    let scale = 10f64.powi(digits.min(10) as i32);
    (price * scale).round() / scale
}

/// One spot update. The server omits a side that did not change, so both are optional.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotQuote {
    /// The symbol the quote is for.
    pub symbol_id: i64,
    /// Bid price, if it changed.
    pub bid: Option<f64>,
    /// Ask price, if it changed.
    pub ask: Option<f64>,
    /// Server time of the quote in Unix milliseconds, when subscribed with spot timestamps.
    pub timestamp_ms: Option<i64>,
}

impl SpotQuote {
    /// Decodes the quote part of a spot event (its live trendbars are decoded by [`crate::domain::Bar`]).
    pub fn from_event(ev: &ProtoOaSpotEvent) -> Self {
        let px = |u: Option<u64>| u.map(|u| u as f64 / PRICE_SCALE);
        Self {
            symbol_id: ev.symbol_id,
            bid: px(ev.bid),
            ask: px(ev.ask),
            timestamp_ms: ev.timestamp,
        }
    }

    /// Ask − bid when both sides are present.
    pub fn spread(&self) -> Option<f64> {
        Some(self.ask? - self.bid?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spot_prices_are_in_1e5_units() {
        let ev = ProtoOaSpotEvent {
            symbol_id: 1,
            bid: Some(108_542),
            ask: Some(108_550),
            ..Default::default()
        };
        let q = SpotQuote::from_event(&ev);
        assert_eq!(q.bid, Some(1.08542));
        assert_eq!(q.ask, Some(1.0855));
        assert!((q.spread().expect("both sides") - 0.00008).abs() < 1e-12);
        let one_side = ProtoOaSpotEvent {
            symbol_id: 1,
            ask: Some(1),
            ..Default::default()
        };
        assert_eq!(SpotQuote::from_event(&one_side).spread(), None);
    }

    #[test]
    fn rounding_to_digits() {
        assert_eq!(round_to_digits(1.085_426, 5), 1.08543);
        assert_eq!(round_to_digits(151.23456, 3), 151.235);
        assert_eq!(round_to_digits(42.0, 0), 42.0);
    }

    proptest! {
        #[test]
        fn units_round_trip(units in -10_000_000_000i64..10_000_000_000) {
            prop_assert_eq!(price_to_units(price_from_units(units)), units);
        }
    }
}
