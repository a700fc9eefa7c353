//! Closed bars for the preditor.
//!
//! [`BarBuilder`] (pure, injected time) turns a broker's live trendbar updates and spot ticks into
//! closed bars: a bar is closed at its period boundary plus one second, or at the first tick or
//! trendbar of the next bar, whichever comes first, and is emitted exactly once.
//! [`CsvBarSource`] replays `<SYMBOL>.csv` files so paper mode runs without cTrader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};
use protocol::{Bar, BarTime, Decimal, Symbol, Timeframe};

/// Seconds after the period boundary at which a bar with no newer tick is declared closed: the
/// seed's "second 01", so the broker has finished the bar before we read it.
pub const CLOSE_GRACE_SECS: i64 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Forming {
    open_time: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
}

/// Detects closed bars for one symbol and timeframe.
#[derive(Debug, Clone)]
pub struct BarBuilder {
    symbol: Symbol,
    timeframe: Timeframe,
    period: i64,
    digits: usize,
    current: Option<Forming>,
    last_emitted: Option<i64>,
}

impl BarBuilder {
    /// `None` for a timeframe without a fixed length (MN1).
    pub fn new(symbol: Symbol, timeframe: Timeframe, digits: usize) -> Option<Self> {
        let period = timeframe.duration_secs()? as i64;
        Some(BarBuilder {
            symbol,
            timeframe,
            period,
            digits,
            current: None,
            last_emitted: None,
        })
    }

    fn is_done(&self, open_time: i64) -> bool {
        self.last_emitted.is_some_and(|t| open_time <= t)
    }

    fn emit(&mut self) -> Option<Bar> {
        let f = self.current.take()?;
        if self.is_done(f.open_time) {
            return None;
        }
        self.last_emitted = Some(f.open_time);
        to_bar(
            &self.symbol,
            self.timeframe,
            self.digits,
            f.open_time,
            [f.open, f.high, f.low, f.close],
            f.volume,
        )
    }

    /// A live trendbar update: the broker's view of the bar opened at `open_time` (unix seconds).
    pub fn on_trendbar(&mut self, open_time: i64, ohlc: [f64; 4], volume: u64) -> Option<Bar> {
        let mut out = None;
        if let Some(cur) = self.current
            && cur.open_time < open_time
        {
            out = self.emit();
        }
        if self.is_done(open_time) {
            return out; // a late update of a bar already sent: the preditor has it, ignore
        }
        let [open, high, low, close] = ohlc;
        self.current = Some(Forming {
            open_time,
            open,
            high,
            low,
            close,
            volume,
        });
        out
    }

    /// A spot tick (bid) at unix second `time`.
    pub fn on_spot(&mut self, time: i64, bid: f64) -> Option<Bar> {
        let open_time = time - time.rem_euclid(self.period);
        let mut out = None;
        if let Some(cur) = self.current
            && time >= cur.open_time + self.period
        {
            out = self.emit();
        }
        if self.is_done(open_time) {
            return out;
        }
        match &mut self.current {
            Some(cur) if cur.open_time == open_time => {
                cur.high = cur.high.max(bid);
                cur.low = cur.low.min(bid);
                cur.close = bid;
                cur.volume += 1;
            }
            _ => {
                self.current = Some(Forming {
                    open_time,
                    open: bid,
                    high: bid,
                    low: bid,
                    close: bid,
                    volume: 1,
                });
            }
        }
        out
    }

    /// The clock ticked: close the forming bar once its period plus the grace second has passed.
    pub fn on_clock(&mut self, now: i64) -> Option<Bar> {
        let cur = self.current?;
        if now >= cur.open_time + self.period + CLOSE_GRACE_SECS {
            return self.emit();
        }
        None
    }
}

