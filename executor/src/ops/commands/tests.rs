#![allow(clippy::unwrap_used)]

use super::*;
use fleet::RiskLimits;
use protocol::Timeframe;

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn id(n: u8) -> CommandId {
    CommandId::from_random([n; 16])
}

struct World {
    symbols: BTreeMap<Symbol, SymbolConfig>,
    rules: BTreeMap<Symbol, SymbolVolume>,
    live: bool,
    paper: bool,
    kill: KillSwitch,
}

impl World {
    /// Shadow mode, EURUSD with Spotware's FX volume rules (lotSize 10 000 000, step 100 000 =
    /// 0.01 lot, min 0.01, max 100 lots), US500 configured with none known.
    fn shadow() -> World {
        let mut symbols = BTreeMap::new();
        symbols.insert(sym("EURUSD"), SymbolConfig::defaults(Timeframe::H1));
        symbols.insert(sym("US500"), SymbolConfig::defaults(Timeframe::H1));
        let mut rules = BTreeMap::new();
        rules.insert(
            sym("EURUSD"),
            SymbolVolume {
                symbol: "EURUSD".into(),
                lot_size: 10_000_000,
                step_volume: 100_000,
                min_volume: 100_000,
                max_volume: 1_000_000_000,
                digits: 5,
            },
        );
        World {
            symbols,
            rules,
            live: true,
            paper: true,
            kill: KillSwitch::default(),
        }
    }

    fn view(&self) -> View<'_> {
        View {
            symbols: &self.symbols,
            volume_rules: &self.rules,
            live: self.live,
            paper: self.paper,
            kill: self.kill,
            paused: false,
            now_ms: 1_770_000_000_000,
        }
    }
}

fn nonce() -> Nonce {
    Nonce::from_random([9; 16])
}

fn refusal(step: Step) -> Refusal {
    match step {
        Step::Answer(CommandResult::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn lots(symbol: &str, w: f64, m: f64, s: f64) -> Command {
    Command::SetLots {
        symbol: sym(symbol),
        lot_weak: w,
        lot_moderate: m,
        lot_strong: s,
    }
}

#[test]
fn simple_commands_run_and_a_repeated_id_is_answered_never_run_again() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    assert_eq!(
        desk.decide(&id(1), &Command::Pause, None, &w.view(), nonce),
        Step::Run(Effect::Pause)
    );
    let answer = CommandResult::Ok {
        detail: Some("paused".into()),
    };
    desk.finish(&id(1), &Command::Pause, &answer);
    // The same id again, even for another command: the first answer, nothing runs.
    assert_eq!(
        desk.decide(&id(1), &Command::Pause, None, &w.view(), nonce),
        Step::Answer(answer.clone())
    );
    assert_eq!(
        desk.decide(&id(1), &Command::Resume, None, &w.view(), nonce),
        Step::Answer(answer)
    );
    assert_eq!(
        desk.decide(&id(2), &Command::Resume, None, &w.view(), nonce),
        Step::Run(Effect::Resume)
    );
}

#[test]
fn a_refusal_is_remembered_under_its_id() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    let bad = lots("EURUSD", 0.0, 0.02, 0.03);
    let r = refusal(desk.decide(&id(1), &bad, None, &w.view(), nonce));
    assert_eq!(r.field.as_deref(), Some("lot_weak"));
    // A corrected command under the same id is still answered with the refusal: the id is spent.
    let good = lots("EURUSD", 0.01, 0.02, 0.03);
    assert_eq!(
        refusal(desk.decide(&id(1), &good, None, &w.view(), nonce)),
        r
    );
    assert!(desk.seen(&id(1)));
}

#[test]
fn set_lots_is_checked_against_the_symbols_volume_rules() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    for (n, cmd, field, words) in [
        (
            1,
            lots("EURUSD", 0.001, 0.02, 0.03),
            "lot_weak",
            "below the minimum",
        ),
        (
            2,
            lots("EURUSD", 0.01, 0.015, 0.03),
            "lot_moderate",
            "not on the volume step",
        ),
        (
            3,
            lots("EURUSD", 0.01, 0.02, 150.0),
            "lot_strong",
            "above the maximum",
        ),
        (
            4,
            lots("EURUSD", 0.01, 0.02, 1000.5),
            "lot_strong",
            "<= 1000",
        ),
    ] {
        let r = refusal(desk.decide(&id(n), &cmd, None, &w.view(), nonce));
        assert_eq!(r.code, RefusalCode::InvalidField, "{r}");
        assert_eq!(r.field.as_deref(), Some(field), "{r}");
        assert!(r.message.contains(words), "{r}");
        if n < 4 {
            assert!(
                r.message
                    .contains("EURUSD trades 0.01 to 100 lots in steps of 0.01"),
                "{r}"
            );
        }
    }
    assert_eq!(
        desk.decide(
            &id(5),
            &lots("EURUSD", 0.01, 0.02, 0.07),
            None,
            &w.view(),
            nonce
        ),
        Step::Run(Effect::Settings(lots("EURUSD", 0.01, 0.02, 0.07)))
    );
    // No rules known (paper book, or not yet fetched): the config's range only.
    assert!(matches!(
        desk.decide(
            &id(6),
            &lots("US500", 0.015, 0.02, 0.07),
            None,
            &w.view(),
            nonce
        ),
        Step::Run(_)
    ));
}

