//! `drift.csv`: one row per SIGNAL with what the model wanted (virtual) and what each book did
//! (live, paper), appended and flushed at once so `tail -f` follows it. `executor drift-report`
//! reads it back ([`crate::drift::report`]).

pub mod record;
pub mod report;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

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

// The reading side (`executor drift-report`) lives in `crate::drift::report`.
pub use crate::drift::report::{BookSummary, DriftReport, ReportError, SymbolSummary};

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