fn to_bar(
    symbol: &Symbol,
    timeframe: Timeframe,
    digits: usize,
    open_time: i64,
    ohlc: [f64; 4],
    volume: u64,
) -> Option<Bar> {
    let d = |v: f64| Decimal::from_f64(v, digits).ok();
    let [o, h, l, c] = ohlc;
    Some(Bar {
        symbol: symbol.clone(),
        timeframe,
        time: BarTime::from_unix(open_time).ok()?,
        open: d(o)?,
        high: d(h.max(o).max(c))?,
        low: d(l.min(o).min(c))?,
        close: d(c)?,
        volume,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}: bad {field}: {why} (fix: rows are time,open,high,low,close,volume with time as unix seconds or RFC 3339 UTC)"
    )]
    Row {
        path: PathBuf,
        line: usize,
        field: &'static str,
        why: String,
    },
    #[error(
        "{path}: bars must be in increasing time order (line {line}); fix: sort the file by time"
    )]
    Order { path: PathBuf, line: usize },
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// Loads one `<SYMBOL>.csv` (header `time,open,high,low,close,volume`).
pub fn load_csv(
    path: &Path,
    symbol: &Symbol,
    timeframe: Timeframe,
    digits: usize,
) -> Result<Vec<Bar>, BarsError> {
    let text = std::fs::read_to_string(path).map_err(|source| BarsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out: Vec<Bar> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || (i == 0 && raw.starts_with("time")) {
            continue;
        }
        let row = |field, why: String| BarsError::Row {
            path: path.to_path_buf(),
            line,
            field,
            why,
        };
        let cols: Vec<&str> = raw.split(',').map(str::trim).collect();
        if cols.len() < 6 {
            return Err(row("row", format!("{} columns, expected 6", cols.len())));
        }
        let t = parse_time(cols[0]).ok_or_else(|| row("time", format!("{:?}", cols[0])))?;
        let mut ohlc = [0.0; 4];
        for (k, name) in ["open", "high", "low", "close"].into_iter().enumerate() {
            let v: f64 = cols[k + 1]
                .parse()
                .map_err(|_| row(name, format!("{:?}", cols[k + 1])))?;
            if !v.is_finite() || v <= 0.0 {
                return Err(row(name, format!("{v} is not a positive price")));
            }
            ohlc[k] = v;
        }
        let volume = cols[5]
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| row("volume", format!("{:?}", cols[5])))? as u64;
        if out.last().is_some_and(|b| b.time.unix_seconds() >= t) {
            return Err(BarsError::Order {
                path: path.to_path_buf(),
                line,
            });
        }
        let bar = to_bar(symbol, timeframe, digits, t, ohlc, volume)
            .ok_or_else(|| row("time", format!("{t} is out of range")))?;
        out.push(bar);
    }
    Ok(out)
}

/// Replays CSV bars: every step publishes the next timestamp's bars of all symbols together.
#[derive(Debug, Clone)]
pub struct CsvBarSource {
    series: BTreeMap<Symbol, Vec<Bar>>,
    /// Index of the next bar to publish, per symbol.
    next: BTreeMap<Symbol, usize>,
}

