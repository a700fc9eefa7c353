//! Bar files (`<SYMBOL>.csv`, read by the workspace's one reader, `protocol::bars_file`) and the
//! shared timeline the replay walks.
//!
//! Symbols may trade different hours (stocks vs forex), so the replay clock walks the *union* of all
//! bar open times; a symbol without a bar at the current time is closed for trading. When every file
//! has the same timestamps (the demo data) this is simply "bar i of every symbol together".
//!
//! One rule beyond the reader's defaults: prices must be above zero, since the simulator's spots
//! carry them as `optional uint64 bid` / `ask` (`ProtoOASpotEvent`, spotware/openapi-proto-messages
//! `OpenApiMessages.proto`), which has no zero or negative price to offer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use protocol::Bar;
use protocol::bars_file::BarsReader;

use super::SimError;

/// All bars of one symbol, oldest first, strictly increasing open times.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSeries {
    pub symbol: String,
    pub bars: Vec<Bar>,
    /// Most decimals seen in any price of the file (a hint for the symbol's digits).
    pub max_decimals: u32,
}

/// A bar's open time in Unix milliseconds, the wire's unit for timestamps.
pub fn open_ms(bar: &Bar) -> i64 {
    bar.time * 1000
}

/// Parses one bars file's text. `file` only names the source in errors.
pub fn parse_bars(symbol: &str, file: &Path, text: &str) -> Result<BarSeries, SimError> {
    let read = BarsReader::new()
        .positive_prices()
        .parse(text.as_bytes(), file)?;
    if read.bars.is_empty() {
        return Err(SimError::NoBars(file.to_path_buf()));
    }
    Ok(BarSeries {
        symbol: symbol.to_string(),
        bars: read.bars,
        max_decimals: read.price_decimals,
    })
}

/// Loads every `<SYMBOL>.csv` in `dir`, sorted by symbol name.
pub fn load_dir(dir: &Path) -> Result<Vec<BarSeries>, SimError> {
    let io = |path: &Path, e: std::io::Error| SimError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            files.push((stem.to_ascii_uppercase(), path));
        }
    }
    if files.is_empty() {
        return Err(SimError::NoBarFiles(dir.to_path_buf()));
    }
    files.sort();
    files
        .into_iter()
        .map(|(symbol, path)| {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            parse_bars(&symbol, &path, &text)
        })
        .collect()
}

/// The union of all bar open times, and for each symbol which of its bars sits at each point.
#[derive(Debug, Clone)]
pub struct Timeline {
    times: Vec<i64>,
    /// `slots[s][t]` = index into symbol `s`'s bars of the bar opening at `times[t]`.
    slots: Vec<Vec<Option<usize>>>,
    period_ms: i64,
}

impl Timeline {
    /// Builds the timeline; the bar period is the smallest gap between consecutive bars of any symbol.
    pub fn new(series: &[BarSeries]) -> Result<Self, SimError> {
        let set: BTreeSet<i64> = series
            .iter()
            .flat_map(|s| s.bars.iter().map(open_ms))
            .collect();
        let times: Vec<i64> = set.into_iter().collect();
        let period_ms = series
            .iter()
            .flat_map(|s| s.bars.windows(2).map(|w| open_ms(&w[1]) - open_ms(&w[0])))
            .min()
            .ok_or(SimError::TooFewBars)?;
        let slots = series
            .iter()
            .map(|s| {
                let mut slot = vec![None; times.len()];
                for (i, bar) in s.bars.iter().enumerate() {
                    if let Ok(t) = times.binary_search(&open_ms(bar)) {
                        slot[t] = Some(i);
                    }
                }
                slot
            })
            .collect();
        Ok(Self {
            times,
            slots,
            period_ms,
        })
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The bar period inferred from the data, in milliseconds.
    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }

    pub fn time_at(&self, point: usize) -> Option<i64> {
        self.times.get(point).copied()
    }

    /// Index of symbol `symbol`'s bar opening at timeline point `point`, if it has one.
    pub fn bar_index(&self, symbol: usize, point: usize) -> Option<usize> {
        self.slots.get(symbol)?.get(point).copied().flatten()
    }

