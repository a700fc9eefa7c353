//! The policy's seven actions and their (direction, intensity) decomposition, as in the seed's model
//! metadata: index 0 = WAIT, 1..=3 LONG WEAK/MODERATE/STRONG, 4..=6 SHORT WEAK/MODERATE/STRONG.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;

/// Which side the target position is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Short,
    Flat,
    Long,
}

impl Direction {
    /// -1, 0, +1: the `direction` of the seed's action table and the `position_direction` feature.
    pub fn sign(&self) -> i8 {
        match self {
            Self::Short => -1,
            Self::Flat => 0,
            Self::Long => 1,
        }
    }

    pub fn from_sign(sign: i8) -> Option<Self> {
        match sign {
            -1 => Some(Self::Short),
            0 => Some(Self::Flat),
            1 => Some(Self::Long),
            _ => None,
        }
    }
}

/// Signal strength, mapped to lots per symbol by the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intensity {
    None,
    Weak,
    Moderate,
    Strong,
}

impl Intensity {
    /// 0..=3, the seed's `intensity`.
    pub fn level(&self) -> u8 {
        match self {
            Self::None => 0,
            Self::Weak => 1,
            Self::Moderate => 2,
            Self::Strong => 3,
        }
    }

    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            0 => Some(Self::None),
            1 => Some(Self::Weak),
            2 => Some(Self::Moderate),
            3 => Some(Self::Strong),
            _ => None,
        }
    }
}

/// The model's decision for a bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Wait,
    LongWeak,
    LongModerate,
    LongStrong,
    ShortWeak,
    ShortModerate,
    ShortStrong,
}

impl Action {
    /// In index order, so `ALL[a.index()] == a`.
    pub const ALL: [Action; 7] = [
        Self::Wait,
        Self::LongWeak,
        Self::LongModerate,
        Self::LongStrong,
        Self::ShortWeak,
        Self::ShortModerate,
        Self::ShortStrong,
    ];
    const EXPECTED: &'static str = "an action: WAIT LONG_WEAK LONG_MODERATE LONG_STRONG SHORT_WEAK SHORT_MODERATE SHORT_STRONG";

    /// 0..=6: the policy output index.
    pub fn index(&self) -> usize {
        match self {
            Self::Wait => 0,
            Self::LongWeak => 1,
            Self::LongModerate => 2,
            Self::LongStrong => 3,
            Self::ShortWeak => 4,
            Self::ShortModerate => 5,
            Self::ShortStrong => 6,
        }
    }

    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    pub fn direction(&self) -> Direction {
        match self {
            Self::Wait => Direction::Flat,
            Self::LongWeak | Self::LongModerate | Self::LongStrong => Direction::Long,
            Self::ShortWeak | Self::ShortModerate | Self::ShortStrong => Direction::Short,
        }
    }

    pub fn intensity(&self) -> Intensity {
        match self {
            Self::Wait => Intensity::None,
            Self::LongWeak | Self::ShortWeak => Intensity::Weak,
            Self::LongModerate | Self::ShortModerate => Intensity::Moderate,
            Self::LongStrong | Self::ShortStrong => Intensity::Strong,
        }
    }

    /// The action for a target position; `None` for impossible pairs (flat with an intensity, or a
    /// side without one).
    pub fn from_parts(direction: Direction, intensity: Intensity) -> Option<Self> {
        use {Direction as D, Intensity as I};
        Some(match (direction, intensity) {
            (D::Flat, I::None) => Self::Wait,
            (D::Long, I::Weak) => Self::LongWeak,
            (D::Long, I::Moderate) => Self::LongModerate,
            (D::Long, I::Strong) => Self::LongStrong,
            (D::Short, I::Weak) => Self::ShortWeak,
            (D::Short, I::Moderate) => Self::ShortModerate,
            (D::Short, I::Strong) => Self::ShortStrong,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Wait => "WAIT",
            Self::LongWeak => "LONG_WEAK",
            Self::LongModerate => "LONG_MODERATE",
            Self::LongStrong => "LONG_STRONG",
            Self::ShortWeak => "SHORT_WEAK",
            Self::ShortModerate => "SHORT_MODERATE",
            Self::ShortStrong => "SHORT_STRONG",
        }
    }
}

impl FromStr for Action {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ValueError::new(Self::EXPECTED, s))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
