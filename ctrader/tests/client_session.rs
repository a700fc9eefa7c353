//! Session behaviours the simulator does not provoke, against a scripted TLS peer speaking the real
//! framing: the server logging the account out, invalidating the token, sending message types we
//! do not model, and staying quiet while alive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{is_ready, wait_for};
use ctrader::client::{ClientConfig, ClientEvent, ConnectionEvent, connect};
use ctrader::codec::FrameCodec;
use ctrader::messages::*;
use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

const ACCOUNT: i64 = 77;
/// Symbols in the peer's list: about 4 MiB encoded.
const BIG_SYMBOL_LIST: i64 = 60_000;

/// What the peer does once a connection has been reconciled: `(connection index) -> frames`.
type AfterSetup = fn(usize) -> Vec<ProtoMessage>;

struct Peer {
    port: u16,
    cert: tempfile::NamedTempFile,
    /// Every request received: (connection index, payload).
    seen: Arc<Mutex<Vec<(usize, Payload)>>>,
}

async fn start_peer(after_setup: AfterSetup, heartbeats: bool) -> Peer {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        cert.signing_key.serialize_der(),
    ));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), cert.cert.pem()).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    // The access token the peer accepts, across connections (revoked and rotated like the real one).
    let valid = Arc::new(Mutex::new(common::ACCESS_TOKEN.to_string()));
    tokio::spawn(async move {
        let mut index = 0;
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            tokio::spawn(serve(
                Framed::new(tls, FrameCodec::default()),
                index,
                log.clone(),
                valid.clone(),
                after_setup,
                heartbeats,
            ));
            index += 1;
        }
    });
    Peer {
        port,
        cert: pem,
        seen,
    }
}

