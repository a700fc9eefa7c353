//! An incoming message: to the request it answers (by its id, or by the order it placed), with
//! broker errors made typed; or, unsolicited, to the event stream (spots, live trendbars,
//! executions, disconnect and token notices).

use super::{PROBE_ID, Shared, Waiter};
use crate::client::error::ClientError;
use crate::client::events::ClientEvent;
use crate::client::requests::{RequestTable, Step};
use crate::domain::{ErrorCode, LiveTrendbar, SpotQuote, Timeframe, TrendbarPeriod};
use crate::messages::*;

pub(super) async fn dispatch(
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
pub(super) async fn unsolicited(
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
pub(super) fn answer_error(request: &'static str, payload: &Payload) -> Option<ClientError> {
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
