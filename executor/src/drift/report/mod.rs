//! `executor drift-report`: reads a `drift.csv` and says, per symbol and in total, how closely each
//! book (live, paper) followed the model, why a signal was not followed, and what it cost.
//!
//! Pure: the CSV text goes in, figures come out; [`text`] and [`html`] only format them.
//!
//! Two definitions the whole report rests on (also printed with it):
//! - **in sync**: after the executor handled the signal, the book held exactly the position the
//!   model's action maps to (same direction and lots, `FLAT` for `WAIT`).
//! - **warm-up**: a symbol's first signals, as long as each was answered one timeframe or more
//!   after its bar closed (after the next bar had closed too): a twin catching up on the bars that
//!   closed while it started. The rules make them `STALE`.
//! - **start-up** (per book): then, the book's `MISSED_ENTRY` answers until its first signal in
//!   sync: the twin holds a position from history, and the book joins at the model's next entry.
//!   Everything after is **steady state**, late signals included (an outage counts).

pub mod attribution;
pub mod costs;
pub mod html;
mod svg;
pub mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::drift::HEADER;
use attribution::{Attribution, BookKind, BookValue, TwinCosts, attribute_all};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a drift log (first line must be the header written by the executor)")]
    Header { path: PathBuf },
    #[error("{path}:{line}: {why}")]
    Row {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error(
        "{path}: {why} (the file must be the executor's JSON config, e.g. executor_config.json)"
    )]
    Config { path: PathBuf, why: String },
}

/// What one book did with one signal, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct BookRecord {
    /// `LONG 0.01`, `SHORT 0.5`, `FLAT`, or several positions joined with `+`.
    pub position: String,
    /// Net signed lots of `position` (long positive).
    pub lots: f64,
    pub fill: Option<f64>,
    /// Adverse slippage of the fill in price units (positive = worse than the quote).
    pub slippage: Option<f64>,
    /// `OK`, `FAIL` or `WAIT_SYNC`.
    pub outcome: String,
    pub reason: String,
    /// The book's cumulative realised PnL on the symbol, account currency.
    pub pnl: f64,
    /// The position equals the model's target.
    pub in_sync: bool,
    /// One of this book's start-up signals on the symbol (see [`classify_startup`]).
    pub startup: bool,
}

impl BookRecord {
    /// Why the book is not where the model is, in the ACK's own words (`MISSED_ENTRY`, `MARGIN`…);
    /// `None` when in sync.
    pub fn not_followed(&self) -> Option<String> {
        if self.in_sync {
            return None;
        }
        Some(match (self.outcome.as_str(), self.reason.as_str()) {
            (_, "") => "OK_BUT_DIFFERENT".to_string(),
            (_, r) => r.to_string(),
        })
    }
}

/// One `drift.csv` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When the executor judged the signal, on its clock (the feed's market time in a replay).
    pub time: DateTime<Utc>,
    pub symbol: String,
    /// The signal's bar (open time, Unix seconds); `None` for a signal without `B:`.
    pub bar: Option<i64>,
    pub virtual_action: String,
    /// The twin's cumulative realised PnL, account currency.
    pub virtual_pnl: f64,
    /// The position the action maps to, as text, and as net signed lots.
    pub target: String,
    pub target_lots: f64,
    pub live: Option<BookRecord>,
    pub paper: Option<BookRecord>,
    /// One of the symbol's leading signals answered a timeframe or more late (see the module doc).
    pub warmup: bool,
}

/// Net signed lots of a position text (`LONG 0.01+SHORT 0.03` = -0.02).
pub fn signed_lots(position: &str) -> Result<f64, String> {
    if position.is_empty() || position == "FLAT" {
        return Ok(0.0);
    }
    let mut net = 0.0;
    for part in position.split('+') {
        let (side, lots) = part
            .split_once(' ')
            .ok_or_else(|| format!("bad position {position:?}"))?;
        let lots: f64 = lots
            .parse()
            .ok()
            .filter(|l: &f64| l.is_finite() && *l >= 0.0)
            .ok_or_else(|| format!("bad lots in position {position:?}"))?;
        net += match side {
            "LONG" => lots,
            "SHORT" => -lots,
            _ => return Err(format!("bad side in position {position:?}")),
        };
    }
    Ok(net)
}

fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("bad {what} {s:?} (want an RFC 3339 UTC time)"))
}

