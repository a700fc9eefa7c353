//! The connection task: connect, authorise, restore subscriptions, reconcile, then serve requests,
//! heartbeats and incoming messages until the connection dies; then back off and start again.
//!
//! All decisions it makes come from the pure parts ([`RequestTable`], [`Backoff`],
//! [`reconnect_delay`], [`RateLimiter`]); these files only move bytes and timers.
//!
//! - this file: the shared state, rate-limit pacing and the reconnect loop ([`run`]);
//! - `setup`: transport, authorisation, restored subscriptions and reconcile on a new connection;
//! - `serve`: the read/write loop of a ready connection (requests out, frames in, heartbeats,
//!   request timeouts);
//! - `dispatch`: an incoming message to the request it answers, or to the event stream.

mod dispatch;
mod serve;
mod setup;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

use crate::client::authorization::{park_until_new_tokens, token_refused};
use crate::client::backoff::{Backoff, reconnect_delay};
use crate::client::config::ClientConfig;
use crate::client::error::ClientError;
use crate::client::events::{ConnectionEvent, EventSink};
use crate::client::rate_limit::{RateLimiter, RequestClass};
use crate::client::requests::{Answer, Awaiting, Completion, RequestTable};
use crate::client::token_store::Tokens;
use crate::codec::FrameCodec;
use crate::domain::Timeframe;
use crate::messages::*;

use serve::serve;
use setup::establish;
pub(crate) use setup::{call, expect, open_transport, store_tokens};

type Conn = Framed<TlsStream<TcpStream>, FrameCodec>;

/// Id of the liveness probe sent when the server has been quiet; its answer is only a sign of life.
const PROBE_ID: &str = "probe";

/// Whether the session can take requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Connecting or re-establishing; requests queue until ready or their deadline.
    Connecting,
    /// Authorised, subscribed and reconciled.
    Ready,
    /// Waiting to reconnect; requests fail at once with `Disconnected`.
    Disconnected,
}

pub(crate) struct Command {
    pub(crate) envelope: ProtoMessage,
    pub(crate) request: &'static str,
    pub(crate) completion: Completion,
    pub(crate) deadline: Instant,
    pub(crate) reply: oneshot::Sender<Result<Answer, ClientError>>,
}

struct Waiter {
    reply: oneshot::Sender<Result<Answer, ClientError>>,
    request: &'static str,
    awaiting: Awaiting,
    timeout: Duration,
}

/// Subscriptions to restore after a reconnect.
#[derive(Debug, Default, Clone)]
pub(crate) struct Subscriptions {
    pub(crate) spots: BTreeSet<i64>,
    pub(crate) trendbars: BTreeSet<(i64, Timeframe)>,
}

/// State shared by the [`crate::client::Client`] handles and the session task.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    pub(crate) tls: TlsConnector,
    pub(crate) subs: Mutex<Subscriptions>,
    pub(crate) tokens: Mutex<Tokens>,
    pub(crate) limiter: Mutex<RateLimiter>,
    /// The queue of historical requests waiting for their turn under the limit: tokio's mutex hands
    /// itself out in FIFO order ("Tokio's Mutex operates on a guaranteed FIFO basis", tokio
    /// `sync/mutex.rs`), so every request is sent in the order it was made and none starves.
    pub(crate) historical_queue: tokio::sync::Mutex<()>,
    pub(crate) state: watch::Sender<LinkState>,
    pub(crate) events: EventSink,
    /// The last attempt's setup failure (step and error), cleared once a setup succeeds; set before
    /// the state turns `Disconnected`, so `wait_ready` sees it when it wakes.
    pub(crate) last_setup_failure: Mutex<Option<(&'static str, ClientError)>>,
}

