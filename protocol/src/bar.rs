//! The one bar of the workspace: [`Bar`], what a bars file row, a BAR line and a cTrader trendbar
//! all describe, with the rules every bar obeys (`scripts/ENV.md` §1) and the one parser of bar
//! times in files ([`parse_time`]).
//!
//! Its other forms are conversions: the BAR line ([`BarLine`], prices as exact decimal text; see
//! [`Bar::to_line`] and [`BarLine::to_bar`]) and cTrader's trendbars (`ctrader::domain::trendbar`,
//! where a *live* trendbar, which has no close, is a type of its own).
//!
//! Prices are `f64` because every consumer computes with them in f64 (the twin's features, ENV.md
//! §4; the simulator's fills). Volume is a tick count, `u64`, as the BAR line and cTrader's trendbars
//! carry it: a fractional volume cannot occur live, so a file that has one is refused rather than
//! decided differently in a backtest.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::error::ValueError;
use crate::lines::BarLine;
use crate::values::{BarTime, Decimal, Symbol, Timeframe};

/// One bar. `time` is its **open** time in Unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Tick volume.
    pub volume: u64,
}

/// Largest price magnitude a bar may carry. Every symbol traded here is far below (BTCUSD about
/// 1e5, indices 1e4, USDJPY 1e2); a price near f64's range (1e38 was seen) would make every later
/// PnL too large to write in a SIGNAL, silently ending that symbol's trading.
pub const MAX_PRICE: f64 = 1e9;

/// How far past `now` a bar's close may lie and the bar still count as closed: the executor
/// publishes a bar once it has closed, on the same machine's clock.
pub const CLOCK_SLACK_SECS: i64 = 60;

/// Why a bar was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarError {
    #[error("{field} is not finite ({value})")]
    NotFinite { field: &'static str, value: f64 },
    #[error("high {high} is below max(open, close) = {max}")]
    HighTooLow { high: f64, max: f64 },
    #[error("low {low} is above min(open, close) = {min}")]
    LowTooHigh { low: f64, min: f64 },
    #[error("{field} {value:e} is beyond ±{MAX_PRICE:e}: not a price of any tradable symbol")]
    PriceOutOfRange { field: &'static str, value: f64 },
    #[error("time {time}: {why}")]
    Time { time: String, why: String },
}

impl Bar {
    /// The rules of ENV.md §1 for one bar: finite prices, `high >= max(open, close)`,
    /// `low <= min(open, close)`, and every price within ±[`MAX_PRICE`].
    pub fn validate(&self) -> Result<(), BarError> {
        for (field, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !value.is_finite() {
                return Err(BarError::NotFinite { field, value });
            }
        }
        let max = self.open.max(self.close);
        if self.high < max {
            return Err(BarError::HighTooLow {
                high: self.high,
                max,
            });
        }
        let min = self.open.min(self.close);
        if self.low > min {
            return Err(BarError::LowTooHigh { low: self.low, min });
        }
        // high and low bound open and close.
        for (field, value) in [("high", self.high), ("low", self.low)] {
            if value.abs() > MAX_PRICE {
                return Err(BarError::PriceOutOfRange { field, value });
            }
        }
        Ok(())
    }

    /// [`Bar::validate`], and the bar's time is real at `now` ([`check_bar_time`]): for bars that
    /// arrive live or in a HISTORY block.
    pub fn validate_at(&self, timeframe: Timeframe, now: i64) -> Result<(), BarError> {
        self.validate()?;
        check_bar_time(self.time, Some(timeframe), now).map_err(|why| BarError::Time {
            time: format_time(self.time),
            why,
        })
    }

    /// When the bar closes (the next bar's open time), by the calendar for MN1; `None` outside the
    /// protocol's time range.
    pub fn close_time(&self, timeframe: Timeframe) -> Option<i64> {
        let open = BarTime::from_unix(self.time).ok()?;
        Some(open.bar_close(timeframe)?.unix_seconds())
    }

    /// The BAR line's form: prices written with `digits` decimals (the symbol's), the time as the
    /// wire's `BarTime`. Fails on a time outside 1970..=9999 or a price that has no such text.
    pub fn to_line(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        digits: usize,
    ) -> Result<BarLine, ValueError> {
        let d = |v: f64| Decimal::from_f64(v, digits);
        Ok(BarLine {
            symbol: symbol.clone(),
            timeframe,
            time: BarTime::from_unix(self.time)?,
            open: d(self.open)?,
            high: d(self.high)?,
            low: d(self.low)?,
            close: d(self.close)?,
            volume: self.volume,
        })
    }
}

impl BarLine {
    /// The bar this line carries (prices as the nearest f64 of their text).
    pub fn to_bar(&self) -> Bar {
        Bar {
            time: self.time.unix_seconds(),
            open: self.open.to_f64(),
            high: self.high.to_f64(),
            low: self.low.to_f64(),
            close: self.close.to_f64(),
            volume: self.volume,
        }
    }
}

/// Largest volume a floating-point number carries exactly: every whole number up to 2^53 is exact
/// in f64.
pub const MAX_FLOAT_VOLUME: f64 = 9_007_199_254_740_992.0;

/// Why a floating-point number is not a tick volume.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum VolumeError {
    #[error("must be a finite number >= 0")]
    Negative,
    #[error("is not a whole number of ticks (tick volume, as cTrader and the BAR line carry it)")]
    NotWhole,
}

