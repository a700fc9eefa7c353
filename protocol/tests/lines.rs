//! Unit tests per line type and per value type: values land in the right fields, invalid input is
//! refused naming the right field, and the helpers around the lines behave.
#![allow(clippy::unwrap_used)]

use protocol::*;

fn parse(line: &str) -> Line {
    line.parse()
        .unwrap_or_else(|e| panic!("{line:?} refused: {e}"))
}

fn refused(line: &str) -> ParseError {
    match line.parse::<Line>() {
        Ok(l) => panic!("{line:?} accepted as {l:?}"),
        Err(e) => e,
    }
}

fn sym(s: &str) -> Symbol {
    s.parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn time(s: &str) -> BarTime {
    s.parse().unwrap()
}

const SEED_EXAMPLES: [&str; 6] = [
    "SIGNAL|EURUSD|LONG_WEAK|3|0.00",
    "SIGNAL|EURUSD|WAIT|2|-15.30",
    "SIGNAL|GBPUSD|SHORT_STRONG|1|25.40",
    "ACK|EURUSD|LONG_WEAK|OK|T:12345|P:1.08542",
    "ACK|EURUSD|LONG_MODERATE|FAIL|MARGIN",
    "ACK|USDJPY|LONG_STRONG|WAIT_SYNC|MISSED_ENTRY",
];

#[test]
fn seed_examples_round_trip_byte_for_byte() {
    for line in SEED_EXAMPLES {
        assert_eq!(parse(line).to_string(), line);
    }
}

#[test]
fn seed_examples_carry_the_seed_values() {
    assert_eq!(
        parse(SEED_EXAMPLES[1]),
        Line::Signal(Signal {
            symbol: sym("EURUSD"),
            action: Action::Wait,
            regime: 2,
            virtual_pnl: dec("-15.30"),
            bar_time: None,
            held: None,
        })
    );
    assert_eq!(
        parse(SEED_EXAMPLES[3]),
        Line::Ack(Ack::ok(
            sym("EURUSD"),
            Action::LongWeak,
            Some(12345),
            Some(dec("1.08542"))
        ))
    );
    assert_eq!(
        parse(SEED_EXAMPLES[4]),
        Line::Ack(Ack::fail(
            sym("EURUSD"),
            Action::LongModerate,
            Reason::Margin
        ))
    );
    assert_eq!(
        parse(SEED_EXAMPLES[5]),
        Line::Ack(Ack::wait_sync(
            sym("USDJPY"),
            Action::LongStrong,
            Reason::MissedEntry
        ))
    );
}

// --- HELLO ---------------------------------------------------------------------------------------

const NONCE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PROOF: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

#[test]
fn hello_both_roles_and_auth() {
    let nonce: Nonce = NONCE.parse().unwrap();
    let proof: Proof = PROOF.parse().unwrap();
    assert_eq!(
        parse(&format!("HELLO|preditor|0.1.0|{NONCE}")),
        Line::Hello(Hello::preditor("0.1.0", nonce).unwrap())
    );
    let Line::Hello(h) = parse(&format!("HELLO|executor|1.2.3|shadow|{NONCE}|{PROOF}")) else {
        panic!()
    };
    assert_eq!(
        h,
        Hello::Executor {
            version: "1.2.3".into(),
            mode: Mode::Shadow,
            nonce,
            proof,
        }
    );
    assert_eq!(h.version(), "1.2.3");
    assert_eq!(parse(&format!("AUTH|{PROOF}")), Line::Auth(Auth { proof }));
}

#[test]
fn hello_refusals_name_the_field() {
    assert_eq!(refused("HELLO|robot|0.1.0|t").field(), "role");
    assert_eq!(refused("HELLO|preditor|0.1.0").field(), "nonce");
    assert_eq!(refused("HELLO|executor|0.1.0|live2").field(), "mode");
    assert_eq!(refused("HELLO|executor|v 1|live").field(), "version");
    assert_eq!(refused("HELLO|executor|0.1.0|live|x").field(), "nonce");
    assert_eq!(refused("AUTH|x").field(), "proof");
}

#[test]
fn handshake_values_never_show_in_logs_or_errors() {
    // An older preditor put its token where the nonce is: logs show `***` for every handshake value.
    let line = parse(&format!("HELLO|preditor|0.1.0|{NONCE}"));
    assert!(!format!("{line:?}").contains(NONCE));
    assert_eq!(line.redacted().to_string(), "HELLO|preditor|0.1.0|***");
    let line = parse(&format!("HELLO|executor|0.1.0|live|{NONCE}|{PROOF}"));
    assert_eq!(
        line.redacted().to_string(),
        "HELLO|executor|0.1.0|live|***|***"
    );
    assert!(!format!("{line:?}").contains(PROOF));
    assert_eq!(
        parse(&format!("AUTH|{PROOF}")).redacted().to_string(),
        "AUTH|***"
    );
    // The wire form must carry them, of course.
    assert!(line.to_string().ends_with(PROOF));
    // Non-handshake lines are not changed by redaction.
    let signal = parse(SEED_EXAMPLES[0]);
    assert_eq!(signal.redacted().to_string(), SEED_EXAMPLES[0]);
}

#[test]
fn hello_constructors_validate() {
    let (n, p) = (NONCE.parse().unwrap(), PROOF.parse().unwrap());
    assert!(Hello::preditor("has|pipe", n).is_err());
    assert!(Hello::preditor(&"1".repeat(Hello::MAX_VERSION_LEN + 1), n).is_err());
    assert!(Hello::executor("", Mode::Live, n, p).is_err());
    assert!(Hello::executor("0.1.0", Mode::Paper, n, p).is_ok());
}

// --- BAR -----------------------------------------------------------------------------------------

const DESIGN_BAR: &str = "BAR|EURUSD|M15|2026-02-03T10:15:00Z|1.08500|1.08560|1.08480|1.08542|1234";

#[test]
fn bar_fields() {
    let Line::Bar(b) = parse(DESIGN_BAR) else {
        panic!()
    };
    assert_eq!(b.symbol.as_str(), "EURUSD");
    assert_eq!(b.timeframe, Timeframe::M15);
    assert_eq!(b.time.unix_seconds(), 1_770_113_700);
    assert_eq!(b.open.as_str(), "1.08500");
    assert_eq!(b.high.as_str(), "1.08560");
    assert_eq!(b.low.as_str(), "1.08480");
    assert_eq!(b.close.to_f64(), 1.08542);
    assert_eq!(b.volume, 1234);
    assert_eq!(Line::Bar(b).to_string(), DESIGN_BAR);
}

#[test]
fn bar_refusals_name_the_field() {
    let with = |i: usize, v: &str| {
        let mut f: Vec<&str> = DESIGN_BAR.split('|').collect();
        f[i] = v;
        f.join("|")
    };
    for (i, field, bad) in [
        (1, "symbol", "EUR USD"),
        (2, "timeframe", "H2"),
        (3, "time", "2026-02-03T10:15Z"),
        (4, "open", "1.08.5"),
        (5, "high", "-"),
        (6, "low", "1e-3"),
        (7, "close", "1.08542 "),
        (8, "volume", "12.5"),
    ] {
        assert_eq!(refused(&with(i, bad)).field(), field, "{bad:?} in {field}");
    }
    assert_eq!(
        refused(&with(6, "1.08600")).field(),
        "low",
        "low above high"
    );
    assert_eq!(
        refused(&with(4, "1.08400")).field(),
        "open",
        "open below low"
    );
    assert_eq!(
        refused(&with(7, "1.08561")).field(),
        "close",
        "close above high"
    );
}

// --- WARMUP / HISTORY / HISTORY_END --------------------------------------------------------------

#[test]
fn warmup_history_exchange() {
    assert_eq!(
        parse("WARMUP|EURUSD|M15|700"),
        Line::Warmup(Warmup {
            symbol: sym("EURUSD"),
            timeframe: Timeframe::M15,
            count: 700
        })
    );
    assert_eq!(
        parse("HISTORY|EURUSD|M15|0"),
        Line::History(History {
            symbol: sym("EURUSD"),
            timeframe: Timeframe::M15,
            count: 0
        })
    );
    assert_eq!(
        parse("HISTORY_END|EURUSD|M15"),
        Line::HistoryEnd(HistoryEnd {
            symbol: sym("EURUSD"),
            timeframe: Timeframe::M15
        })
    );
    assert_eq!(refused("WARMUP|EURUSD|M15|0").field(), "count");
    assert_eq!(refused("HISTORY|EURUSD|X1|1").field(), "timeframe");
    assert_eq!(refused("HISTORY_END|EUR$|M15").field(), "symbol");
}

// --- SIGNAL --------------------------------------------------------------------------------------

#[test]
fn signal_extensions() {
    let line = "SIGNAL|EURUSD|SHORT_MODERATE|4|-15.30|B:2026-02-03T10:15:00Z|N:7";
    let Line::Signal(s) = parse(line) else {
        panic!()
    };
    assert_eq!(s.action, Action::ShortModerate);
    assert_eq!(s.regime, 4);
    assert_eq!(s.virtual_pnl.to_f64(), -15.3);
    assert_eq!(s.bar_time, Some(time("2026-02-03T10:15:00Z")));
    assert_eq!(s.held, Some(7));
    // Canonical order is B then N whatever the input order; unknown keys are dropped.
    let swapped = "SIGNAL|EURUSD|SHORT_MODERATE|4|-15.30|X_NEW:1|N:7|B:2026-02-03T10:15:00Z";
    assert_eq!(parse(swapped).to_string(), line);
}

#[test]
fn signal_refusals_name_the_field() {
    for (line, field) in [
        ("SIGNAL|EURUSD|BUY|3|0.00", "action"),
        ("SIGNAL|EURUSD|WAIT|x|0.00", "regime"),
        ("SIGNAL|EURUSD|WAIT|3|1.5", "virtual_pnl"),
        ("SIGNAL|EURUSD|WAIT|3|0.00|N:0", "held"),
        (
            "SIGNAL|EURUSD|WAIT|3|0.00|B:2026-13-01T00:00:00Z",
            "bar_time",
        ),
        (
            "SIGNAL|EURUSD|WAIT|3|0.00|B:2026-02-03T10:15:00Z|B:2026-02-03T10:15:00Z",
            "bar_time",
        ),
        ("SIGNAL|EURUSD|WAIT|3|0.00|N1", "extension"),
    ] {
        let e = refused(line);
        assert_eq!(
            (e.line_type(), e.field()),
            (Some("SIGNAL"), field),
            "{line}: {e}"
        );
    }
    assert!(matches!(
        refused("SIGNAL|EURUSD|WAIT|3|0.00|N:2|N:2").kind(),
        ParseErrorKind::DuplicateKey("N")
    ));
}

#[test]
fn signal_identity_salvages_symbol_and_action_from_a_bad_signal() {
    assert_eq!(
        signal_identity("SIGNAL|EURUSD|LONG_WEAK|oops"),
        Some((sym("EURUSD"), Action::LongWeak))
    );
    assert_eq!(signal_identity("SIGNAL|EURUSD|HOLD|3|0.00"), None);
    assert_eq!(signal_identity("ACK|EURUSD|LONG_WEAK|OK"), None);
}

// --- ACK -----------------------------------------------------------------------------------------

#[test]
fn ack_outcomes_and_bar_echo() {
    let b = time("2026-02-03T10:15:00Z");
    let ok = Ack::ok(sym("EURUSD"), Action::LongWeak, Some(7), None).with_bar_time(Some(b));
    assert_eq!(
        Line::Ack(ok.clone()).to_string(),
        "ACK|EURUSD|LONG_WEAK|OK|T:7|B:2026-02-03T10:15:00Z"
    );
    assert_eq!(
        parse("ACK|EURUSD|LONG_WEAK|OK|B:2026-02-03T10:15:00Z|T:7"),
        Line::Ack(ok)
    );
    let Line::Ack(a) = parse("ACK|EURUSD|WAIT|FAIL|NEW_REASON_9") else {
        panic!()
    };
    assert_eq!(
        a.outcome,
        AckOutcome::Fail(Reason::Other("NEW_REASON_9".into()))
    );
    assert_eq!(a.outcome.as_str(), "FAIL");
}

#[test]
fn ack_refusals_name_the_field() {
    for (line, field) in [
        ("ACK|EURUSD|LONG_WEAK|MAYBE", "outcome"),
        ("ACK|EURUSD|LONG_WEAK|FAIL", "reason"),
        ("ACK|EURUSD|LONG_WEAK|WAIT_SYNC|missed", "reason"),
        ("ACK|EURUSD|LONG_WEAK|OK|T:1.5", "position_id"),
        ("ACK|EURUSD|LONG_WEAK|OK|P:abc", "price"),
        ("ACK|EURUSD|LONG_WEAK|FAIL|MARGIN|T:5", "position_id"),
        ("ACK|EURUSD|LONG_WEAK|OK|B:2026-02-03", "bar_time"),
    ] {
        assert_eq!(refused(line).field(), field, "{line}");
    }
}

#[test]
fn reason_codes_are_all_distinct_and_round_trip() {
    assert_eq!(Reason::KNOWN.len(), 24);
    for r in Reason::KNOWN {
        assert_eq!(r.as_str().parse::<Reason>().unwrap(), *r);
        assert!(!matches!(
            r.as_str().parse::<Reason>().unwrap(),
            Reason::Other(_)
        ));
    }
    let mut codes: Vec<&str> = Reason::KNOWN.iter().map(Reason::as_str).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), Reason::KNOWN.len());
}

