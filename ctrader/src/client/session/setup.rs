//! A new connection up to ready: TCP, TLS, application and account authorisation (with token
//! reload/refresh), restored subscriptions, reconcile; and the one-shot request/answer used
//! before the serving loop runs.

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;

use super::dispatch::{answer_error, unsolicited};
use super::{Conn, SetupFailure, Shared, lock, pace};
use crate::client::authorization::reload_tokens;
use crate::client::error::ClientError;
use crate::client::events::ConnectionEvent;
use crate::client::rate_limit::RequestClass;
use crate::client::token_store::Tokens;
use crate::codec::FrameCodec;
use crate::domain::TrendbarPeriod;
use crate::messages::*;

/// TCP, TLS, app auth, account auth (refreshing the token once if it has expired), restored
/// subscriptions, reconcile.
pub(super) async fn establish(shared: &Shared) -> Result<Conn, SetupFailure> {
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
