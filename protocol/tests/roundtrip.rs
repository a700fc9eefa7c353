//! Property tests: every valid `Line` survives display → parse unchanged and its display is stable;
//! arbitrary text and bytes never panic the parser, and whatever they parse to is canonical.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use protocol::*;

// --- strategies for valid values ------------------------------------------------------------------

fn symbol() -> impl Strategy<Value = Symbol> {
    "[A-Z0-9._-]{1,32}".prop_map(|s| s.parse().unwrap())
}

fn timeframe() -> impl Strategy<Value = Timeframe> {
    prop::sample::select(Timeframe::ALL.to_vec())
}

fn bar_time() -> impl Strategy<Value = BarTime> {
    (0..=BarTime::MAX_UNIX).prop_map(|s| BarTime::from_unix(s).unwrap())
}

fn decimal() -> impl Strategy<Value = Decimal> {
    "-?(0|[1-9][0-9]{0,14})(\\.[0-9]{1,10})?".prop_map(|s| s.parse().unwrap())
}

fn pnl() -> impl Strategy<Value = Decimal> {
    "-?(0|[1-9][0-9]{0,12})\\.[0-9]{2}".prop_map(|s| s.parse().unwrap())
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        prop::sample::select(Reason::KNOWN.to_vec()),
        // An unknown code; parsing maps a known code's text to its variant, so avoid those.
        "[A-Z0-9_]{1,32}"
            .prop_filter("not a known code", |s| Reason::KNOWN
                .iter()
                .all(|r| r.as_str() != s))
            .prop_map(Reason::Other),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        prop::sample::select(ErrorCode::KNOWN.to_vec()),
        "[A-Z0-9_]{1,32}"
            .prop_filter("not a known code", |s| ErrorCode::KNOWN
                .iter()
                .all(|c| c.as_str() != s))
            .prop_map(ErrorCode::Other),
    ]
}

fn nonce() -> impl Strategy<Value = Nonce> {
    any::<[u8; 32]>().prop_map(Nonce::from_bytes)
}

fn proof() -> impl Strategy<Value = Proof> {
    any::<[u8; 32]>().prop_map(Proof::from_bytes)
}

fn hello() -> impl Strategy<Value = Hello> {
    let version = "[A-Za-z0-9._+-]{1,32}";
    prop_oneof![
        (version, nonce()).prop_map(|(v, n)| Hello::preditor(&v, n).unwrap()),
        (
            version,
            prop::sample::select(Mode::ALL.to_vec()),
            nonce(),
            proof()
        )
            .prop_map(|(v, m, n, p)| Hello::executor(&v, m, n, p).unwrap()),
    ]
}

fn bar() -> impl Strategy<Value = BarLine> {
    (
        symbol(),
        timeframe(),
        bar_time(),
        prop::array::uniform4(decimal()),
        any::<u64>(),
    )
        .prop_map(|(symbol, timeframe, time, mut prices, volume)| {
            // Sorted, the four prices make a consistent bar: low <= open, close <= high.
            prices.sort_by(|a, b| a.to_f64().total_cmp(&b.to_f64()));
            let [low, open, close, high] = prices;
            BarLine {
                symbol,
                timeframe,
                time,
                open,
                high,
                low,
                close,
                volume,
            }
        })
}

