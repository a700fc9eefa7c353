//! Intensity → lots per symbol (the seed's table), and the target position a signal asks for.

use protocol::{Action, Direction, Intensity};

/// Lots per intensity for one symbol (`lot_weak`, `lot_moderate`, `lot_strong` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LotMap {
    pub weak: f64,
    pub moderate: f64,
    pub strong: f64,
}

impl LotMap {
    /// Lots for an intensity; `None` intensity (WAIT) is 0 lots.
    pub fn lots(&self, intensity: Intensity) -> f64 {
        match intensity {
            Intensity::None => 0.0,
            Intensity::Weak => self.weak,
            Intensity::Moderate => self.moderate,
            Intensity::Strong => self.strong,
        }
    }

    /// The position an action asks for on this symbol.
    pub fn target(&self, action: Action) -> TargetPosition {
        let direction = action.direction();
        if direction == Direction::Flat {
            return TargetPosition::FLAT;
        }
        TargetPosition {
            direction,
            lots: self.lots(action.intensity()),
        }
    }
}

/// A desired net position on one symbol: direction and lots (0 when flat).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetPosition {
    pub direction: Direction,
    pub lots: f64,
}

impl TargetPosition {
    pub const FLAT: TargetPosition = TargetPosition {
        direction: Direction::Flat,
        lots: 0.0,
    };

    pub fn is_flat(&self) -> bool {
        self.direction == Direction::Flat
    }
}

/// Lots are compared with a tolerance far below the smallest step (0.01) so float noise never
/// turns a matching position into a close-and-reopen.
pub fn same_lots(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table_maps_intensity_to_lots() {
        let us500 = LotMap {
            weak: 0.10,
            moderate: 0.30,
            strong: 0.50,
        };
        assert_eq!(
            us500.target(Action::LongWeak),
            TargetPosition {
                direction: Direction::Long,
                lots: 0.10
            }
        );
        assert_eq!(
            us500.target(Action::ShortModerate),
            TargetPosition {
                direction: Direction::Short,
                lots: 0.30
            }
        );
        assert_eq!(us500.target(Action::LongStrong).lots, 0.50);
        assert!(us500.target(Action::Wait).is_flat());
        let aapl = LotMap {
            weak: 1.0,
            moderate: 3.0,
            strong: 5.0,
        };
        assert_eq!(
            aapl.target(Action::ShortStrong),
            TargetPosition {
                direction: Direction::Short,
                lots: 5.0
            }
        );
    }
}
