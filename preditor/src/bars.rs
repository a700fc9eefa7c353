//! Bars (ENV.md §1): the twin's only input, and the CSV layouts the backtest reads.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};

/// One closed bar. `time` is the bar's **open** time, in Unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Why a bar (or a bars file) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarError {
    #[error("{field} is not finite ({value})")]
    NotFinite { field: &'static str, value: f64 },
    #[error("high {high} is below max(open, close) = {max}")]
    HighTooLow { high: f64, max: f64 },
    #[error("low {low} is above min(open, close) = {min}")]
    LowTooHigh { low: f64, min: f64 },
    #[error("volume {0} is negative")]
    NegativeVolume(f64),
    #[error("{field} {value:e} is beyond ±{MAX_PRICE:e}: not a price of any tradable symbol")]
    PriceOutOfRange { field: &'static str, value: f64 },
    #[error("time {time}: {why}")]
    Time { time: String, why: String },
}

/// Largest price magnitude a bar may carry. Every symbol traded here is far below (BTCUSD about
/// 1e5, indices 1e4, USDJPY 1e2); a price near f64's range (1e38 was seen) would make every later
/// PnL too large to write in a SIGNAL, silently ending that symbol's trading.
pub const MAX_PRICE: f64 = 1e9;

/// How far past `now` a bar's close may lie: the executor publishes a bar once it has closed, on
/// the same machine's clock.
pub const CLOCK_SLACK_SECS: i64 = 60;

/// Whether a bar opened at `time` (Unix s) on a timeframe of `tf_secs` is real at `now`: inside
/// the protocol's time range, closed by `now` (plus [`CLOCK_SLACK_SECS`]), and on the timeframe's
/// grid for timeframes that divide an hour (whatever a broker's day or week start, those bars open
/// on multiples of their length). A bar from the future would make every real bar after it look
/// already decided.
pub fn bar_time_ok(time: i64, tf_secs: Option<i64>, now: i64) -> Result<(), String> {
    if !(0..=protocol::BarTime::MAX_UNIX).contains(&time) {
        return Err("outside 1970..=9999".into());
    }
    let close = time.saturating_add(tf_secs.unwrap_or(0));
    if close > now.saturating_add(CLOCK_SLACK_SECS) {
        return Err(format!(
            "the bar closes at {}, after now ({}): a bar from the future (a data or clock error)",
            format_time(close),
            format_time(now)
        ));
    }
    if let Some(tf) = tf_secs
        && tf > 0
        && 3600 % tf == 0
        && time % tf != 0
    {
        return Err(format!(
            "not on the {tf} s grid of its timeframe (bars open at multiples of {tf} s)"
        ));
    }
    Ok(())
}

impl Bar {
    /// Checks the invariants of ENV.md §1 for a single bar.
    pub fn validate(&self) -> Result<(), BarError> {
        for (field, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
            ("volume", self.volume),
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
        if self.volume < 0.0 {
            return Err(BarError::NegativeVolume(self.volume));
        }
        for (field, value) in [("high", self.high), ("low", self.low)] {
            if value.abs() > MAX_PRICE {
                return Err(BarError::PriceOutOfRange { field, value });
            }
        }
        Ok(())
    }

    /// [`Bar::validate`], and the bar's time is real at `now` ([`bar_time_ok`]): for bars that
    /// arrive live or in a HISTORY block.
    pub fn validate_at(&self, tf_secs: Option<i64>, now: i64) -> Result<(), BarError> {
        self.validate()?;
        bar_time_ok(self.time, tf_secs, now).map_err(|why| BarError::Time {
            time: format_time(self.time),
            why,
        })
    }
}

/// A bars CSV could not be read; names the file and the row (1-based, header = row 1).
#[derive(Debug, thiserror::Error)]
pub enum BarsFileError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: unknown header {header:?}; expected `time,open,high,low,close,volume` or the backtesting layout `,Open,High,Low,Close,Volume`"
    )]
    Header { path: PathBuf, header: Vec<String> },
    #[error("{path}: row {row}: {what}")]
    Row {
        path: PathBuf,
        row: u64,
        what: String,
    },
    #[error(
        "{path}: row {row}: time {time} is not after the previous bar's {previous}; bars must be strictly increasing"
    )]
    OutOfOrder {
        path: PathBuf,
        row: u64,
        time: String,
        previous: String,
    },
}

/// Parses a bar time (ENV.md §1): RFC 3339 / ISO 8601 in whole seconds; an explicit offset is converted
/// to UTC, `Z` means UTC, a naive time is UTC. Fractional seconds are refused.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.contains('.') {
        return None;
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
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc().timestamp());
    }
    None
}

/// Canonical text of a bar time: `YYYY-MM-DDTHH:MM:SSZ` (the wire's `B:` form).
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

