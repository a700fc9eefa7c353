//! The fleet contract end to end: every record round-trips through `decode`, every refusal of a
//! record and of a signed command is reachable and typed, and any tampered byte is caught.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleet::ed25519_dalek::SigningKey;
use fleet::limits::{MAX_COMMAND_BYTES, MAX_RECORD_BYTES, MAX_SYMBOLS};
use fleet::*;
use proptest::prelude::*;
use protocol::{BarTime, Mode, Symbol, Timeframe};

const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn pos(side: Side, lots: f64, pnl: f64) -> Position {
    Position { side, lots, pnl }
}

fn telemetry(n: usize) -> Telemetry {
    Telemetry {
        mode: Mode::Shadow,
        equity: 10_012.5,
        balance: 10_000.0,
        margin: Some(33.1),
        paper_equity: Some(10_020.0),
        day_pnl: 12.5,
        daily_loss: LossUse {
            used_pct: 0.0,
            limit_pct: 5.0,
        },
        total_loss: LossUse {
            used_pct: 0.25,
            limit_pct: 10.0,
        },
        broker_link: BrokerLink::Up,
        paused: false,
        kill_switch: false,
        open_positions: 1,
        symbols: (0..n)
            .map(|i| SymbolTelemetry {
                symbol: sym(&format!("SYM{i}")),
                enabled: true,
                virtual_position: pos(Side::Long, 0.01, 3.2),
                paper: Some(pos(Side::Long, 0.01, 1.0)),
                live: Some(pos(Side::Flat, 0.0, 0.0)),
                last_bar: Some(LastBar {
                    timeframe: Timeframe::M15,
                    open_time: "2026-01-01T00:00:00Z".parse().unwrap(),
                    close: 1.1,
                }),
            })
            .collect(),
    }
}

fn bar(open: f64, high: f64, low: f64, close: f64, volume: f64) -> BarRecord {
    BarRecord {
        symbol: sym("EURUSD"),
        timeframe: Timeframe::M15,
        open_time: "2026-02-03T10:15:00Z".parse().unwrap(),
        open,
        high,
        low,
        close,
        volume,
    }
}

fn encode<B: serde::Serialize>(seq: u64, body: B) -> Vec<u8> {
    Record::new(seq, NOW, body).to_bytes()
}

#[test]
fn every_stream_round_trips() {
    let cases: Vec<(Stream, Vec<u8>, Body)> = vec![
        {
            let s = Status::Online {
                mode: Mode::Paper,
                version: "0.1.0".into(),
                started_ms: NOW,
            };
            (Stream::Status, encode(1, &s), Body::Status(s))
        },
        (
            Stream::Status,
            encode(2, Status::Offline),
            Body::Status(Status::Offline),
        ),
        {
            let t = telemetry(3);
            (
                Stream::Telemetry,
                encode(5, &t),
                Body::Telemetry(Box::new(t)),
            )
        },
        {
            let s = SignalRecord {
                line: "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1".into(),
            };
            (Stream::Signals, encode(9, &s), Body::Signal(s))
        },
        {
            let a = AckRecord {
                book: Book::Live,
                line: "ACK|EURUSD|LONG_WEAK|OK|T:42|P:1.08512|B:2026-02-03T10:15:00Z".into(),
            };
            (Stream::Acks, encode(9, &a), Body::Ack(a))
        },
        {
            let b = bar(1.1, 1.2, 1.0, 1.15, 120.0);
            (Stream::Bars, encode(77, &b), Body::Bar(b))
        },
        {
            let d = DriftRecord {
                symbol: sym("EURUSD"),
                bar_time: "2026-02-03T10:15:00Z".parse().unwrap(),
                target: pos(Side::Long, 0.01, 0.0),
                live: Some(pos(Side::Flat, 0.0, 0.0)),
                paper: Some(pos(Side::Long, 0.01, 0.0)),
                in_sync: false,
                reason: Some("MARKET_CLOSED".into()),
                slippage_points: None,
            };
            (Stream::Drift, encode(3, &d), Body::Drift(d))
        },
        {
            let o = CommandOutcome {
                command_id: Some(CommandId::from_random([3; 16])),
                origin: Origin::Hub,
                op: Some("status".into()),
                result: CommandResult::Status(Box::new(StatusDocument {
                    mode: Mode::Shadow,
                    version: "0.1.0".into(),
                    started_ms: NOW,
                    paused: true,
                    kill_switch: false,
                    risk: RiskSettings {
                        max_daily_loss_pct: 5.0,
                        max_total_loss_pct: 10.0,
                        min_equity: 0.0,
                        max_open_positions: 20,
                        max_total_lots: 100.0,
                    },
                    symbols: vec![SymbolSettings {
                        symbol: sym("EURUSD"),
                        enabled: true,
                        lots: Lots {
                            lot_weak: 0.01,
                            lot_moderate: 0.03,
                            lot_strong: 0.05,
                        },
                    }],
                    telemetry: telemetry(1),
                    books: vec![BookStatus {
                        book: Book::Live,
                        equity: Some(100_012.5),
                        balance: Some(100_000.0),
                        symbols: vec![BookSymbol {
                            symbol: sym("EURUSD"),
                            positions: vec![HeldPosition {
                                position_id: 12345,
                                side: Side::Long,
                                lots: 0.01,
                                entry_price: Some(1.08542),
                                pnl: Some(12.5),
                            }],
                            last_signal: Some(
                                "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:15:00Z|N:1".into(),
                            ),
                            last_ack: Some(
                                "ACK|EURUSD|LONG_WEAK|OK|T:12345|P:1.08542|B:2026-02-03T10:15:00Z"
                                    .into(),
                            ),
                        }],
                    }],
                    limits: vec![LimitUse {
                        book: Book::Live,
                        name: "max_open_positions".into(),
                        used: 1.0,
                        limit: 20.0,
                    }],
                })),
            };
            (
                Stream::CommandResults,
                encode(4, &o),
                Body::CommandResult(Box::new(o)),
            )
        },
    ];
    for (stream, bytes, want) in cases {
        let got = decode(stream, &bytes).unwrap_or_else(|e| panic!("{stream}: {e}"));
        assert_eq!(got.body, want, "{stream}");
        assert_eq!(got.v, 1);
        assert!(got.seq >= 1);
        assert_eq!(got.ts_ms, NOW);
    }
}

