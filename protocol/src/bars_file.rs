//! The one reader of bars files (`scripts/ENV.md` §1), for the backtest, the executor's paper replay
//! and the simulator alike, so a file one of them accepts the others accept too; and the one writer
//! ([`write_bars_csv`], the hub's export).
//!
//! Layouts: `time,open,high,low,close,volume`, or the `backtesting` package's (first column unnamed,
//! `time`, `date` or `datetime`, then `Open,High,Low,Close,Volume`); header names compared
//! case-insensitively after trimming. Times as [`crate::bar::parse_time`] reads them, inside
//! 1970..=9999 (the BAR line's range), strictly increasing. Every row has exactly 6 fields and obeys
//! [`Bar::validate`]; the volume is a whole number of ticks (`10` or `10.0`). Blank lines are
//! skipped. Every refusal names the file, the line and the field.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::bar::{Bar, BarError, VolumeError, format_time, parse_time, tick_volume};
use crate::values::BarTime;

/// A bars file that could not be read; every message names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum BarsFileError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:1: unknown header {found:?}; expected `time,open,high,low,close,volume` or the backtesting layout `,Open,High,Low,Close,Volume`"
    )]
    Header { path: PathBuf, found: Vec<String> },
    #[error("{path}:{line}: {field}: {what}")]
    Row {
        path: PathBuf,
        line: u64,
        field: &'static str,
        what: String,
    },
    #[error(
        "{path}:{line}: time {time} is not after the previous bar's {previous}; bars must be strictly increasing (sort the file by time, drop duplicates)"
    )]
    OutOfOrder {
        path: PathBuf,
        line: u64,
        time: String,
        previous: String,
    },
}

/// What a bars file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BarsFile {
    /// Oldest first, strictly increasing open times.
    pub bars: Vec<Bar>,
    /// The most decimals any price was written with (a hint for a symbol's digits).
    pub price_decimals: u32,
}

/// Reads bars files. The default takes every file ENV.md §1 allows; [`BarsReader::positive_prices`]
/// adds one rule for a consumer whose prices cannot be zero or negative.
#[derive(Debug, Clone, Copy, Default)]
pub struct BarsReader {
    positive_prices: bool,
}

/// The six columns, after the time, in order.
const VALUES: [&str; 5] = ["open", "high", "low", "close", "volume"];