/// Reads and validates a bars CSV (ENV.md §1): either layout, strictly increasing times.
pub fn read_bars_csv(path: &Path) -> Result<Vec<Bar>, BarsFileError> {
    let bytes = std::fs::read(path).map_err(|source| BarsFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_bars_csv(&bytes, path)
}

/// Parses bars CSV bytes; `path` only names the source in errors.
pub fn parse_bars_csv(bytes: &[u8], path: &Path) -> Result<Vec<Bar>, BarsFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let row_err = |row: u64, what: String| BarsFileError::Row {
        path: path.to_path_buf(),
        row,
        what,
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| row_err(1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let lower: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let known = lower.len() == 6
        && (lower[0] == "time"
            || lower[0].is_empty()
            || lower[0] == "date"
            || lower[0] == "datetime")
        && lower[1..] == ["open", "high", "low", "close", "volume"];
    if !known {
        return Err(BarsFileError::Header {
            path: path.to_path_buf(),
            header,
        });
    }
    let mut bars: Vec<Bar> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i as u64 + 2;
        let record = record.map_err(|e| row_err(row, e.to_string()))?;
        let time = parse_time(&record[0]).ok_or_else(|| {
            row_err(
                row,
                format!(
                    "time {:?} is not RFC 3339 / ISO 8601 in whole seconds",
                    &record[0]
                ),
            )
        })?;
        let mut values = [0.0f64; 5];
        for (k, name) in ["open", "high", "low", "close", "volume"]
            .iter()
            .enumerate()
        {
            let text = record[k + 1].trim();
            values[k] = text
                .parse::<f64>()
                .map_err(|_| row_err(row, format!("{name} {text:?} is not a number")))?;
        }
        let bar = Bar {
            time,
            open: values[0],
            high: values[1],
            low: values[2],
            close: values[3],
            volume: values[4],
        };
        bar.validate().map_err(|e| row_err(row, e.to_string()))?;
        if let Some(prev) = bars.last()
            && bar.time <= prev.time
        {
            return Err(BarsFileError::OutOfOrder {
                path: path.to_path_buf(),
                row,
                time: format_time(bar.time),
                previous: format_time(prev.time),
            });
        }
        bars.push(bar);
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_parse_to_the_same_bars() {
        let a = b"time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n2024-01-01 01:00:00,1.5,2,1,1.2,0\n";
        let b = b",Open,High,Low,Close,Volume\n2024-01-01 00:00:00+00:00,1,2,0.5,1.5,10.0\n2024-01-01T01:00:00,1.5,2,1,1.2,0\n";
        let pa = parse_bars_csv(a, Path::new("a.csv")).unwrap();
        let pb = parse_bars_csv(b, Path::new("b.csv")).unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.len(), 2);
        assert_eq!(format_time(pa[1].time), "2024-01-01T01:00:00Z");
        assert_eq!(
            parse_time("2024-01-01T03:00:00+02:00"),
            parse_time("2024-01-01T01:00:00Z")
        );
        let with_blank =
            b"TIME, Open ,high,low,close,volume\n\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n\n";
        assert_eq!(
            parse_bars_csv(with_blank, Path::new("c.csv"))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn live_bars_must_be_closed_on_their_grid_and_priced_like_a_symbol() {
        let now = 1_770_120_000; // 2026-02-03T12:00:00Z
        let h1 = Some(3600);
        assert_eq!(bar_time_ok(now - 3600, h1, now), Ok(()));
        assert!(
            bar_time_ok(now, h1, now)
                .unwrap_err()
                .contains("from the future")
        );
        assert!(bar_time_ok(253_402_214_400, h1, now).is_err(), "9999-12-31");
        assert!(
            bar_time_ok(now - 5400, h1, now)
                .unwrap_err()
                .contains("grid")
        );
        assert_eq!(
            bar_time_ok(now - 5400 - 14_400, Some(14_400), now),
            Ok(()),
            "H4: no absolute grid"
        );
        let b = |p: f64| Bar {
            time: now - 3600,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: 1.0,
        };
        assert_eq!(b(1.1).validate_at(h1, now), Ok(()));
        assert!(matches!(
            b(1e38).validate(),
            Err(BarError::PriceOutOfRange { .. })
        ));
        assert_eq!(b(1e9).validate(), Ok(()));
    }

    #[test]
    fn refusals_name_the_row() {
        let bad_order = b"time,open,high,low,close,volume\n2024-01-01T01:00:00Z,1,2,0.5,1.5,10\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n";
        let e = parse_bars_csv(bad_order, Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("row 3"), "{e}");
        let bad_high = b"time,open,high,low,close,volume\n2024-01-01T01:00:00Z,1,1.2,0.5,1.5,10\n";
        let e = parse_bars_csv(bad_high, Path::new("x.csv")).unwrap_err();
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("high"),
            "{e}"
        );
        let bad_num = b"time,open,high,low,close,volume\n2024-01-01T01:00:00Z,1,abc,0.5,1.5,10\n";
        let e = parse_bars_csv(bad_num, Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("high \"abc\""), "{e}");
        let fraction = b"time,open,high,low,close,volume\n2024-01-01T01:00:00.5Z,1,2,0.5,1.5,10\n";
        let e = parse_bars_csv(fraction, Path::new("x.csv")).unwrap_err();
        assert!(e.to_string().contains("whole seconds"), "{e}");
        let short = b"time,open,high,low,close,volume\n2024-01-01T01:00:00Z,1,2,0.5,1.5\n";
        assert!(parse_bars_csv(short, Path::new("x.csv")).is_err());
        let bad_header = b"a,b\n1,2\n";
        assert!(matches!(
            parse_bars_csv(bad_header, Path::new("x.csv")),
            Err(BarsFileError::Header { .. })
        ));
    }
}