#[test]
fn the_documented_example_decodes() {
    // The telemetry example of docs/HUB.md, verbatim shape.
    let text = r#"{"v":1,"seq":1842,"ts_ms":1767225600000,"body":{"mode":"shadow","equity":10012.5,
      "balance":10000.0,"margin":33.1,"paper_equity":10020.0,"day_pnl":12.5,
      "daily_loss":{"used_pct":0.0,"limit_pct":5.0},"total_loss":{"used_pct":0.25,"limit_pct":10.0},
      "broker_link":"up","paused":false,"kill_switch":false,"open_positions":1,
      "symbols":[{"symbol":"EURUSD","enabled":true,"virtual":{"side":"LONG","lots":0.01,"pnl":3.2},
      "paper":{"side":"LONG","lots":0.01,"pnl":1.0},"live":{"side":"LONG","lots":0.01,"pnl":0.9},
      "last_bar":{"timeframe":"M15","open_time":"2026-01-01T00:00:00Z","close":1.1}}],
      "future_field":"ignored within v1"}}"#;
    let r = decode(Stream::Telemetry, text.as_bytes()).unwrap();
    assert_eq!(r.seq, 1842);
    let Body::Telemetry(t) = r.body else { panic!() };
    assert_eq!(t.symbols[0].live, Some(pos(Side::Long, 0.01, 0.9)));
}

fn refused(stream: Stream, bytes: &[u8]) -> RecordError {
    decode(stream, bytes).expect_err("must be refused")
}

