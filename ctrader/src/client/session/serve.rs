//! The read/write loop of a ready connection: queued requests out (registered in the request
//! table), frames in (to `dispatch`), heartbeats and liveness probes, request timeouts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::dispatch::dispatch;
use super::{Command, Conn, Exit, PROBE_ID, Shared, Waiter};
use crate::client::error::ClientError;
use crate::client::requests::{Awaiting, RequestTable};
use crate::messages::*;

/// Most requests framed before one flush: a wave of orders for every symbol, bounded so a flood
/// of requests cannot hold the read side back for long.
const MAX_FRAMES_PER_WRITE: usize = 64;

/// A write failed with `fed` framed but perhaps not sent: each of their callers is told the link
/// went down (the outcome of an order is then looked up, never resent blindly).
fn fail_written(
    table: &mut RequestTable<Waiter>,
    fed: &[(String, &'static str)],
    e: &impl std::fmt::Display,
) -> Exit {
    for (id, request) in fed {
        if let Some(w) = table.take(id) {
            let _ = w
                .waiter
                .reply
                .send(Err(ClientError::Disconnected { request }));
        }
    }
    Exit::Disconnected(format!("write failed: {e}"))
}

pub(super) async fn serve(
    shared: &Shared,
    mut conn: Conn,
    cmds: &mut mpsc::Receiver<Command>,
    table: &mut RequestTable<Waiter>,
    maintenance_end: &mut Option<i64>,
) -> Exit {
    let cfg = &shared.config;
    let mut heartbeat = tokio::time::interval_at(
        Instant::now() + cfg.heartbeat_interval,
        cfg.heartbeat_interval,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut probing = false;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let next_deadline = table.next_deadline();
        tokio::select! {
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else {
                    let _ = SinkExt::<ProtoMessage>::close(&mut conn).await;
                    return Exit::Shutdown;
                };
                // The requests queued behind this one (a wave of orders, one per symbol) go out
                // with it: each is framed into the buffer, then one flush is one TLS write, so the
                // last symbol's order does not wait for the others' writes.
                let mut fed = Vec::new();
                let mut next = Some(cmd);
                while let Some(cmd) = next.take() {
                    let now = Instant::now();
                    if cmd.reply.is_closed() || cmd.deadline <= now {
                        // The caller gave up while the request queued: never send it late.
                        let _ = cmd.reply.send(Err(ClientError::Timeout { request: cmd.request, after: Duration::ZERO }));
                    } else {
                        let Command { mut envelope, request, completion, deadline, reply } = cmd;
                        let timeout = deadline - now;
                        let payload_type = envelope.payload_type;
                        let awaiting = Awaiting::new(completion);
                        let id = table.register(now, timeout, payload_type, Waiter { reply, request, awaiting, timeout });
                        envelope.client_msg_id = Some(id.clone());
                        tracing::debug!(request, id = %id, "ctrader send");
                        let fed_ok = conn.feed(envelope).await;
                        fed.push((id, request));
                        if let Err(e) = fed_ok {
                            return fail_written(table, &fed, &e);
                        }
                    }
                    if fed.len() < MAX_FRAMES_PER_WRITE {
                        next = cmds.try_recv().ok();
                    }
                }
                if !fed.is_empty()
                    && let Err(e) = SinkExt::<ProtoMessage>::flush(&mut conn).await
                {
                    return fail_written(table, &fed, &e);
                }
            }
            frame = conn.next() => {
                let frame = match frame {
                    None => return Exit::Disconnected("the server closed the connection".into()),
                    Some(Err(e)) => return Exit::Disconnected(format!("read failed: {e}")),
                    Some(Ok(frame)) => frame,
                };
                last_rx = Instant::now();
                probing = false;
                if let Some(reason) = dispatch(shared, frame, table, maintenance_end).await {
                    return Exit::Disconnected(reason);
                }
            }
            _ = heartbeat.tick() => {
                let silent = last_rx.elapsed();
                if silent >= cfg.dead_after {
                    return Exit::Disconnected(format!("no data from the server for {silent:?}"));
                }
                if let Err(e) = conn.send(ProtoHeartbeatEvent::default().wrap(None)).await {
                    return Exit::Disconnected(format!("heartbeat write failed: {e}"));
                }
                // A quiet server may simply have nothing to say; ask it something cheap to tell
                // silence from a dead link.
                if silent >= cfg.heartbeat_interval && !probing {
                    probing = true;
                    if let Err(e) = conn.send(ProtoOaVersionReq::default().wrap(Some(PROBE_ID.into()))).await {
                        return Exit::Disconnected(format!("probe write failed: {e}"));
                    }
                }
            }
            _ = sleep_until(next_deadline.unwrap_or(far)), if next_deadline.is_some() => {
                for (id, r) in table.expire(Instant::now()) {
                    tracing::warn!(request = r.waiter.request, %id, "ctrader request timed out");
                    let _ = r.waiter.reply.send(Err(ClientError::Timeout { request: r.waiter.request, after: r.waiter.timeout }));
                }
            }
        }
    }
}
