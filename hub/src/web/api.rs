//! The JSON API under `/api/` (docs/HUB.md §API). Same login as the pages.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleet::{Command, CommandEnvelope, CommandId, InstanceId, Nonce, Stream};
use futures_util::stream::Stream as FuturesStream;
use protocol::Bar;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::App;
use super::session::{Authed, Csrf};
use crate::keys::random_bytes;
use crate::link::now_ms;
use crate::store::{NewCommand, StoreError};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/health", get(health))
        .route("/session", get(session))
        .route("/stats", get(stats))
        .route("/instances", get(instances))
        .route("/instances/{id}", get(instance))
        .route("/instances/{id}/records/{stream}", get(records))
        .route("/instances/{id}/signals", get(signals))
        .route("/instances/{id}/acks", get(acks))
        .route("/instances/{id}/drift", get(drift))
        .route("/instances/{id}/telemetry", get(telemetry))
        .route("/instances/{id}/refusals", get(refusals))
        .route("/instances/{id}/candles", get(candles))
        .route("/instances/{id}/commands", get(commands).post(send_command))
        .route("/fleet/commands", post(send_fleet_command))
        .route("/commands/{id}", get(command))
        .route("/events", get(events))
}

/// An API error: status and a message that says what to fix.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unavailable".into(),
        )
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn instance_id(s: &str) -> Result<InstanceId, ApiError> {
    InstanceId::new(s).map_err(|e| ApiError(StatusCode::NOT_FOUND, e.to_string()))
}

async fn known(app: &App, s: &str) -> Result<InstanceId, ApiError> {
    let id = instance_id(s)?;
    if app.store.instance(&id).await?.is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no instance {id} has reported to this hub"),
        ));
    }
    Ok(id)
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

async fn health() -> &'static str {
    "ok"
}

async fn session(authed: Authed) -> Json<serde_json::Value> {
    Json(json!({ "csrf": authed.session.csrf, "expires_ms": authed.session.expires_ms }))
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    since_ms: Option<i64>,
}

async fn stats(State(app): State<Arc<App>>, _a: Authed, Query(q): Query<StatsQuery>) -> ApiResult {
    Ok(Json(
        json!({ "now_ms": now_ms(), "backend": format!("{:?}", app.store.backend), "hypertables": app.store.hypertables, "ingest": app.stats.view(q.since_ms.unwrap_or(0)) }),
    ))
}

async fn instances(State(app): State<Arc<App>>, _a: Authed) -> ApiResult {
    let rows = app.store.instances().await?;
    Ok(Json(json!({ "now_ms": now_ms(), "instances": rows })))
}