#[test]
fn every_record_refusal() {
    let big = vec![b' '; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        refused(Stream::Bars, &big),
        RecordError::TooLarge { .. }
    ));
    assert!(matches!(
        refused(Stream::Bars, b"{not json"),
        RecordError::Malformed { .. }
    ));
    assert!(matches!(
        refused(Stream::Bars, b"[1,2,3]"),
        RecordError::Malformed { .. }
    ));
    let mut v2 = Record::new(1, NOW, bar(1.0, 1.0, 1.0, 1.0, 0.0));
    v2.v = 2;
    assert!(matches!(
        refused(Stream::Bars, &v2.to_bytes()),
        RecordError::Version { v: 2, .. }
    ));
    assert!(matches!(
        refused(Stream::Bars, &encode(0, bar(1.0, 1.0, 1.0, 1.0, 0.0))),
        RecordError::ZeroSeq { .. }
    ));
    let old = Record::new(1, 12, bar(1.0, 1.0, 1.0, 1.0, 0.0)).to_bytes();
    let e = refused(Stream::Bars, &old);
    assert!(e.to_string().contains("ts_ms"), "{e}");
    // A body of another stream's shape.
    assert!(matches!(
        refused(Stream::Bars, &encode(1, Status::Offline)),
        RecordError::Malformed { .. }
    ));
    let invalid = |stream, bytes: Vec<u8>, field: &str| match refused(stream, &bytes) {
        RecordError::Invalid { invalid, .. } => assert_eq!(invalid.field, field, "{invalid}"),
        other => panic!("{other}"),
    };
    invalid(
        Stream::Bars,
        encode(1, bar(1.0, 0.9, 0.8, 1.0, 1.0)),
        "high",
    );
    invalid(
        Stream::Bars,
        encode(1, bar(1.0, 1.1, 1.05, 1.0, 1.0)),
        "low",
    );
    invalid(
        Stream::Bars,
        encode(1, bar(1.0, 1.1, 0.9, 1.0, -1.0)),
        "volume",
    );
    // The bar rules of scripts/ENV.md §1, as every bars file is read: a tick volume is whole, and
    // no price lies beyond ±1e9.
    for (b, field) in [
        (bar(1.0, 1.1, 0.9, 1.0, 1.5), "volume"),
        (bar(1.0, 2e9, 0.9, 1.0, 1.0), "high"),
    ] {
        invalid(Stream::Bars, encode(1, b), field);
    }
    let mut t = telemetry(1);
    t.symbols[0].live = Some(pos(Side::Flat, 2.0, 0.0));
    invalid(Stream::Telemetry, encode(1, &t), "symbols[].live");
    let mut t = telemetry(1);
    t.symbols[0].virtual_position = pos(Side::Short, -1.0, 0.0);
    invalid(Stream::Telemetry, encode(1, &t), "symbols[].virtual");
    invalid(
        Stream::Telemetry,
        encode(1, telemetry(MAX_SYMBOLS + 1)),
        "symbols",
    );
    invalid(
        Stream::Signals,
        encode(
            1,
            SignalRecord {
                line: "SIGNAL|EURUSD|JUMP|3|0.00".into(),
            },
        ),
        "line",
    );
    invalid(
        Stream::Signals,
        encode(
            1,
            SignalRecord {
                line: "ACK|EURUSD|LONG_WEAK|OK".into(),
            },
        ),
        "line",
    );
    invalid(
        Stream::Status,
        encode(
            1,
            Status::Online {
                mode: Mode::Live,
                version: "x\u{7}".into(),
                started_ms: NOW,
            },
        ),
        "version",
    );
    // NaN cannot be written as JSON; a hostile sender writes a huge exponent instead.
    let inf = br#"{"v":1,"seq":1,"ts_ms":1767225600000,"body":{"symbol":"EURUSD","timeframe":"M15","open_time":"2026-02-03T10:15:00Z","open":1e999,"high":1,"low":1,"close":1,"volume":0}}"#;
    assert!(decode(Stream::Bars, inf).is_err());
}

proptest! {
    #[test]
    fn bars_round_trip(
        open in 0.0001f64..1e6, up in 0.0f64..1e3, down in 0.0f64..1e3, frac in 0.0f64..=1.0,
        volume in 0u64..1_000_000_000_000, seq in 1u64..u64::MAX, secs in 0i64..4_000_000_000i64,
    ) {
        let low = (open - down).max(0.0);
        let high = open + up;
        let close = low + (high - low) * frac;
        let b = BarRecord {
            symbol: sym("XAUUSD"),
            timeframe: Timeframe::H1,
            open_time: BarTime::from_unix(secs).unwrap(),
            open, high: high.max(close), low: low.min(close), close, volume: volume as f64,
        };
        let bytes = encode(seq, &b);
        let r = decode(Stream::Bars, &bytes).unwrap();
        prop_assert_eq!(r.seq, seq);
        prop_assert_eq!(r.body, Body::Bar(b));
    }

    #[test]
    fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for s in Stream::ALL {
            let _ = decode(s, &bytes);
        }
        let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
        let _ = verify(&bytes, &key, &me(), NOW, VerifyPolicy::default(), |_| false);
    }
}

// ---------------------------------------------------------------------------------------------
// signed commands

fn me() -> InstanceId {
    InstanceId::new("eu-1").unwrap()
}

fn hub_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn envelope(command: Command) -> CommandEnvelope {
    CommandEnvelope {
        v: 1,
        id: CommandId::from_random([1; 16]),
        instance: me(),
        issued_ms: NOW,
        expires_ms: NOW + 60_000,
        confirm: None,
        command,
    }
}

fn check(bytes: &[u8], now: i64, seen: bool) -> Result<CommandEnvelope, Rejected> {
    verify(
        bytes,
        &hub_key().verifying_key(),
        &me(),
        now,
        VerifyPolicy::default(),
        |_| seen,
    )
}

fn code_of(r: Result<CommandEnvelope, Rejected>) -> (RefusalCode, Option<CommandId>) {
    let e = r.expect_err("must be refused");
    (e.refusal.code, e.id)
}