impl CsvBarSource {
    /// Loads `<dir>/<SYMBOL>.csv` for each symbol that has one; bars before `start_bar` are history.
    pub fn load(
        dir: &Path,
        symbols: &[(Symbol, Timeframe, usize)],
        start_bar: usize,
    ) -> Result<Self, BarsError> {
        let mut series = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (sym, tf, digits) in symbols {
            let path = dir.join(format!("{}.csv", sym.as_str()));
            if !path.is_file() {
                continue;
            }
            let bars = load_csv(&path, sym, *tf, *digits)?;
            next.insert(sym.clone(), start_bar.min(bars.len()));
            series.insert(sym.clone(), bars);
        }
        Ok(CsvBarSource { series, next })
    }

    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.series.keys()
    }

    /// The next step's bars (all symbols sharing the earliest pending open time); empty at the end.
    pub fn step(&mut self) -> Vec<Bar> {
        let earliest = self
            .series
            .iter()
            .filter_map(|(s, bars)| bars.get(*self.next.get(s)?).map(|b| b.time))
            .min();
        let Some(t) = earliest else { return Vec::new() };
        let mut out = Vec::new();
        for (s, bars) in &self.series {
            let Some(i) = self.next.get_mut(s) else {
                continue;
            };
            if let Some(b) = bars.get(*i)
                && b.time == t
            {
                out.push(b.clone());
                *i += 1;
            }
        }
        out
    }

    /// The last `count` published (closed) bars of a symbol, oldest first.
    pub fn history(&self, symbol: &Symbol, timeframe: Timeframe, count: usize) -> Option<Vec<Bar>> {
        let bars = self.series.get(symbol)?;
        if bars.first().is_some_and(|b| b.timeframe != timeframe) {
            return None;
        }
        let end = *self.next.get(symbol)?;
        Some(bars[end.saturating_sub(count)..end].to_vec())
    }

    pub fn is_finished(&self) -> bool {
        self.series
            .iter()
            .all(|(s, bars)| self.next.get(s).is_none_or(|i| *i >= bars.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> BarBuilder {
        BarBuilder::new("EURUSD".parse().unwrap(), Timeframe::M15, 5).unwrap()
    }

    const T0: i64 = 1_770_113_700; // 2026-02-03T10:15:00Z, a 15-minute boundary

    #[test]
    fn clock_closes_bar_one_second_after_the_boundary() {
        let mut b = builder();
        assert_eq!(b.on_trendbar(T0, [1.1, 1.2, 1.0, 1.15], 10), None);
        assert_eq!(b.on_clock(T0 + 900), None, "not before boundary + 1 s");
        let bar = b.on_clock(T0 + 901).unwrap();
        assert_eq!(bar.time.unix_seconds(), T0);
        assert_eq!(bar.close.as_str(), "1.15000");
        assert_eq!(b.on_clock(T0 + 902), None, "emitted once");
    }

    #[test]
    fn first_tick_of_next_bar_closes_it_before_the_timer() {
        let mut b = builder();
        b.on_spot(T0 + 5, 1.1);
        b.on_spot(T0 + 100, 1.3);
        b.on_spot(T0 + 800, 1.05);
        let bar = b.on_spot(T0 + 900, 1.2).unwrap();
        assert_eq!(
            (
                bar.open.as_str(),
                bar.high.as_str(),
                bar.low.as_str(),
                bar.close.as_str()
            ),
            ("1.10000", "1.30000", "1.05000", "1.05000")
        );
        assert_eq!(bar.volume, 3);
        // the timer must not re-send it; the new bar closes later
        assert_eq!(b.on_clock(T0 + 901), None);
        assert_eq!(b.on_clock(T0 + 1801).unwrap().time.unix_seconds(), T0 + 900);
    }

    #[test]
    fn late_trendbar_update_of_an_emitted_bar_is_ignored() {
        let mut b = builder();
        b.on_trendbar(T0, [1.1, 1.2, 1.0, 1.15], 10);
        assert!(b.on_clock(T0 + 901).is_some());
        assert_eq!(b.on_trendbar(T0, [1.1, 1.25, 1.0, 1.16], 11), None);
        assert_eq!(b.on_clock(T0 + 2000), None);
        // next bar via trendbar roll-over
        b.on_trendbar(T0 + 900, [1.16, 1.17, 1.15, 1.16], 2);
        let bar = b
            .on_trendbar(T0 + 1800, [1.16, 1.16, 1.16, 1.16], 1)
            .unwrap();
        assert_eq!(bar.time.unix_seconds(), T0 + 900);
    }

    #[test]
    fn csv_loader_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("EURUSD.csv");
        std::fs::write(&p, "time,open,high,low,close,volume\n2026-02-03T10:00:00Z,1.1,1.2,1.0,1.15,5\n2026-02-03T11:00:00Z,1.1,x,1.0,1.15,5\n").unwrap();
        let e = load_csv(&p, &"EURUSD".parse().unwrap(), Timeframe::H1, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("EURUSD.csv:3") && e.contains("bad high"), "{e}");
    }

    #[test]
    fn csv_source_replays_in_time_order_and_serves_only_the_past() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = String::from("time,open,high,low,close,volume\n");
        for i in 0..5 {
            a.push_str(&format!("{},1.1,1.2,1.0,1.{i},1\n", T0 + i * 3600));
        }
        std::fs::write(dir.path().join("EURUSD.csv"), &a).unwrap();
        std::fs::write(
            dir.path().join("US500.csv"),
            format!(
                "time,open,high,low,close,volume\n{},5000,5001,4999,5000,1\n",
                T0 + 3 * 3600
            ),
        )
        .unwrap();
        let syms = vec![
            ("EURUSD".parse().unwrap(), Timeframe::H1, 5),
            ("US500".parse().unwrap(), Timeframe::H1, 2),
        ];
        let mut src = CsvBarSource::load(dir.path(), &syms, 2).unwrap();
        let eur: Symbol = "EURUSD".parse().unwrap();
        assert_eq!(src.history(&eur, Timeframe::H1, 10).unwrap().len(), 2);
        let s1 = src.step();
        assert_eq!(s1.len(), 1);
        assert_eq!(s1[0].time.unix_seconds(), T0 + 2 * 3600);
        let s2 = src.step();
        assert_eq!(
            s2.len(),
            1,
            "US500's only bar is history (start_bar 2 > its length)"
        );
        assert_eq!(
            src.history(&eur, Timeframe::H1, 2)
                .unwrap()
                .last()
                .unwrap()
                .time
                .unix_seconds(),
            T0 + 3 * 3600
        );
        src.step();
        assert!(src.is_finished());
        assert!(src.step().is_empty());
    }
}
