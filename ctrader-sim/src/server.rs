//! The thin async shell around [`SimCore`]: TLS listener, one reader and one writer task per
//! connection, the replay driver and the line-based control socket.
//!
//! All decisions are the core's; this module only moves frames and honours the delays the core
//! and the fault state ask for. A connection whose bytes do not frame or decode is closed alone.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::core::{ConnId, Outgoing, SimCore};
use super::faults::{ControlCommand, FaultAction};
use super::latency::LatencyReport;
use ctrader::codec::FrameCodec;
use ctrader::messages::{OpenApiMessage, ProtoHeartbeatEvent, ProtoMessage};

/// How the I/O shell runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub tls: Arc<rustls::ServerConfig>,
    /// A heartbeat goes to every connection this often (the real server's cadence is 10 s).
    pub heartbeat: Duration,
    /// Close a connection that sent nothing for this long (None: never).
    pub idle_timeout: Option<Duration>,
    pub bars_per_second: f64,
    pub stats_out: Option<PathBuf>,
}

enum ConnMsg {
    Send(ProtoMessage),
    Close,
}

struct Shared {
    core: Mutex<SimCore>,
    conns: Mutex<HashMap<ConnId, mpsc::UnboundedSender<ConnMsg>>>,
    config: ServerConfig,
    /// Woken by `pause`/`resume` so the replay driver recomputes its schedule at once.
    clock_changed: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the book half-updated in a way later code relies
    // on more than the panic itself; keep serving rather than poisoning every connection.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Shared {
    fn deliver(self: &Arc<Self>, out: Vec<Outgoing>) {
        let conns = lock(&self.conns);
        for o in out {
            let Some(tx) = conns.get(&o.conn).cloned() else {
                continue;
            };
            if o.delay.is_zero() {
                let _ = tx.send(ConnMsg::Send(o.message));
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(o.delay).await;
                    let _ = tx.send(ConnMsg::Send(o.message));
                });
            }
        }
    }

    fn close(&self, conn: ConnId) {
        if let Some(tx) = lock(&self.conns).get(&conn) {
            let _ = tx.send(ConnMsg::Close);
        }
    }

    fn close_all(&self) {
        for tx in lock(&self.conns).values() {
            let _ = tx.send(ConnMsg::Close);
        }
    }

    fn report(&self) -> LatencyReport {
        lock(&self.core).latency().report()
    }

    fn write_stats(&self) -> std::io::Result<LatencyReport> {
        let report = self.report();
        if let Some(path) = &self.config.stats_out {
            let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
            service::write_atomic(path, json.as_bytes(), service::Access::Shared)
                .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))?;
        }
        Ok(report)
    }
}

/// Runs the simulator until `shutdown` resolves; then writes the latency stats and returns them.
/// The caller binds the sockets (tests bind port 0 and read the ports back first).
pub async fn run(
    core: SimCore,
    config: ServerConfig,
    listener: TcpListener,
    control: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<LatencyReport> {
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        conns: Mutex::new(HashMap::new()),
        config,
        clock_changed: tokio::sync::Notify::new(),
    });
    let acceptor = TlsAcceptor::from(shared.config.tls.clone());
    let stop = CancellationToken::new();

    let replay = tokio::spawn(drive_replay(shared.clone(), stop.clone()));
    let accept = tokio::spawn(accept_loop(
        shared.clone(),
        listener,
        acceptor,
        stop.clone(),
    ));
    let control = control.map(|l| tokio::spawn(control_loop(shared.clone(), l, stop.clone())));

    shutdown.await;
    stop.cancel();
    shared.close_all();
    let _ = replay.await;
    let _ = accept.await;
    if let Some(c) = control {
        let _ = c.await;
    }
    shared.write_stats()
}