fn ack() -> impl Strategy<Value = Ack> {
    let outcome = prop_oneof![
        (any::<Option<u64>>(), proptest::option::of(decimal()))
            .prop_map(|(position_id, price)| AckOutcome::Ok { position_id, price }),
        reason().prop_map(AckOutcome::Fail),
        reason().prop_map(AckOutcome::WaitSync),
    ];
    (
        symbol(),
        action(),
        outcome,
        proptest::option::of(bar_time()),
    )
        .prop_map(|(symbol, action, outcome, bar_time)| Ack {
            symbol,
            action,
            outcome,
            bar_time,
        })
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        hello().prop_map(Line::Hello),
        proof().prop_map(|proof| Line::Auth(Auth { proof })),
        bar().prop_map(Line::Bar),
        (symbol(), timeframe(), 1..=u32::MAX).prop_map(|(symbol, timeframe, count)| Line::Warmup(
            Warmup {
                symbol,
                timeframe,
                count
            }
        )),
        (symbol(), timeframe(), any::<u32>()).prop_map(|(symbol, timeframe, count)| Line::History(
            History {
                symbol,
                timeframe,
                count
            }
        )),
        (symbol(), timeframe())
            .prop_map(|(symbol, timeframe)| Line::HistoryEnd(HistoryEnd { symbol, timeframe })),
        (
            symbol(),
            action(),
            any::<u16>(),
            pnl(),
            proptest::option::of(bar_time()),
            proptest::option::of(1..=u32::MAX)
        )
            .prop_map(|(symbol, action, regime, virtual_pnl, bar_time, held)| {
                Line::Signal(Signal {
                    symbol,
                    action,
                    regime,
                    virtual_pnl,
                    bar_time,
                    held,
                })
            }),
        ack().prop_map(Line::Ack),
        // Any text at all: ErrorLine::new must turn it into something that round-trips.
        (error_code(), any::<String>())
            .prop_map(|(code, text)| Line::Error(ErrorLine::new(code, text))),
    ]
}

/// Whatever the parser accepts must be canonical-stable: display parses back to the same value and
/// displays identically.
fn assert_canonical(line: &Line) -> Result<(), TestCaseError> {
    let text = line.to_string();
    let again: Line = text
        .parse()
        .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
    prop_assert_eq!(&again, line);
    prop_assert_eq!(again.to_string(), text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_lines_round_trip(l in line()) {
        let text = l.to_string();
        prop_assert!(text.len() <= MAX_LINE_LEN, "{} bytes", text.len());
        assert_canonical(&l)?;
    }

    #[test]
    fn messages_of_valid_lines_round_trip(lines in prop::collection::vec(line(), 1..8), trailing_newline: bool) {
        let mut msg = lines.iter().map(Line::to_string).collect::<Vec<_>>().join("\n");
        if trailing_newline {
            msg.push('\n');
        }
        let parsed: Vec<Line> = parse_message(&msg).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parsed, lines);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        match s.parse::<Line>() {
            Ok(l) => assert_canonical(&l)?,
            Err(e) => assert_canonical(&Line::Error(e.to_error_line()))?,
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(l) = text.parse::<Line>() {
            assert_canonical(&l)?;
        }
        for l in parse_message(&text).flatten() {
            assert_canonical(&l)?;
        }
    }

    /// Random strings rarely get past the type field; mutating valid lines probes every field.
    #[test]
    fn mutated_valid_lines_never_panic(
        l in line(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, "[|:A-Z0-9._ \\-\r\n]"), 1..4),
    ) {
        let mut chars: Vec<char> = l.to_string().chars().collect();
        for (at, op, c) in edits {
            let c = c.chars().next().unwrap();
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => { chars.remove(i); }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(parsed) = text.parse::<Line>() {
            assert_canonical(&parsed)?;
        }
    }

    #[test]
    fn bar_time_matches_chrono(secs in 0..=BarTime::MAX_UNIX) {
        let t = BarTime::from_unix(secs).unwrap();
        let want = chrono::DateTime::from_timestamp(secs, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        prop_assert_eq!(t.to_string(), want);
        prop_assert_eq!(t.to_string().parse::<BarTime>().unwrap(), t);
    }

    #[test]
    fn decimal_from_f64_is_within_half_a_unit(v in -1e12f64..1e12, dp in 0usize..=8) {
        let d = Decimal::from_f64(v, dp).unwrap();
        prop_assert_eq!(d.decimals(), dp);
        let tolerance = 0.5 * 10f64.powi(-(dp as i32)) + 4.0 * f64::EPSILON * v.abs().max(1.0);
        prop_assert!((d.to_f64() - v).abs() <= tolerance, "{} vs {}", d, v);
        prop_assert_eq!(d.as_str().parse::<Decimal>().unwrap(), d);
    }
}
