//! The topic tree: `oracle/{instance_id}/{stream}`. The instance id in the topic is the only one the
//! hub trusts: the broker's ACL lets a client write only under its own username (docs/HUB.md §ACL).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::InstanceId;

/// The first topic level of every fleet topic.
pub const ROOT: &str = "oracle";

/// One stream an instance publishes. Each has its own sequence numbers (from 1, durable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Retained: `online` on connect, the last will `offline`.
    Status,
    Telemetry,
    Signals,
    Acks,
    Bars,
    Drift,
    /// `…/commands/result`: the instance's answer to each command.
    CommandResults,
}

impl Stream {
    pub const ALL: [Stream; 7] = [
        Self::Status,
        Self::Telemetry,
        Self::Signals,
        Self::Acks,
        Self::Bars,
        Self::Drift,
        Self::CommandResults,
    ];

    /// The topic levels after `oracle/{id}/`.
    pub fn suffix(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Telemetry => "telemetry",
            Self::Signals => "signals",
            Self::Acks => "acks",
            Self::Bars => "bars",
            Self::Drift => "drift",
            Self::CommandResults => "commands/result",
        }
    }

    /// The name used in storage and the API (`command_results`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CommandResults => "command_results",
            other => other.suffix(),
        }
    }

    pub fn from_name(s: &str) -> Option<Stream> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The largest payload accepted on this stream, in bytes (a compromised instance can send
    /// anything; the broker's `max_packet_size` cuts first, this is the hub's own bound).
    pub fn max_payload(&self) -> usize {
        match self {
            Self::Telemetry => crate::limits::MAX_TELEMETRY_BYTES,
            Self::CommandResults => crate::limits::MAX_RESULT_BYTES,
            _ => crate::limits::MAX_RECORD_BYTES,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The topic an instance publishes a stream on.
pub fn stream_topic(instance: &InstanceId, stream: Stream) -> String {
    format!("{ROOT}/{instance}/{}", stream.suffix())
}

/// The topic the hub publishes an instance's commands on (only the hub may write it).
pub fn commands_topic(instance: &InstanceId) -> String {
    format!("{ROOT}/{instance}/commands")
}

/// The hub's subscriptions: every stream of every instance (`+` = one level, the instance id).
pub fn hub_subscriptions() -> Vec<String> {
    Stream::ALL
        .iter()
        .map(|s| format!("{ROOT}/+/{}", s.suffix()))
        .collect()
}

/// A topic that is not an instance stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} is not under {ROOT}/")]
    NotFleet(String),
    #[error("topic {topic:?}: {source}")]
    Instance {
        topic: String,
        #[source]
        source: crate::ids::IdError,
    },
    #[error(
        "topic {0:?} names no stream (expected oracle/<id>/status|telemetry|signals|acks|bars|drift|commands/result)"
    )]
    UnknownStream(String),
}

/// Splits an incoming topic into (instance, stream). `oracle/{id}/commands` is not a stream (the
/// hub writes it), so it is refused like any unknown suffix.
pub fn parse_topic(topic: &str) -> Result<(InstanceId, Stream), TopicError> {
    let short = || topic.chars().take(200).collect::<String>();
    let rest = topic
        .strip_prefix(ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| TopicError::NotFleet(short()))?;
    let (id, suffix) = rest
        .split_once('/')
        .ok_or_else(|| TopicError::UnknownStream(short()))?;
    let instance = InstanceId::new(id).map_err(|source| TopicError::Instance {
        topic: short(),
        source,
    })?;
    let stream = Stream::ALL
        .into_iter()
        .find(|s| s.suffix() == suffix)
        .ok_or_else(|| TopicError::UnknownStream(short()))?;
    Ok((instance, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_topic_parses_back() {
        let id = InstanceId::new("eu-1").unwrap();
        for s in Stream::ALL {
            assert_eq!(parse_topic(&stream_topic(&id, s)).unwrap(), (id.clone(), s));
            assert_eq!(Stream::from_name(s.as_str()), Some(s));
        }
        assert_eq!(
            stream_topic(&id, Stream::CommandResults),
            "oracle/eu-1/commands/result"
        );
        assert_eq!(hub_subscriptions().len(), Stream::ALL.len());
    }

    #[test]
    fn foreign_topics_are_refused() {
        for bad in [
            "oracle/eu-1/commands",
            "oracle/eu-1/telemetry/x",
            "oracle/EU/telemetry",
            "oracle//telemetry",
            "oracle/eu-1",
            "other/eu-1/telemetry",
            "oracle",
            "$SYS/broker/uptime",
        ] {
            assert!(parse_topic(bad).is_err(), "{bad}");
        }
    }
}