// --- ERROR ---------------------------------------------------------------------------------------

#[test]
fn error_text_is_the_rest_of_the_line() {
    let Line::Error(e) = parse("ERROR|UNAUTHENTICATED|send HELLO|preditor|<v>|<token> first")
    else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::Unauthenticated);
    assert_eq!(e.text, "send HELLO|preditor|<v>|<token> first");
}

#[test]
fn error_line_new_makes_untrusted_text_safe() {
    let e = ErrorLine::new(ErrorCode::Malformed, "  bad\r\nline\t ");
    assert_eq!(e.text, "bad  line");
    assert_eq!(ErrorLine::new(ErrorCode::Internal, "\n").text, "-");
    let long = ErrorLine::new(ErrorCode::Malformed, "é".repeat(5000));
    let text = Line::Error(long).to_string();
    assert!(text.len() <= MAX_LINE_LEN, "{}", text.len());
    assert!(text.parse::<Line>().is_ok());
    // Display sanitises a hand-built ErrorLine too, so what goes on the wire always parses.
    let raw = Line::Error(ErrorLine {
        code: ErrorCode::Internal,
        text: "a\nb".into(),
    });
    assert_eq!(raw.to_string(), "ERROR|INTERNAL|a b");
}

#[test]
fn parse_errors_become_error_replies() {
    let reply = |line: &str| refused(line).to_error_line();
    assert_eq!(
        reply("SIGNAL|EURUSD|WAIT|x|0.00").code,
        ErrorCode::Malformed
    );
    assert_eq!(reply("PING").code, ErrorCode::UnknownType);
    assert_eq!(
        reply(&"A".repeat(MAX_LINE_LEN + 1)).code,
        ErrorCode::TooLong
    );
    let text = Line::Error(reply("SIGNAL|EURUSD|WAIT|x|0.00")).to_string();
    assert!(
        text.starts_with("ERROR|MALFORMED|SIGNAL line, field regime:"),
        "{text}"
    );
    assert!(text.parse::<Line>().is_ok());
}