fn opt_f64(s: &str, what: &str) -> Result<Option<f64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .map(Some)
        .ok_or_else(|| format!("bad {what} {s:?}"))
}

fn book(c: &[&str], target: &str) -> Result<Option<BookRecord>, String> {
    // c = position, fill, slippage, outcome, reason, pnl
    if c[3].is_empty() {
        return Ok(None); // this book did not run
    }
    Ok(Some(BookRecord {
        position: c[0].to_string(),
        lots: signed_lots(c[0])?,
        fill: opt_f64(c[1], "fill")?,
        slippage: opt_f64(c[2], "slippage")?,
        outcome: c[3].to_string(),
        reason: c[4].to_string(),
        pnl: opt_f64(c[5], "pnl")?.ok_or_else(|| "empty pnl".to_string())?,
        in_sync: c[0] == target,
        startup: false,
    }))
}

/// Parses the CSV text of a drift log (header included) and classifies warm-up rows.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Record>, ReportError> {
    let mut lines = text.lines();
    if lines.next().map(|h| h.trim_end_matches('\r')) != Some(HEADER) {
        return Err(ReportError::Header {
            path: path.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let err = |why: String| ReportError::Row {
            path: path.to_path_buf(),
            line: i + 2,
            why,
        };
        let c: Vec<&str> = line.split(',').collect();
        if c.len() != 18 {
            return Err(err(format!("{} columns, expected 18", c.len())));
        }
        if c[1].is_empty() {
            return Err(err("empty symbol".into()));
        }
        let row = (|| -> Result<Record, String> {
            Ok(Record {
                time: parse_time(c[0], "time")?,
                symbol: c[1].to_string(),
                bar: match c[2] {
                    "" => None,
                    b => Some(parse_time(b, "bar")?.timestamp()),
                },
                virtual_action: c[3].to_string(),
                virtual_pnl: opt_f64(c[4], "virtual_pnl")?
                    .ok_or_else(|| "empty virtual_pnl".to_string())?,
                target: c[5].to_string(),
                target_lots: signed_lots(c[5])?,
                live: book(&c[6..12], c[5])?,
                paper: book(&c[12..18], c[5])?,
                warmup: false,
            })
        })()
        .map_err(err)?;
        out.push(row);
    }
    classify_warmup(&mut out);
    classify_startup(&mut out);
    Ok(out)
}

/// A book's **start-up** on a symbol: its first signals after the warm-up answered
/// `MISSED_ENTRY`, up to the first one it is in sync with. The twin's position comes from history,
/// the book starts flat, and the executor never enters late at a price the model did not get: it
/// joins at the model's next entry. Any other answer ends the start-up (and counts as steady
/// state).
fn classify_startup(rows: &mut [Record]) {
    let mut joined: std::collections::BTreeSet<(String, bool)> = Default::default();
    for r in rows.iter_mut() {
        if r.warmup {
            continue;
        }
        for (is_live, b) in [(true, r.live.as_mut()), (false, r.paper.as_mut())] {
            let Some(b) = b else { continue };
            let key = (r.symbol.clone(), is_live);
            if joined.contains(&key) {
                continue;
            }
            if !b.in_sync && b.reason == "MISSED_ENTRY" {
                b.startup = true;
            } else {
                joined.insert(key);
            }
        }
    }
}

/// The cTrader timeframes that have a fixed length, in seconds (MN1 has none).
const TIMEFRAMES: [i64; 13] = [
    60, 120, 180, 240, 300, 600, 900, 1800, 3600, 14_400, 43_200, 86_400, 604_800,
];

/// A symbol's bar length: the smallest gap between two of its bars; with a single bar, the longest
/// timeframe that fits in the fastest answer (an answer comes after its bar's close).
fn timeframe_secs(rows: &[&Record]) -> Option<i64> {
    let mut bars: Vec<i64> = rows.iter().filter_map(|r| r.bar).collect();
    bars.sort_unstable();
    bars.dedup();
    let gap = bars
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g > 0)
        .min();
    gap.or_else(|| {
        let fastest = rows
            .iter()
            .filter_map(|r| Some(r.time.timestamp() - r.bar?))
            .min()?;
        TIMEFRAMES.iter().copied().rfind(|tf| *tf <= fastest)
    })
}