#[test]
fn a_signed_command_verifies_and_round_trips() {
    let env = envelope(Command::Pause);
    let signed = sign(&env, &hub_key());
    let got = check(&signed.to_bytes(), NOW + 500, false).unwrap();
    assert_eq!(got, env);
    let key_text = signed::encode_public_key(&hub_key().verifying_key());
    assert_eq!(key_text.len(), 44);
    assert_eq!(
        signed::decode_public_key(&key_text).unwrap(),
        hub_key().verifying_key()
    );
    assert!(signed::decode_public_key("abc").is_err());
    assert!(signed::decode_public_key("AAAA").is_err());
}

#[test]
fn every_command_refusal() {
    use RefusalCode::*;
    let good = sign(&envelope(Command::Resume), &hub_key());
    let id = Some(CommandId::from_random([1; 16]));

    let mut big = good.to_bytes();
    big.resize(MAX_COMMAND_BYTES + 1, b' ');
    assert_eq!(code_of(check(&big, NOW, false)), (TooLarge, None));
    assert_eq!(code_of(check(b"pause", NOW, false)), (Malformed, None));
    let mut v9 = good.clone();
    v9.v = 9;
    assert_eq!(
        code_of(check(&v9.to_bytes(), NOW, false)),
        (UnsupportedVersion, None)
    );

    let other_key = SigningKey::from_bytes(&[7; 32]);
    let forged = sign(&envelope(Command::Resume), &other_key);
    assert_eq!(
        code_of(check(&forged.to_bytes(), NOW, false)),
        (BadSignature, None)
    );
    let mut no_sig = good.clone();
    no_sig.sig = "not base64!".into();
    assert_eq!(
        code_of(check(&no_sig.to_bytes(), NOW, false)),
        (BadSignature, None)
    );
    let mut short_sig = good.clone();
    short_sig.sig = "AAAA".into();
    assert_eq!(
        code_of(check(&short_sig.to_bytes(), NOW, false)),
        (BadSignature, None)
    );

    // Signed, but not an envelope: malformed after the signature (so no id is trusted).
    let garbage = SignedCommand {
        v: 1,
        payload: "{}".into(),
        sig: {
            use fleet::ed25519_dalek::Signer;
            base64_encode(&hub_key().sign(b"{}").to_bytes())
        },
    };
    assert_eq!(
        code_of(check(&garbage.to_bytes(), NOW, false)),
        (Malformed, None)
    );

    let mut elsewhere = envelope(Command::Resume);
    elsewhere.instance = InstanceId::new("us-2").unwrap();
    let s = sign(&elsewhere, &hub_key());
    assert_eq!(
        code_of(check(&s.to_bytes(), NOW, false)),
        (WrongInstance, id.clone())
    );

    assert_eq!(
        code_of(check(&good.to_bytes(), NOW + 60_001, false)),
        (Expired, id.clone())
    );
    // Issued 31 s in the instance's future, or 31 s in its past (still unexpired).
    assert_eq!(
        code_of(check(&good.to_bytes(), NOW - 31_000, false)),
        (ClockSkew, id.clone())
    );
    assert_eq!(
        code_of(check(&good.to_bytes(), NOW + 31_000, false)),
        (ClockSkew, id.clone())
    );
    let mut forever = envelope(Command::Resume);
    forever.expires_ms = NOW + 3_600_000;
    let s = sign(&forever, &hub_key());
    assert_eq!(
        code_of(check(&s.to_bytes(), NOW, false)),
        (ClockSkew, id.clone())
    );

    assert_eq!(
        code_of(check(&good.to_bytes(), NOW, true)),
        (Replayed, id.clone())
    );

    let bad_lots = sign(
        &envelope(Command::SetLots {
            symbol: Symbol::new("EURUSD").unwrap(),
            lot_weak: 0.0,
            lot_moderate: 0.1,
            lot_strong: 0.1,
        }),
        &hub_key(),
    );
    let e = check(&bad_lots.to_bytes(), NOW, false).unwrap_err();
    assert_eq!(e.refusal.code, InvalidField);
    assert_eq!(e.refusal.field.as_deref(), Some("lot_weak"));
    assert_eq!(e.op, Some("set_lots"));
}