// --- whole lines and messages -------------------------------------------------------------------

#[test]
fn line_length_limit() {
    let pad = |n: usize| format!("ERROR|INTERNAL|{}", "x".repeat(n - "ERROR|INTERNAL|".len()));
    assert!(pad(MAX_LINE_LEN).parse::<Line>().is_ok());
    let e = refused(&pad(MAX_LINE_LEN + 1));
    assert_eq!(
        e.kind(),
        &ParseErrorKind::TooLong {
            len: MAX_LINE_LEN + 1
        }
    );
    assert_eq!(e.field(), "line");
}

#[test]
fn carriage_return_is_refused() {
    let e = refused("SIGNAL|EURUSD|WAIT|2|-15.30\r");
    assert_eq!(e.kind(), &ParseErrorKind::ForbiddenChar('\r'));
}

#[test]
fn message_with_several_lines() {
    let msg = "HISTORY|EURUSD|M15|1\nBAR|EURUSD|M15|2026-02-03T10:15:00Z|1|1|1|1|0\nHISTORY_END|EURUSD|M15\n";
    let lines: Vec<Line> = parse_message(msg).collect::<Result<_, _>>().unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1].line_type(), "BAR");
    // A bad line in the middle is reported in place; its neighbours still parse.
    let mixed: Vec<_> =
        parse_message("WARMUP|EURUSD|M15|1\n\nPING\r\nWARMUP|EURUSD|M15|2").collect();
    assert_eq!(mixed.len(), 4);
    assert!(mixed[0].is_ok() && mixed[3].is_ok());
    assert_eq!(
        mixed[1].as_ref().unwrap_err().kind(),
        &ParseErrorKind::EmptyLine
    );
    assert_eq!(
        mixed[2].as_ref().unwrap_err().kind(),
        &ParseErrorKind::ForbiddenChar('\r')
    );
}