/// Locks a mutex, recovering from poisoning: the guarded data stays consistent because every
/// critical section here is a single assignment or set operation.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for a historical request's turn under the limit, however long the queue. A historical
/// request (trendbars, deals, orders) is never an order: sent late it is still the right request,
/// and refusing it because 20 WARMUPs queued ahead of it (60 pages at 4 per 1.05 s: ~16 s) turned
/// a pacing wait into a failed warmup. The request timeout then counts from the send.
pub(crate) async fn wait_historical_turn(shared: &Shared) {
    let _turn = shared.historical_queue.lock().await;
    loop {
        let taken = lock(&shared.limiter).try_take(RequestClass::Historical, Instant::now());
        match taken {
            Ok(()) => return,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}

/// Waits for a rate-limit slot of `class`, or fails if none frees up before `deadline`.
pub(crate) async fn pace(
    shared: &Shared,
    class: RequestClass,
    request: &'static str,
    deadline: Instant,
) -> Result<(), ClientError> {
    loop {
        let now = Instant::now();
        let wait = match lock(&shared.limiter).try_take(class, now) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        if now + wait > deadline {
            return Err(ClientError::RateLimited {
                request,
                class,
                wait,
            });
        }
        tokio::time::sleep(wait).await;
    }
}

enum Exit {
    Shutdown,
    Disconnected(String),
}

struct SetupFailure {
    step: &'static str,
    error: ClientError,
}

/// The session task. Runs until every `Client` handle is dropped.
pub(crate) async fn run(shared: Arc<Shared>, mut cmds: mpsc::Receiver<Command>) {
    let cfg = &shared.config;
    let mut table: RequestTable<Waiter> = RequestTable::default();
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter);
    let mut maintenance_end: Option<i64> = None;
    loop {
        let _ = shared.state.send(LinkState::Connecting);
        shared
            .events
            .connection(ConnectionEvent::Connecting {
                attempt: backoff.attempt(),
            })
            .await;
        let exit = match establish(&shared).await {
            Ok(conn) => {
                *lock(&shared.last_setup_failure) = None;
                backoff.reset();
                maintenance_end = None;
                let _ = shared.state.send(LinkState::Ready);
                shared.events.connection(ConnectionEvent::Ready).await;
                serve(&shared, conn, &mut cmds, &mut table, &mut maintenance_end).await
            }
            Err(SetupFailure { step, error }) => {
                if let ClientError::Broker {
                    maintenance_end_ms: Some(t),
                    ..
                } = &error
                {
                    maintenance_end = Some(*t);
                }
                let reason = format!("{step} failed: {error}");
                let refused = token_refused(step, &error);
                *lock(&shared.last_setup_failure) = Some((step, error.clone()));
                shared
                    .events
                    .connection(ConnectionEvent::SetupFailed { step, error })
                    .await;
                if let Some(why) = refused {
                    // Retrying with the same tokens cannot succeed: wait for new ones instead.
                    match park_until_new_tokens(&shared, &mut cmds, why).await {
                        Some(()) => continue,
                        None => return,
                    }
                }
                Exit::Disconnected(reason)
            }
        };
        let reason = match exit {
            Exit::Shutdown => {
                let _ = shared.state.send(LinkState::Disconnected);
                return;
            }
            Exit::Disconnected(reason) => reason,
        };
        let _ = shared.state.send(LinkState::Disconnected);
        for (_, w) in table.drain() {
            let _ = w.waiter.reply.send(Err(ClientError::Disconnected {
                request: w.waiter.request,
            }));
        }
        tracing::warn!(%reason, "ctrader connection lost");
        shared
            .events
            .connection(ConnectionEvent::Disconnected { reason })
            .await;

        let attempt = backoff.attempt();
        let delay = reconnect_delay(
            backoff.next_random_delay(),
            maintenance_end,
            (cfg.wall_clock)(),
        );
        shared
            .events
            .connection(ConnectionEvent::ReconnectScheduled {
                attempt,
                delay,
                maintenance_end_ms: maintenance_end,
            })
            .await;
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = sleep_until(until) => break,
                cmd = cmds.recv() => match cmd {
                    None => return,
                    // Fail fast rather than queue: an order held through an outage would go out stale.
                    Some(c) => { let _ = c.reply.send(Err(ClientError::Disconnected { request: c.request })); }
                },
            }
        }
    }
}