fn classify_warmup(rows: &mut [Record]) {
    let mut by_symbol: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for sym in rows.iter().map(|r| r.symbol.clone()) {
        by_symbol.entry(sym).or_insert(None);
    }
    for (sym, tf) in by_symbol.iter_mut() {
        let mine: Vec<&Record> = rows.iter().filter(|r| &r.symbol == sym).collect();
        *tf = timeframe_secs(&mine);
    }
    // Only a symbol's leading late signals are warm-up: once one was answered in time the twin is
    // live, and a later late signal (an outage, a stalled pipeline) counts against the book.
    let mut live: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for r in rows.iter_mut() {
        if live.contains(&r.symbol) {
            continue;
        }
        let late = match (r.bar, by_symbol.get(&r.symbol)) {
            // Closed at bar + tf; a whole timeframe later the next bar had closed as well.
            (Some(bar), Some(Some(tf))) => r.time.timestamp() >= bar + 2 * tf,
            _ => false,
        };
        if late {
            r.warmup = true;
        } else {
            live.insert(r.symbol.clone());
        }
    }
}

/// Counts for one phase (warm-up or steady state) of one book.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseSummary {
    pub signals: usize,
    pub in_sync: usize,
    /// Out-of-sync signals by why (the ACK's reason: `MISSED_ENTRY`, `MARGIN`, `STALE`…).
    pub not_followed: BTreeMap<String, usize>,
}

impl PhaseSummary {
    fn add(&mut self, b: &BookRecord) {
        self.signals += 1;
        match b.not_followed() {
            None => self.in_sync += 1,
            Some(why) => *self.not_followed.entry(why).or_insert(0) += 1,
        }
    }
    pub fn in_sync_pct(&self) -> Option<f64> {
        (self.signals > 0).then(|| 100.0 * self.in_sync as f64 / self.signals as f64)
    }
}

/// Per-book figures for one symbol (or all of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookSummary {
    /// Over the whole log (both phases).
    pub signals: usize,
    pub in_sync: usize,
    pub missed_entries: usize,
    /// FAIL answers by reason, whole log.
    pub refusals: BTreeMap<String, usize>,
    pub warmup: PhaseSummary,
    /// The book's start-up missed entries (waiting for the model's next entry).
    pub startup: PhaseSummary,
    /// Symbols with a start-up.
    pub startup_symbols: usize,
    pub steady: PhaseSummary,
    slippage_sum: f64,
    slippage_n: usize,
    /// Fills (signals with a fill price), summed across symbols too.
    fills: usize,
    pnl: f64,
}

impl BookSummary {
    fn add(&mut self, b: &BookRecord, warmup: bool, pnl_change: f64) {
        self.signals += 1;
        if b.in_sync {
            self.in_sync += 1;
        }
        match (b.outcome.as_str(), b.reason.as_str()) {
            (_, "MISSED_ENTRY") => self.missed_entries += 1,
            ("FAIL", r) => *self.refusals.entry(r.to_string()).or_insert(0) += 1,
            _ => {}
        }
        if let Some(s) = b.slippage {
            self.slippage_sum += s;
            self.slippage_n += 1;
        }
        if b.fill.is_some() {
            self.fills += 1;
        }
        self.pnl += pnl_change;
        if warmup {
            self.warmup.add(b);
        } else if b.startup {
            if self.startup.signals == 0 {
                self.startup_symbols = 1;
            }
            self.startup.add(b);
        } else {
            self.steady.add(b);
        }
    }

