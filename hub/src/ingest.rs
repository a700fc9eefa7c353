//! Ingest: a (topic, payload) from the broker becomes an accepted record or a counted refusal.
//! The pure part ([`classify`]) decides; [`Ingest`] writes batches and tells the dashboard.
//!
//! Hostile input: the instance id comes from the topic only (the broker's ACL binds it to the
//! client's username); the payload is size-checked before parsing (fleet::decode), every field is
//! validated, and a refused payload changes nothing but the sender's own refusal counter.

use fleet::{Body, InstanceId, Record, Stream};

use crate::store::{Accepted, Derived};

/// What one incoming message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    /// Not a fleet stream topic (or an instance id the contract refuses): ignored.
    Foreign(String),
    /// From an instance, but refused: counted against that instance.
    Refused {
        instance: InstanceId,
        reason: String,
    },
    Accepted(Box<Accepted>),
}

fn tag_of(body: &Body) -> (Option<String>, Option<String>) {
    match body {
        Body::Status(s) => (
            None,
            Some(
                match s {
                    fleet::Status::Online { .. } => "online",
                    fleet::Status::Offline => "offline",
                }
                .into(),
            ),
        ),
        Body::Telemetry(_) => (None, None),
        Body::Signal(s) => match s.signal() {
            Ok(sig) => (Some(sig.symbol.to_string()), Some(sig.action.to_string())),
            Err(_) => (None, None),
        },
        Body::Ack(a) => match a.ack() {
            Ok(ack) => {
                let tag = match &ack.outcome {
                    protocol::AckOutcome::Ok { .. } => "OK".to_string(),
                    protocol::AckOutcome::Fail(r) => r.to_string(),
                    protocol::AckOutcome::WaitSync(r) => r.to_string(),
                };
                (Some(ack.symbol.to_string()), Some(tag))
            }
            Err(_) => (None, None),
        },
        Body::Bar(b) => (Some(b.symbol.to_string()), Some(b.timeframe.to_string())),
        Body::Drift(d) => (
            Some(d.symbol.to_string()),
            Some(if d.in_sync {
                "in_sync".into()
            } else {
                "out_of_sync".into()
            }),
        ),
        Body::CommandResult(o) => (None, Some(o.result.kind().into())),
    }
}

fn body_json(body: &Body) -> String {
    let v = match body {
        Body::Status(x) => serde_json::to_string(x),
        Body::Telemetry(x) => serde_json::to_string(x),
        Body::Signal(x) => serde_json::to_string(x),
        Body::Ack(x) => serde_json::to_string(x),
        Body::Bar(x) => serde_json::to_string(x),
        Body::Drift(x) => serde_json::to_string(x),
        Body::CommandResult(x) => serde_json::to_string(x),
    };
    v.unwrap_or_default()
}

fn derived(body: &Body) -> Derived {
    match body {
        Body::Status(fleet::Status::Online {
            mode,
            version,
            started_ms,
        }) => Derived::Status {
            state: "online",
            mode: Some(mode.to_string()),
            version: Some(version.clone()),
            started_ms: Some(*started_ms),
        },
        Body::Status(fleet::Status::Offline) => Derived::Status {
            state: "offline",
            mode: None,
            version: None,
            started_ms: None,
        },
        Body::Telemetry(_) => Derived::Telemetry,
        // `fleet::decode` validated the record, and a valid record is a bar (`BarRecord::to_bar`
        // is its validation): the `None` arm is never taken.
        Body::Bar(b) => match b.to_bar() {
            Ok(bar) => Derived::Candle {
                symbol: b.symbol.to_string(),
                timeframe: b.timeframe.to_string(),
                bar,
            },
            Err(_) => Derived::None,
        },
        Body::CommandResult(o) => match &o.command_id {
            Some(id) => Derived::CommandResult {
                command_id: id.to_string(),
                kind: o.result.kind(),
            },
            None => Derived::None,
        },
        Body::Signal(_) | Body::Ack(_) | Body::Drift(_) => Derived::None,
    }
}

/// Decides what a message is. Pure: no clock but `received_ms`, no I/O.
pub fn classify(topic: &str, payload: &[u8], received_ms: i64) -> Classified {
    let (instance, stream) = match fleet::parse_topic(topic) {
        Ok(x) => x,
        Err(e) => return Classified::Foreign(e.to_string()),
    };
    let record: Record<Body> = match fleet::decode(stream, payload) {
        Ok(r) => r,
        Err(e) => {
            return Classified::Refused {
                instance,
                reason: e.to_string(),
            };
        }
    };
    // The store's integers are i64; a seq beyond is no real counter.
    let Ok(seq) = i64::try_from(record.seq) else {
        return Classified::Refused {
            instance,
            reason: format!("{stream} record: seq {} exceeds 2^63-1", record.seq),
        };
    };
    let (symbol, tag) = tag_of(&record.body);
    Classified::Accepted(Box::new(Accepted {
        instance,
        stream,
        seq,
        ts_ms: record.ts_ms,
        received_ms,
        symbol,
        tag,
        body: body_json(&record.body),
        derived: derived(&record.body),
    }))
}

/// What `Stream` a stored record name maps to (API paths use the storage names).
pub fn stream_named(name: &str) -> Option<Stream> {
    Stream::from_name(name)
}
