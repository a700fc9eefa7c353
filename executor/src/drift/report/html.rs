//! `executor drift-report --html FILE`: one self-contained page (inline SVG and CSS, no script, no
//! network; a Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch)
//! with, in total and per symbol: the virtual, paper and live equity curves one above the other,
//! the positions over time, the drift, and the signals not followed by reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::attribution::{self, Attribution};
use super::svg::{Bar, Series, StepChart, bar_chart, esc, shared_domain, step_chart};
use super::{BookSummary, DriftReport, Record, SymbolSummary, text};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-top:1px solid #ccc;padding-top:12px}\
h3{font-size:15px;margin:14px 0 4px}pre{background:#f6f6f6;padding:10px;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px}\
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}\
th:first-child,td:first-child{text-align:left}nav{display:flex;flex-wrap:wrap;gap:2px 10px}\
svg{display:block;margin:2px 0}.plot{fill:#fbfbfb;stroke:#ddd}.zero{stroke:#999;stroke-dasharray:3 3}\
.title{font-size:12px;font-weight:600}.unit{font-weight:400;fill:#666}.tick{font-size:11px;fill:#444}\
polyline,.legend line{fill:none;stroke-width:1.6}\
.s-virtual{stroke:#9a9a9a;stroke-width:4}.s-live{stroke:#d62728;stroke-dasharray:6 3}.s-paper{stroke:#1f77b4}\
rect.live{fill:#d62728}rect.paper{fill:#1f77b4}rect.warmup{fill-opacity:.45}";

/// The x (Unix seconds) a record is drawn at: its bar, or when it was judged if it had none.
fn x_of(r: &Record) -> i64 {
    r.bar.unwrap_or_else(|| r.time.timestamp())
}

/// The curves of one section (one symbol, or all of them added up).
#[derive(Debug)]
struct Curves {
    equity: [Series; 3],
    positions: [Series; 3],
    drift_pnl: [Series; 2],
    drift_lots: [Series; 2],
}

impl Curves {
    fn new() -> Self {
        Curves {
            equity: [
                Series::new("virtual"),
                Series::new("paper"),
                Series::new("live"),
            ],
            positions: [
                Series::new("virtual"),
                Series::new("paper"),
                Series::new("live"),
            ],
            drift_pnl: [Series::new("paper"), Series::new("live")],
            drift_lots: [Series::new("paper"), Series::new("live")],
        }
    }
}

/// Latest state of one symbol while the records are walked in order.
#[derive(Debug, Default, Clone, Copy)]
struct Latest {
    /// Realised PnL since the symbol's first row: virtual, paper, live.
    pnl: [f64; 3],
    /// Net lots: target, paper, live.
    lots: [f64; 3],
    first: [Option<f64>; 3],
    /// Each book is in sync after its latest signal.
    in_sync: [Option<bool>; 2],
}

fn walk(records: &[Record]) -> (Curves, BTreeMap<String, Curves>) {
    let mut total = Curves::new();
    let mut per: BTreeMap<String, Curves> = BTreeMap::new();
    let mut latest: BTreeMap<&str, Latest> = BTreeMap::new();
    for r in records {
        let x = x_of(r);
        let l = latest.entry(&r.symbol).or_default();
        let books = [
            Some(r.virtual_pnl),
            r.paper.as_ref().map(|b| b.pnl),
            r.live.as_ref().map(|b| b.pnl),
        ];
        for (i, v) in books.iter().enumerate() {
            if let Some(v) = v {
                let first = *l.first[i].get_or_insert(*v);
                l.pnl[i] = v - first;
            }
        }
        l.lots[0] = r.target_lots;
        for (i, b) in [&r.paper, &r.live].into_iter().enumerate() {
            if let Some(b) = b {
                l.lots[i + 1] = b.lots;
                l.in_sync[i] = Some(b.in_sync);
            }
        }
        let l = *l;
        let c = per.entry(r.symbol.clone()).or_insert_with(Curves::new);
        let has = [true, r.paper.is_some(), r.live.is_some()];
        for i in (0..3).filter(|&i| has[i]) {
            c.equity[i].set(x, l.pnl[i]);
            c.positions[i].set(x, l.lots[i]);
        }
        for i in 0..2 {
            if has[i + 1] {
                c.drift_pnl[i].set(x, l.pnl[i + 1] - l.pnl[0]);
                c.drift_lots[i].set(x, l.lots[i + 1] - l.lots[0]);
            }
        }
        // Totals: the sum over symbols of each one's latest value; positions and drift as counts
        // of symbols (lots of different symbols do not add up).
        let sum = |f: &dyn Fn(&Latest) -> f64| latest.values().map(f).sum::<f64>();
        for i in (0..3).filter(|&i| has[i]) {
            total.equity[i].set(x, sum(&|l| l.pnl[i]));
            total.positions[i].set(x, sum(&|l| f64::from(u8::from(l.lots[i] != 0.0))));
        }
        for i in 0..2 {
            if has[i + 1] {
                total.drift_pnl[i].set(x, sum(&|l| l.pnl[i + 1] - l.pnl[0]));
                total.drift_lots[i].set(
                    x,
                    sum(&|l| f64::from(u8::from(l.in_sync[i] == Some(false)))),
                );
            }
        }
    }
    (total, per)
}

fn book_row(name: &str, s: &SymbolSummary, b: &BookSummary) -> String {
    if b.signals == 0 {
        return String::new();
    }
    let slip = s
        .slippage_points(b)
        .map_or("-".into(), |p| format!("{p:.1}"));
    let pct = |p: &super::PhaseSummary| p.in_sync_pct().map_or("-".into(), |v| format!("{v:.2}%"));
    format!(
        r#"<tr data-book="{name}"><td>{name}</td><td data-field="steady-in-sync">{}</td><td data-field="steady-signals">{}</td><td>{}</td><td data-field="startup-signals">{}</td><td data-field="warmup-signals">{}</td><td data-field="fills">{}</td><td data-field="slippage-points">{slip}</td><td data-field="pnl">{:.2}</td></tr>"#,
        b.steady.in_sync,
        b.steady.signals,
        pct(&b.steady),
        b.startup.signals,
        b.warmup.signals,
        b.fills(),
        b.pnl()
    )
}

/// The PnL attribution of each book against the model: the parts add up to the gap.
fn attribution_table(books: &[(&str, &Attribution)]) -> String {
    if books.is_empty() {
        return String::new();
    }
    let mut t = String::from(
        "<h3>PnL against the model (account currency): book − virtual = missed entries + execution + other</h3><table class=\"attribution\"><tr><th>book</th><th>book − virtual</th><th>missed entries</th><th>model trades not entered</th><th>execution</th><th>trades both held</th><th>model's costs on them</th><th>book's fills vs the bar closes</th><th>other</th></tr>",
    );
    let cell = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    for (name, a) in books {
        let _ = write!(
            t,
            r#"<tr data-attribution="{name}"><td>{name}</td><td data-field="gap">{:.2}</td><td data-field="missed">{:.2}</td><td>{}</td><td data-field="execution">{:.2}</td><td>{}</td><td data-field="twin-costs">{}</td><td data-field="book-costs">{}</td><td data-field="other">{:.2}</td></tr>"#,
            a.gap(),
            a.missed,
            a.missed_trades,
            a.execution,
            a.followed_trades,
            cell(a.twin_costs.map(|c| c.total())),
            cell(a.book_costs()),
            a.other
        );
    }
    t.push_str("</table><ul>");
    for (name, a) in books {
        let _ = write!(t, "<li>{name}: {}</li>", esc(&attribution::explain(a)));
    }
    t.push_str("</ul>");
    t
}

#[allow(clippy::too_many_arguments)]
fn section(
    out: &mut String,
    id: &str,
    name: &str,
    s: &SymbolSummary,
    c: &Curves,
    x_range: (i64, i64),
    total: bool,
    attr: &[(&str, &Attribution)],
) {
    let _ = write!(
        out,
        r#"<section id="{}" data-symbol="{}"><h2>{}</h2>"#,
        esc(id),
        esc(name),
        esc(name)
    );
    let _ = write!(
        out,
        r#"<p>{} signals ({} warm-up) on {} bars; virtual realised PnL <b data-field="virtual-pnl">{:.2}</b>.</p>"#,
        s.signals,
        s.warmup_signals,
        s.bars,
        s.virtual_pnl()
    );
    let _ = write!(
        out,
        "<table><tr><th>book</th><th>in sync (steady)</th><th>of</th><th>%</th><th>start-up signals</th><th>warm-up signals</th><th>fills</th><th>avg slippage (points)</th><th>realised PnL</th></tr>{}{}</table>",
        book_row("live", s, &s.live),
        book_row("paper", s, &s.paper)
    );
    out.push_str(&attribution_table(attr));
    let eq: Vec<&Series> = c.equity.iter().filter(|s| !s.points.is_empty()).collect();
    let dom = shared_domain(&eq);
    out.push_str("<h3>Equity: realised PnL since the first signal</h3>");
    for s in &eq {
        out.push_str(&step_chart(
            &StepChart {
                attrs: format!(r#"data-kind="equity" data-book="{}""#, s.name),
                title: &format!("{} book", s.name),
                unit: "account currency, closed trades only",
                x_range,
                y_domain: Some(dom),
                height: 120.0,
            },
            &[s],
        ));
    }
    let (pos_title, pos_unit, drift_title, drift_unit) = if total {
        (
            "Symbols holding a position",
            "count",
            "Symbols out of sync with the model",
            "count",
        )
    } else {
        (
            "Positions",
            "net lots; the virtual one is the model's target",
            "Position drift: book minus model",
            "net lots",
        )
    };
    out.push_str("<h3>Positions over time</h3>");
    let pos: Vec<&Series> = c
        .positions
        .iter()
        .filter(|s| !s.points.is_empty())
        .collect();
    out.push_str(&step_chart(
        &StepChart {
            attrs: r#"data-kind="positions""#.into(),
            title: pos_title,
            unit: pos_unit,
            x_range,
            y_domain: None,
            height: 150.0,
        },
        &pos,
    ));
    out.push_str("<h3>Drift</h3>");
    let dp: Vec<&Series> = c
        .drift_pnl
        .iter()
        .filter(|s| !s.points.is_empty())
        .collect();
    out.push_str(&step_chart(
        &StepChart {
            attrs: r#"data-kind="drift-pnl""#.into(),
            title: "PnL drift: book minus virtual realised PnL",
            unit: "account currency",
            x_range,
            y_domain: None,
            height: 140.0,
        },
        &dp,
    ));
    let dl: Vec<&Series> = c
        .drift_lots
        .iter()
        .filter(|s| !s.points.is_empty())
        .collect();
    out.push_str(&step_chart(
        &StepChart {
            attrs: r#"data-kind="drift-position""#.into(),
            title: drift_title,
            unit: drift_unit,
            x_range,
            y_domain: None,
            height: 130.0,
        },
        &dl,
    ));
    out.push_str("<h3>Signals not followed, by reason</h3>");
    let mut bars = Vec::new();
    for (book, b) in [("live", &s.live), ("paper", &s.paper)] {
        for (phase, p) in [
            ("steady", &b.steady),
            ("startup", &b.startup),
            ("warmup", &b.warmup),
        ] {
            for (reason, n) in &p.not_followed {
                bars.push(Bar {
                    label: format!(
                        "{book} · {reason} ({})",
                        match phase {
                            "steady" => "steady state",
                            "startup" => "start-up",
                            _ => "warm-up",
                        }
                    ),
                    attrs: format!(
                        r#"data-book="{book}" data-phase="{phase}" data-reason="{}""#,
                        esc(reason)
                    ),
                    class: if phase == "steady" {
                        book_class(book)
                    } else {
                        warm_class(book)
                    },
                    count: *n,
                });
            }
        }
    }
    out.push_str(&bar_chart(
        r#"data-kind="not-followed""#,
        "signals not followed",
        &bars,
    ));
    out.push_str("</section>");
}

fn book_class(book: &str) -> &'static str {
    if book == "live" { "live" } else { "paper" }
}
fn warm_class(book: &str) -> &'static str {
    if book == "live" {
        "live warmup"
    } else {
        "paper warmup"
    }
}

/// A symbol as an HTML id (ids are matched by the table of contents).
fn anchor(sym: &str) -> String {
    let clean: String = sym
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("sym-{clean}")
}

impl DriftReport {
    /// The whole page.
    pub fn to_html(&self) -> String {
        let (total, per) = walk(&self.records);
        let x_range = (
            self.records.iter().map(x_of).min().unwrap_or(0),
            self.records.iter().map(x_of).max().unwrap_or(0),
        );
        let mut o = String::new();
        let title = format!("Drift report: {}", self.path.display());
        let _ = write!(
            o,
            r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><meta name="viewport" content="width=device-width"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>"#,
            t = esc(&title)
        );
        o.push_str("<p><b>In sync</b>: after the executor handled the signal, the book held exactly the position the model's action maps to (same direction and lots; flat for WAIT). <b>Warm-up</b>: a symbol's first signals as long as each was answered one bar or more after its bar closed (the twin catching up on the bars that closed while it started); then, per book, <b>start-up</b>: the signals answered MISSED_ENTRY until the book's first entry with the model (the twins' positions come from history; the executor never enters late, at a price the model did not get, and joins at the model's next entry); everything after is <b>steady state</b>, late signals included. Equity curves are realised PnL since the first signal in the log (open positions are not marked). Grey: the model's virtual position; blue: the paper book; red: the live book.</p>");
        let _ = write!(o, r#"<pre id="summary">{}</pre>"#, esc(&self.summary()));
        let reasons: BTreeMap<&str, ()> = [&self.total.live, &self.total.paper]
            .iter()
            .flat_map(|b| {
                b.steady
                    .not_followed
                    .keys()
                    .chain(b.startup.not_followed.keys())
                    .chain(b.warmup.not_followed.keys())
            })
            .map(|r| (r.as_str(), ()))
            .collect();
        if !reasons.is_empty() {
            o.push_str("<p>Why a signal was not followed:</p><ul>");
            for r in reasons.keys() {
                let _ = write!(o, "<li><b>{}</b>: {}</li>", esc(r), esc(text::explain(r)));
            }
            o.push_str("</ul>");
        }
        o.push_str(r##"<nav><a href="#total">all symbols</a>"##);
        for sym in self.symbols.keys() {
            let _ = write!(o, r##"<a href="#{}">{}</a>"##, anchor(sym), esc(sym));
        }
        o.push_str("</nav>");
        let attr: Vec<_> = self
            .book_kinds()
            .into_iter()
            .map(|(name, kind)| (name, self.attribution(kind)))
            .collect();
        let totals: Vec<(&str, &Attribution)> = attr.iter().map(|(n, (_, t))| (*n, t)).collect();
        section(
            &mut o,
            "total",
            "All symbols",
            &self.total,
            &total,
            x_range,
            true,
            &totals,
        );
        for (sym, s) in &self.symbols {
            if let Some(c) = per.get(sym) {
                let mine: Vec<(&str, &Attribution)> = attr
                    .iter()
                    .filter_map(|(n, (p, _))| Some((*n, p.get(sym)?)))
                    .collect();
                section(&mut o, &anchor(sym), sym, s, c, x_range, false, &mine);
            }
        }
        o.push_str("</body></html>\n");
        o
    }
}
