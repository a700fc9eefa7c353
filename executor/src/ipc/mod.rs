//! The preditor link: the loopback WebSocket server. The accept loop and one task per connection
//! move bytes, run the pure [`Session`] and hand valid lines to the core loop as [`ConnEvent`]s;
//! [`Preditor`] is the core's side (the one active connection, what it is sent).
//!
//! - [`session`]: one connection's pure line handling (handshake, bad input, control lines).
//! - [`admission`]: what connections may cost before they authenticate.
//! - [`warmup`]: WARMUPs answered in tasks of their own, live bars held back meanwhile.
//! - [`signals_log`]: the tail-able `signals.log` of every line in and out.
//! - [`preditor`]: the active connection, replaced by a newer authenticated one.

pub mod admission;
pub mod preditor;
pub mod session;
pub mod signals_log;
pub mod warmup;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::handshake::IpcKey;
use protocol::{ErrorLine, Line, Mode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::VERSION;
use crate::ipc::admission::{Admission, Ticket};
use crate::ipc::session::{Session, SessionAction};
use crate::ipc::signals_log::{Dir, SignalsLog};

pub use self::preditor::Preditor;

/// Largest WebSocket message accepted; a HISTORY-sized burst from the preditor is never needed, so
/// anything bigger is hostile and the connection is dropped by the WebSocket layer.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// WebSocket Ping period towards the preditor. tungstenite answers pings but never sends any, so
/// without these a quiet link (bars only every M15/H1) would give the preditor nothing to feed its
/// own watchdog with, and a half-open connection would go unnoticed.
pub const WS_PING_PERIOD: Duration = Duration::from_secs(15);
/// What the core sends a connection.
#[derive(Debug)]
pub enum Outbound {
    /// One WebSocket message (one or more lines, already in signals.log).
    Line(String),
    /// Send this ERROR line, then close.
    Close(ErrorLine),
}

/// What a connection tells the core loop.
#[derive(Debug)]
pub enum ConnEvent {
    /// The preditor proved it holds the token; `tx` reaches its connection.
    Authenticated {
        id: u64,
        version: String,
        tx: mpsc::UnboundedSender<Outbound>,
    },
    Closed {
        id: u64,
    },
    Line {
        id: u64,
        line: Line,
    },
    Control {
        id: u64,
        text: String,
    },
}

/// The WebSocket read and write buffers. tungstenite's default of 128 KiB each was what an idle
/// connection cost; IPC messages are small lines (a batch of a few dozen), so a small buffer only
/// means more, cheap, reads for a rare big message.
const WS_BUFFER_BYTES: usize = 8 * 1024;

/// The WebSocket limits of every IPC connection.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Accepts loopback connections on `listener` for ever, one task each (non-loopback peers are
/// refused at once).
pub async fn accept_loop(
    listener: TcpListener,
    events: mpsc::Sender<ConnEvent>,
    key: IpcKey,
    mode: Mode,
    hello_timeout: Duration,
    log: Arc<SignalsLog>,
) {
    let mut next_id = 1u64;
    let admission = Admission::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small lines, sent one message at a time: Nagle's algorithm would hold each behind the
        // previous one's ACK.
        let _ = stream.set_nodelay(true);
        if !peer.ip().is_loopback() {
            tracing::warn!(%peer, "refused a non-loopback connection");
            continue;
        }
        let id = next_id;
        next_id += 1;
        tracing::info!(conn = id, %peer, "connection");
        let ticket = admission.admit(id);
        tokio::spawn(connection(
            id,
            stream,
            events.clone(),
            Session::new(key.clone(), VERSION, mode),
            ticket,
            tokio::time::Instant::now() + hello_timeout,
            log.clone(),
        ));
    }
}

async fn connection(
    id: u64,
    stream: TcpStream,
    events: mpsc::Sender<ConnEvent>,
    mut session: Session,
    mut ticket: Ticket,
    handshake_deadline: tokio::time::Instant,
    log: Arc<SignalsLog>,
) {
    // The WebSocket upgrade counts against the same deadline as HELLO and AUTH.
    let ws = tokio::select! {
        r = tokio::time::timeout_at(
            handshake_deadline,
            tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())),
        ) => match r {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                tracing::debug!(conn = id, error = %e, "websocket handshake failed");
                return;
            }
            Err(_) => return,
        },
        () = ticket.evicted() => return,
    };
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
    let mut out_tx = Some(out_tx);
    let hello_deadline = tokio::time::sleep_until(handshake_deadline);
    tokio::pin!(hello_deadline);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + WS_PING_PERIOD, WS_PING_PERIOD);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reply = |text: &str| {
        log.record(id, Dir::Out, &redact(text));
        Message::text(text.to_string())
    };
    'conn: loop {
        tokio::select! {
            _ = &mut hello_deadline, if !session.is_authenticated() => {
                let _ = sink.send(reply("ERROR|UNAUTHENTICATED|handshake not completed in time")).await;
                break;
            }
            () = ticket.evicted(), if !session.is_authenticated() => {
                let _ = sink.send(reply("ERROR|UNAUTHENTICATED|too many connections waiting for the handshake; this one was the oldest")).await;
                break;
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
            out = out_rx.recv(), if out_tx.is_none() => match out {
                Some(Outbound::Line(text)) => {
                    if sink.send(Message::text(text)).await.is_err() { break; }
                }
                Some(Outbound::Close(err)) => {
                    let _ = sink.send(reply(&Line::Error(err).to_string())).await;
                    break;
                }
                None => break,
            },
            msg = stream.next() => {
                let text = match msg {
                    None | Some(Ok(Message::Close(_))) => break,
                    Some(Err(e)) => {
                        tracing::warn!(conn = id, error = %e, "connection dropped");
                        break;
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = sink.send(reply("ERROR|MALFORMED|binary messages are not part of the protocol")).await;
                        continue;
                    }
                    Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
                };
                let raw = text.as_str().strip_suffix('\n').unwrap_or(text.as_str());
                let shown: Vec<String> = raw.split('\n').map(redact).collect();
                log.record_lines(id, Dir::In, shown.iter().map(String::as_str));
                for action in session.on_message(text.as_str()) {
                    match action {
                        SessionAction::Reply(r) => {
                            if sink.send(reply(&r)).await.is_err() { break 'conn; }
                        }
                        SessionAction::Close => break 'conn,
                        SessionAction::Authenticated { version } => {
                            ticket.authenticated();
                            if let Some(tx) = out_tx.take()
                                && events.send(ConnEvent::Authenticated { id, version, tx }).await.is_err()
                            {
                                break 'conn;
                            }
                        }
                        SessionAction::Forward(line) => {
                            if events.send(ConnEvent::Line { id, line }).await.is_err() { break 'conn; }
                        }
                        SessionAction::Control(text) => {
                            if events.send(ConnEvent::Control { id, text }).await.is_err() { break 'conn; }
                        }
                    }
                }
            }
        }
    }
    drop(ticket);
    let _ = events.send(ConnEvent::Closed { id }).await;
    let _ = sink.close().await;
}

/// What `signals.log` shows of a raw line: handshake values redacted ([`protocol::redact`]), and
/// a line longer than 512 bytes cut there (the log is for reading, not for replaying floods).
fn redact(raw: &str) -> String {
    let raw = protocol::redact(raw);
    if raw.len() > 512 {
        return format!(
            "{}... ({} bytes)",
            &raw[..raw.floor_char_boundary(512)],
            raw.len()
        );
    }
    raw.to_string()
}