#[test]
fn parse_error_display_names_type_field_and_fix() {
    let e = refused("WARMUP|EURUSD|M15|zero");
    assert_eq!(
        e.to_string(),
        "WARMUP line, field count: expected a bar count 1..=4294967295, got \"zero\""
    );
    assert!(std::error::Error::source(&e).is_some());
}

// --- value types ---------------------------------------------------------------------------------

#[test]
fn actions_follow_the_seed_metadata_table() {
    // (index, name, direction, intensity) from the seed's "actions" JSON.
    let table = [
        (0, "WAIT", 0, 0),
        (1, "LONG_WEAK", 1, 1),
        (2, "LONG_MODERATE", 1, 2),
        (3, "LONG_STRONG", 1, 3),
        (4, "SHORT_WEAK", -1, 1),
        (5, "SHORT_MODERATE", -1, 2),
        (6, "SHORT_STRONG", -1, 3),
    ];
    for (index, name, direction, intensity) in table {
        let a = Action::from_index(index).unwrap();
        assert_eq!((a.index(), a.as_str()), (index, name));
        assert_eq!(a.direction().sign(), direction);
        assert_eq!(a.intensity().level(), intensity);
        assert_eq!(name.parse::<Action>().unwrap(), a);
        let parts = (
            Direction::from_sign(direction).unwrap(),
            Intensity::from_level(intensity).unwrap(),
        );
        assert_eq!(Action::from_parts(parts.0, parts.1), Some(a));
    }
    assert_eq!(Action::from_index(7), None);
    assert_eq!(Action::from_parts(Direction::Flat, Intensity::Weak), None);
    assert_eq!(Action::from_parts(Direction::Long, Intensity::None), None);
}

