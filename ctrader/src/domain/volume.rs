//! Lots ↔ Open API volume. Volume is in 0.01 units of the base asset ("cents"), so
//! `volume = lots × lotSize` with the symbol's `lotSize` (e.g. 10 000 000 for a 100 000-unit FX lot),
//! snapped down to `stepVolume` and checked against `minVolume`/`maxVolume`.

use crate::messages::ProtoOaSymbol;

/// Why a lot size cannot become an order volume for a symbol.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VolumeError {
    /// The symbol details lack a field the conversion needs, or it is not positive.
    #[error(
        "symbol {symbol}: `{field}` is missing or not positive in the symbol details; request them with symbol_details()"
    )]
    MissingSpec {
        /// Symbol name.
        symbol: String,
        /// The missing field.
        field: &'static str,
    },
    /// Lots must be a finite, positive number.
    #[error("symbol {symbol}: {lots} lots is not a positive finite size")]
    InvalidLots {
        /// Symbol name.
        symbol: String,
        /// The requested lots.
        lots: f64,
    },
    /// After snapping down to the step the volume is below the symbol minimum.
    #[error(
        "symbol {symbol}: {lots} lots = volume {volume} is below the minimum {min_volume} ({min_lots} lots)"
    )]
    BelowMinimum {
        /// Symbol name.
        symbol: String,
        /// The requested lots.
        lots: f64,
        /// The snapped volume.
        volume: i64,
        /// The symbol's minimum volume.
        min_volume: i64,
        /// The minimum in lots.
        min_lots: f64,
    },
    /// The volume is above the symbol maximum.
    #[error(
        "symbol {symbol}: {lots} lots = volume {volume} is above the maximum {max_volume} ({max_lots} lots)"
    )]
    AboveMaximum {
        /// Symbol name.
        symbol: String,
        /// The requested lots.
        lots: f64,
        /// The snapped volume.
        volume: i64,
        /// The symbol's maximum volume.
        max_volume: i64,
        /// The maximum in lots.
        max_lots: f64,
    },
}

/// The volume rules of one symbol, from its `ProtoOASymbol` details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolVolume {
    /// Symbol name, for error messages.
    pub symbol: String,
    /// Volume of one lot (0.01 base units).
    pub lot_size: i64,
    /// Volume granularity.
    pub step_volume: i64,
    /// Smallest order volume.
    pub min_volume: i64,
    /// Largest order volume.
    pub max_volume: i64,
    /// Price digits, for rounding prices sent with orders.
    pub digits: u32,
}