/// The tick volume a floating-point number stands for (a decimal in a bars file, a JSON number in a
/// fleet record, a database double): finite, `>= 0`, whole and at most [`MAX_FLOAT_VOLUME`], so the
/// `u64` is exactly the number written.
pub fn tick_volume(v: f64) -> Result<u64, VolumeError> {
    if !v.is_finite() || v < 0.0 {
        return Err(VolumeError::Negative);
    }
    if v.fract() != 0.0 || v > MAX_FLOAT_VOLUME {
        return Err(VolumeError::NotWhole);
    }
    // Whole, in 0..=2^53: the cast is exact.
    Ok(v as u64)
}

/// Whether a bar opened at `time` (Unix s) is real at `now`: inside the protocol's time range,
/// closed by `now` (plus [`CLOCK_SLACK_SECS`]; an MN1 bar closes at the next month's start), and,
/// for timeframes that divide an hour, on the timeframe's grid (whatever a broker's day or week
/// start, those bars open on multiples of their length). A bar from the future would make every
/// real bar after it look already decided. Without a timeframe, the open time must have passed.
pub fn check_bar_time(time: i64, timeframe: Option<Timeframe>, now: i64) -> Result<(), String> {
    let Ok(open) = BarTime::from_unix(time) else {
        return Err("outside 1970..=9999".into());
    };
    // Without a timeframe, the open time at least must have passed.
    let close = match timeframe {
        Some(tf) => open
            .bar_close(tf)
            .map_or(BarTime::MAX_UNIX, |c| c.unix_seconds()),
        None => time,
    };
    if close > now.saturating_add(CLOCK_SLACK_SECS) {
        return Err(format!(
            "the bar closes at {}, after now ({}): a bar from the future (a data or clock error)",
            format_time(close),
            format_time(now)
        ));
    }
    if let Some(tf) = timeframe
        .and_then(|tf| tf.duration_secs())
        .and_then(|s| i64::try_from(s).ok())
        && 3600 % tf == 0
        && time % tf != 0
    {
        return Err(format!(
            "not on the {tf} s grid of its timeframe (bars open at multiples of {tf} s)"
        ));
    }
    Ok(())
}

/// Parses a bar time as bars files write it: RFC 3339 / ISO 8601 in whole seconds (an explicit
/// offset is converted to UTC, `Z` means UTC, a naive time is UTC; `T` or a space between date and
/// time; minutes without seconds; a date alone is its midnight), or integer Unix seconds.
/// Fractional seconds are refused: bars open on whole seconds, and a truncated time would put a
/// bar off its grid without a word.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(unix) = canonical_time(t) {
        return Some(unix);
    }
    if t.contains('.') {
        return None;
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some(dt.timestamp());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc().timestamp());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc().timestamp());
    }
    None
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`format_time`] writes and most bars files hold) without chrono's
/// parser; `None` for any other text, which then takes the general path (where a valid time in
/// this form gives the same seconds: a leap second or an invalid date is left to it).
fn canonical_time(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let time = date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?;
    Some(time.and_utc().timestamp())
}