async fn drive_replay(shared: Arc<Shared>, stop: CancellationToken) {
    let speed = shared.config.bars_per_second;
    let slots = u64::from(lock(&shared.core).ticks_per_bar()) + 1;
    let start = tokio::time::Instant::now();
    // Slot 0 of each bar is the step (close + open); slots 1.. are intermediate ticks.
    let mut slot: u64 = 0;
    loop {
        let (held, held_total) = {
            let core = lock(&shared.core);
            (core.is_held(), core.held_total())
        };
        // A held clock waits for `resume`; every hold moves the whole schedule on by its length.
        let due = start + held_total + super::replay::step_due(slot, speed * slots as f64);
        tokio::select! {
            () = stop.cancelled() => return,
            () = shared.clock_changed.notified() => continue,
            () = tokio::time::sleep_until(due), if !held => {}
        }
        let (out, finished) = {
            let mut core = lock(&shared.core);
            if core.is_held() {
                continue; // held between the sleep and the lock
            }
            let out = match slot % slots {
                0 => core.step(Instant::now()),
                j => core.tick(j as f64 / slots as f64),
            };
            (out, core.replay().is_finished())
        };
        shared.deliver(out);
        slot += 1;
        if finished {
            tracing::info!(
                bars = slot / slots,
                "replay finished: every bar has been published"
            );
            return;
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(
            shared.clone(),
            acceptor.clone(),
            tcp,
            peer,
            stop.child_token(),
        ));
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::warn!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::warn!(%peer, "TLS handshake timed out"),
    };
    let conn = lock(&shared.core).connect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&shared.conns).insert(conn, tx.clone());
    tracing::info!(%peer, conn, "client connected");
    let (mut sink, mut stream) = Framed::new(tls, FrameCodec::default()).split();

    let writer_stop = stop.clone();
    let writer_shared = shared.clone();
    let writer = tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(writer_shared.config.heartbeat);
        heartbeat.tick().await;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = heartbeat.tick() => Some(ConnMsg::Send(ProtoHeartbeatEvent::default().wrap(None))),
            };
            let Some(ConnMsg::Send(frame)) = msg else {
                break;
            };
            // A stall holds the stream: nothing leaves until it ends, then everything queued does.
            loop {
                let remaining = lock(&writer_shared.core).stall_remaining(Instant::now());
                match remaining {
                    Some(d) => tokio::time::sleep(d).await,
                    None => break,
                }
            }
            // Everything already queued (a step's spots for every symbol) goes out in one flush:
            // one write per batch instead of one per frame keeps the last symbol's spot as fresh as
            // the first's.
            let mut closing = false;
            let mut batch = vec![frame];
            while let Ok(next) = rx.try_recv() {
                match next {
                    ConnMsg::Send(f) => batch.push(f),
                    ConnMsg::Close => {
                        closing = true;
                        break;
                    }
                }
            }
            let mut failed = None;
            for f in batch {
                if let Err(e) = sink.feed(f).await {
                    failed = Some(e);
                    break;
                }
            }
            if failed.is_none()
                && let Err(e) = sink.flush().await
            {
                failed = Some(e);
            }
            if let Some(e) = failed {
                tracing::info!(conn, error = %e, "write failed");
                break;
            }
            if closing {
                break;
            }
        }
        let _ = sink.close().await;
        writer_stop.cancel();
    });

    loop {
        let next = async {
            match shared.config.idle_timeout {
                Some(t) => tokio::time::timeout(t, stream.next()).await.ok(),
                None => Some(stream.next().await),
            }
        };
        let item = tokio::select! {
            () = stop.cancelled() => break,
            item = next => item,
        };
        match item {
            None => {
                tracing::info!(conn, "idle timeout: no message from the client, closing");
                break;
            }
            Some(None) => break,
            Some(Some(Err(e))) => {
                tracing::warn!(conn, error = %e, "malformed frame: closing this connection only");
                break;
            }
            Some(Some(Ok(frame))) => {
                let reply = lock(&shared.core).handle(conn, &frame, Instant::now());
                tracing::debug!(
                    conn,
                    payload_type = frame.payload_type,
                    out = reply.out.len(),
                    "request"
                );
                shared.deliver(reply.out);
                if reply.close {
                    shared.close(conn);
                }
            }
        }
    }
    let _ = tx.send(ConnMsg::Close);
    let _ = writer.await;
    lock(&shared.conns).remove(&conn);
    lock(&shared.core).disconnect(conn);
    tracing::info!(conn, "client disconnected");
}

async fn control_loop(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    loop {
        let (tcp, _) = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (read, mut write) = tcp.into_split();
            let mut lines = BufReader::new(read).lines();
            loop {
                let line = tokio::select! {
                    () = stop.cancelled() => return,
                    l = lines.next_line() => l,
                };
                let Ok(Some(line)) = line else { return };
                if line.trim().is_empty() {
                    continue;
                }
                let answer = match ControlCommand::parse(&line) {
                    Err(e) => format!("ERR {e}"),
                    Ok(cmd) => {
                        let now = Instant::now();
                        let (text, action, notices) = {
                            let mut core = lock(&shared.core);
                            let (text, action) = core.control(&cmd, now, wall_ms());
                            // Account events the command produced go out before any disconnect.
                            let mut out = core.take_events();
                            if matches!(cmd, ControlCommand::Maintenance(_)) {
                                out.extend(core.maintenance_notices(now));
                            }
                            (text, action, out)
                        };
                        tracing::info!(command = %line.trim(), "control");
                        shared.deliver(notices);
                        if action == FaultAction::DisconnectAll {
                            shared.close_all();
                        }
                        if matches!(cmd, ControlCommand::Pause | ControlCommand::Resume) {
                            // notify_one keeps a permit if the driver is between two waits.
                            shared.clock_changed.notify_one();
                        }
                        if cmd == ControlCommand::Stats {
                            match shared.write_stats() {
                                Ok(r) => tracing::info!("latency\n{}", r.to_text()),
                                Err(e) => tracing::warn!(error = %e, "cannot write --stats-out"),
                            }
                        }
                        text
                    }
                };
                if write
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}