#[test]
fn timeframes() {
    for tf in Timeframe::ALL {
        assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
    }
    assert_eq!(Timeframe::M15.duration_secs(), Some(900));
    assert_eq!(Timeframe::H12.duration_secs(), Some(43_200));
    assert_eq!(Timeframe::W1.duration_secs(), Some(604_800));
    assert_eq!(Timeframe::MN1.duration_secs(), None);
}

#[test]
fn bar_time_conversions() {
    let t = time("2026-02-03T10:15:00Z");
    assert_eq!(BarTime::from_unix(t.unix_seconds()).unwrap(), t);
    assert_eq!(
        BarTime::from_unix(0).unwrap().to_string(),
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        BarTime::from_unix(BarTime::MAX_UNIX).unwrap().to_string(),
        "9999-12-31T23:59:59Z"
    );
    assert!(BarTime::from_unix(-1).is_err());
    assert!(BarTime::from_unix(BarTime::MAX_UNIX + 1).is_err());
    assert_eq!(
        time("2024-02-29T00:00:00Z").to_string(),
        "2024-02-29T00:00:00Z"
    );
    assert!("2023-02-29T00:00:00Z".parse::<BarTime>().is_err());
}

#[test]
fn bar_close_per_timeframe() {
    let t = time("2026-02-03T10:15:00Z");
    assert_eq!(
        t.bar_close(Timeframe::M15),
        Some(time("2026-02-03T10:30:00Z"))
    );
    assert_eq!(
        t.bar_close(Timeframe::D1),
        Some(time("2026-02-04T10:15:00Z"))
    );
    // MN1 closes on the calendar month, not a fixed length.
    assert_eq!(
        time("2024-02-01T00:00:00Z").bar_close(Timeframe::MN1),
        Some(time("2024-03-01T00:00:00Z"))
    );
    assert_eq!(
        time("2024-03-01T00:00:00Z").bar_close(Timeframe::MN1),
        Some(time("2024-04-01T00:00:00Z"))
    );
    assert_eq!(time("9999-12-31T23:59:00Z").bar_close(Timeframe::H1), None);
}

