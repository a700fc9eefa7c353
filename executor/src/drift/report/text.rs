//! The drift report as text: a summary a trader reads first, then one block per symbol.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use super::attribution::{self, Attribution, BookKind};
use super::{BookSummary, DigitsSource, DriftReport, PhaseSummary, SymbolSummary};

/// What a reason means for the trader (PROTOCOL.md §5, executor/README.md), in plain words.
pub fn explain(reason: &str) -> &'static str {
    match reason {
        "MISSED_ENTRY" => {
            "the model entered on an earlier bar while this book was flat (at the start, or after a refused open); the executor does not enter late and waits for the model's next action change"
        }
        "STALE" => {
            "the signal reached the executor too late after its bar closed (stale_signal_max_age_secs)"
        }
        "MARGIN" => "not enough free margin for the open",
        "MAX_POSITIONS" => "the number of open positions was at the risk limit",
        "MAX_EXPOSURE" => "the open would have exceeded the maximum total lots",
        "DAILY_LOSS" => "equity was below the day's limit (max_daily_loss_pct)",
        "TOTAL_LOSS" => "equity was below the total loss limit (max_total_loss_pct)",
        "MIN_EQUITY" => "equity was below min_equity",
        "SPREAD" => "the spread was above the symbol's max_spread",
        "KILL_SWITCH" => "the kill switch was on: no new positions",
        "PAUSED" => {
            "an operator had paused the executor (executor ctl pause / flatten): no new positions"
        }
        "MARKET_CLOSED" => "the market was closed",
        "BAD_VOLUME" => "the configured lots do not fit the symbol's volume rules",
        "TIMEOUT" | "DISCONNECTED" => {
            "the broker did not confirm in time; the executor reconciled instead of resending"
        }
        "NOT_CONNECTED" => "no broker connection when the signal arrived",
        "BROKER_ERROR" => "the broker refused the order (its words are in the journal)",
        "UNKNOWN_SYMBOL" | "DISABLED" => "the symbol is not enabled in the executor config",
        "MALFORMED" => "the signal line was malformed",
        "OK_BUT_DIFFERENT" => "answered OK, but the book's position differs from the model's",
        _ => "see protocol/PROTOCOL.md §5",
    }
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "-".to_string()
    } else {
        format!("{:.2}%", 100.0 * n as f64 / of as f64)
    }
}

fn reasons(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "none".to_string();
    }
    m.iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_time(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map_or("-".into(), |t| t.format("%Y-%m-%dT%H:%MZ").to_string())
}

/// Money with two decimals and a sign, e.g. `+1234.50`.
pub fn money(v: f64) -> String {
    format!("{v:+.2}")
}

fn phase_line(out: &mut String, name: &str, p: &PhaseSummary) {
    let not = p.signals - p.in_sync;
    let _ = writeln!(
        out,
        "  {name:<11} in sync {}/{} ({}); not followed {}{}",
        p.in_sync,
        p.signals,
        pct(p.in_sync, p.signals),
        not,
        if not > 0 {
            format!(": {}", reasons(&p.not_followed))
        } else {
            String::new()
        }
    );
}

impl DriftReport {
    fn books(&self) -> Vec<(&'static str, &BookSummary)> {
        let mut v = Vec::new();
        if self.has_live() {
            v.push(("live book", &self.total.live));
        }
        if self.has_paper() {
            v.push(("paper book", &self.total.paper));
        }
        v
    }

    /// The first thing a trader reads: signals, warm-up vs steady state, in sync per book, and
    /// every reason a steady-state signal was not followed, in plain words.
    pub fn summary(&self) -> String {
        let t = &self.total;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {} on {} symbols, {} bar times from {} to {} (UTC)",
            "signals",
            t.signals,
            self.symbols.len(),
            t.bars,
            fmt_time(self.first_bar),
            fmt_time(self.last_bar)
        );
        let _ = writeln!(
            out,
            "{:<24} {} warm-up (a symbol's first signals, each answered a bar or more after its bar closed: the twin catching up)",
            "", t.warmup_signals,
        );
        let mut startup = Vec::new();
        for (name, b) in self.books() {
            startup.push(format!(
                "{} {} on {} symbol(s)",
                name.trim_end_matches(" book"),
                b.startup.signals,
                b.startup_symbols
            ));
        }
        if !startup.is_empty() {
            let _ = writeln!(
                out,
                "{:<24} start-up: {} (a symbol's first signals answered MISSED_ENTRY until the book's first entry with the model: the twins' positions come from history, the executor never enters late at a price the model did not get, and joins at the model's next entry)",
                "",
                startup.join(", ")
            );
            let _ = writeln!(
                out,
                "{:<24} steady state: everything after (late signals and refusals included)",
                ""
            );
        }
        for (name, b) in self.books() {
            let s = &b.steady;
            let _ = writeln!(
                out,
                "{:<24} {}/{} steady-state signals ({}), {}/{} over the whole log (start-up and warm-up included)",
                format!("in sync, {name}"),
                s.in_sync,
                s.signals,
                pct(s.in_sync, s.signals),
                b.in_sync,
                b.signals
            );
        }
        for (name, b) in self.books() {
            let _ = writeln!(
                out,
                "{:<24} steady state {}; start-up {}; warm-up {}",
                format!("not followed, {name}"),
                reasons(&b.steady.not_followed),
                reasons(&b.startup.not_followed),
                reasons(&b.warmup.not_followed)
            );
        }
        let mut all: BTreeMap<&str, ()> = BTreeMap::new();
        for (_, b) in self.books() {
            for r in b
                .steady
                .not_followed
                .keys()
                .chain(b.startup.not_followed.keys())
                .chain(b.warmup.not_followed.keys())
            {
                all.insert(r, ());
            }
        }
        for r in all.keys() {
            let _ = writeln!(out, "{:<24} {r}: {}", "", explain(r));
        }
        let _ = writeln!(
            out,
            "{:<24} \"in sync\": after the executor handled the signal, the book held exactly the position the model's action maps to (same direction and lots; FLAT for WAIT)",
            ""
        );
        let mut pnl = format!("virtual {}", money(t.virtual_pnl()));
        for (name, b) in self.books() {
            let _ = write!(
                pnl,
                ", {} {}",
                name.trim_end_matches(" book"),
                money(b.pnl())
            );
        }
        let _ = writeln!(
            out,
            "{:<24} {pnl} (account currency, closed trades only)",
            "realised PnL"
        );
        for (name, kind) in self.book_kinds() {
            let (_, total) = self.attribution(kind);
            let _ = writeln!(
                out,
                "{:<24} {}",
                format!("PnL vs model, {name}"),
                attribution_line(name, &total)
            );
            let _ = writeln!(out, "{:<24} {}", "", attribution::explain(&total));
        }
        if self.has_live() || self.has_paper() {
            let _ = writeln!(
                out,
                "{:<24} {}",
                "",
                match &self.costs_source {
                    Some(d) if !self.twin_costs.is_empty() => format!(
                        "the model's costs: each twin's training_config (ENV.md §6: half the spread and the slippage per side, the round-turn commission, on the twin's lots), read from {}",
                        d.display()
                    ),
                    _ => "the model's costs are unknown (pass --config with a models_dir holding the model zips to split execution into costs)".to_string(),
                }
            );
        }
        out
    }

    pub(super) fn book_kinds(&self) -> Vec<(&'static str, BookKind)> {
        let mut v = Vec::new();
        if self.has_live() {
            v.push(("live", BookKind::Live));
        }
        if self.has_paper() {
            v.push(("paper", BookKind::Paper));
        }
        v
    }
}

