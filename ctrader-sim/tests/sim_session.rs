//! Rust-level sessions against the simulator's real I/O shell (TLS listener, per-connection tasks,
//! control socket), speaking through the crate's own `FrameCodec` and message types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ACCESS_TOKEN, ACCOUNT, CLIENT_ID, CLIENT_SECRET, Conn, Sim};
use ctrader::messages::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

/// The simulator these sessions talk to: real limits, 3 intermediate spots per bar.
async fn start(bars_per_second: f64) -> Sim {
    Sim::start_with_ticks(bars_per_second, 3).await
}

/// Sends `m` and returns the first message carrying its clientMsgId (events in between are skipped).
async fn request<M: OpenApiMessage>(conn: &mut Conn, m: &M, id: &str) -> Payload {
    conn.send(m.wrap(Some(id.to_string()))).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .expect("answer in time");
        let frame = frame.expect("connection open").expect("valid frame");
        if frame.client_msg_id.as_deref() == Some(id) {
            return Payload::decode(&frame).unwrap();
        }
    }
}

async fn login(conn: &mut Conn) {
    let app = ProtoOaApplicationAuthReq {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..Default::default()
    };
    assert!(matches!(
        request(conn, &app, "app").await,
        Payload::ApplicationAuthRes(_)
    ));
    let acc = ProtoOaAccountAuthReq {
        ctid_trader_account_id: ACCOUNT,
        access_token: ACCESS_TOKEN.into(),
        ..Default::default()
    };
    assert!(matches!(
        request(conn, &acc, "acc").await,
        Payload::AccountAuthRes(_)
    ));
}