#[test]
fn an_unknown_symbol_is_refused_naming_the_field_and_what_is_traded() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    for (n, cmd) in [
        (1, lots("XAUUSD", 0.01, 0.02, 0.03)),
        (
            2,
            Command::SetEnabled {
                symbol: sym("XAUUSD"),
                enabled: true,
            },
        ),
        (
            3,
            Command::Flatten {
                symbol: Some(sym("XAUUSD")),
                books: Books::All,
            },
        ),
    ] {
        let r = refusal(desk.decide(&id(n), &cmd, None, &w.view(), nonce));
        assert_eq!(r.code, RefusalCode::UnknownSymbol);
        assert_eq!(r.field.as_deref(), Some("symbol"));
        assert!(r.message.contains("EURUSD US500"), "{r}");
    }
}

#[test]
fn risk_limits_out_of_range_are_refused_naming_the_field() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    let r = refusal(desk.decide(
        &id(1),
        &Command::SetRiskLimits(RiskLimits {
            max_daily_loss_pct: Some(150.0),
            ..RiskLimits::default()
        }),
        None,
        &w.view(),
        nonce,
    ));
    assert_eq!(r.field.as_deref(), Some("max_daily_loss_pct"));
    let ok = Command::SetRiskLimits(RiskLimits {
        max_open_positions: Some(5),
        ..RiskLimits::default()
    });
    assert_eq!(
        desk.decide(&id(2), &ok, None, &w.view(), nonce),
        Step::Run(Effect::Settings(ok))
    );
}

#[test]
fn the_kill_switch_wins_over_resume_and_not_over_reducing_risk() {
    let mut w = World::shadow();
    w.kill.file = true;
    let mut desk = CommandDesk::default();
    let r = refusal(desk.decide(&id(1), &Command::Resume, None, &w.view(), nonce));
    assert_eq!(r.code, RefusalCode::KillSwitch);
    assert!(r.message.contains("KILL file"), "{r}");
    w.kill = KillSwitch {
        file: false,
        control: true,
    };
    let r = refusal(desk.decide(&id(2), &Command::Resume, None, &w.view(), nonce));
    assert!(r.message.contains("CONTROL|KILL_SWITCH|ON"), "{r}");
    // Pausing, flattening and settings still run: none of them opens anything.
    assert_eq!(
        desk.decide(&id(3), &Command::Pause, None, &w.view(), nonce),
        Step::Run(Effect::Pause)
    );
    assert!(matches!(
        desk.decide(
            &id(4),
            &lots("EURUSD", 0.01, 0.02, 0.03),
            None,
            &w.view(),
            nonce
        ),
        Step::Run(Effect::Settings(_))
    ));
}