/// `live − virtual = … ` with every part in account currency; the parts add up to the gap.
pub fn attribution_line(book: &str, a: &Attribution) -> String {
    let value = a.value.map_or(String::new(), |v| {
        format!("value of a point {}; ", money(v))
    });
    let exec = match (a.twin_costs, a.book_costs()) {
        (Some(t), Some(b)) => format!(
            " ({value}the model charges itself {:.2}: spread {:.2}, slippage {:.2}, commission {:.2}; the book's fills cost {:.2} against the bar closes)",
            t.total(),
            t.spread,
            t.slippage,
            t.commission,
            b
        ),
        _ => String::new(),
    };
    format!(
        "{book} − virtual = {} = missed entries {} ({} model trade(s) not entered) + execution {} on {} trade(s) both held{exec} + other {}",
        money(a.gap()),
        money(a.missed),
        a.missed_trades,
        money(a.execution),
        a.followed_trades,
        money(a.other)
    )
}

fn fmt_book(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    s: &SymbolSummary,
    b: &BookSummary,
    model_slippage: Option<f64>,
) -> fmt::Result {
    if b.signals == 0 {
        return Ok(());
    }
    let slip = match (s.slippage_points(b), b.avg_slippage()) {
        (Some(p), _) => match model_slippage {
            Some(m) => format!("{p:.1} points (the model charges {m} per fill)"),
            None => format!("{p:.1} points"),
        },
        (None, Some(x)) => format!("{x:.6} (price units)"),
        (None, None) => "-".into(),
    };
    writeln!(
        f,
        "  {name:5} in sync {}/{} ({:.1}%), steady state {}/{} ({}), missed entries {} ({} at start-up), refusals {}, avg slippage {slip} over {} fills, pnl {}",
        b.in_sync,
        b.signals,
        100.0 * b.in_sync as f64 / b.signals as f64,
        b.steady.in_sync,
        b.steady.signals,
        pct(b.steady.in_sync, b.steady.signals),
        b.missed_entries,
        b.startup.signals,
        reasons(&b.refusals),
        b.fills(),
        money(b.pnl())
    )
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Drift report: {}", self.path.display())?;
        for line in self.summary().lines() {
            writeln!(f, "  {line}")?;
        }
        let digits = match self.digits_source {
            DigitsSource::Config => "the config's digits",
            DigitsSource::FillPrices => {
                "digits inferred from the fill prices; pass --config for the configured ones"
            }
        };
        writeln!(
            f,
            "\nPer symbol (slippage: average adverse slippage per fill, in points = 10^-digits of the price, {digits}; pnl: realised, account currency):"
        )?;
        for (sym, s) in &self.symbols {
            let point = s.digits.map_or("?".to_string(), |d| {
                format!("{:.*}", d as usize, 10f64.powi(-(d as i32)))
            });
            writeln!(
                f,
                "{sym}: {} signals ({} warm-up) on {} bars, virtual pnl {}, 1 point = {point}",
                s.signals,
                s.warmup_signals,
                s.bars,
                money(s.virtual_pnl())
            )?;
            let model_slip = self.twin_costs.get(sym).map(|c| c.slippage_points);
            fmt_book(f, "live", s, &s.live, model_slip)?;
            fmt_book(f, "paper", s, &s.paper, model_slip)?;
            for (name, kind) in self.book_kinds() {
                if let Some(a) = self.attribution(kind).0.get(sym) {
                    writeln!(f, "  {name:5} {}", attribution_line(name, a))?;
                }
            }
        }
        Ok(())
    }
}

/// For tests and the HTML page: a phase line of one book.
pub fn phase_text(name: &str, p: &PhaseSummary) -> String {
    let mut s = String::new();
    phase_line(&mut s, name, p);
    s
}
