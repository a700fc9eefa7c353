//! The trader's summary of a backtest: closed trades, win rate, realised PnL to the cent, and the
//! maximum drawdown of the realised PnL curve.
//!
//! Computed from the decisions alone (the same ones the CSV holds), so the summary and the CSV can
//! never disagree. A trade closes exactly when the virtual position changes away from a non-flat
//! one (ENV.md §6: any change closes everything first), and its PnL is the change of `R` on that bar.

use std::fmt;

use crate::bars::format_time;
use crate::model::ACTION_TABLE;
use crate::twin::Decision;

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestSummary {
    pub decisions: usize,
    pub first_bar: Option<i64>,
    pub last_bar: Option<i64>,
    /// Closed trades and how many made money (PnL > 0, as the reference counts a win).
    pub trades: usize,
    pub wins: usize,
    /// Realised PnL `R` at the end, account currency (exact; printed to the cent).
    pub pnl: f64,
    /// Largest fall of `R` from an earlier peak (the start, 0, counts as a peak), ≥ 0.
    pub max_drawdown: f64,
    /// The position still open after the last bar: action index, not counted in `pnl`.
    pub open_at_end: Option<u8>,
}

impl BacktestSummary {
    /// Summarises decisions made from FLAT with `R = 0` (how `preditor backtest` runs).
    pub fn from_decisions(decisions: &[Decision]) -> Self {
        let mut trades = 0;
        let mut wins = 0;
        let (mut prev_pos, mut prev_r) = ((0i8, 0u8), 0.0f64);
        let (mut peak, mut max_dd) = (0.0f64, 0.0f64);
        for d in decisions {
            let pos = (d.direction, d.intensity);
            if pos != prev_pos && prev_pos.0 != 0 {
                trades += 1;
                if d.realised_pnl - prev_r > 0.0 {
                    wins += 1;
                }
            }
            peak = peak.max(d.realised_pnl);
            max_dd = max_dd.max(peak - d.realised_pnl);
            prev_pos = pos;
            prev_r = d.realised_pnl;
        }
        let last = decisions.last();
        BacktestSummary {
            decisions: decisions.len(),
            first_bar: decisions.first().map(|d| d.time),
            last_bar: last.map(|d| d.time),
            trades,
            wins,
            pnl: prev_r,
            max_drawdown: max_dd,
            open_at_end: last.filter(|d| d.direction != 0).map(|d| d.action),
        }
    }

    /// Share of closed trades that made money, 0..=1 (`None` without a closed trade).
    pub fn win_rate(&self) -> Option<f64> {
        (self.trades > 0).then(|| self.wins as f64 / self.trades as f64)
    }
}

/// Rounds half away from zero to the cent (what a statement shows) and prints `-0.00` as `0.00`.
pub fn cents(v: f64) -> String {
    let s = format!("{:.2}", (v * 100.0).round() / 100.0);
    if s == "-0.00" { "0.00".into() } else { s }
}

impl fmt::Display for BacktestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = match (self.first_bar, self.last_bar) {
            (Some(a), Some(b)) => format!("{} to {}", format_time(a), format_time(b)),
            _ => "no bar decided".into(),
        };
        writeln!(f, "  decisions      {} ({span})", self.decisions)?;
        match self.win_rate() {
            Some(w) => writeln!(
                f,
                "  trades         {} closed, {} won: win rate {:.2}%",
                self.trades,
                self.wins,
                100.0 * w
            )?,
            None => writeln!(f, "  trades         0 closed: no win rate")?,
        }
        let open = self.open_at_end.map_or(String::new(), |a| {
            format!(
                "; a {} position is still open and not counted",
                ACTION_TABLE[usize::from(a)].0
            )
        });
        writeln!(
            f,
            "  PnL            {} (account currency, realised{open})",
            cents(self.pnl)
        )?;
        writeln!(
            f,
            "  max drawdown   {} (largest fall of the realised PnL from an earlier peak)",
            cents(self.max_drawdown)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(action: u8, direction: i8, intensity: u8, r: f64) -> Decision {
        Decision {
            time: 0,
            regime: 0,
            action,
            direction,
            intensity,
            realised_pnl: r,
            held: 1,
        }
    }

    #[test]
    fn trades_wins_pnl_and_drawdown() {
        let ds = [
            d(1, 1, 1, 0.0),   // open long weak
            d(1, 1, 1, 0.0),   // hold
            d(4, -1, 1, 10.0), // reverse: closes +10, opens short
            d(0, 0, 0, 4.0),   // close: -6
            d(0, 0, 0, 4.0),   // flat: no trade
            d(2, 1, 2, 4.0),   // open
            d(3, 1, 3, -1.0),  // intensity change closes: -5, opens strong
            d(3, 1, 3, -1.0),
        ];
        let s = BacktestSummary::from_decisions(&ds);
        assert_eq!((s.trades, s.wins), (3, 1));
        assert_eq!(s.pnl, -1.0);
        assert_eq!(s.max_drawdown, 11.0); // peak 10 → -1
        assert_eq!(s.open_at_end, Some(3));
        assert_eq!(s.win_rate(), Some(1.0 / 3.0));
        let text = s.to_string();
        assert!(text.contains("3 closed, 1 won: win rate 33.33%"), "{text}");
        assert!(text.contains("PnL            -1.00"), "{text}");
        assert!(
            text.contains("LONG_STRONG position is still open"),
            "{text}"
        );
    }

    #[test]
    fn money_is_printed_to_the_cent() {
        assert_eq!(cents(612.8800000002961), "612.88");
        assert_eq!(cents(-0.004), "0.00");
        // Rounded once, from the value: 2.675 × 100 is 267.5 in f64 and goes away from zero, where
        // formatting 2.675 (really 2.67499…) with {:.2} alone would print 2.67.
        assert_eq!(cents(2.675), "2.68");
        assert_eq!(cents(-1.25), "-1.25");
        assert_eq!(cents(-2.675), "-2.68");
    }

    #[test]
    fn no_trade_no_win_rate() {
        let s = BacktestSummary::from_decisions(&[d(0, 0, 0, 0.0)]);
        assert_eq!((s.trades, s.win_rate(), s.max_drawdown), (0, None, 0.0));
        assert!(s.to_string().contains("0 closed: no win rate"));
    }
}
