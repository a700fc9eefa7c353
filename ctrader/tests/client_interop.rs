//! Interoperability with Spotware's official message classes (`ctrader-open-api` on PyPI): frames we
//! encode must decode there with every required field present and the same values, and frames
//! built there must decode here. Needs `$ORACLE_PYTHON` (set by scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use bytes::BytesMut;
use ctrader::codec::FrameCodec;
use ctrader::domain::{SpotQuote, Timeframe, TrendbarPeriod, closed_bar};
use ctrader::messages::*;
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

fn python() -> PathBuf {
    match std::env::var_os("ORACLE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "ORACLE_PYTHON is not set: run the tests via scripts/test.sh (it creates scripts/.venv with ctrader-open-api)"
        ),
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python_decode.py")
}

fn run_python(mode: &str, file: &std::path::Path) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(script()).arg(mode);
    if !file.as_os_str().is_empty() {
        cmd.arg(file);
    }
    let out = cmd.output().expect("run $ORACLE_PYTHON");
    assert!(
        out.status.success(),
        "python_decode.py {mode} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn trade_data(volume: i64) -> ProtoOaTradeData {
    ProtoOaTradeData {
        symbol_id: 1,
        volume,
        trade_side: ProtoOaTradeSide::Buy as i32,
        label: Some("EURUSD|M15|B:2026-02-03T10:15:00Z|LONG_WEAK".into()),
        ..Default::default()
    }
}

#[test]
fn rust_frames_decode_with_the_official_classes() {
    let account = 42;
    let msgs: Vec<ProtoMessage> = vec![
        ProtoOaApplicationAuthReq {
            client_id: "cid".into(),
            client_secret: "s3cret".into(),
            ..Default::default()
        }
        .wrap(Some("r1".into())),
        ProtoOaAccountAuthReq {
            ctid_trader_account_id: account,
            access_token: "tok".into(),
            ..Default::default()
        }
        .wrap(Some("r2".into())),
        ProtoOaNewOrderReq {
            ctid_trader_account_id: account,
            symbol_id: 1,
            order_type: ProtoOaOrderType::Market as i32,
            trade_side: ProtoOaTradeSide::Sell as i32,
            volume: 150_000,
            label: Some("EURUSD|M15".into()),
            client_order_id: Some("cid-9".into()),
            ..Default::default()
        }
        .wrap(Some("r3".into())),
        ProtoOaClosePositionReq {
            ctid_trader_account_id: account,
            position_id: 777,
            volume: 150_000,
            ..Default::default()
        }
        .wrap(None),
        ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: account,
            symbol_id: vec![1, 2, 3],
            subscribe_to_spot_timestamp: Some(true),
            ..Default::default()
        }
        .wrap(None),
        ProtoOaGetTrendbarsReq {
            ctid_trader_account_id: account,
            from_timestamp: 1_769_000_000_000,
            to_timestamp: 1_770_000_000_000,
            period: ProtoOaTrendbarPeriod::H1 as i32,
            symbol_id: 1,
            count: Some(700),
            ..Default::default()
        }
        .wrap(None),
        ProtoHeartbeatEvent::default().wrap(None),
        ProtoOaExecutionEvent {
            ctid_trader_account_id: account,
            execution_type: ProtoOaExecutionType::OrderFilled as i32,
            position: Some(ProtoOaPosition {
                position_id: 777,
                trade_data: trade_data(150_000),
                position_status: ProtoOaPositionStatus::PositionStatusOpen as i32,
                swap: 0,
                price: Some(1.08542),
                ..Default::default()
            }),
            deal: Some(ProtoOaDeal {
                deal_id: 9,
                order_id: 5,
                position_id: 777,
                volume: 150_000,
                filled_volume: 150_000,
                symbol_id: 1,
                create_timestamp: 1,
                execution_timestamp: 2,
                trade_side: ProtoOaTradeSide::Buy as i32,
                deal_status: ProtoOaDealStatus::Filled as i32,
                execution_price: Some(1.08542),
                ..Default::default()
            }),
            ..Default::default()
        }
        .wrap(Some("r4".into())),
    ];
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::default();
    for m in &msgs {
        codec.encode(m, &mut buf).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frames.bin");
    std::fs::write(&file, &buf).unwrap();

    let lines: Vec<Value> = run_python("decode", &file)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), msgs.len());
    for (m, v) in msgs.iter().zip(&lines) {
        let ours = Payload::decode(m).unwrap();
        assert_eq!(at(v, "payloadType"), &Value::from(m.payload_type));
        assert_eq!(
            at(v, "name").as_str(),
            Some(ours.name()),
            "official name for payload type {}",
            m.payload_type
        );
        assert_eq!(
            at(v, "missing_required"),
            &Value::Array(vec![]),
            "{}: {v}",
            ours.name()
        );
        match &m.client_msg_id {
            Some(id) => assert_eq!(at(v, "clientMsgId").as_str(), Some(id.as_str())),
            None => assert!(at(v, "clientMsgId").is_null()),
        }
    }
    // Field values, as the official classes read them (int64 print as strings in proto JSON).
    assert_eq!(at(&lines[0], "fields.clientSecret"), "s3cret");
    assert_eq!(at(&lines[1], "fields.ctidTraderAccountId"), "42");
    assert_eq!(at(&lines[2], "fields.volume"), "150000");
    assert_eq!(at(&lines[2], "fields.tradeSide"), 2);
    assert_eq!(at(&lines[2], "fields.orderType"), 1);
    assert_eq!(at(&lines[2], "fields.clientOrderId"), "cid-9");
    assert_eq!(at(&lines[3], "fields.positionId"), "777");
    assert_eq!(
        at(&lines[4], "fields.symbolId"),
        &serde_json::json!(["1", "2", "3"])
    );
    assert_eq!(at(&lines[5], "fields.period"), 9);
    assert_eq!(at(&lines[5], "fields.count"), 700);
    assert_eq!(at(&lines[7], "fields.executionType"), 3);
    assert_eq!(
        at(&lines[7], "fields.position.tradeData.label"),
        "EURUSD|M15|B:2026-02-03T10:15:00Z|LONG_WEAK"
    );
    assert_eq!(at(&lines[7], "fields.deal.executionPrice"), 1.08542);
}