    /// Average adverse slippage per fill, in price units.
    pub fn avg_slippage(&self) -> Option<f64> {
        (self.slippage_n > 0).then(|| self.slippage_sum / self.slippage_n as f64)
    }
    pub fn fills(&self) -> usize {
        self.fills
    }
    /// Realised PnL over the logged window, account currency.
    pub fn pnl(&self) -> f64 {
        self.pnl
    }
    fn merge(&mut self, o: &BookSummary) {
        self.signals += o.signals;
        self.in_sync += o.in_sync;
        self.missed_entries += o.missed_entries;
        for (k, v) in &o.refusals {
            *self.refusals.entry(k.clone()).or_insert(0) += v;
        }
        self.startup_symbols += o.startup_symbols;
        for (mine, theirs) in [
            (&mut self.warmup, &o.warmup),
            (&mut self.startup, &o.startup),
            (&mut self.steady, &o.steady),
        ] {
            mine.signals += theirs.signals;
            mine.in_sync += theirs.in_sync;
            for (k, v) in &theirs.not_followed {
                *mine.not_followed.entry(k.clone()).or_insert(0) += v;
            }
        }
        self.pnl += o.pnl;
        self.fills += o.fills;
        // Slippage is per symbol (price units differ); a total has none.
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SymbolSummary {
    pub signals: usize,
    pub warmup_signals: usize,
    /// Distinct bars with a signal.
    pub bars: usize,
    /// Decimal places of the symbol's prices: a point is 10^-digits.
    pub digits: Option<u32>,
    virtual_pnl: f64,
    pub live: BookSummary,
    pub paper: BookSummary,
}

impl SymbolSummary {
    /// The twin's realised PnL over the logged window, account currency.
    pub fn virtual_pnl(&self) -> f64 {
        self.virtual_pnl
    }
    /// Average slippage of a book in points (10^-digits of the price), when the digits are known.
    pub fn slippage_points(&self, book: &BookSummary) -> Option<f64> {
        Some(book.avg_slippage()? * 10f64.powi(i32::try_from(self.digits?).ok()?))
    }
}

/// Where the symbols' digits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitsSource {
    Config,
    /// The most decimals seen in the symbol's fill prices.
    FillPrices,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    pub path: PathBuf,
    pub symbols: BTreeMap<String, SymbolSummary>,
    pub total: SymbolSummary,
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    pub records: Vec<Record>,
    pub digits_source: DigitsSource,
    /// The twins' cost models (the models' training_config), for the PnL attribution.
    pub twin_costs: BTreeMap<String, TwinCosts>,
    /// Where they came from (`None`: no config given, so no models read).
    pub costs_source: Option<PathBuf>,
    /// How each book values a price unit per lot (the config's contract_size, quote_to_account).
    pub book_values: BTreeMap<String, BookValue>,
}

/// Decimal places of a number as the log prints it (at most 8).
fn decimals(v: f64) -> u32 {
    let s = format!("{v:.8}");
    let frac = s
        .split_once('.')
        .map_or("", |(_, f)| f)
        .trim_end_matches('0');
    frac.len() as u32
}

impl DriftReport {
    pub fn from_file(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_records(path, parse(path, &text)?, None))
    }

    /// Builds the summaries; `digits` (per symbol, from the config) turns slippage into points.
    pub fn from_records(
        path: &Path,
        records: Vec<Record>,
        digits: Option<&BTreeMap<String, u32>>,
    ) -> Self {
        let mut symbols: BTreeMap<String, SymbolSummary> = BTreeMap::new();
        let mut last: BTreeMap<&str, (f64, Option<f64>, Option<f64>)> = BTreeMap::new();
        let mut bars: BTreeMap<&str, std::collections::BTreeSet<i64>> = BTreeMap::new();
        let mut seen_decimals: BTreeMap<&str, u32> = BTreeMap::new();
        for r in &records {
            let s = symbols.entry(r.symbol.clone()).or_default();
            s.signals += 1;
            if r.warmup {
                s.warmup_signals += 1;
            }
            if let Some(b) = r.bar {
                bars.entry(&r.symbol).or_default().insert(b);
            }
            // PnL over the window: the change from the first row on (a book's first row counts
            // from its own value, so a log that starts mid-way does not claim the earlier PnL).
            let prev = last.entry(&r.symbol).or_insert((r.virtual_pnl, None, None));
            s.virtual_pnl += r.virtual_pnl - prev.0;
            prev.0 = r.virtual_pnl;
            for (b, summary, prev_pnl) in [
                (&r.live, &mut s.live, &mut prev.1),
                (&r.paper, &mut s.paper, &mut prev.2),
            ] {
                if let Some(b) = b {
                    let change = b.pnl - prev_pnl.unwrap_or(b.pnl);
                    *prev_pnl = Some(b.pnl);
                    summary.add(b, r.warmup, change);
                    if let Some(f) = b.fill {
                        let d = seen_decimals.entry(&r.symbol).or_insert(0);
                        *d = (*d).max(decimals(f));
                    }
                }
            }
        }
        let mut total = SymbolSummary::default();
        for (sym, s) in symbols.iter_mut() {
            s.bars = bars.get(sym.as_str()).map_or(0, |b| b.len());
            s.digits = match digits {
                Some(d) => d.get(sym).copied(),
                None => seen_decimals.get(sym.as_str()).copied(),
            };
            total.signals += s.signals;
            total.warmup_signals += s.warmup_signals;
            total.virtual_pnl += s.virtual_pnl;
            total.live.merge(&s.live);
            total.paper.merge(&s.paper);
        }
        let all_bars: std::collections::BTreeSet<i64> = bars.values().flatten().copied().collect();
        total.bars = all_bars.len();
        DriftReport {
            path: path.to_path_buf(),
            symbols,
            total,
            first_bar: all_bars.first().copied(),
            last_bar: all_bars.last().copied(),
            records,
            digits_source: if digits.is_some() {
                DigitsSource::Config
            } else {
                DigitsSource::FillPrices
            },
            twin_costs: BTreeMap::new(),
            costs_source: None,
            book_values: BTreeMap::new(),
        }
    }

