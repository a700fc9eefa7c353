//! `drift.csv`: one row per SIGNAL with what the model wanted (virtual) and what each book did
//! (live, paper), appended and flushed at once so `tail -f` follows it; and the `drift-report`
//! summary per symbol.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const HEADER: &str = "time,symbol,bar,virtual_action,virtual_pnl,target,\
live_position,live_fill,live_slippage,live_outcome,live_reason,live_pnl,\
paper_position,paper_fill,paper_slippage,paper_outcome,paper_reason,paper_pnl";

/// What one book did with a signal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookOutcome {
    /// Position after the signal, e.g. `LONG 0.01` or `FLAT`.
    pub position: String,
    pub fill: Option<f64>,
    pub slippage: Option<f64>,
    /// `OK`, `FAIL` or `WAIT_SYNC`.
    pub outcome: String,
    pub reason: String,
    /// Cumulative realised PnL of the book on this symbol.
    pub pnl: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftRow {
    pub time: String,
    pub symbol: String,
    pub bar: String,
    pub virtual_action: String,
    pub virtual_pnl: String,
    /// What the virtual action maps to, in the same form as a book position.
    pub target: String,
    pub live: Option<BookOutcome>,
    pub paper: Option<BookOutcome>,
}

/// A price or slippage cell: at most 8 decimals (enough for any symbol's digits plus one), no
/// trailing zeros, so float noise such as `1.1003800000000001` never reaches the log.
fn opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            let s = format!("{x:.8}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".to_string()
            } else {
                s.to_string()
            }
        }
        _ => String::new(),
    }
}

fn book_cells(b: &Option<BookOutcome>) -> String {
    match b {
        None => ",,,,,".to_string(),
        Some(b) => format!(
            "{},{},{},{},{},{:.2}",
            b.position,
            opt(b.fill),
            opt(b.slippage),
            b.outcome,
            b.reason,
            b.pnl
        ),
    }
}

impl DriftRow {
    pub fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.time,
            self.symbol,
            self.bar,
            self.virtual_action,
            self.virtual_pnl,
            self.target,
            book_cells(&self.live),
            book_cells(&self.paper)
        )
    }
}

#[derive(Debug)]
pub struct DriftLog {
    file: File,
}

impl DriftLog {
    /// Opens (creating with a header) the drift log for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let fresh = std::fs::metadata(path)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        if fresh {
            writeln!(file, "{HEADER}")?;
        }
        Ok(DriftLog { file })
    }

    pub fn append(&mut self, row: &DriftRow) -> std::io::Result<()> {
        writeln!(self.file, "{}", row.to_csv())?;
        self.file.flush()
    }
}

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
}

/// Per-book figures for one symbol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookSummary {
    pub signals: usize,
    pub in_sync: usize,
    pub missed_entries: usize,
    pub refusals: BTreeMap<String, usize>,
    slippage_sum: f64,
    slippage_n: usize,
    first_pnl: Option<f64>,
    last_pnl: f64,
}