impl BarsReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also refuse a price at or below zero (the simulator's quotes are unsigned on the wire).
    pub fn positive_prices(mut self) -> Self {
        self.positive_prices = true;
        self
    }

    /// Reads and checks one file.
    pub fn read(&self, path: &Path) -> Result<BarsFile, BarsFileError> {
        let bytes = std::fs::read(path).map_err(|source| BarsFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.parse(&bytes, path)
    }

    /// Checks a file's bytes; `path` only names the source in errors.
    pub fn parse(&self, bytes: &[u8], path: &Path) -> Result<BarsFile, BarsFileError> {
        let mut rows = self.rows(bytes, path)?;
        let mut bars: Vec<Bar> = Vec::new();
        while let Some((bar, _)) = rows.next_bar()? {
            bars.push(bar);
        }
        Ok(BarsFile {
            bars,
            price_decimals: rows.price_decimals(),
        })
    }

    /// The rows of a file one at a time, its header checked first: a file read as it is used holds
    /// one row in memory, not the file (the executor's paper replay).
    pub fn rows<R: Read>(&self, input: R, path: &Path) -> Result<BarsRows<R>, BarsFileError> {
        let mut rows = BarsRows::new(*self, input, path);
        let found: Vec<String> = rows
            .reader
            .headers()
            .map_err(|e| rows.rows.row(1, "header", e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        let names: Vec<String> = found
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        let known = names.len() == 6
            && matches!(names[0].as_str(), "time" | "" | "date" | "datetime")
            && names[1..] == VALUES;
        if !known {
            return Err(BarsFileError::Header {
                path: path.to_path_buf(),
                found,
            });
        }
        Ok(rows)
    }

    /// The rows of a file from the row that started at `at` (as [`BarsRows::next_bar`] gave it
    /// when the file was read before), checked as in a whole read; `previous` is the open time of
    /// the bar before it, for the order check. Line numbers in errors are the file's.
    pub fn rows_from<R: Read + Seek>(
        &self,
        input: R,
        path: &Path,
        at: &RowStart,
        previous: Option<i64>,
    ) -> Result<BarsRows<R>, BarsFileError> {
        let mut rows = BarsRows::new(*self, input, path);
        rows.reader
            .seek(at.0.clone())
            .map_err(|e| BarsFileError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        rows.rows.previous = previous;
        Ok(rows)
    }
}

/// Where a row starts in its file (byte, line and record), to read the file again from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowStart(csv::Position);

impl RowStart {
    /// The file's line the row starts on (1 is the header).
    pub fn line(&self) -> u64 {
        self.0.line()
    }
}

/// A bars file's rows, read and checked one at a time ([`BarsReader::rows`]).
pub struct BarsRows<R> {
    reader: csv::Reader<R>,
    /// Reused for every row: reading a row allocates nothing once the first one is read.
    record: csv::ByteRecord,
    rows: RowCheck,
}

/// What checking a row needs besides the row: the rules, the previous bar's time, the file's name.
#[derive(Debug)]
struct RowCheck {
    path: PathBuf,
    rules: BarsReader,
    previous: Option<i64>,
    price_decimals: u32,
}

impl<R> std::fmt::Debug for BarsRows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarsRows")
            .field("path", &self.rows.path)
            .field("line", &self.reader_line())
            .finish_non_exhaustive()
    }
}

impl<R> BarsRows<R> {
    fn reader_line(&self) -> u64 {
        self.record.position().map_or(1, csv::Position::line)
    }
}

impl<R: Read> BarsRows<R> {
    fn new(rules: BarsReader, input: R, path: &Path) -> Self {
        BarsRows {
            reader: csv::ReaderBuilder::new()
                .has_headers(true)
                .flexible(true)
                .from_reader(input),
            record: csv::ByteRecord::new(),
            rows: RowCheck {
                path: path.to_path_buf(),
                rules,
                previous: None,
                price_decimals: 0,
            },
        }
    }

    /// The most decimals any price read so far was written with.
    pub fn price_decimals(&self) -> u32 {
        self.rows.price_decimals
    }

    /// The line after the last row read: where a file that ends too early ended.
    pub fn end_line(&self) -> u64 {
        self.reader.position().line()
    }

    /// The next bar and where its row starts; `None` at the end of the file. Blank lines are
    /// skipped.
    pub fn next_bar(&mut self) -> Result<Option<(Bar, RowStart)>, BarsFileError> {
        loop {
            let more = self
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| {
                    let line = e.position().map_or(0, csv::Position::line);
                    self.rows.row(line, "row", e.to_string())
                })?;
            if !more {
                return Ok(None);
            }
            let start = self
                .record
                .position()
                .cloned()
                .unwrap_or_else(csv::Position::new);
            let line = start.line();
            let mut fields = [""; 6];
            let mut blank = true;
            let mut count = 0;
            for (k, raw) in self.record.iter().enumerate() {
                let text = std::str::from_utf8(raw)
                    .map_err(|e| self.rows.row(line, "row", format!("field {}: {e}", k + 1)))?
                    .trim();
                blank &= text.is_empty();
                if let Some(slot) = fields.get_mut(k) {
                    *slot = text;
                }
                count = k + 1;
            }
            if blank {
                continue;
            }
            let bar = self.rows.check(line, count, &fields)?;
            self.rows.previous = Some(bar.time);
            return Ok(Some((bar, RowStart(start))));
        }
    }
}

impl RowCheck {
    fn row(&self, line: u64, field: &'static str, what: String) -> BarsFileError {
        BarsFileError::Row {
            path: self.path.clone(),
            line,
            field,
            what,
        }
    }

    fn check(&mut self, line: u64, count: usize, fields: &[&str; 6]) -> Result<Bar, BarsFileError> {
        if count != 6 {
            return Err(self.row(
                line,
                "row",
                format!("{count} fields, expected 6 (time,open,high,low,close,volume)"),
            ));
        }
        let text = fields[0];
        let time = parse_time(text).ok_or_else(|| {
            self.row(
                line,
                "time",
                format!("{text:?} is not RFC 3339 / ISO 8601 in whole seconds, nor Unix seconds"),
            )
        })?;
        BarTime::from_unix(time).map_err(|_| {
            self.row(
                line,
                "time",
                format!("{text:?} is outside 1970..=9999, the BAR line's range"),
            )
        })?;
        let mut prices = [0.0f64; 4];
        for (k, name) in VALUES[..4].iter().enumerate() {
            let text = fields[k + 1];
            prices[k] = text
                .parse::<f64>()
                .map_err(|_| self.row(line, name, format!("{text:?} is not a number")))?;
            self.price_decimals = self.price_decimals.max(decimals(text));
        }
        let volume = parse_volume(fields[5]).map_err(|what| self.row(line, "volume", what))?;
        let [open, high, low, close] = prices;
        let bar = Bar {
            time,
            open,
            high,
            low,
            close,
            volume,
        };
        bar.validate()
            .map_err(|e| self.row(line, bar_error_field(&e), e.to_string()))?;
        if self.rules.positive_prices
            && let Some((name, v)) = VALUES.iter().zip(prices).find(|(_, v)| *v <= 0.0)
        {
            return Err(self.row(
                line,
                name,
                format!("{v} is not above 0; prices must be positive here"),
            ));
        }
        if let Some(previous) = self.previous
            && bar.time <= previous
        {
            return Err(BarsFileError::OutOfOrder {
                path: self.path.clone(),
                line,
                time: format_time(bar.time),
                previous: format_time(previous),
            });
        }
        Ok(bar)
    }
}

/// Reads a bars file with the default rules ([`BarsReader`]).
pub fn read_bars_csv(path: &Path) -> Result<Vec<Bar>, BarsFileError> {
    BarsReader::new().read(path).map(|f| f.bars)
}

/// Checks a bars file's bytes with the default rules; `path` only names the source in errors.
pub fn parse_bars_csv(bytes: &[u8], path: &Path) -> Result<Vec<Bar>, BarsFileError> {
    BarsReader::new().parse(bytes, path).map(|f| f.bars)
}

/// A volume: a whole number of ticks, written as an integer or as a decimal with no fraction.
fn parse_volume(text: &str) -> Result<u64, String> {
    if let Ok(v) = text.parse::<u64>() {
        return Ok(v);
    }
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    tick_volume(v).map_err(|e: VolumeError| format!("{text:?} {e}"))
}

/// Writes bars as the file this module reads: header `time,open,high,low,close,volume`, the open
/// time as `YYYY-MM-DDTHH:MM:SSZ`, prices in Rust's shortest round-trip form (read back to the same
/// f64), the tick volume as an integer. The bars are written as given: the caller keeps them
/// strictly increasing. Fails on a time outside the BAR line's range (1970..=9999) or a write error.
pub fn write_bars_csv(bars: &[Bar], out: &mut dyn std::io::Write) -> Result<(), WriteBarsError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["time", "open", "high", "low", "close", "volume"])?;
    for b in bars {
        let t = BarTime::from_unix(b.time).map_err(|_| WriteBarsError::Time(b.time))?;
        w.write_record([
            t.to_string(),
            b.open.to_string(),
            b.high.to_string(),
            b.low.to_string(),
            b.close.to_string(),
            b.volume.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Why bars could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteBarsError {
    #[error("bar time {0} (Unix s) is outside 1970..=9999, the BAR line's range")]
    Time(i64),
    #[error("writing bars: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing bars: {0}")]
    Io(#[from] std::io::Error),
}

fn decimals(text: &str) -> u32 {
    match text.split_once('.') {
        Some((_, frac)) if frac.bytes().all(|b| b.is_ascii_digit()) => {
            u32::try_from(frac.len()).unwrap_or(u32::MAX)
        }
        _ => 0,
    }
}

/// The column a bar's refusal is about.
fn bar_error_field(e: &BarError) -> &'static str {
    match e {
        BarError::NotFinite { field, .. } | BarError::PriceOutOfRange { field, .. } => field,
        BarError::HighTooLow { .. } => "high",
        BarError::LowTooHigh { .. } => "low",
        BarError::Time { .. } => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "time,open,high,low,close,volume\n";

    fn parse(text: &str) -> Result<Vec<Bar>, BarsFileError> {
        parse_bars_csv(text.as_bytes(), Path::new("x.csv"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn both_layouts_and_every_time_spelling_give_the_same_bars() {
        let a = "time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n2024-01-01 01:00:00,1.5,2,1,1.2,0\n";
        let b = ",Open,High,Low,Close,Volume\n2024-01-01 00:00:00+00:00,1,2,0.5,1.5,10.0\n1704070800,1.5,2,1,1.2,0\n";
        let pa = parse(a).unwrap();
        assert_eq!(pa, parse(b).unwrap());
        assert_eq!(pa.len(), 2);
        assert_eq!(format_time(pa[1].time), "2024-01-01T01:00:00Z");
        let spaced = "TIME, Open ,high,low,close,volume\n\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n\n , , , , , \n";
        assert_eq!(parse(spaced).unwrap().len(), 1, "blank lines are skipped");
        let quoted =
            "time,open,high,low,close,volume\n\"2024-01-01T00:00:00Z\",\"1\",2,0.5,1.5,10\n";
        assert_eq!(parse(quoted).unwrap().len(), 1);
        assert_eq!(parse(HEADER).unwrap(), vec![], "a header alone is no bars");
    }

    #[test]
    fn refusals_name_the_file_the_line_and_the_field() {
        for (body, needle) in [
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,10\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n",
                "x.csv:3: time 2024-01-01T00:00:00Z is not after",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,10\n2024-01-01T01:00:00Z,1,2,0.5,1.5,10\n",
                "strictly increasing",
            ),
            (
                "2024-01-01T01:00:00Z,1,1.2,0.5,1.5,10\n",
                "x.csv:2: high: high 1.2 is below",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,1.1,1.5,10\n",
                "x.csv:2: low: low 1.1 is above",
            ),
            (
                "2024-01-01T01:00:00Z,1,abc,0.5,1.5,10\n",
                "x.csv:2: high: \"abc\" is not a number",
            ),
            (
                "2024-01-01T01:00:00Z,1,NaN,0.5,1.5,10\n",
                "x.csv:2: high: high is not finite",
            ),
            (
                "2024-01-01T01:00:00Z,1,2e38,0.5,1.5,10\n",
                "x.csv:2: high: high 2e38 is beyond",
            ),
            (
                "2024-01-01T01:00:00.5Z,1,2,0.5,1.5,10\n",
                "x.csv:2: time: \"2024-01-01T01:00:00.5Z\" is not RFC 3339",
            ),
            ("yesterday,1,2,0.5,1.5,10\n", "whole seconds"),
            (
                "1969-12-31T23:00:00Z,1,2,0.5,1.5,10\n",
                "x.csv:2: time: \"1969-12-31T23:00:00Z\" is outside 1970..=9999",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5\n",
                "x.csv:2: row: 5 fields, expected 6",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,10,7\n",
                "x.csv:2: row: 7 fields",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,80.5\n",
                "x.csv:2: volume: \"80.5\" is not a whole number of ticks",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,-1\n",
                "x.csv:2: volume: \"-1\" must be a finite number >= 0",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,1e300\n",
                "not a whole number of ticks",
            ),
            (
                "2024-01-01T01:00:00Z,1,2,0.5,1.5,lots\n",
                "x.csv:2: volume: \"lots\" is not a number",
            ),
        ] {
            let e = err(&format!("{HEADER}{body}"));
            assert!(e.contains(needle), "{body:?}: {e}");
        }
        let e = parse("a,b\n1,2\n").unwrap_err();
        assert!(matches!(e, BarsFileError::Header { .. }), "{e}");
        assert!(e.to_string().starts_with("x.csv:1: unknown header"), "{e}");
        assert!(matches!(
            parse("").unwrap_err(),
            BarsFileError::Header { .. }
        ));
        let e = parse_bars_csv(
            b"time,open,high,low,close,volume\n\xff,1,1,1,1,1\n",
            Path::new("x.csv"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.csv:2: row:"), "{e}");
    }

    #[test]
    fn volumes_are_whole_ticks_and_prices_may_cross_zero() {
        let bars = parse(&format!(
            "{HEADER}0,-1,1,-2,0.5,0\n60,0.5,0.5,0.5,0.5,7.0\n120,1,1,1,1,18446744073709551615\n"
        ))
        .unwrap();
        assert_eq!(
            bars.iter().map(|b| b.volume).collect::<Vec<_>>(),
            vec![0, 7, u64::MAX]
        );
        assert_eq!(bars[0].low, -2.0);
        let e = BarsReader::new()
            .positive_prices()
            .parse(
                format!("{HEADER}0,1,1,0,1,1\n").as_bytes(),
                Path::new("y.csv"),
            )
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "y.csv:2: low: 0 is not above 0; prices must be positive here"
        );
    }

    #[test]
    fn price_decimals_are_the_most_written() {
        let f = BarsReader::new()
            .parse(
                format!("{HEADER}0,1.10000,1.101,1.09,1.1,1\n60,1.1,1.1,1.1,1.1,1\n").as_bytes(),
                Path::new("x.csv"),
            )
            .unwrap();
        assert_eq!(f.price_decimals, 5);
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read_bars_csv(Path::new("/nonexistent/EURUSD.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/EURUSD.csv: cannot read"), "{e}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::bar::MAX_PRICE;
    use proptest::prelude::*;

    proptest! {
        /// Any text yields bars or an error naming the file; never a panic.
        #[test]
        fn reading_is_total(body in "\\PC{0,200}", rows in proptest::collection::vec("[-0-9.,:TZ eE\"]{0,40}", 0..6)) {
            let text = format!("time,open,high,low,close,volume\n{}\n{body}", rows.join("\n"));
            match parse_bars_csv(text.as_bytes(), Path::new("X.csv")) {
                Ok(bars) => prop_assert!(bars.windows(2).all(|w| w[0].time < w[1].time)),
                Err(e) => prop_assert!(e.to_string().starts_with("X.csv")),
            }
        }

        /// Well-formed rows read back to the same values, in order.
        #[test]
        fn valid_rows_round_trip(rows in proptest::collection::vec((1.0f64..1000.0, 0.0f64..5.0, 0.0f64..5.0, 0u64..1_000_000), 1..30)) {
            let mut text = String::from("time,open,high,low,close,volume\n");
            let mut expect = Vec::new();
            for (i, (open, up, down, volume)) in rows.iter().enumerate() {
                let close = open + up - down;
                let high = open.max(close) + up;
                let low = open.min(close) - down;
                let time = 3600 * i as i64;
                text.push_str(&format!("{},{open},{high},{low},{close},{volume}\n", format_time(time)));
                expect.push(Bar { time, open: *open, high, low, close, volume: *volume });
            }
            prop_assert_eq!(parse_bars_csv(text.as_bytes(), Path::new("X.csv")).unwrap(), expect);
        }

        /// What the writer writes, the reader reads back value for value (any f64 price, any
        /// volume up to 2^53, any time of the range).
        #[test]
        fn written_bars_read_back(rows in proptest::collection::vec((-1e9f64..1e9, 0.0f64..1e6, 0.0f64..1e6, 0.0f64..=1.0, 0u64..=9_007_199_254_740_992, 1i64..1_000_000), 1..30)) {
            let mut time = 0;
            let bars: Vec<Bar> = rows.iter().map(|&(open, up, down, frac, volume, step)| {
                time += step;
                let (high, low) = ((open + up).min(MAX_PRICE), (open - down).max(-MAX_PRICE));
                let close = low + (high - low) * frac;
                Bar { time, open, high, low, close: close.clamp(low, high), volume }
            }).collect();
            let mut out = Vec::new();
            write_bars_csv(&bars, &mut out).unwrap();
            prop_assert_eq!(parse_bars_csv(&out, Path::new("X.csv")).unwrap(), bars);
        }
    }

    #[test]
    fn a_time_outside_the_range_is_not_written() {
        let bar = Bar {
            time: -1,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0,
        };
        let e = write_bars_csv(&[bar], &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "bar time -1 (Unix s) is outside 1970..=9999, the BAR line's range"
        );
    }
}
