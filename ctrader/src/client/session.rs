//! The connection task: connect, authorise, restore subscriptions, reconcile, then serve requests,
//! heartbeats and incoming messages until the connection dies; then back off and start again.
//!
//! All decisions it makes come from the pure parts ([`RequestTable`], [`Backoff`],
//! [`reconnect_delay`], [`RateLimiter`]); this file only moves bytes and timers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

use crate::client::authorization::{park_until_new_tokens, reload_tokens, token_refused};
use crate::client::backoff::{Backoff, reconnect_delay};
use crate::client::config::ClientConfig;
use crate::client::error::ClientError;
use crate::client::events::{ClientEvent, ConnectionEvent, EventSink};
use crate::client::rate_limit::{RateLimiter, RequestClass};
use crate::client::requests::{Answer, Awaiting, Completion, RequestTable, Step};
use crate::client::token_store::Tokens;
use crate::codec::FrameCodec;
use crate::domain::{ErrorCode, LiveTrendbar, SpotQuote, Timeframe, TrendbarPeriod};
use crate::messages::*;

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

fn broker_error(
    request: &'static str,
    code: &str,
    description: Option<String>,
    maintenance_end_ms: Option<i64>,
) -> ClientError {
    ClientError::Broker {
        request,
        code: ErrorCode::parse(code),
        description,
        maintenance_end_ms,
    }
}

/// `ProtoOAErrorRes.maintenanceEndTimestamp` is "the Unix time in **seconds** when the current
/// maintenance session will be ended" (spotware/openapi-proto-messages `OpenApiMessages.proto`),
/// whereas `ProtoErrorRes.maintenanceEndTimestamp` is "the Unix time in **milliseconds**"
/// (`OpenApiCommonMessages.proto`). Both become Unix ms here.
pub(crate) fn oa_maintenance_end_ms(seconds: Option<i64>) -> Option<i64> {
    seconds.and_then(|s| s.checked_mul(1000))
}

/// See [`oa_maintenance_end_ms`]: the common error already carries milliseconds.
pub(crate) fn common_maintenance_end_ms(millis: Option<u64>) -> Option<i64> {
    millis.and_then(|t| i64::try_from(t).ok())
}

