//! Field value types: each one validates on construction, so a value that exists is a value the
//! wire accepts, and `Display` writes exactly the text `FromStr` takes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, NaiveDate, Timelike};

use crate::error::ValueError;

/// Strict unsigned integer: `0` or digits without a leading zero or sign, so every number has one
/// spelling on the wire.
pub(crate) fn parse_uint<T: FromStr>(s: &str, expected: &'static str) -> Result<T, ValueError> {
    let bytes = s.as_bytes();
    let digits_only = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
    let no_leading_zero = bytes.len() == 1 || bytes.first() != Some(&b'0');
    if !(digits_only && no_leading_zero) {
        return Err(ValueError::new(expected, s));
    }
    s.parse::<T>().map_err(|_| ValueError::new(expected, s))
}

// ---------------------------------------------------------------------------------------------
// Symbol

/// A broker symbol name: 1..=32 characters of `A-Z 0-9 . _ -` (e.g. `EURUSD`, `US500`, `BTCUSD`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(String);

impl Symbol {
    pub const MAX_LEN: usize = 32;
    const EXPECTED: &'static str = "a symbol of 1..=32 characters from A-Z 0-9 . _ -";

    pub fn new(s: &str) -> Result<Self, ValueError> {
        s.parse()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Symbol {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=Self::MAX_LEN).contains(&s.len())
            && s.bytes().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ValueError::new(Self::EXPECTED, s))
        }
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Timeframe

/// cTrader's trendbar periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    M1,
    M2,
    M3,
    M4,
    M5,
    M10,
    M15,
    M30,
    H1,
    H4,
    H12,
    D1,
    W1,
    MN1,
}

impl Timeframe {
    pub const ALL: [Timeframe; 14] = [
        Self::M1,
        Self::M2,
        Self::M3,
        Self::M4,
        Self::M5,
        Self::M10,
        Self::M15,
        Self::M30,
        Self::H1,
        Self::H4,
        Self::H12,
        Self::D1,
        Self::W1,
        Self::MN1,
    ];
    const EXPECTED: &'static str = "a timeframe: M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1 MN1";

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::M1 => "M1",
            Self::M2 => "M2",
            Self::M3 => "M3",
            Self::M4 => "M4",
            Self::M5 => "M5",
            Self::M10 => "M10",
            Self::M15 => "M15",
            Self::M30 => "M30",
            Self::H1 => "H1",
            Self::H4 => "H4",
            Self::H12 => "H12",
            Self::D1 => "D1",
            Self::W1 => "W1",
            Self::MN1 => "MN1",
        }
    }

    /// Fixed length of one bar in seconds; `None` for MN1, whose months differ in length
    /// (use [`BarTime::bar_close`] for that).
    pub fn duration_secs(&self) -> Option<u64> {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        const DAY: u64 = 24 * HOUR;
        Some(match self {
            Self::M1 => MIN,
            Self::M2 => 2 * MIN,
            Self::M3 => 3 * MIN,
            Self::M4 => 4 * MIN,
            Self::M5 => 5 * MIN,
            Self::M10 => 10 * MIN,
            Self::M15 => 15 * MIN,
            Self::M30 => 30 * MIN,
            Self::H1 => HOUR,
            Self::H4 => 4 * HOUR,
            Self::H12 => 12 * HOUR,
            Self::D1 => DAY,
            Self::W1 => 7 * DAY,
            Self::MN1 => return None,
        })
    }
}

impl FromStr for Timeframe {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|tf| tf.as_str() == s)
            .ok_or_else(|| ValueError::new(Self::EXPECTED, s))
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// BarTime

/// A UTC instant with whole seconds, written only as `YYYY-MM-DDTHH:MM:SSZ`. The range is
/// 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z so the text form always has four year digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BarTime(i64);

impl BarTime {
    /// 9999-12-31T23:59:59Z.
    pub const MAX_UNIX: i64 = 253_402_300_799;
    const EXPECTED: &'static str = "a UTC time YYYY-MM-DDTHH:MM:SSZ between 1970 and 9999";

    pub fn from_unix(secs: i64) -> Result<Self, ValueError> {
        if (0..=Self::MAX_UNIX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(ValueError::new(
                "unix seconds between 0 and 253402300799 (1970..=9999)",
                &secs.to_string(),
            ))
        }
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0
    }