#[test]
fn flatten_runs_only_once_confirmed_and_names_the_books_it_closes() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    let flatten = Command::Flatten {
        symbol: None,
        books: Books::All,
    };
    let Step::Answer(CommandResult::NeedsConfirmation { nonce: n, .. }) =
        desk.decide(&id(1), &flatten, None, &w.view(), nonce)
    else {
        panic!("a Flatten must ask for a confirmation first");
    };
    // A wrong nonce, then the right one under a new id.
    let wrong = Nonce::from_random([1; 16]);
    let r = refusal(desk.decide(&id(2), &flatten, Some(&wrong), &w.view(), nonce));
    assert_eq!(r.code, RefusalCode::BadConfirmation);
    assert_eq!(
        desk.decide(&id(3), &flatten, Some(&n), &w.view(), nonce),
        Step::Run(Effect::Flatten {
            symbol: None,
            books: Books::All
        })
    );
    // A nonce confirms once.
    let r = refusal(desk.decide(&id(4), &flatten, Some(&n), &w.view(), nonce));
    assert_eq!(r.code, RefusalCode::BadConfirmation);
}

#[test]
fn flatten_of_a_book_the_executor_does_not_run_is_refused() {
    let mut w = World::shadow();
    w.live = false;
    w.rules.clear();
    let mut desk = CommandDesk::default();
    let r = refusal(desk.decide(
        &id(1),
        &Command::Flatten {
            symbol: None,
            books: Books::Live,
        },
        None,
        &w.view(),
        nonce,
    ));
    assert_eq!(r.field.as_deref(), Some("books"));
    assert!(r.message.contains("no live book"), "{r}");
    // `all` in paper mode is the paper book.
    let all = Command::Flatten {
        symbol: None,
        books: Books::All,
    };
    let Step::Answer(CommandResult::NeedsConfirmation { nonce: n, .. }) =
        desk.decide(&id(2), &all, None, &w.view(), nonce)
    else {
        panic!("confirmation expected");
    };
    assert_eq!(
        desk.decide(&id(3), &all, Some(&n), &w.view(), nonce),
        Step::Run(Effect::Flatten {
            symbol: None,
            books: Books::Paper
        })
    );
}

#[test]
fn restored_ids_are_answered_and_an_interrupted_one_is_never_run() {
    let w = World::shadow();
    let done = CommandResult::Ok {
        detail: Some("paused".into()),
    };
    let mut desk = CommandDesk::restore([(&id(1), Some(&done)), (&id(2), None)]);
    assert_eq!(
        desk.decide(&id(1), &Command::Pause, None, &w.view(), nonce),
        Step::Answer(done)
    );
    assert_eq!(
        desk.decide(&id(2), &Command::Resume, None, &w.view(), nonce),
        Step::Answer(interrupted())
    );
}

#[test]
fn status_is_not_remembered_and_memory_is_bounded() {
    let w = World::shadow();
    let mut desk = CommandDesk::default();
    assert_eq!(
        desk.decide(&id(1), &Command::Status, None, &w.view(), nonce),
        Step::Run(Effect::Status)
    );
    desk.finish(
        &id(1),
        &Command::Status,
        &CommandResult::Ok { detail: None },
    );
    assert!(!desk.seen(&id(1)));
    assert!(!journaled(&Command::Status) && journaled(&Command::Reload));
    for i in 0..(ANSWERS_KEPT + 10) as u32 {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&i.to_le_bytes());
        let cid = CommandId::from_random(b);
        desk.finish(&cid, &Command::Pause, &CommandResult::Ok { detail: None });
    }
    assert_eq!(desk.answers.len(), ANSWERS_KEPT);
    assert_eq!(desk.order.len(), ANSWERS_KEPT);
}