    /// Each book's PnL against the model's, per symbol and in total.
    pub fn attribution(&self, book: BookKind) -> (BTreeMap<String, Attribution>, Attribution) {
        attribute_all(&self.records, book, &self.twin_costs, &self.book_values)
    }

    /// Reads the log and takes each symbol's `digits` from the executor config at `config`.
    pub fn from_file_with_config(path: &Path, config: &Path) -> Result<Self, ReportError> {
        let digits = config_digits(config)?;
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut report = Self::from_records(path, parse(path, &text)?, Some(&digits));
        report.book_values = config_book_values(config)?;
        if let Some(dir) = config_models_dir(config)? {
            report.twin_costs = costs::load_twin_costs(&dir).0;
            report.costs_source = Some(dir);
        }
        Ok(report)
    }

    /// True when a book ran at all in this log.
    pub fn has_live(&self) -> bool {
        self.total.live.signals > 0
    }
    pub fn has_paper(&self) -> bool {
        self.total.paper.signals > 0
    }
}

/// `symbols.<SYMBOL>.digits` of an executor config. Only that is read: the report must work where
/// the rest of the config (secret files, directories) is not accessible.
pub fn config_digits(path: &Path) -> Result<BTreeMap<String, u32>, ReportError> {
    let err = |why: String| ReportError::Config {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
    let symbols = v
        .get("symbols")
        .and_then(|s| s.as_object())
        .ok_or_else(|| err("no \"symbols\" object".into()))?;
    let mut out = BTreeMap::new();
    for (sym, s) in symbols {
        if let Some(d) = s.get("digits") {
            let d = d
                .as_u64()
                .filter(|d| *d <= 10)
                .ok_or_else(|| err(format!("symbols.{sym}.digits must be 0..=10, got {d}")))?;
            out.insert(sym.clone(), d as u32);
        }
    }
    Ok(out)
}

/// `models_dir` of an executor config, resolved against the config's directory as the executor
/// does; `None` when the config names none.
pub fn config_models_dir(path: &Path) -> Result<Option<PathBuf>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ReportError::Config {
        path: path.to_path_buf(),
        why: format!("not JSON: {e}"),
    })?;
    Ok(v.get("models_dir").and_then(|d| d.as_str()).map(|d| {
        let base = path.parent().unwrap_or(Path::new("."));
        base.join(d)
    }))
}

/// `symbols.<SYMBOL>.{contract_size, quote_to_account}` of an executor config, with the executor's
/// defaults (100000, 1.0); a symbol whose values are not numbers (or "inverse") is left out.
pub fn config_book_values(path: &Path) -> Result<BTreeMap<String, BookValue>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ReportError::Config {
        path: path.to_path_buf(),
        why: format!("not JSON: {e}"),
    })?;
    let mut out = BTreeMap::new();
    for (sym, s) in v
        .get("symbols")
        .and_then(|s| s.as_object())
        .into_iter()
        .flatten()
    {
        let contract = match s.get("contract_size") {
            None => 100_000.0,
            Some(c) => match c.as_f64() {
                Some(c) if c > 0.0 && c.is_finite() => c,
                _ => continue,
            },
        };
        let value = match s.get("quote_to_account") {
            None => BookValue::Fixed(contract),
            Some(q) if q.as_str() == Some("inverse") => BookValue::Inverse(contract),
            Some(q) => match q.as_f64() {
                Some(r) if r > 0.0 && r.is_finite() => BookValue::Fixed(contract * r),
                _ => continue,
            },
        };
        out.insert(sym.clone(), value);
    }
    Ok(out)
}