    fn to_chrono(self) -> DateTime<chrono::Utc> {
        // The range check in every constructor keeps this inside chrono's domain; the fallback is
        // unreachable and only avoids a panic path.
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }

    /// When the bar opened at `self` on `timeframe` closes (the next bar's open time). Handles MN1
    /// by calendar months. `None` past year 9999.
    pub fn bar_close(&self, timeframe: Timeframe) -> Option<BarTime> {
        let close = match timeframe.duration_secs() {
            Some(d) => self.0.checked_add(i64::try_from(d).ok()?)?,
            None => self
                .to_chrono()
                .checked_add_months(Months::new(1))?
                .timestamp(),
        };
        BarTime::from_unix(close).ok()
    }
}

impl FromStr for BarTime {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ValueError::new(Self::EXPECTED, s);
        let b = s.as_bytes();
        // Fixed layout first: chrono's parsers accept variants (offsets, fractions) we must refuse.
        let layout_ok = b.len() == 20
            && b.iter().enumerate().all(|(i, &c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !layout_ok {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|_| err());
        let year = i32::try_from(num(0..4)?).map_err(|_| err())?;
        let date = NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?).ok_or_else(err)?;
        // from_hms_opt refuses second 60: a bar never opens on a leap second.
        let time = date
            .and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)
            .ok_or_else(err)?;
        BarTime::from_unix(time.and_utc().timestamp()).map_err(|_| err())
    }
}

impl fmt::Display for BarTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.to_chrono();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Decimal

/// A decimal number kept as its exact wire text (`1.08542`, `0.00`, `-15.30`), so prices and PnL pass
/// through the protocol without a float round trip. Grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, at most
/// 40 characters. No `+`, exponent, NaN or infinity. Equality is textual: `1.0 != 1.00`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    pub const MAX_LEN: usize = 40;
    /// Most fraction digits `from_f64` writes; beyond f64's ~17 significant digits it is noise.
    pub const MAX_DECIMALS: usize = 17;
    const EXPECTED: &'static str = "a decimal number like 1.08542 or -15.30 (optional '-', digits, optional '.digits', no exponent, <= 40 chars)";

    pub fn new(s: &str) -> Result<Self, ValueError> {
        s.parse()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as f64 (nearest representable).
    pub fn to_f64(&self) -> f64 {
        // The grammar is a subset of what f64's parser takes, so this never falls back.
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// Number of digits after the decimal point.
    pub fn decimals(&self) -> usize {
        self.0.split_once('.').map_or(0, |(_, frac)| frac.len())
    }

    /// Formats `v` with exactly `decimals` fraction digits (rounded half to even, as `{:.N}` does).
    /// A result that rounds to zero is written without a sign (`0.00`, never `-0.00`).
    pub fn from_f64(v: f64, decimals: usize) -> Result<Self, ValueError> {
        if !v.is_finite() {
            return Err(ValueError::new("a finite number", &v.to_string()));
        }
        if decimals > Self::MAX_DECIMALS {
            return Err(ValueError::new(
                "at most 17 decimal places",
                &decimals.to_string(),
            ));
        }
        let mut text = format!("{v:.decimals$}");
        if let Some(unsigned) = text.strip_prefix('-')
            && unsigned.bytes().all(|b| b == b'0' || b == b'.')
        {
            text = unsigned.to_owned();
        }
        text.parse()
    }
}

impl FromStr for Decimal {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ValueError::new(Self::EXPECTED, s);
        if s.len() > Self::MAX_LEN {
            return Err(err());
        }
        let unsigned = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = match unsigned.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (unsigned, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let int_ok = all_digits(int) && (int.len() == 1 || !int.starts_with('0'));
        let frac_ok = frac.is_none_or(all_digits);
        if int_ok && frac_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Mode

/// How the executor is trading, announced in its HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Real orders on the broker account.
    Live,
    /// Simulated fills only.
    Paper,
    /// Live and paper books side by side on the same signals, to measure drift.
    Shadow,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Self::Live, Self::Paper, Self::Shadow];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Paper => "paper",
            Self::Shadow => "shadow",
        }
    }
}

impl FromStr for Mode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| ValueError::new("a mode: live paper shadow", s))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