#[test]
fn decimals_keep_their_text() {
    assert_eq!(dec("1.08500").as_str(), "1.08500");
    assert_ne!(dec("1.0"), dec("1.00"));
    assert_eq!(dec("-15.30").decimals(), 2);
    assert_eq!(dec("42").decimals(), 0);
    for bad in [
        "", "+1", "-", "1.", ".1", "1e5", "NaN", "inf", "-inf", "00", "0x10", "1_000", " 1",
    ] {
        assert!(bad.parse::<Decimal>().is_err(), "{bad:?} accepted");
    }
    assert!("-0.00".parse::<Decimal>().is_ok());
}

#[test]
fn decimal_from_f64() {
    assert_eq!(Decimal::from_f64(-15.3, 2).unwrap().as_str(), "-15.30");
    assert_eq!(Decimal::from_f64(1.085_42, 5).unwrap().as_str(), "1.08542");
    assert_eq!(Decimal::from_f64(-0.001, 2).unwrap().as_str(), "0.00");
    assert_eq!(Decimal::from_f64(-0.0, 0).unwrap().as_str(), "0");
    assert_eq!(Decimal::from_f64(1234.5, 0).unwrap().as_str(), "1234");
    assert!(Decimal::from_f64(f64::NAN, 2).is_err());
    assert!(Decimal::from_f64(f64::INFINITY, 2).is_err());
    assert!(Decimal::from_f64(1e300, 2).is_err(), "longer than MAX_LEN");
    assert!(Decimal::from_f64(1.0, Decimal::MAX_DECIMALS + 1).is_err());
}

#[test]
fn symbols() {
    for ok in [
        "EURUSD",
        "US500",
        "BRK.B",
        "EUR_USD-X",
        "A",
        &"Z".repeat(Symbol::MAX_LEN),
    ] {
        assert_eq!(Symbol::new(ok).unwrap().as_str(), ok);
    }
    for bad in [
        "",
        "eurusd",
        "EUR USD",
        "EUR/USD",
        "ÉURUSD",
        &"Z".repeat(Symbol::MAX_LEN + 1),
    ] {
        assert!(Symbol::new(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn whole_line_errors_read_well() {
    assert_eq!(
        refused("PING").to_string(),
        "line type: \"PING\" is not a line type; expected one of HELLO AUTH BAR WARMUP HISTORY HISTORY_END SIGNAL ACK ERROR"
    );
    let long = "A".repeat(MAX_LINE_LEN + 4);
    assert_eq!(
        refused(&long).to_string(),
        "line: 4100 bytes, the limit is 4096 bytes"
    );
    assert_eq!(
        refused("").to_string(),
        "line: empty (nothing between two \\n)"
    );
}

#[test]
fn display_of_a_hand_built_oversized_code_does_not_panic() {
    let line = Line::Error(ErrorLine {
        code: ErrorCode::Other("X".repeat(5000)),
        text: "t".into(),
    });
    // Not a valid line (the code is too long), but formatting it must not panic.
    assert!(line.to_string().parse::<Line>().is_err());
}
