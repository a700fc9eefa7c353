#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::{RiskConfig, SymbolConfig};
use crate::desk::risk::RiskState;
use fleet::record::Validate;
use protocol::Timeframe;

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn risk() -> RiskConfig {
    RiskConfig {
        max_daily_loss_pct: 5.0,
        max_total_loss_pct: 10.0,
        initial_balance: None,
        min_equity: 1000.0,
        max_open_positions: 20,
        max_total_lots: 100.0,
        kill_switch_file: "KILL".into(),
        day_start_hour_utc: 0,
    }
}

fn view() -> BookView {
    let mut guard = RiskGuard::new(
        risk(),
        Some(RiskState {
            initial_balance: 100_000.0,
            day: chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap(),
            day_start_equity: 101_000.0,
        }),
    );
    guard.paused = true;
    let mut last_acks = BTreeMap::new();
    last_acks.insert(
        sym("EURUSD"),
        "ACK|EURUSD|LONG_WEAK|OK|T:7|P:1.08542|B:2026-02-03T10:00:00Z".to_string(),
    );
    BookView {
        book: Book::Live,
        account: Some(AccountSnapshot {
            balance: 100_000.0,
            equity: 99_500.0,
            used_margin: 36.0,
            leverage: 30.0,
        }),
        positions: vec![BrokerPosition {
            position_id: 7,
            symbol: "EURUSD".into(),
            side: crate::orders::Side::Buy,
            lots: 0.01,
            entry_price: Some(1.08542),
            margin: 36.0,
            label: None,
        }],
        pnl: [(7, -2.5)].into_iter().collect(),
        guard,
        last_acks,
    }
}

#[test]
fn the_status_document_holds_positions_limits_and_the_twin() {
    let mut symbols = BTreeMap::new();
    let mut eur = SymbolConfig::defaults(Timeframe::H1);
    eur.enabled = true;
    symbols.insert(sym("EURUSD"), eur);
    symbols.insert(sym("GBPUSD"), SymbolConfig::defaults(Timeframe::H1));
    let sig: Signal = match "SIGNAL|EURUSD|LONG_WEAK|3|12.30|B:2026-02-03T10:00:00Z|N:1"
        .parse::<protocol::Line>()
        .unwrap()
    {
        protocol::Line::Signal(s) => s,
        _ => unreachable!(),
    };
    let last_signals: BTreeMap<Symbol, Signal> = [(sym("EURUSD"), sig)].into_iter().collect();
    let books = [view()];
    let doc = build(&StatusInputs {
        mode: Mode::Live,
        version: "0.1.0",
        started_ms: 1_770_000_000_000,
        paused: true,
        kill_switch: false,
        broker_link: BrokerLink::Up,
        symbols: &symbols,
        books: &books,
        last_signals: &last_signals,
        last_bars: &BTreeMap::new(),
    });
    doc.validate().unwrap();
    let used = |name: &str| doc.limits.iter().find(|l| l.name == name).unwrap().used;
    // Day start 101 000, equity 99 500 on an initial 100 000: 1.5 % of the day, 0.5 % in total.
    assert!((used("max_daily_loss_pct") - 1.5).abs() < 1e-9);
    assert!((used("max_total_loss_pct") - 0.5).abs() < 1e-9);
    assert_eq!(used("min_equity"), 99_500.0);
    assert_eq!(used("max_open_positions"), 1.0);
    assert_eq!(used("max_total_lots"), 0.01);
    assert_eq!(
        doc.telemetry.daily_loss.used_pct,
        used("max_daily_loss_pct")
    );
    assert_eq!(doc.telemetry.day_pnl, -1500.0);
    let eur = &doc.telemetry.symbols[0];
    assert_eq!(eur.virtual_position.side, Side::Long);
    assert_eq!(eur.virtual_position.lots, 0.01);
    assert_eq!(eur.virtual_position.pnl, 12.3);
    assert_eq!(eur.live.unwrap().pnl, -2.5);
    let held = &doc.books[0].symbols[0].positions[0];
    assert_eq!((held.position_id, held.entry_price), (7, Some(1.08542)));

    let text = render(&doc);
    for words in [
        "paused: yes",
        "book live: equity 99500.00 balance 100000.00",
        "max_daily_loss_pct 1.5 of 5",
        "max_open_positions 1 of 20",
        "LONG 0.01 #7",
        "1.08542",
        "-2.50",
        "LONG_WEAK|3|12.30",
        "ACK|EURUSD|LONG_WEAK|OK|T:7",
        "GBPUSD",
    ] {
        assert!(text.contains(words), "{words:?} not in\n{text}");
    }
}
