//! Hot-path costs of the wire layer: framing a market order, and turning an incoming spot event
//! (with a live trendbar) into domain values. Prints per-operation figures; run with
//! `cargo bench -p ctrader --bench codec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ctrader::codec::FrameCodec;
use ctrader::domain::{SpotQuote, closed_bar};
use ctrader::messages::*;
use tokio_util::codec::{Decoder, Encoder};

const BATCH: usize = 1_000;
const BATCHES: usize = 300;

/// Runs `op` in batches and prints the median and 99th percentile per operation.
fn measure(name: &str, mut op: impl FnMut()) {
    for _ in 0..BATCH * 10 {
        op();
    }
    let mut per_op: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                op();
            }
            t.elapsed() / BATCH as u32
        })
        .collect();
    per_op.sort();
    let p50 = per_op[BATCHES / 2];
    let p99 = per_op[BATCHES * 99 / 100];
    println!(
        "{name:<40} p50 {:>7} ns/op   p99 {:>7} ns/op",
        p50.as_nanos(),
        p99.as_nanos()
    );
}

fn main() {
    let order = ProtoOaNewOrderReq {
        ctid_trader_account_id: 1_000_001,
        symbol_id: 1,
        order_type: ProtoOaOrderType::Market as i32,
        trade_side: ProtoOaTradeSide::Buy as i32,
        volume: 1_000_000,
        label: Some("EURUSD|H1|2026-02-03T10:00:00Z|LONG_WEAK".into()),
        client_order_id: Some("EURUSD-H1-1770112800-1".into()),
        ..Default::default()
    };
    let mut codec = FrameCodec::default();
    let mut out = BytesMut::with_capacity(4096);
    measure("wrap + frame NewOrderReq", || {
        out.clear();
        let env = black_box(&order).wrap(Some("r12345".into()));
        codec.encode(&env, &mut out).expect("encodes");
        black_box(&out);
    });

    let spot = ProtoOaSpotEvent {
        ctid_trader_account_id: 1_000_001,
        symbol_id: 1,
        bid: Some(108_542),
        ask: Some(108_550),
        trendbar: vec![ProtoOaTrendbar {
            volume: 1234,
            period: Some(ProtoOaTrendbarPeriod::H1 as i32),
            low: Some(108_480),
            delta_open: Some(20),
            delta_close: Some(62),
            delta_high: Some(80),
            utc_timestamp_in_minutes: Some(29_500_000),
        }],
        timestamp: Some(1_770_000_123_456),
        ..Default::default()
    };
    let mut wire = BytesMut::new();
    codec.encode(&spot.wrap(None), &mut wire).expect("encodes");
    let frame = wire.freeze();
    let mut buf = BytesMut::with_capacity(4096);
    measure("unframe + decode SpotEvent -> domain", || {
        buf.extend_from_slice(&frame);
        let env = codec.decode(&mut buf).expect("valid").expect("complete");
        let Ok(Payload::SpotEvent(ev)) = Payload::decode(&env) else {
            unreachable!("a spot event was encoded")
        };
        let quote = SpotQuote::from_event(&ev);
        let bar = closed_bar(&ev.trendbar[0]).expect("valid bar");
        black_box((quote, bar));
    });
}
