//! Rust-level sessions against the simulator's real I/O shell (TLS listener, per-connection tasks,
//! control socket), speaking through the crate's own `FrameCodec` and message types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctrader::codec::FrameCodec;
use ctrader::messages::*;
use ctrader::sim::bars::load_dir;
use ctrader::sim::core::{CoreConfig, Credentials, SimCore};
use ctrader::sim::server::{ServerConfig, run};
use ctrader::sim::tls;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

const ACCOUNT: i64 = 9_001;
type Conn = Framed<tokio_rustls::client::TlsStream<TcpStream>, FrameCodec>;

struct Sim {
    port: u16,
    control: u16,
    connector: TlsConnector,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<ctrader::sim::latency::LatencyReport>>,
}

async fn start(bars_per_second: f64) -> Sim {
    let series = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")).unwrap();
    let core = SimCore::new(
        series,
        CoreConfig {
            credentials: Credentials {
                client_id: "cid".into(),
                client_secret: "secret".into(),
                access_token: "token".into(),
                refresh_token: "refresh".into(),
                account_id: ACCOUNT,
            },
            start_bar: 20,
            bars_per_second,
            balance_cents: 10_000_000,
            leverage_in_cents: 10_000,
            slippage_points: 1,
            rate_limit: Some(50),
            historical_rate_limit: Some(5),
        },
    )
    .unwrap()
    .with_ticks_per_bar(3);
    let identity = tls::self_signed(&[]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.chain[0].clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (port, control_port) = (
        listener.local_addr().unwrap().port(),
        control.local_addr().unwrap().port(),
    );
    let config = ServerConfig {
        tls: tls::server_config(&identity).unwrap(),
        heartbeat: Duration::from_secs(10),
        idle_timeout: None,
        bars_per_second,
        stats_out: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(core, config, listener, Some(control), async {
        let _ = rx.await;
    }));
    Sim {
        port,
        control: control_port,
        connector: TlsConnector::from(Arc::new(client)),
        stop: Some(tx),
        task,
    }
}

impl Sim {
    async fn connect(&self) -> Conn {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let tls = self
            .connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        Framed::new(tls, FrameCodec::default())
    }

    async fn control(&self, line: &str) -> String {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.control))
            .await
            .unwrap();
        tcp.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let mut answer = String::new();
        BufReader::new(tcp).read_line(&mut answer).await.unwrap();
        answer
    }

    async fn stop(mut self) -> ctrader::sim::latency::LatencyReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap()
    }
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
        client_id: "cid".into(),
        client_secret: "secret".into(),
        ..Default::default()
    };
    assert!(matches!(
        request(conn, &app, "app").await,
        Payload::ApplicationAuthRes(_)
    ));
    let acc = ProtoOaAccountAuthReq {
        ctid_trader_account_id: ACCOUNT,
        access_token: "token".into(),
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
    let mut c = sim.connect().await;
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
    let mut good = sim.connect().await;
    login(&mut good).await;
    let mut bad = sim.connect().await;
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
    let mut c = sim.connect().await;
    login(&mut c).await;
    assert!(sim.control("drop").await.starts_with("OK"));
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);

    let mut c = sim.connect().await;
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
    let mut c = sim.connect().await;
    let app = ProtoOaApplicationAuthReq {
        client_id: "cid".into(),
        client_secret: "secret".into(),
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
    assert!(err.maintenance_end_timestamp.unwrap() > now_ms + 20_000);
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);

    assert!(sim.control("clear").await.starts_with("OK"));
    let mut c = sim.connect().await;
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
    let mut c = sim.connect().await;
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