impl BookSummary {
    pub fn avg_slippage(&self) -> Option<f64> {
        (self.slippage_n > 0).then(|| self.slippage_sum / self.slippage_n as f64)
    }
    /// Realised PnL over the logged window.
    pub fn pnl(&self) -> f64 {
        self.last_pnl - self.first_pnl.unwrap_or(self.last_pnl)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SymbolSummary {
    pub signals: usize,
    first_virtual: Option<f64>,
    last_virtual: f64,
    pub live: BookSummary,
    pub paper: BookSummary,
}

impl SymbolSummary {
    pub fn virtual_pnl(&self) -> f64 {
        self.last_virtual - self.first_virtual.unwrap_or(self.last_virtual)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftReport {
    pub symbols: BTreeMap<String, SymbolSummary>,
}

fn add_book(s: &mut BookSummary, c: &[&str], target: &str) -> Result<(), String> {
    // c = position, fill, slippage, outcome, reason, pnl
    if c[3].is_empty() {
        return Ok(()); // this book did not run
    }
    s.signals += 1;
    if c[0] == target {
        s.in_sync += 1;
    }
    match (c[3], c[4]) {
        (_, "MISSED_ENTRY") => s.missed_entries += 1,
        ("FAIL", r) => *s.refusals.entry(r.to_string()).or_insert(0) += 1,
        _ => {}
    }
    if !c[2].is_empty() {
        s.slippage_sum += c[2]
            .parse::<f64>()
            .map_err(|_| format!("bad slippage {:?}", c[2]))?;
        s.slippage_n += 1;
    }
    let pnl: f64 = c[5].parse().map_err(|_| format!("bad pnl {:?}", c[5]))?;
    s.first_pnl.get_or_insert(pnl);
    s.last_pnl = pnl;
    Ok(())
}

impl DriftReport {
    pub fn from_file(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(ReportError::Header {
                path: path.to_path_buf(),
            });
        }
        let mut rep = DriftReport::default();
        for (i, line) in lines.enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let c: Vec<&str> = line.split(',').collect();
            let err = |why: String| ReportError::Row {
                path: path.to_path_buf(),
                line: i + 2,
                why,
            };
            if c.len() != 18 {
                return Err(err(format!("{} columns, expected 18", c.len())));
            }
            let s = rep.symbols.entry(c[1].to_string()).or_default();
            s.signals += 1;
            let v: f64 = c[4]
                .parse()
                .map_err(|_| err(format!("bad virtual_pnl {:?}", c[4])))?;
            s.first_virtual.get_or_insert(v);
            s.last_virtual = v;
            add_book(&mut s.live, &c[6..12], c[5]).map_err(err)?;
            add_book(&mut s.paper, &c[12..18], c[5]).map_err(err)?;
        }
        Ok(rep)
    }
}

fn fmt_book(f: &mut fmt::Formatter<'_>, name: &str, b: &BookSummary) -> fmt::Result {
    if b.signals == 0 {
        return Ok(());
    }
    let refusals = if b.refusals.is_empty() {
        "none".to_string()
    } else {
        b.refusals
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    writeln!(
        f,
        "  {name:5} in sync {}/{} ({:.1}%), missed entries {}, refusals {}, avg slippage {}, pnl {:.2}",
        b.in_sync,
        b.signals,
        100.0 * b.in_sync as f64 / b.signals as f64,
        b.missed_entries,
        refusals,
        b.avg_slippage()
            .map_or("-".to_string(), |x| format!("{x:.6}")),
        b.pnl()
    )
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (sym, s) in &self.symbols {
            writeln!(
                f,
                "{sym}: {} signals, virtual pnl {:.2}",
                s.signals,
                s.virtual_pnl()
            )?;
            fmt_book(f, "live", &s.live)?;
            fmt_book(f, "paper", &s.paper)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sym: &str, vpnl: &str, target: &str, paper: BookOutcome) -> DriftRow {
        DriftRow {
            time: "2026-02-03T10:15:01Z".into(),
            symbol: sym.into(),
            bar: "2026-02-03T10:00:00Z".into(),
            virtual_action: "LONG_WEAK".into(),
            virtual_pnl: vpnl.into(),
            target: target.into(),
            live: None,
            paper: Some(paper),
        }
    }

    #[test]
    fn report_sums_sync_missed_refusals_slippage_and_pnl() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("drift.csv");
        let mut log = DriftLog::open(&p).unwrap();
        let ok = |pos: &str, slip, pnl| BookOutcome {
            position: pos.into(),
            fill: Some(1.1),
            slippage: Some(slip),
            outcome: "OK".into(),
            reason: String::new(),
            pnl,
        };
        log.append(&row(
            "EURUSD",
            "0.00",
            "LONG 0.01",
            ok("LONG 0.01", 0.0002, 0.0),
        ))
        .unwrap();
        log.append(&row(
            "EURUSD",
            "5.00",
            "LONG 0.03",
            BookOutcome {
                position: "FLAT".into(),
                outcome: "FAIL".into(),
                reason: "MARGIN".into(),
                pnl: 4.0,
                ..Default::default()
            },
        ))
        .unwrap();
        log.append(&row(
            "EURUSD",
            "7.50",
            "SHORT 0.01",
            BookOutcome {
                position: "FLAT".into(),
                outcome: "WAIT_SYNC".into(),
                reason: "MISSED_ENTRY".into(),
                pnl: 4.0,
                ..Default::default()
            },
        ))
        .unwrap();
        log.append(&row("US500", "1.00", "FLAT", ok("FLAT", 0.5, 2.0)))
            .unwrap();
        drop(log);
        // reopening must not write a second header
        DriftLog::open(&p).unwrap();
        let rep = DriftReport::from_file(&p).unwrap();
        let e = &rep.symbols["EURUSD"];
        assert_eq!(
            (
                e.signals,
                e.paper.signals,
                e.paper.in_sync,
                e.paper.missed_entries
            ),
            (3, 3, 1, 1)
        );
        assert_eq!(e.paper.refusals.get("MARGIN"), Some(&1));
        assert!((e.paper.avg_slippage().unwrap() - 0.0002).abs() < 1e-12);
        assert!((e.virtual_pnl() - 7.5).abs() < 1e-9);
        assert!((e.paper.pnl() - 4.0).abs() < 1e-9);
        assert_eq!(e.live.signals, 0);
        assert_eq!(rep.symbols["US500"].paper.in_sync, 1);
        let text = rep.to_string();
        assert!(
            text.contains("EURUSD: 3 signals") && text.contains("refusals MARGIN=1"),
            "{text}"
        );
    }

    #[test]
    fn number_cells_drop_float_noise() {
        assert_eq!(opt(Some(1.1003800000000001)), "1.10038");
        assert_eq!(opt(Some(0.000010000000000065512)), "0.00001");
        assert_eq!(opt(Some(-0.000000001)), "0");
        assert_eq!(opt(Some(5000.0)), "5000");
        assert_eq!(opt(Some(f64::NAN)), "");
        assert_eq!(opt(None), "");
    }

    #[test]
    fn report_refuses_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b\n").unwrap();
        assert!(matches!(
            DriftReport::from_file(&p),
            Err(ReportError::Header { .. })
        ));
    }
}