async fn serve(
    mut conn: Framed<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, FrameCodec>,
    index: usize,
    log: Arc<Mutex<Vec<(usize, Payload)>>>,
    valid: Arc<Mutex<String>>,
    after_setup: AfterSetup,
    heartbeats: bool,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let frame = tokio::select! {
            f = conn.next() => match f { Some(Ok(f)) => f, _ => return },
            _ = tick.tick(), if heartbeats => {
                let _ = conn.send(ProtoHeartbeatEvent::default().wrap(None)).await;
                continue;
            }
        };
        let id = frame.client_msg_id.clone();
        let payload = Payload::decode(&frame).unwrap();
        log.lock().unwrap().push((index, payload.clone()));
        let answer: Vec<ProtoMessage> = match payload {
            Payload::ApplicationAuthReq(_) => vec![ProtoOaApplicationAuthRes::default().wrap(id)],
            Payload::AccountAuthReq(r) if r.access_token == *valid.lock().unwrap() => {
                vec![
                    ProtoOaAccountAuthRes {
                        ctid_trader_account_id: ACCOUNT,
                        ..Default::default()
                    }
                    .wrap(id),
                ]
            }
            Payload::AccountAuthReq(_) => vec![
                ProtoOaErrorRes {
                    ctid_trader_account_id: Some(ACCOUNT),
                    error_code: "CH_ACCESS_TOKEN_INVALID".into(),
                    description: Some("Invalid access token".into()),
                    ..Default::default()
                }
                .wrap(id),
            ],
            Payload::RefreshTokenReq(r) if r.refresh_token == common::REFRESH_TOKEN => {
                *valid.lock().unwrap() = "token-2".into();
                vec![
                    ProtoOaRefreshTokenRes {
                        access_token: "token-2".into(),
                        token_type: "bearer".into(),
                        expires_in: 2_628_000,
                        refresh_token: "refresh-2".into(),
                        ..Default::default()
                    }
                    .wrap(id),
                ]
            }
            Payload::ReconcileReq(_) => {
                let mut v = vec![
                    ProtoOaReconcileRes {
                        ctid_trader_account_id: ACCOUNT,
                        ..Default::default()
                    }
                    .wrap(id),
                ];
                let extra = after_setup(index);
                if extra
                    .iter()
                    .any(|m| m.payload_type == ProtoOaAccountsTokenInvalidatedEvent::PAYLOAD_TYPE)
                {
                    *valid.lock().unwrap() = "<revoked>".into();
                }
                // The real server closes the connection after a maintenance notice.
                let closes = extra.iter().any(is_maintenance_notice);
                v.extend(extra);
                if closes {
                    for m in v {
                        let _ = conn.send(m).await;
                    }
                    return;
                }
                v
            }
            Payload::VersionReq(_) => vec![
                ProtoOaVersionRes {
                    version: "peer".into(),
                    ..Default::default()
                }
                .wrap(id),
            ],
            // A large broker's symbol list: several MiB in one frame.
            Payload::SymbolsListReq(_) => vec![
                ProtoOaSymbolsListRes {
                    ctid_trader_account_id: ACCOUNT,
                    symbol: (0..BIG_SYMBOL_LIST)
                        .map(|i| ProtoOaLightSymbol {
                            symbol_id: i,
                            symbol_name: Some(format!("SYM{i:06}")),
                            enabled: Some(true),
                            description: Some(format!("A long symbol description, number {i:06}")),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
                .wrap(id),
            ],
            _ => vec![],
        };
        for m in answer {
            if conn.send(m).await.is_err() {
                return;
            }
        }
    }
}

fn is_maintenance_notice(m: &ProtoMessage) -> bool {
    match Payload::decode(m) {
        Ok(Payload::ErrorRes(e)) => e.error_code == "SERVER_IS_UNDER_MAINTENANCE",
        Ok(Payload::CommonErrorRes(e)) => e.error_code == "SERVER_IS_UNDER_MAINTENANCE",
        _ => false,
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Peer {
    /// How many requests received so far match `kind`.
    fn seen_count(&self, kind: impl Fn(&Payload) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| kind(p))
            .count()
    }

    fn config(&self) -> ClientConfig {
        let mut c = common::client_config(self.port, ACCOUNT, self.cert.path());
        c.tls_server_name = Some("localhost".into());
        c.request_timeout = Duration::from_secs(2);
        c.backoff_initial = Duration::from_millis(50);
        c.backoff_max = Duration::from_millis(200);
        c
    }

    fn account_auth_tokens(&self) -> Vec<(usize, String)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|(i, p)| match p {
                Payload::AccountAuthReq(r) => Some((*i, r.access_token.clone())),
                _ => None,
            })
            .collect()
    }
}

/// How long each step of these sessions may take.
const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn account_logged_out_by_the_server_reconnects_and_reauthorises() {
    let peer = start_peer(
        |i| {
            if i == 0 {
                vec![
                    ProtoOaAccountDisconnectEvent {
                        ctid_trader_account_id: ACCOUNT,
                        ..Default::default()
                    }
                    .wrap(None),
                ]
            } else {
                vec![]
            }
        },
        true,
    )
    .await;
    let (_client, mut events) = connect(peer.config()).unwrap();
    wait_for(&mut events, STEP, "first ready", is_ready).await;
    let (_, seen) = wait_for(&mut events, STEP, "second ready", is_ready).await;
    assert!(seen.iter().any(|e| matches!(
        e,
        ClientEvent::AccountDisconnected {
            account_id: ACCOUNT
        }
    )));
    assert!(seen.iter().any(|e| matches!(e, ClientEvent::Connection(ConnectionEvent::Disconnected { reason }) if reason.contains("logged the account out"))));
    assert_eq!(
        peer.account_auth_tokens(),
        vec![(0, "token".to_string()), (1, "token".to_string())]
    );
}

#[tokio::test]
async fn invalidated_token_is_refreshed_on_the_next_connection() {
    let peer = start_peer(
        |i| {
            if i == 0 {
                vec![
                    ProtoOaAccountsTokenInvalidatedEvent {
                        ctid_trader_account_ids: vec![ACCOUNT],
                        reason: Some("revoked".into()),
                        ..Default::default()
                    }
                    .wrap(None),
                ]
            } else {
                vec![]
            }
        },
        true,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = ctrader::client::TokenStore::new(dir.path().join("t.json"));
    let mut cfg = peer.config();
    cfg.token_store = Some(store.clone());
    let (client, mut events) = connect(cfg).unwrap();
    wait_for(&mut events, STEP, "first ready", is_ready).await;
    let (_, seen) = wait_for(&mut events, STEP, "second ready", is_ready).await;
    assert!(seen.iter().any(|e| matches!(e, ClientEvent::TokenInvalidated { account_ids, .. } if account_ids == &vec![ACCOUNT])));
    assert!(
        seen.iter()
            .any(|e| matches!(e, ClientEvent::Connection(ConnectionEvent::TokenRefreshed)))
    );
    // Old token refused on connection 1, refreshed, then accepted with the new one.
    assert_eq!(
        peer.account_auth_tokens(),
        vec![
            (0, "token".to_string()),
            (1, "token".to_string()),
            (1, "token-2".to_string())
        ]
    );
    assert_eq!(store.load().unwrap().refresh_token, "refresh-2");
    assert_eq!(client.tokens().access_token, "token-2");
}

#[tokio::test]
async fn unknown_and_malformed_messages_do_not_break_the_session() {
    let peer = start_peer(
        |_| {
            vec![
                // A depth event (not modelled here) and a spot event whose payload is garbage.
                ProtoMessage {
                    payload_type: 2155,
                    payload: Some(vec![0x10, 0x01]),
                    client_msg_id: None,
                },
                ProtoMessage {
                    payload_type: 2131,
                    payload: Some(vec![0xff, 0xff, 0xff]),
                    client_msg_id: None,
                },
            ]
        },
        true,
    )
    .await;
    let (client, mut events) = connect(peer.config()).unwrap();
    wait_for(&mut events, STEP, "ready", is_ready).await;
    let (other, _) = wait_for(&mut events, STEP, "unknown message", |e| {
        matches!(e, ClientEvent::Other(_))
    })
    .await;
    let ClientEvent::Other(p) = other else {
        unreachable!()
    };
    assert_eq!(p.payload_type(), 2155);
    assert_eq!(
        client.version().await.unwrap(),
        "peer",
        "the connection survived the garbage"
    );
}

#[tokio::test]
async fn a_quiet_but_alive_server_is_probed_not_dropped() {
    let peer = start_peer(|_| vec![], false).await;
    let mut cfg = peer.config();
    cfg.heartbeat_interval = Duration::from_millis(200);
    cfg.dead_after = Duration::from_millis(700);
    let (_client, mut events) = connect(cfg).unwrap();
    wait_for(&mut events, STEP, "ready", is_ready).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(
                ev,
                ClientEvent::Connection(ConnectionEvent::Disconnected { .. })
            ),
            "{ev:?}"
        );
    }
    let probes = peer.seen_count(|p| matches!(p, Payload::VersionReq(_)));
    let heartbeats = peer.seen_count(|p| matches!(p, Payload::HeartbeatEvent(_)));
    assert!(probes >= 3, "probes sent: {probes}");
    assert!(heartbeats >= 5, "heartbeats sent: {heartbeats}");
}

