//! The status document (`executor ctl status`, the hub's `Status`, the `/metrics` gauges): built
//! from what the core loop knows, without I/O, and rendered as text for a person.

use std::collections::BTreeMap;

use fleet::{
    Book, BookStatus, BookSymbol, BrokerLink, HeldPosition, LastBar, LimitUse, LossUse, Lots,
    Position, RiskSettings, Side, StatusDocument, SymbolSettings, SymbolTelemetry, Telemetry,
};
use protocol::{Direction, Mode, Signal, Symbol};

use crate::config::SymbolConfig;
use crate::desk::risk::RiskGuard;
use crate::orders::{AccountSnapshot, BrokerPosition};

/// One book as the core loop sees it.
#[derive(Debug, Clone)]
pub struct BookView {
    pub book: Book,
    pub account: Option<AccountSnapshot>,
    pub positions: Vec<BrokerPosition>,
    /// Open PnL per position id, account currency, where the book knows it.
    pub pnl: BTreeMap<u64, f64>,
    pub guard: RiskGuard,
    /// The last ACK this book answered per symbol.
    pub last_acks: BTreeMap<Symbol, String>,
}

/// Everything the status document is made of.
#[derive(Debug, Clone)]
pub struct StatusInputs<'a> {
    pub mode: Mode,
    pub version: &'a str,
    pub started_ms: i64,
    pub paused: bool,
    pub kill_switch: bool,
    pub broker_link: BrokerLink,
    pub symbols: &'a BTreeMap<Symbol, SymbolConfig>,
    /// The primary book first.
    pub books: &'a [BookView],
    pub last_signals: &'a BTreeMap<Symbol, Signal>,
    pub last_bars: &'a BTreeMap<Symbol, LastBar>,
}

pub fn book_name(b: Book) -> &'static str {
    match b {
        Book::Live => "live",
        Book::Paper => "paper",
    }
}

fn side(p: &BrokerPosition) -> Side {
    match p.side {
        crate::orders::Side::Buy => Side::Long,
        crate::orders::Side::Sell => Side::Short,
    }
}

/// The net position of a book on a symbol (the telemetry's one position per book and symbol).
fn net(view: &BookView, symbol: &Symbol) -> Position {
    let mut lots = 0.0;
    let mut pnl = 0.0;
    for p in view
        .positions
        .iter()
        .filter(|p| p.symbol == symbol.as_str())
    {
        lots += p.lots * p.side.sign();
        pnl += view.pnl.get(&p.position_id).copied().unwrap_or(0.0);
    }
    let side = if lots > 1e-12 {
        Side::Long
    } else if lots < -1e-12 {
        Side::Short
    } else {
        Side::Flat
    };
    Position {
        side,
        lots: if side == Side::Flat { 0.0 } else { lots.abs() },
        pnl,
    }
}

/// The twin's position as its last SIGNAL says: the action's target with the lots in force, and
/// its realised virtual PnL.
fn virtual_position(sig: Option<&Signal>, cfg: &SymbolConfig) -> Position {
    let Some(sig) = sig else {
        return Position {
            side: Side::Flat,
            lots: 0.0,
            pnl: 0.0,
        };
    };
    let t = cfg.lots.target(sig.action);
    let side = match t.direction {
        Direction::Long => Side::Long,
        Direction::Short => Side::Short,
        Direction::Flat => Side::Flat,
    };
    Position {
        side,
        lots: if side == Side::Flat { 0.0 } else { t.lots },
        pnl: sig.virtual_pnl.to_f64(),
    }
}

/// Each risk limit of a book and how much of it is used (the risk guard's own figures).
pub fn limits(view: &BookView) -> Vec<LimitUse> {
    let l = &view.guard.limits;
    let mut out = Vec::new();
    let mut push = |name: &str, used: f64, limit: f64| {
        out.push(LimitUse {
            book: view.book,
            name: name.into(),
            used,
            limit,
        })
    };
    if let Some(a) = &view.account {
        let initial = view
            .guard
            .state
            .as_ref()
            .map(|s| s.initial_balance)
            .or(l.initial_balance)
            .unwrap_or(a.balance);
        let pct = |loss: f64| {
            if initial > 0.0 {
                (100.0 * loss / initial).max(0.0)
            } else {
                0.0
            }
        };
        let day_start = view
            .guard
            .state
            .as_ref()
            .map_or(a.equity, |s| s.day_start_equity);
        push(
            "max_daily_loss_pct",
            pct(day_start - a.equity),
            l.max_daily_loss_pct,
        );
        push(
            "max_total_loss_pct",
            pct(initial - a.equity),
            l.max_total_loss_pct,
        );
        push("min_equity", a.equity, l.min_equity);
    }
    push(
        "max_open_positions",
        view.positions.len() as f64,
        l.max_open_positions as f64,
    );
    push(
        "max_total_lots",
        view.positions.iter().map(|p| p.lots).sum(),
        l.max_total_lots,
    );
    out
}