fn base64_encode(bytes: &[u8]) -> String {
    // The same encoding fleet uses (standard, padded), written out to keep the test independent.
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

proptest! {
    /// Any change to the signed payload text, or to the signature, is refused; none runs.
    #[test]
    fn tampered_bytes_are_refused(pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let signed = sign(&envelope(Command::Flatten { symbol: None, books: Books::All }), &hub_key());
        let mut payload = signed.payload.clone().into_bytes();
        let i = pos.index(payload.len());
        payload[i] ^= flip;
        if let Ok(text) = String::from_utf8(payload) {
            let t = SignedCommand { payload: text, ..signed.clone() };
            let e = check(&t.to_bytes(), NOW, false).unwrap_err();
            prop_assert_eq!(e.refusal.code, RefusalCode::BadSignature);
        }
        let mut sig = signed.sig.clone().into_bytes();
        let j = pos.index(sig.len());
        sig[j] = if sig[j] == b'A' { b'B' } else { b'A' };
        if let Ok(text) = String::from_utf8(sig) && text != signed.sig {
            let t = SignedCommand { sig: text, ..signed.clone() };
            let e = check(&t.to_bytes(), NOW, false).unwrap_err();
            prop_assert_eq!(e.refusal.code, RefusalCode::BadSignature);
        }
    }
}

#[test]
fn flatten_needs_a_confirmation_nonce_used_once() {
    let flatten = Command::Flatten {
        symbol: Some(sym("EURUSD")),
        books: Books::All,
    };
    let mut c = Confirmations::new(4, 60_000);
    let mut n = 0u8;
    let mut fresh = || {
        n += 1;
        Nonce::from_random([n; 16])
    };
    // A non-confirming command runs at once.
    assert_eq!(
        c.gate(&Command::Pause, None, NOW, &mut fresh),
        Gate::Execute
    );
    // Flatten answers needs_confirmation first.
    let Gate::Answer(CommandResult::NeedsConfirmation {
        nonce, expires_ms, ..
    }) = c.gate(&flatten, None, NOW, &mut fresh)
    else {
        panic!("flatten ran without confirmation")
    };
    assert_eq!(expires_ms, NOW + 60_000);
    // The nonce for another command is refused (and spent).
    let other = Command::Flatten {
        symbol: None,
        books: Books::All,
    };
    assert!(matches!(
        c.gate(&other, Some(&nonce), NOW + 1, &mut fresh),
        Gate::Answer(CommandResult::Refused(Refusal {
            code: RefusalCode::BadConfirmation,
            ..
        }))
    ));
    assert!(matches!(
        c.gate(&flatten, Some(&nonce), NOW + 2, &mut fresh),
        Gate::Answer(CommandResult::Refused(_))
    ));
    // A fresh round: confirmed once, then the same nonce is refused.
    let Gate::Answer(CommandResult::NeedsConfirmation { nonce, .. }) =
        c.gate(&flatten, None, NOW, &mut fresh)
    else {
        panic!()
    };
    assert_eq!(
        c.gate(&flatten, Some(&nonce), NOW + 10, &mut fresh),
        Gate::Execute
    );
    assert!(matches!(
        c.gate(&flatten, Some(&nonce), NOW + 11, &mut fresh),
        Gate::Answer(CommandResult::Refused(_))
    ));
    // An expired nonce is refused.
    let Gate::Answer(CommandResult::NeedsConfirmation { nonce, .. }) =
        c.gate(&flatten, None, NOW, &mut fresh)
    else {
        panic!()
    };
    assert!(matches!(
        c.gate(&flatten, Some(&nonce), NOW + 60_001, &mut fresh),
        Gate::Answer(CommandResult::Refused(_))
    ));
    // Bounded: past capacity the oldest pending nonce is forgotten.
    let mut first = None;
    for k in 0..5 {
        if let Gate::Answer(CommandResult::NeedsConfirmation { nonce, .. }) =
            c.gate(&flatten, None, NOW + k, &mut fresh)
        {
            first.get_or_insert(nonce);
        }
    }
    assert!(matches!(
        c.gate(&flatten, first.as_ref(), NOW + 10, &mut fresh),
        Gate::Answer(CommandResult::Refused(_))
    ));
}

#[test]
fn a_bar_record_is_the_bar_on_the_wire() {
    let bar = protocol::Bar {
        time: 1_770_113_700,
        open: 1.08512,
        high: 1.08601,
        low: 1.08477,
        close: 1.08555,
        volume: 1234,
    };
    let rec = BarRecord::new(sym("EURUSD"), Timeframe::M15, &bar).unwrap();
    assert_eq!(rec.open_time.to_string(), "2026-02-03T10:15:00Z");
    assert_eq!(rec.to_bar().unwrap(), bar);
    let r = decode(Stream::Bars, &encode(1, &rec)).unwrap();
    let Body::Bar(back) = r.body else {
        panic!("{:?}", r.body)
    };
    assert_eq!(back.to_bar().unwrap(), bar);
}