#[tokio::test]
async fn a_symbol_list_of_several_mebibytes_is_read_not_a_reconnect_loop() {
    let peer = start_peer(|_| vec![], true).await;
    let (client, mut events) = connect(peer.config()).unwrap();
    wait_for(&mut events, STEP, "ready", is_ready).await;
    let symbols = client.symbols().await.unwrap();
    assert_eq!(symbols.len(), BIG_SYMBOL_LIST as usize);
    let encoded = ProtoOaSymbolsListRes {
        ctid_trader_account_id: ACCOUNT,
        symbol: symbols,
        ..Default::default()
    }
    .wrap(None)
    .encoded_len();
    assert!(encoded > 2 * 1024 * 1024, "the answer was {encoded} bytes");
    while let Some(ev) = events.try_recv() {
        assert!(
            !matches!(
                ev,
                ClientEvent::Connection(ConnectionEvent::Disconnected { .. })
            ),
            "{ev:?}"
        );
    }
}

/// `ProtoOAErrorRes.maintenanceEndTimestamp` is Unix seconds, `ProtoErrorRes`'s Unix milliseconds
/// (spotware/openapi-proto-messages): the client waits until the announced end either way.
#[tokio::test]
async fn maintenance_end_is_read_in_seconds_from_oa_errors_and_in_ms_from_common_errors() {
    let peer = start_peer(
        |i| match i {
            0 => vec![
                ProtoOaErrorRes {
                    error_code: "SERVER_IS_UNDER_MAINTENANCE".into(),
                    maintenance_end_timestamp: Some(wall_ms() / 1000 + 2),
                    ..Default::default()
                }
                .wrap(None),
            ],
            1 => vec![
                ProtoErrorRes {
                    error_code: "SERVER_IS_UNDER_MAINTENANCE".into(),
                    maintenance_end_timestamp: u64::try_from(wall_ms() + 1_500).ok(),
                    ..Default::default()
                }
                .wrap(None),
            ],
            _ => vec![],
        },
        true,
    )
    .await;
    let (_client, mut events) = connect(peer.config()).unwrap();
    let mut waits = Vec::new();
    for n in 0..2 {
        let (ev, _) = wait_for(&mut events, STEP, "a reconnect scheduled", |e| {
            matches!(
                e,
                ClientEvent::Connection(ConnectionEvent::ReconnectScheduled { .. })
            )
        })
        .await;
        let ClientEvent::Connection(ConnectionEvent::ReconnectScheduled {
            delay,
            maintenance_end_ms,
            ..
        }) = ev
        else {
            unreachable!()
        };
        let now = wall_ms();
        let end = maintenance_end_ms.unwrap_or_else(|| panic!("reconnect {n}: no end announced"));
        assert!(
            (now + 500..now + 2_100).contains(&end),
            "reconnect {n}: end {end} ms vs now {now} ms"
        );
        // The backoff alone is at most 200 ms here: the wait is the maintenance window.
        assert!(
            delay >= Duration::from_millis(400),
            "reconnect {n}: {delay:?}"
        );
        waits.push(delay);
    }
    wait_for(&mut events, STEP, "ready after both windows", is_ready).await;
    assert_eq!(waits.len(), 2);
}