    /// Number of timeline points strictly before `time_ms` (the first point at or after it).
    pub fn points_before(&self, time_ms: i64) -> usize {
        self.times.partition_point(|&t| t < time_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "time,open,high,low,close,volume\n\
        2026-01-05T00:00:00Z,1.10000,1.10100,1.09900,1.10050,120\n\
        2026-01-05 01:00:00,1.10050,1.10200,1.10000,1.10150,80.0\n\
        1767578400,1.10150,1.10160,1.10010,1.10020,90\n";

    #[test]
    fn parses_all_time_formats_and_tracks_decimals() {
        let s = parse_bars("EURUSD", Path::new("EURUSD.csv"), GOOD).unwrap();
        assert_eq!(s.bars.len(), 3);
        assert_eq!(open_ms(&s.bars[1]) - open_ms(&s.bars[0]), 3_600_000);
        assert_eq!(open_ms(&s.bars[2]) - open_ms(&s.bars[1]), 3_600_000);
        assert_eq!(s.max_decimals, 5);
        assert_eq!(s.bars[1].volume, 80);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "time,open,high,low,close,volume\n2026-01-05T00:00:00Z,1.1,1.0,1.09,1.1,1\n";
        let err = parse_bars("X", Path::new("X.csv"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("X.csv:2: high:"), "{err}");
        let err = parse_bars("X", Path::new("X.csv"), "t,o\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("header"), "{err}");
        let text = "time,open,high,low,close,volume\nyesterday,1,1,1,1,1\n";
        let err = parse_bars("X", Path::new("X.csv"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("X.csv:2: time:"), "{err}");
        let text = "time,open,high,low,close,volume\n100,1,1,1,1,1\n100,1,1,1,1,1\n";
        let err = parse_bars("X", Path::new("X.csv"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("strictly increasing"), "{err}");
        // The simulator's own rule: no price at or below zero (its spots are unsigned).
        let text = "time,open,high,low,close,volume\n100,1,1,0,1,1\n";
        let err = parse_bars("X", Path::new("X.csv"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("X.csv:2: low: 0 is not above 0"), "{err}");
        // A fractional volume is no tick count: refused, not rounded.
        let text = "time,open,high,low,close,volume\n100,1,1,1,1,80.5\n";
        let err = parse_bars("X", Path::new("X.csv"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("X.csv:2: volume:"), "{err}");
        let err = parse_bars("X", Path::new("X.csv"), "time,open,high,low,close,volume\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("X.csv") && err.contains("no bars"), "{err}");
    }

    #[test]
    fn timeline_is_the_union_of_open_times() {
        let a = parse_bars(
            "A",
            Path::new("A.csv"),
            "time,open,high,low,close,volume\n0,1,1,1,1,1\n3600,1,1,1,1,1\n7200,1,1,1,1,1\n",
        )
        .unwrap();
        let b = parse_bars(
            "B",
            Path::new("B.csv"),
            "time,open,high,low,close,volume\n3600,2,2,2,2,1\n10800,2,2,2,2,1\n",
        )
        .unwrap();
        let tl = Timeline::new(&[a, b]).unwrap();
        assert_eq!(tl.len(), 4);
        assert_eq!(tl.period_ms(), 3_600_000);
        assert_eq!(tl.bar_index(0, 0), Some(0));
        assert_eq!(tl.bar_index(1, 0), None);
        assert_eq!(tl.bar_index(1, 1), Some(0));
        assert_eq!(tl.bar_index(1, 3), Some(1));
        assert_eq!(tl.bar_index(0, 3), None);
        assert_eq!(tl.points_before(3_600_000), 1);
        assert_eq!(tl.points_before(3_600_001), 2);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text yields bars or a typed error naming the file; never a panic.
        #[test]
        fn parsing_is_total(body in "\\PC{0,200}", rows in proptest::collection::vec("[-0-9.,:TZ eE]{0,40}", 0..6)) {
            let text = format!("time,open,high,low,close,volume\n{}\n{body}", rows.join("\n"));
            match parse_bars("X", Path::new("X.csv"), &text) {
                Ok(s) => prop_assert!(!s.bars.is_empty()),
                Err(e) => prop_assert!(e.to_string().contains("X.csv")),
            }
        }

        /// Well-formed rows always parse back to the same values, in order.
        #[test]
        fn valid_rows_round_trip(bars in proptest::collection::vec((1.0f64..1000.0, 0.0f64..5.0, 0.0f64..5.0, 0u32..1000), 1..30)) {
            let mut text = String::from("time,open,high,low,close,volume\n");
            for (i, (open, up, down, vol)) in bars.iter().enumerate() {
                let close = open + up - down;
                let close = if close <= 0.5 { *open } else { close };
                let high = open.max(close) + up;
                let low = (open.min(close) - down).max(0.1);
                text.push_str(&format!("{},{open},{high},{low},{close},{vol}\n", 3600 * i));
            }
            let s = parse_bars("X", Path::new("X.csv"), &text).unwrap();
            prop_assert_eq!(s.bars.len(), bars.len());
            prop_assert!(s.bars.windows(2).all(|w| open_ms(&w[1]) - open_ms(&w[0]) == 3_600_000));
        }
    }
}