fn loss_use(limits: &[LimitUse], name: &str) -> LossUse {
    limits.iter().find(|l| l.name == name).map_or(
        LossUse {
            used_pct: 0.0,
            limit_pct: 0.0,
        },
        |l| LossUse {
            used_pct: l.used,
            limit_pct: l.limit,
        },
    )
}

/// The status document.
pub fn build(i: &StatusInputs<'_>) -> StatusDocument {
    let primary = i.books.first();
    let paper_view = i.books.iter().find(|b| b.book == Book::Paper);
    let live_view = i.books.iter().find(|b| b.book == Book::Live);
    let all_limits: Vec<LimitUse> = i.books.iter().flat_map(limits).collect();
    let primary_limits: Vec<LimitUse> = primary.map(limits).unwrap_or_default();
    let account = primary.and_then(|b| b.account);
    let day_start = primary
        .and_then(|b| b.guard.state.as_ref())
        .map(|s| s.day_start_equity);
    let symbols: Vec<SymbolTelemetry> = i
        .symbols
        .iter()
        .map(|(s, c)| SymbolTelemetry {
            symbol: s.clone(),
            enabled: c.enabled,
            virtual_position: virtual_position(i.last_signals.get(s), c),
            paper: paper_view.map(|v| net(v, s)),
            live: live_view.map(|v| net(v, s)),
            last_bar: i.last_bars.get(s).copied(),
        })
        .collect();
    let telemetry = Telemetry {
        mode: i.mode,
        equity: account.map_or(0.0, |a| a.equity),
        balance: account.map_or(0.0, |a| a.balance),
        margin: account.map(|a| a.used_margin),
        paper_equity: match i.mode {
            Mode::Shadow => paper_view.and_then(|v| v.account).map(|a| a.equity),
            _ => None,
        },
        day_pnl: match (account, day_start) {
            (Some(a), Some(d)) => a.equity - d,
            _ => 0.0,
        },
        daily_loss: loss_use(&primary_limits, "max_daily_loss_pct"),
        total_loss: loss_use(&primary_limits, "max_total_loss_pct"),
        broker_link: i.broker_link,
        paused: i.paused,
        kill_switch: i.kill_switch,
        open_positions: primary.map_or(0, |b| b.positions.len() as u32),
        symbols,
    };
    let books = i
        .books
        .iter()
        .map(|v| BookStatus {
            book: v.book,
            equity: v.account.map(|a| a.equity),
            balance: v.account.map(|a| a.balance),
            symbols: i
                .symbols
                .keys()
                .map(|s| BookSymbol {
                    symbol: s.clone(),
                    positions: v
                        .positions
                        .iter()
                        .filter(|p| p.symbol == s.as_str())
                        .take(16)
                        .map(|p| HeldPosition {
                            position_id: p.position_id,
                            side: side(p),
                            lots: p.lots,
                            entry_price: p.entry_price.filter(|x| x.is_finite()),
                            pnl: v.pnl.get(&p.position_id).copied(),
                        })
                        .collect(),
                    last_signal: i
                        .last_signals
                        .get(s)
                        .map(|x| protocol::Line::Signal(x.clone()).to_string()),
                    last_ack: v.last_acks.get(s).cloned(),
                })
                .collect(),
        })
        .collect();
    let l = primary.map(|b| b.guard.limits.clone());
    StatusDocument {
        mode: i.mode,
        version: i.version.to_string(),
        started_ms: i.started_ms,
        paused: i.paused,
        kill_switch: i.kill_switch,
        risk: RiskSettings {
            max_daily_loss_pct: l.as_ref().map_or(0.0, |l| l.max_daily_loss_pct),
            max_total_loss_pct: l.as_ref().map_or(0.0, |l| l.max_total_loss_pct),
            min_equity: l.as_ref().map_or(0.0, |l| l.min_equity),
            max_open_positions: l.as_ref().map_or(0, |l| {
                u32::try_from(l.max_open_positions).unwrap_or(u32::MAX)
            }),
            max_total_lots: l.as_ref().map_or(0.0, |l| l.max_total_lots),
        },
        symbols: i
            .symbols
            .iter()
            .map(|(s, c)| SymbolSettings {
                symbol: s.clone(),
                enabled: c.enabled,
                lots: Lots {
                    lot_weak: c.lots.weak,
                    lot_moderate: c.lots.moderate,
                    lot_strong: c.lots.strong,
                },
            })
            .collect(),
        telemetry,
        books,
        limits: all_limits,
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn position_text(p: &Position) -> String {
    match p.side {
        Side::Flat => "FLAT".into(),
        s => format!("{s:?} {}", p.lots).to_uppercase(),
    }
}

/// `executor ctl status` as a person reads it.
pub fn render(d: &StatusDocument) -> String {
    let t = &d.telemetry;
    let started = chrono::DateTime::from_timestamp_millis(d.started_ms)
        .map(|x| x.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let mut out = format!(
        "executor {} mode {} since {started}\npaused: {}  kill switch: {}  broker link: {}\n",
        d.version,
        d.mode.as_str(),
        yes(d.paused),
        if d.kill_switch { "ON" } else { "off" },
        serde_json::to_value(t.broker_link)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    );
    for b in &d.books {
        let money = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        out.push_str(&format!(
            "\nbook {}: equity {} balance {}\n",
            book_name(b.book),
            money(b.equity),
            money(b.balance)
        ));
        out.push_str("  risk:");
        for l in d.limits.iter().filter(|l| l.book == b.book) {
            out.push_str(&format!(
                "  {} {} of {}",
                l.name,
                round(l.used),
                round(l.limit)
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "  {:<10} {:<7} {:<16} {:<24} {:>10} {:>10}  {}\n",
            "SYMBOL", "ENABLED", "LOTS W/M/S", "POSITION", "ENTRY", "PNL", "LAST SIGNAL -> ACK"
        ));
        for s in &b.symbols {
            let settings = d.symbols.iter().find(|x| x.symbol == s.symbol);
            let lots = settings.map_or("-".into(), |x| {
                format!(
                    "{}/{}/{}",
                    x.lots.lot_weak, x.lots.lot_moderate, x.lots.lot_strong
                )
            });
            let (pos, entry, pnl) = match s.positions.as_slice() {
                [] => ("FLAT".to_string(), "-".to_string(), "-".to_string()),
                ps => (
                    ps.iter()
                        .map(|p| {
                            format!("{:?} {} #{}", p.side, p.lots, p.position_id).to_uppercase()
                        })
                        .collect::<Vec<_>>()
                        .join("+"),
                    ps.iter()
                        .map(|p| p.entry_price.map_or("-".into(), |x| x.to_string()))
                        .collect::<Vec<_>>()
                        .join("+"),
                    format!("{:.2}", ps.iter().filter_map(|p| p.pnl).sum::<f64>()),
                ),
            };
            let last = match (&s.last_signal, &s.last_ack) {
                (None, None) => "-".to_string(),
                (sig, ack) => format!(
                    "{} -> {}",
                    sig.as_deref().unwrap_or("-"),
                    ack.as_deref().unwrap_or("(no ACK yet)")
                ),
            };
            out.push_str(&format!(
                "  {:<10} {:<7} {:<16} {:<24} {:>10} {:>10}  {}\n",
                s.symbol.as_str(),
                yes(settings.is_some_and(|x| x.enabled)),
                lots,
                pos,
                entry,
                pnl,
                last
            ));
        }
    }
    out.push_str("\ntwins and last bars:\n");
    for s in &t.symbols {
        let bar = s.last_bar.map_or("-".to_string(), |b| {
            format!("{} {} close {}", b.timeframe.as_str(), b.open_time, b.close)
        });
        out.push_str(&format!(
            "  {:<10} virtual {:<14} pnl {:>10.2}  last bar {bar}\n",
            s.symbol.as_str(),
            position_text(&s.virtual_position),
            s.virtual_position.pnl
        ));
    }
    out
}

fn round(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    r.to_string()
}

#[cfg(test)]
mod tests;