impl SymbolVolume {
    /// Takes the rules from symbol details. `name` comes from the light symbol list because the
    /// full `ProtoOASymbol` does not carry the name.
    pub fn from_symbol(name: &str, s: &ProtoOaSymbol) -> Result<Self, VolumeError> {
        let need = |field: &'static str, v: Option<i64>| match v {
            Some(v) if v > 0 => Ok(v),
            _ => Err(VolumeError::MissingSpec {
                symbol: name.to_string(),
                field,
            }),
        };
        Ok(Self {
            symbol: name.to_string(),
            lot_size: need("lotSize", s.lot_size)?,
            step_volume: need("stepVolume", s.step_volume)?,
            min_volume: need("minVolume", s.min_volume)?,
            max_volume: need("maxVolume", s.max_volume)?,
            digits: u32::try_from(s.digits).unwrap_or(0),
        })
    }

    /// Lots → volume, snapped down to the step (never more than asked), within min/max.
    pub fn lots_to_volume(&self, lots: f64) -> Result<i64, VolumeError> {
        if !lots.is_finite() || lots <= 0.0 {
            return Err(VolumeError::InvalidLots {
                symbol: self.symbol.clone(),
                lots,
            });
        }
        let raw = lots * self.lot_size as f64;
        // 0.07 lots × 10 000 000 is 699 999.999… in binary; allow a relative hair before flooring so
        // an exact multiple of the step is not knocked down a whole step.
        let steps = (raw / self.step_volume as f64 * (1.0 + 1e-12)).floor();
        let volume = if steps >= (i64::MAX / self.step_volume) as f64 {
            i64::MAX
        } else {
            steps as i64 * self.step_volume
        };
        if volume > self.max_volume {
            return Err(VolumeError::AboveMaximum {
                symbol: self.symbol.clone(),
                lots,
                volume,
                max_volume: self.max_volume,
                max_lots: self.volume_to_lots(self.max_volume),
            });
        }
        if volume < self.min_volume {
            return Err(VolumeError::BelowMinimum {
                symbol: self.symbol.clone(),
                lots,
                volume,
                min_volume: self.min_volume,
                min_lots: self.volume_to_lots(self.min_volume),
            });
        }
        Ok(volume)
    }

    /// Volume → lots.
    pub fn volume_to_lots(&self, volume: i64) -> f64 {
        volume as f64 / self.lot_size as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eurusd() -> SymbolVolume {
        // A typical FX symbol: 1 lot = 100 000 EUR = 10 000 000 cents, 0.01-lot steps, up to 100 lots.
        SymbolVolume {
            symbol: "EURUSD".into(),
            lot_size: 10_000_000,
            step_volume: 100_000,
            min_volume: 100_000,
            max_volume: 1_000_000_000,
            digits: 5,
        }
    }

    #[test]
    fn lots_to_volume_snaps_down() {
        let s = eurusd();
        assert_eq!(s.lots_to_volume(1.0), Ok(10_000_000));
        assert_eq!(s.lots_to_volume(0.07), Ok(700_000));
        assert_eq!(s.lots_to_volume(0.29), Ok(2_900_000));
        assert_eq!(s.lots_to_volume(0.129), Ok(1_200_000));
        assert_eq!(s.volume_to_lots(1_200_000), 0.12);
    }

    #[test]
    fn limits_are_typed_errors_naming_the_symbol() {
        let s = eurusd();
        let e = s.lots_to_volume(0.005).expect_err("below min");
        assert!(matches!(
            e,
            VolumeError::BelowMinimum {
                volume: 0,
                min_volume: 100_000,
                ..
            }
        ));
        assert!(e.to_string().contains("EURUSD") && e.to_string().contains("0.01 lots"));
        assert!(matches!(
            s.lots_to_volume(101.0),
            Err(VolumeError::AboveMaximum {
                max_lots: 100.0,
                ..
            })
        ));
        assert!(matches!(
            s.lots_to_volume(f64::NAN),
            Err(VolumeError::InvalidLots { .. })
        ));
        assert!(matches!(
            s.lots_to_volume(-1.0),
            Err(VolumeError::InvalidLots { .. })
        ));
        assert!(matches!(
            s.lots_to_volume(1e300),
            Err(VolumeError::AboveMaximum { .. })
        ));
    }

    #[test]
    fn from_symbol_requires_the_volume_fields() {
        let sym = ProtoOaSymbol {
            symbol_id: 1,
            digits: 5,
            lot_size: Some(10_000_000),
            step_volume: Some(100_000),
            min_volume: Some(100_000),
            max_volume: None,
            ..Default::default()
        };
        assert_eq!(
            SymbolVolume::from_symbol("EURUSD", &sym),
            Err(VolumeError::MissingSpec {
                symbol: "EURUSD".into(),
                field: "maxVolume"
            })
        );
    }

    proptest! {
        #[test]
        fn volume_is_a_step_multiple_never_above_request(lots in 0.01f64..100.0) {
            let s = eurusd();
            let v = s.lots_to_volume(lots).expect("in range");
            prop_assert_eq!(v % s.step_volume, 0);
            prop_assert!(s.volume_to_lots(v) <= lots * (1.0 + 1e-9));
            prop_assert!(s.volume_to_lots(v + s.step_volume) > lots);
        }
    }
}