/// The error an answer stands for, if it is an error.
fn answer_error(request: &'static str, payload: &Payload) -> Option<ClientError> {
    match payload {
        Payload::ErrorRes(e) => Some(broker_error(
            request,
            &e.error_code,
            e.description.clone(),
            oa_maintenance_end_ms(e.maintenance_end_timestamp),
        )),
        Payload::CommonErrorRes(e) => Some(broker_error(
            request,
            &e.error_code,
            e.description.clone(),
            common_maintenance_end_ms(e.maintenance_end_timestamp),
        )),
        Payload::OrderErrorEvent(e) => Some(broker_error(
            request,
            &e.error_code,
            e.description.clone(),
            None,
        )),
        _ => None,
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

/// TCP, TLS, app auth, account auth (refreshing the token once if it has expired), restored
/// subscriptions, reconcile.
async fn establish(shared: &Shared) -> Result<Conn, SetupFailure> {
    let cfg = &shared.config;
    let fail = |step: &'static str| move |error: ClientError| SetupFailure { step, error };

    let mut conn = open_transport(shared).await.map_err(fail("connect"))?;
    shared.events.connection(ConnectionEvent::TransportUp).await;

    let app = ProtoOaApplicationAuthReq {
        client_id: cfg.client_id.clone(),
        client_secret: cfg.client_secret.clone(),
        ..Default::default()
    };
    expect::<ProtoOaApplicationAuthRes>(call(shared, &mut conn, &app).await)
        .map_err(fail("application auth"))?;
    shared
        .events
        .connection(ConnectionEvent::AppAuthorized)
        .await;

    // A refused token: first a different pair from the token file (a re-authorisation or another
    // refresh wrote it), then one refresh; see `authorization`.
    let (mut reloaded, mut refreshed) = (false, false);
    loop {
        let access_token = lock(&shared.tokens).access_token.clone();
        let req = ProtoOaAccountAuthReq {
            ctid_trader_account_id: cfg.account_id,
            access_token: access_token.clone(),
            ..Default::default()
        };
        match expect::<ProtoOaAccountAuthRes>(call(shared, &mut conn, &req).await) {
            Ok(_) => break,
            Err(ClientError::Broker { code, .. }) if code.needs_token_refresh() && !refreshed => {
                if !reloaded {
                    reloaded = true;
                    if reload_tokens(shared, &access_token).await {
                        continue;
                    }
                }
                refreshed = true;
                refresh_on(shared, &mut conn)
                    .await
                    .map_err(fail("token refresh"))?;
            }
            Err(e) => return Err(fail("account auth")(e)),
        }
    }
    shared
        .events
        .connection(ConnectionEvent::AccountAuthorized {
            account_id: cfg.account_id,
        })
        .await;

    let subs = lock(&shared.subs).clone();
    if !subs.spots.is_empty() {
        let req = ProtoOaSubscribeSpotsReq {
            ctid_trader_account_id: cfg.account_id,
            symbol_id: subs.spots.iter().copied().collect(),
            subscribe_to_spot_timestamp: Some(cfg.spot_timestamps),
            ..Default::default()
        };
        tolerate_already_subscribed(expect::<ProtoOaSubscribeSpotsRes>(
            call(shared, &mut conn, &req).await,
        ))
        .map_err(fail("spot resubscription"))?;
    }
    for &(symbol_id, tf) in &subs.trendbars {
        let req = ProtoOaSubscribeLiveTrendbarReq {
            ctid_trader_account_id: cfg.account_id,
            period: tf.to_proto() as i32,
            symbol_id,
            ..Default::default()
        };
        tolerate_already_subscribed(expect::<ProtoOaSubscribeLiveTrendbarRes>(
            call(shared, &mut conn, &req).await,
        ))
        .map_err(fail("trendbar resubscription"))?;
    }
    shared
        .events
        .connection(ConnectionEvent::Resubscribed {
            spots: subs.spots.into_iter().collect(),
            trendbars: subs.trendbars.into_iter().collect(),
        })
        .await;

    let req = ProtoOaReconcileReq {
        ctid_trader_account_id: cfg.account_id,
        ..Default::default()
    };
    let res = expect::<ProtoOaReconcileRes>(call(shared, &mut conn, &req).await)
        .map_err(fail("reconcile"))?;
    shared
        .events
        .connection(ConnectionEvent::Reconciled(Box::new(res)))
        .await;
    Ok(conn)
}

fn tolerate_already_subscribed<T>(r: Result<T, ClientError>) -> Result<(), ClientError> {
    match r {
        Ok(_) => Ok(()),
        Err(ClientError::Broker { code, .. }) if code.as_str() == "ALREADY_SUBSCRIBED" => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn open_transport(shared: &Shared) -> Result<Conn, ClientError> {
    let cfg = &shared.config;
    let addr = cfg.addr();
    let tcp = timeout(
        cfg.connect_timeout,
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    .map_err(|_| ClientError::Connect {
        addr: addr.clone(),
        reason: format!("timed out after {:?}", cfg.connect_timeout),
    })?
    .map_err(|e| ClientError::Connect {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    // Orders are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let name = cfg
        .tls_server_name
        .clone()
        .unwrap_or_else(|| cfg.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| ClientError::Tls(format!("invalid server name {name:?}: {e}")))?;
    let tls = timeout(cfg.connect_timeout, shared.tls.connect(server_name, tcp))
        .await
        .map_err(|_| ClientError::Tls(format!("handshake with {addr} timed out")))?
        .map_err(|e| ClientError::Tls(format!("handshake with {addr}: {e}")))?;
    Ok(Framed::new(tls, FrameCodec::new(cfg.max_frame_len)))
}

/// One request/answer during setup, before the serving loop runs. Anything else that arrives
/// meanwhile is handled as unsolicited.
pub(crate) async fn call<M: OpenApiMessage>(
    shared: &Shared,
    conn: &mut Conn,
    msg: &M,
) -> Result<Payload, ClientError> {
    let cfg = &shared.config;
    let deadline = Instant::now() + cfg.request_timeout;
    pace(shared, RequestClass::of(M::PAYLOAD_TYPE), M::NAME, deadline).await?;
    let id = format!("setup-{}", M::PAYLOAD_TYPE);
    conn.send(msg.wrap(Some(id.clone())))
        .await
        .map_err(|e| ClientError::Protocol(format!("sending {}: {e}", M::NAME)))?;
    loop {
        let frame = match timeout(
            deadline.saturating_duration_since(Instant::now()),
            conn.next(),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Timeout {
                    request: M::NAME,
                    after: cfg.request_timeout,
                });
            }
            Ok(None) => return Err(ClientError::Disconnected { request: M::NAME }),
            Ok(Some(Err(e))) => {
                return Err(ClientError::Protocol(format!(
                    "reading the answer to {}: {e}",
                    M::NAME
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let payload = Payload::decode(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if frame.client_msg_id.as_deref() == Some(id.as_str()) {
            return match answer_error(M::NAME, &payload) {
                Some(e) => Err(e),
                None => Ok(payload),
            };
        }
        // Errors without our id during setup (e.g. a maintenance notice) answer this request too.
        if frame.client_msg_id.is_none()
            && let Some(e) = answer_error(M::NAME, &payload)
            && !matches!(payload, Payload::OrderErrorEvent(_))
        {
            return Err(e);
        }
        if let Some(reason) = unsolicited(shared, payload, &mut None).await {
            tracing::warn!(%reason, "ctrader setup interrupted");
            return Err(ClientError::Disconnected { request: M::NAME });
        }
    }
}

/// Refreshes the tokens on a connection that is app-authorised, persisting them before use.
async fn refresh_on(shared: &Shared, conn: &mut Conn) -> Result<(), ClientError> {
    let refresh_token = lock(&shared.tokens).refresh_token.clone();
    if refresh_token.is_empty() {
        return Err(ClientError::TokenStore(
            "the access token expired and there is no refresh token".into(),
        ));
    }
    let req = ProtoOaRefreshTokenReq {
        refresh_token,
        ..Default::default()
    };
    let res = expect::<ProtoOaRefreshTokenRes>(call(shared, conn, &req).await)?;
    store_tokens(shared, &res)?;
    shared
        .events
        .connection(ConnectionEvent::TokenRefreshed)
        .await;
    Ok(())
}

/// Persists then adopts a refreshed token pair. The old refresh token is already spent, so the
/// new pair is adopted in memory even if persisting fails (and the failure is reported).
pub(crate) fn store_tokens(
    shared: &Shared,
    res: &ProtoOaRefreshTokenRes,
) -> Result<Tokens, ClientError> {
    let tokens = Tokens {
        access_token: res.access_token.clone(),
        refresh_token: res.refresh_token.clone(),
        expires_at: Some((shared.config.wall_clock)() / 1000 + res.expires_in),
    };
    let persisted = match &shared.config.token_store {
        Some(store) => store
            .save(&tokens)
            .map_err(|e| ClientError::TokenStore(e.to_string())),
        None => Ok(()),
    };
    *lock(&shared.tokens) = tokens.clone();
    if let Err(e) = &persisted {
        tracing::error!(error = %e, "refreshed tokens could not be persisted; they are kept in memory only");
    }
    persisted.map(|()| tokens)
}

/// Narrows an answer to the expected message.
pub(crate) fn expect<M>(answer: Result<Payload, ClientError>) -> Result<M, ClientError>
where
    M: OpenApiMessage + TryFrom<Payload, Error = Payload>,
{
    let payload = answer?;
    let got = payload.name();
    M::try_from(payload).map_err(|_| ClientError::UnexpectedResponse {
        request: M::NAME,
        got,
    })
}

async fn serve(
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
                let now = Instant::now();
                if cmd.reply.is_closed() || cmd.deadline <= now {
                    // The caller gave up while the request queued: never send it late.
                    let _ = cmd.reply.send(Err(ClientError::Timeout { request: cmd.request, after: Duration::ZERO }));
                    continue;
                }
                let Command { mut envelope, request, completion, deadline, reply } = cmd;
                let timeout = deadline - now;
                let payload_type = envelope.payload_type;
                let awaiting = Awaiting::new(completion);
                let id = table.register(now, timeout, payload_type, Waiter { reply, request, awaiting, timeout });
                envelope.client_msg_id = Some(id.clone());
                tracing::debug!(request, id = %id, "ctrader send");
                if let Err(e) = conn.send(envelope).await {
                    if let Some(w) = table.take(&id) {
                        let _ = w.waiter.reply.send(Err(ClientError::Disconnected { request }));
                    }
                    return Exit::Disconnected(format!("write failed: {e}"));
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

async fn dispatch(
    shared: &Shared,
    frame: ProtoMessage,
    table: &mut RequestTable<Waiter>,
    maintenance_end: &mut Option<i64>,
) -> Option<String> {
    let payload = match Payload::decode(&frame) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "ctrader message ignored");
            return None;
        }
    };
    if frame.client_msg_id.as_deref() == Some(PROBE_ID) {
        return None;
    }
    // The request this message answers: by its id, or (for a later step of an order that comes
    // without it) by the order it placed.
    let id = frame
        .client_msg_id
        .clone()
        .filter(|id| table.get(id).is_some())
        .or_else(|| match &payload {
            Payload::ExecutionEvent(ev) => ev
                .order
                .as_ref()
                .and_then(|o| table.request_of_order(o.order_id))
                .map(str::to_string),
            _ => None,
        });
    let Some(id) = id else {
        return unsolicited(shared, payload, &mut Some(maintenance_end)).await;
    };
    let entry = table.get_mut(&id)?;
    let request = entry.waiter.request;
    if let Some(e) = answer_error(request, &payload) {
        if let ClientError::Broker {
            maintenance_end_ms: Some(t),
            ..
        } = &e
        {
            *maintenance_end = Some(*t);
        }
        if let Some(w) = table.take(&id) {
            let _ = w.waiter.reply.send(Err(e));
        }
        return None;
    }
    let step = entry.waiter.awaiting.on_message(payload);
    if let Some(order_id) = entry.waiter.awaiting.order_id() {
        table.link_order(order_id, &id);
    }
    match step {
        Step::Pending => tracing::debug!(id = %id, request, "ctrader execution step"),
        Step::Done(answer) => {
            if let Some(w) = table.take(&id) {
                let _ = w.waiter.reply.send(Ok(answer));
            }
        }
    }
    None
}

/// Publishes a message no request is waiting for. Returns a reason to drop the link when the
/// message leaves our account unauthorised on it (a full reconnect re-authorises, refreshing the
/// token if needed).
async fn unsolicited(
    shared: &Shared,
    payload: Payload,
    maintenance_end: &mut Option<&mut Option<i64>>,
) -> Option<String> {
    let account = shared.config.account_id;
    let mut drop_link = None;
    let ev = match payload {
        Payload::HeartbeatEvent(_) => return None,
        Payload::SpotEvent(spot) => {
            let quote = SpotQuote::from_event(&spot);
            if spot.bid.is_some() || spot.ask.is_some() {
                shared.events.send_lossy(ClientEvent::Spot(quote));
            }
            for tb in &spot.trendbar {
                // `period` defaults to M1 in the .proto (`[default = M1]`).
                let decoded = tb
                    .period
                    .map(Timeframe::from_proto)
                    .unwrap_or(Ok(Timeframe::M1));
                match decoded.and_then(|tf| LiveTrendbar::from_proto(tb, tf)) {
                    Ok(bar) => shared.events.send_lossy(ClientEvent::LiveBar {
                        symbol_id: spot.symbol_id,
                        bar,
                        bid: quote.bid,
                        timestamp_ms: quote.timestamp_ms,
                    }),
                    Err(e) => {
                        tracing::warn!(symbol_id = spot.symbol_id, error = %e, "live trendbar ignored")
                    }
                }
            }
            return None;
        }
        Payload::ExecutionEvent(ev) => ClientEvent::Execution(Box::new(ev)),
        Payload::OrderErrorEvent(ev) => ClientEvent::OrderError(ev),
        Payload::TraderUpdatedEvent(ev) => ClientEvent::TraderUpdated(Box::new(ev.trader)),
        Payload::SymbolChangedEvent(ev) => ClientEvent::SymbolChanged {
            symbol_ids: ev.symbol_id,
        },
        Payload::ClientDisconnectEvent(ev) => {
            // "All the sessions for the traders' accounts will be terminated" (OpenApiMessages.proto).
            drop_link = Some(format!(
                "the server cancelled the application's connection ({})",
                ev.reason.as_deref().unwrap_or("no reason given")
            ));
            ClientEvent::ClientDisconnected { reason: ev.reason }
        }
        Payload::AccountDisconnectEvent(ev) => {
            if ev.ctid_trader_account_id == account {
                drop_link = Some("the server logged the account out".to_string());
            }
            ClientEvent::AccountDisconnected {
                account_id: ev.ctid_trader_account_id,
            }
        }
        Payload::AccountsTokenInvalidatedEvent(ev) => {
            if ev.ctid_trader_account_ids.contains(&account) {
                drop_link = Some(format!(
                    "the access token was invalidated ({})",
                    ev.reason.as_deref().unwrap_or("no reason given")
                ));
            }
            ClientEvent::TokenInvalidated {
                account_ids: ev.ctid_trader_account_ids,
                reason: ev.reason,
            }
        }
        Payload::ErrorRes(e) => server_error(
            &e.error_code,
            e.description,
            oa_maintenance_end_ms(e.maintenance_end_timestamp),
            maintenance_end,
        ),
        Payload::CommonErrorRes(e) => server_error(
            &e.error_code,
            e.description,
            common_maintenance_end_ms(e.maintenance_end_timestamp),
            maintenance_end,
        ),
        other => ClientEvent::Other(Box::new(other)),
    };
    shared.events.send(ev).await;
    drop_link
}

fn server_error(
    code: &str,
    description: Option<String>,
    maintenance_end_ms: Option<i64>,
    maintenance_end: &mut Option<&mut Option<i64>>,
) -> ClientEvent {
    if let (Some(t), Some(slot)) = (maintenance_end_ms, maintenance_end.as_deref_mut()) {
        *slot = Some(t);
    }
    ClientEvent::ServerError {
        code: ErrorCode::parse(code),
        description,
        maintenance_end_ms,
    }
}