/// Canonical text of a bar time, `YYYY-MM-DDTHH:MM:SSZ` (the wire's `B:` form); `@<unix>` for a
/// time chrono cannot represent.
pub fn format_time(unix: i64) -> String {
    match DateTime::<Utc>::from_timestamp(unix, 0) {
        // The same text as the format string below for four-digit years, without interpreting a
        // format string per call (a backtest writes one time per decision).
        Some(dt) if (0..=9999).contains(&dt.year()) => {
            dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("@{unix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_770_120_000; // 2026-02-03T12:00:00Z

    fn flat(time: i64, p: f64) -> Bar {
        Bar {
            time,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: 1,
        }
    }

    #[test]
    fn times_in_every_accepted_spelling() {
        let t = Some(1_704_074_400); // 2024-01-01T02:00:00Z
        for text in [
            "2024-01-01T02:00:00Z",
            "2024-01-01T03:00:00+01:00",
            "2024-01-01 03:00:00+01:00",
            "2024-01-01 03:00:00+0100",
            "2024-01-01T03:00:00+0100",
            "2024-01-01T02:00:00",
            "2024-01-01 02:00:00",
            "2024-01-01T02:00",
            " 2024-01-01 02:00 ",
            "1704074400",
        ] {
            assert_eq!(parse_time(text), t, "{text}");
        }
        assert_eq!(parse_time("2024-01-01"), Some(1_704_067_200));
        for bad in [
            "2024-01-01T02:00:00.5Z",
            "1704074400.0",
            "yesterday",
            "",
            "-5",
            "2024-13-01",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(format_time(1_704_074_400), "2024-01-01T02:00:00Z");
        assert_eq!(format_time(i64::MAX), format!("@{}", i64::MAX));
    }

    /// The canonical form's fast path gives chrono's RFC 3339 seconds, over the whole range, and
    /// leaves what it cannot read (leap seconds, impossible dates) to chrono.
    #[test]
    fn the_canonical_fast_path_is_chronos_rfc3339() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let unix = (s % 253_402_300_800) as i64;
            let text = format_time(unix);
            let chrono = DateTime::parse_from_rfc3339(&text)
                .map(|d| d.timestamp())
                .ok();
            assert_eq!(canonical_time(&text), Some(unix), "{text}");
            assert_eq!(chrono, Some(unix), "{text}");
        }
        for text in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
        ] {
            assert_eq!(canonical_time(text), None, "{text}");
            assert_eq!(parse_time(text), None, "{text}");
        }
        let leap = "2016-12-31T23:59:60Z";
        assert_eq!(canonical_time(leap), None);
        assert_eq!(
            parse_time(leap),
            DateTime::parse_from_rfc3339(leap)
                .map(|d| d.timestamp())
                .ok()
        );
        assert_eq!(canonical_time("2024-01-01T02:00:0xZ"), None);
    }

    #[test]
    fn the_rules_of_one_bar() {
        assert_eq!(flat(0, 1.1).validate(), Ok(()));
        let b = flat(0, 1.0);
        assert!(matches!(
            Bar { high: 0.9, ..b }.validate(),
            Err(BarError::HighTooLow { .. })
        ));
        assert!(matches!(
            Bar { low: 1.1, ..b }.validate(),
            Err(BarError::LowTooHigh { .. })
        ));
        assert!(matches!(
            Bar {
                close: f64::NAN,
                ..b
            }
            .validate(),
            Err(BarError::NotFinite { field: "close", .. })
        ));
        assert!(matches!(
            flat(0, 1e38).validate(),
            Err(BarError::PriceOutOfRange { .. })
        ));
        assert_eq!(flat(0, 1e9).validate(), Ok(()));
        assert_eq!(
            flat(0, -3.5).validate(),
            Ok(()),
            "ENV.md: prices may cross zero"
        );
    }

    #[test]
    fn live_bars_must_be_closed_on_their_grid() {
        let h1 = Timeframe::H1;
        assert_eq!(flat(NOW - 3600, 1.1).validate_at(h1, NOW), Ok(()));
        let e = flat(NOW, 1.1).validate_at(h1, NOW).unwrap_err().to_string();
        assert!(e.contains("from the future"), "{e}");
        assert!(
            check_bar_time(253_402_214_400, Some(h1), NOW).is_err(),
            "9999-12-31"
        );
        assert!(check_bar_time(-1, None, NOW).unwrap_err().contains("1970"));
        assert_eq!(check_bar_time(NOW, None, NOW), Ok(()));
        assert!(check_bar_time(NOW + 61, None, NOW).is_err());
        assert!(
            check_bar_time(NOW - 5400, Some(h1), NOW)
                .unwrap_err()
                .contains("grid")
        );
        assert_eq!(
            check_bar_time(NOW - 5400 - 14_400, Some(Timeframe::H4), NOW),
            Ok(()),
            "H4: no absolute grid"
        );
    }

    #[test]
    fn week_and_month_bars_close_at_their_end_not_at_their_open() {
        const FEB1: i64 = 1_769_904_000; // 2026-02-01T00:00:00Z, a Sunday
        const MAR1: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
        let mn1 = flat(FEB1, 1.1);
        assert_eq!(mn1.close_time(Timeframe::MN1), Some(MAR1));
        // On 3 February the February bar is still forming.
        let e = mn1
            .validate_at(Timeframe::MN1, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("closes at 2026-03-01T00:00:00Z"), "{e}");
        assert_eq!(mn1.validate_at(Timeframe::MN1, MAR1), Ok(()));
        let w1 = flat(FEB1, 1.1);
        assert_eq!(w1.close_time(Timeframe::W1), Some(FEB1 + 7 * 86_400));
        assert!(w1.validate_at(Timeframe::W1, NOW).is_err());
        assert_eq!(w1.validate_at(Timeframe::W1, FEB1 + 7 * 86_400), Ok(()));
    }

    #[test]
    fn the_line_form_round_trips_at_the_symbols_digits() {
        let bar = Bar {
            time: NOW - 3600,
            open: 1.0845,
            high: 1.08561,
            low: 1.0844,
            close: 1.085,
            volume: 1234,
        };
        let line = bar
            .to_line(&"EURUSD".parse().unwrap(), Timeframe::H1, 5)
            .unwrap();
        assert_eq!(
            crate::Line::Bar(line.clone()).to_string(),
            "BAR|EURUSD|H1|2026-02-03T11:00:00Z|1.08450|1.08561|1.08440|1.08500|1234"
        );
        assert_eq!(line.to_bar(), bar);
        assert!(
            flat(-60, 1.0)
                .to_line(&"EURUSD".parse().unwrap(), Timeframe::H1, 5)
                .is_err()
        );
    }
}