#[test]
fn official_frames_decode_here() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("official.bin");
    let n: usize = run_python("encode", &file).trim().parse().unwrap();
    let mut buf = BytesMut::from(&std::fs::read(&file).unwrap()[..]);
    let mut codec = FrameCodec::default();
    let mut got = Vec::new();
    while let Some(m) = codec.decode_eof(&mut buf).unwrap() {
        got.push((m.client_msg_id.clone(), Payload::decode(&m).unwrap()));
    }
    assert_eq!(got.len(), n);
    let mut it = got.into_iter();

    assert!(matches!(it.next().unwrap().1, Payload::HeartbeatEvent(_)));
    let (id, p) = it.next().unwrap();
    assert_eq!(
        (id.as_deref(), p.name()),
        (Some("r1"), "ProtoOAApplicationAuthRes")
    );

    let Payload::SpotEvent(spot) = it.next().unwrap().1 else {
        panic!("spot expected")
    };
    let q = SpotQuote::from_event(&spot);
    assert_eq!(
        (q.symbol_id, q.bid, q.ask, q.timestamp_ms),
        (1, Some(1.08542), Some(1.0855), Some(1_770_000_123_456))
    );
    let tb = &spot.trendbar[0];
    assert_eq!(
        Timeframe::from_proto(tb.period.unwrap()).unwrap(),
        Timeframe::M15
    );
    let bar = closed_bar(tb).unwrap();
    assert_eq!(
        (bar.open, bar.high, bar.low, bar.close, bar.volume),
        (1.085, 1.0856, 1.0848, 1.08542, 1234)
    );
    assert_eq!(bar.time, 29_500_000 * 60);

    let (id, p) = it.next().unwrap();
    let Payload::ExecutionEvent(ev) = p else {
        panic!("execution expected")
    };
    assert_eq!(id.as_deref(), Some("r7"));
    assert_eq!(ev.execution_type(), ProtoOaExecutionType::OrderFilled);
    let pos = ev.position.unwrap();
    assert_eq!(
        (
            pos.position_id,
            pos.trade_data.volume,
            pos.trade_data.trade_side()
        ),
        (777, 150_000, ProtoOaTradeSide::Sell)
    );
    assert_eq!(pos.trade_data.label.as_deref(), Some("EURUSD|M15"));
    assert_eq!(ev.order.unwrap().client_order_id.as_deref(), Some("cid-9"));
    let deal = ev.deal.unwrap();
    assert_eq!(
        (deal.deal_id, deal.deal_status(), deal.execution_price),
        (999, ProtoOaDealStatus::Filled, Some(1.08542))
    );

    let Payload::SymbolByIdRes(sym) = it.next().unwrap().1 else {
        panic!("symbols expected")
    };
    let vol = ctrader::domain::SymbolVolume::from_symbol("EURUSD", &sym.symbol[0]).unwrap();
    assert_eq!(vol.lots_to_volume(0.015).unwrap(), 100_000);
    assert_eq!((vol.digits, sym.symbol[0].pip_position), (5, 4));

    let Payload::ErrorRes(err) = it.next().unwrap().1 else {
        panic!("error expected")
    };
    let code = ctrader::domain::ErrorCode::parse(&err.error_code);
    assert!(code.needs_token_refresh());
    assert_eq!(err.maintenance_end_timestamp, Some(1_770_003_600));

    let Payload::OrderErrorEvent(oe) = it.next().unwrap().1 else {
        panic!("order error expected")
    };
    assert_eq!(
        (oe.error_code.as_str(), oe.position_id),
        ("NOT_ENOUGH_MONEY", Some(777))
    );

    let (_, p) = it.next().unwrap();
    assert!(
        matches!(
            p,
            Payload::Unknown {
                payload_type: 2155,
                ..
            }
        ),
        "depth events are kept as Unknown: {p:?}"
    );
}

#[test]
fn every_modelled_payload_type_has_the_official_name() {
    let names: Value =
        serde_json::from_str(&run_python("names", std::path::Path::new(""))).unwrap();
    assert!(
        names.as_object().unwrap().len() > Payload::KNOWN.len(),
        "the official table is a superset"
    );
    for (payload_type, name) in Payload::KNOWN {
        assert_eq!(
            names[payload_type.to_string()].as_str(),
            Some(*name),
            "payload type {payload_type}"
        );
    }
}