/// True when the server closed the connection (EOF or a TLS close) within `within`.
async fn closed_within(conn: &mut Conn, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn order_round_trip_over_tls_with_spots_and_latency() {
    let sim = start(20.0).await;
    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    let sub = ProtoOaSubscribeSpotsReq {
        ctid_trader_account_id: ACCOUNT,
        symbol_id: vec![1],
        ..Default::default()
    };
    assert!(matches!(
        request(&mut c, &sub, "sub").await,
        Payload::SubscribeSpotsRes(_)
    ));
    // Wait for a bar close to be published (a spot stamped just before the hour), then order.
    loop {
        let frame = c.next().await.unwrap().unwrap();
        if let Ok(Payload::SpotEvent(s)) = Payload::decode(&frame)
            && s.timestamp.is_some_and(|t| t % 3_600_000 == 3_599_999)
        {
            break;
        }
    }
    let order = ProtoOaNewOrderReq {
        ctid_trader_account_id: ACCOUNT,
        symbol_id: 1,
        order_type: ProtoOaOrderType::Market as i32,
        trade_side: ProtoOaTradeSide::Sell as i32,
        volume: 100_000,
        label: Some("rust".into()),
        ..Default::default()
    };
    let Payload::ExecutionEvent(accepted) = request(&mut c, &order, "ord").await else {
        panic!("execution event expected")
    };
    assert_eq!(
        accepted.execution_type,
        ProtoOaExecutionType::OrderAccepted as i32
    );
    let Payload::ExecutionEvent(filled) =
        Payload::decode(&c.next().await.unwrap().unwrap()).unwrap()
    else {
        panic!("ORDER_FILLED must follow ORDER_ACCEPTED")
    };
    assert_eq!(
        filled.execution_type,
        ProtoOaExecutionType::OrderFilled as i32
    );
    let position = filled.position.unwrap();
    let close = ProtoOaClosePositionReq {
        ctid_trader_account_id: ACCOUNT,
        position_id: position.position_id,
        volume: 100_000,
        ..Default::default()
    };
    assert!(matches!(
        request(&mut c, &close, "close").await,
        Payload::ExecutionEvent(_)
    ));
    let report = sim.stop().await;
    let eurusd = &report.per_symbol["EURUSD"];
    assert!(eurusd.count >= 1 && eurusd.max_us > 0, "{report:?}");
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let sim = start(1.0).await;
    let mut good = sim.connect_raw().await;
    login(&mut good).await;
    let mut bad = sim.connect_raw().await;
    // A valid length prefix around bytes that are not a ProtoMessage (field 1 with a bad wire type).
    bad.get_mut()
        .write_all(&[0, 0, 0, 3, 0x0f, 0xff, 0xff])
        .await
        .unwrap();
    bad.get_mut().flush().await.unwrap();
    assert!(
        closed_within(&mut bad, Duration::from_secs(5)).await,
        "the malformed connection must be closed"
    );
    let v = request(&mut good, &ProtoOaVersionReq::default(), "v").await;
    assert!(matches!(v, Payload::VersionRes(_)), "{v:?}");
    sim.stop().await;
}

#[tokio::test]
async fn control_socket_drops_connections_and_starts_maintenance() {
    let sim = start(1.0).await;
    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    assert!(sim.control("drop").await.starts_with("OK"));
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);

    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    assert!(sim.control("maintenance 30s").await.starts_with("OK"));
    // The open session is told when maintenance ends, then disconnected.
    let notice = tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Ok(Payload::ErrorRes(notice)) = Payload::decode(&notice) else {
        panic!("maintenance notice expected")
    };
    assert_eq!(notice.error_code, "SERVER_IS_UNDER_MAINTENANCE");
    assert!(notice.maintenance_end_timestamp.is_some());
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);
    let mut c = sim.connect_raw().await;
    let app = ProtoOaApplicationAuthReq {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        ..Default::default()
    };
    let Payload::ErrorRes(err) = request(&mut c, &app, "m").await else {
        panic!("maintenance error expected")
    };
    assert_eq!(err.error_code, "SERVER_IS_UNDER_MAINTENANCE");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // In seconds, as ProtoOAErrorRes documents it.
    let end_s = err.maintenance_end_timestamp.unwrap();
    assert!(
        (now_ms / 1000 + 20..=now_ms / 1000 + 31).contains(&end_s),
        "{end_s} s vs now {now_ms} ms"
    );
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);

    assert!(sim.control("clear").await.starts_with("OK"));
    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    assert!(
        sim.control("explode")
            .await
            .starts_with("ERR unknown command")
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_stall_holds_the_stream_then_delivers_everything() {
    let sim = start(1.0).await;
    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    assert!(sim.control("stall 3s").await.starts_with("OK"));
    c.send(ProtoOaVersionReq::default().wrap(Some("v".into())))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1000), c.next())
            .await
            .is_err(),
        "nothing may arrive during a stall"
    );
    let frame = tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.client_msg_id.as_deref(), Some("v"));
    sim.stop().await;
}

/// The `closed_bars=` figure of a `status` answer.
fn closed_bars(status: &str) -> usize {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("closed_bars="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no closed_bars in {status:?}"))
}

#[tokio::test]
async fn pause_holds_the_replay_clock_and_resume_lets_it_run_on() {
    // 20 bars/s: a clock that kept running would close ~10 bars during the 500 ms hold below.
    let sim = Sim::start(20.0).await;
    let mut c = sim.connect_raw().await;
    login(&mut c).await;
    let paused = sim.control("pause").await;
    assert!(paused.starts_with("OK paused=true"), "{paused}");
    let at_pause = closed_bars(&paused);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = sim.control("status").await;
    assert!(status.contains("paused=true"), "{status}");
    assert_eq!(closed_bars(&status), at_pause, "no bar closes while held");
    // `clear` resets faults, not the replay clock.
    assert!(sim.control("clear").await.starts_with("OK"));
    assert!(sim.control("status").await.contains("paused=true"));
    let resumed = sim.control("resume").await;
    assert!(resumed.starts_with("OK paused=false"), "{resumed}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = closed_bars(&sim.control("status").await);
        if now > at_pause {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replay did not run on after resume (still {now} closed bars)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.stop().await;
}