async fn instance(State(app): State<Arc<App>>, _a: Authed, Path(id): Path<String>) -> ApiResult {
    let id = instance_id(&id)?;
    match app.store.instance(&id).await? {
        Some(row) => Ok(Json(json!({ "now_ms": now_ms(), "instance": row }))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no instance {id}"))),
    }
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list(app: &App, id: &str, stream: Stream, page: &Page) -> ApiResult {
    let id = instance_id(id)?;
    let rows = app
        .store
        .records(&id, stream, page.limit.unwrap_or(100), page.before)
        .await?;
    Ok(Json(
        json!({ "instance": id, "stream": stream.as_str(), "records": rows }),
    ))
}

async fn records(
    State(app): State<Arc<App>>,
    _a: Authed,
    Path((id, stream)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> ApiResult {
    let stream = Stream::from_name(&stream).ok_or_else(|| {
        bad(format!(
            "unknown stream {stream:?}: status telemetry signals acks bars drift command_results"
        ))
    })?;
    list(&app, &id, stream, &page).await
}

macro_rules! stream_route {
    ($name:ident, $stream:expr) => {
        async fn $name(
            State(app): State<Arc<App>>,
            _a: Authed,
            Path(id): Path<String>,
            Query(page): Query<Page>,
        ) -> ApiResult {
            list(&app, &id, $stream, &page).await
        }
    };
}

stream_route!(signals, Stream::Signals);
stream_route!(acks, Stream::Acks);
stream_route!(drift, Stream::Drift);
stream_route!(telemetry, Stream::Telemetry);

async fn refusals(State(app): State<Arc<App>>, _a: Authed, Path(id): Path<String>) -> ApiResult {
    let id = instance_id(&id)?;
    let counts = app.store.tag_counts(&id, Stream::Acks).await?;
    let refusals: Vec<_> = counts
        .into_iter()
        .filter(|(tag, _)| tag != "OK")
        .map(|(reason, count)| json!({ "reason": reason, "count": count }))
        .collect();
    Ok(Json(json!({ "instance": id, "refusals": refusals })))
}

#[derive(Debug, Deserialize)]
struct CandleQuery {
    symbol: String,
    timeframe: Option<String>,
}

/// A recorded bar as the API's JSON row: `open_time` in Unix seconds (the bar's open time).
#[derive(Debug, serde::Serialize)]
struct CandleRow {
    open_time: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
}

impl From<&Bar> for CandleRow {
    fn from(b: &Bar) -> Self {
        Self {
            open_time: b.time,
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
        }
    }
}

async fn candles(
    State(app): State<Arc<App>>,
    _a: Authed,
    Path(id): Path<String>,
    Query(q): Query<CandleQuery>,
) -> ApiResult {
    let id = instance_id(&id)?;
    let tf = q.timeframe.unwrap_or_else(|| "M15".into());
    let rows: Vec<CandleRow> = app
        .store
        .candles(&id, &q.symbol, &tf)
        .await?
        .iter()
        .map(CandleRow::from)
        .collect();
    Ok(Json(
        json!({ "instance": id, "symbol": q.symbol, "timeframe": tf, "candles": rows }),
    ))
}

async fn commands(State(app): State<Arc<App>>, _a: Authed, Path(id): Path<String>) -> ApiResult {
    let id = instance_id(&id)?;
    let rows = app.store.commands(&id, 100).await?;
    Ok(Json(json!({ "instance": id, "commands": rows })))
}

async fn command(State(app): State<Arc<App>>, _a: Authed, Path(id): Path<String>) -> ApiResult {
    match app.store.command(&id).await? {
        Some(row) => Ok(Json(json!({ "command": row }))),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no command {id}"))),
    }
}

/// `{"command": {"op": …}, "confirm": "<nonce>"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    command: Command,
    #[serde(default)]
    confirm: Option<Nonce>,
}

/// Signs and sends one command; journals it first (so its answer always finds its row).
async fn send(
    app: &App,
    id: InstanceId,
    command: Command,
    confirm: Option<Nonce>,
) -> Result<serde_json::Value, ApiError> {
    if let Err(r) = command.validate() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: {}", r.field.unwrap_or_default(), r.message),
        ));
    }
    let now = now_ms();
    let envelope = CommandEnvelope {
        v: fleet::signed::COMMAND_VERSION,
        id: CommandId::from_random(random_bytes::<16>()),
        instance: id.clone(),
        issued_ms: now,
        expires_ms: now + app.command_ttl_ms,
        confirm: confirm.clone(),
        command: command.clone(),
    };
    let signed = fleet::sign(&envelope, &app.key);
    app.store
        .insert_command(&NewCommand {
            id: envelope.id.to_string(),
            instance: id.clone(),
            op: command.op().into(),
            command: serde_json::to_string(&command).unwrap_or_default(),
            confirm: confirm.map(|n| n.to_string()),
            issued_ms: envelope.issued_ms,
            expires_ms: envelope.expires_ms,
        })
        .await?;
    let expiry_secs = (app.command_ttl_ms / 1000).clamp(1, u32::MAX as i64) as u32;
    app.publisher
        .publish(fleet::commands_topic(&id), signed.to_bytes(), expiry_secs)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("broker link: {e}")))?;
    tracing::info!(instance = %id, op = command.op(), command_id = %envelope.id, "command sent");
    Ok(
        json!({ "instance": id, "command_id": envelope.id, "op": command.op(), "expires_ms": envelope.expires_ms }),
    )
}

async fn send_command(
    State(app): State<Arc<App>>,
    _c: Csrf,
    Path(id): Path<String>,
    body: Result<Json<CommandRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(req) = body.map_err(|e| bad(e.body_text()))?;
    let id = known(&app, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(send(&app, id, req.command, req.confirm).await?),
    ))
}

/// The same command to every instance that is online (a fleet-wide Flatten: each answers
/// needs_confirmation, and the page confirms each by its nonce).
async fn send_fleet_command(
    State(app): State<Arc<App>>,
    _c: Csrf,
    body: Result<Json<CommandRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(req) = body.map_err(|e| bad(e.body_text()))?;
    if req.confirm.is_some() {
        return Err(bad(
            "confirm each instance on its own endpoint, with its own nonce",
        ));
    }
    let mut sent = Vec::new();
    for row in app.store.instances().await? {
        if row.status != "online" {
            continue;
        }
        let id = instance_id(&row.instance)?;
        sent.push(send(&app, id, req.command.clone(), None).await?);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "sent": sent }))))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    instance: Option<String>,
}

/// Server-sent events: `instance` (a fleet row changed) always; `record` for one instance when
/// `?instance=` names it. A client too slow to keep up gets `resync` and should refetch.
async fn events(
    State(app): State<Arc<App>>,
    _a: Authed,
    Query(q): Query<EventsQuery>,
) -> Sse<impl FuturesStream<Item = Result<Event, Infallible>>> {
    let rx = app.events.subscribe();
    let only = q.instance.filter(|i| InstanceId::new(i).is_ok());
    let stopping = app.stopping.clone();
    let stream = futures_util::stream::unfold(
        (rx, only, stopping),
        |(mut rx, only, mut stopping)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stopping.changed() => return None,
                };
                let ev = match next {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(_)) => {
                        return Some((
                            Ok(Event::default().event("resync").data("{}")),
                            (rx, only, stopping),
                        ));
                    }
                    Err(RecvError::Closed) => return None,
                };
                let kind = match &ev {
                    crate::events::HubEvent::Instance(_) => "instance",
                    crate::events::HubEvent::Record { .. } => {
                        if only.as_deref() != Some(ev.instance()) {
                            continue;
                        }
                        "record"
                    }
                };
                let data = serde_json::to_string(&ev).unwrap_or_default();
                return Some((
                    Ok(Event::default().event(kind).data(data)),
                    (rx, only, stopping),
                ));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