/// `ProtoOAClientDisconnectEvent`: "All the sessions for the traders' accounts will be terminated"
/// (OpenApiMessages.proto). The client drops the link at once, even before the server closes it,
/// and sets up again.
#[tokio::test]
async fn a_client_disconnect_event_drops_the_link_at_once() {
    let peer = start_peer(
        |i| {
            if i == 0 {
                vec![
                    ProtoOaClientDisconnectEvent {
                        reason: Some("The application access was blocked".into()),
                        ..Default::default()
                    }
                    .wrap(None),
                ]
            } else {
                vec![]
            }
        },
        true,
    )
    .await;
    let (_client, mut events) = connect(peer.config()).unwrap();
    wait_for(&mut events, STEP, "first ready", is_ready).await;
    let (_, seen) = wait_for(&mut events, STEP, "second ready", is_ready).await;
    assert!(seen.iter().any(|e| matches!(
        e,
        ClientEvent::ClientDisconnected { reason: Some(r) } if r.contains("blocked")
    )));
    assert!(
        seen.iter().any(|e| matches!(e, ClientEvent::Connection(ConnectionEvent::Disconnected { reason }) if reason.contains("cancelled the application's connection"))),
        "{seen:#?}"
    );
}

/// Requests queued together (a wave of orders, one per symbol) are framed into one write: each is
/// still registered under its own id and answered.
#[tokio::test]
async fn a_burst_of_queued_requests_is_sent_together_and_each_is_answered() {
    let peer = start_peer(|_| vec![], true).await;
    let mut cfg = peer.config();
    // More than one write's worth (64), and not held back by the pacing this peer does not need.
    cfg.normal_rate_per_sec = 1000;
    let (client, mut events) = connect(cfg).unwrap();
    wait_for(&mut events, STEP, "ready", is_ready).await;
    let before = peer.seen_count(|p| matches!(p, Payload::VersionReq(_)));
    let answers = futures_util::future::join_all((0..100).map(|_| client.version())).await;
    for a in &answers {
        assert_eq!(a.as_deref().unwrap(), "peer");
    }
    let sent = peer.seen_count(|p| matches!(p, Payload::VersionReq(_)));
    assert!(
        sent - before >= 100,
        "the peer saw {} of 100",
        sent - before
    );
}
