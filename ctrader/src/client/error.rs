//! The client's error type. Cloneable (strings, not sources) so one failure can be handed to every
//! waiter of a dead connection and carried in events.

use std::time::Duration;

use crate::client::rate_limit::RequestClass;
use crate::domain::ErrorCode;

/// Why a client call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The configuration is unusable; every problem is listed.
    #[error("invalid cTrader client configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// host:port.
        addr: String,
        /// The OS or timeout reason.
        reason: String,
    },
    /// No answer within the request timeout. For orders the outcome is unknown: reconcile.
    #[error(
        "{request} got no answer within {after:?}; its outcome is unknown (reconcile before retrying)"
    )]
    Timeout {
        /// The request message name.
        request: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The connection is down or dropped while the request was in flight.
    #[error("{request} failed: the connection to the server is down (reconcile before retrying)")]
    Disconnected {
        /// The request message name.
        request: &'static str,
    },
    /// The server answered with an error.
    #[error("broker refused {request}: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Broker {
        /// The request message name.
        request: &'static str,
        /// The error code.
        code: ErrorCode,
        /// The server's description.
        description: Option<String>,
        /// End of a maintenance window announced with the error, Unix ms.
        maintenance_end_ms: Option<i64>,
    },
    /// The request could not be paced within its timeout.
    #[error(
        "{request} not sent: the {class:?} rate limit needs {wait:?} more, beyond the request timeout"
    )]
    RateLimited {
        /// The request message name.
        request: &'static str,
        /// The limit hit.
        class: RequestClass,
        /// Time until a slot frees up.
        wait: Duration,
    },
    /// The server sent something that does not fit the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The answer was a different message than the request calls for.
    #[error("{request} was answered with {got}")]
    UnexpectedResponse {
        /// The request message name.
        request: &'static str,
        /// The answer's message name.
        got: &'static str,
    },
    /// Tokens could not be persisted or loaded.
    #[error("token store: {0}")]
    TokenStore(String),
    /// The broker refused the account's token and its refresh: nothing is sent until the token
    /// file holds a new pair (see [`crate::client::authorization`]).
    #[error("{request} not sent: the account is not authorised ({reason})")]
    Unauthorized {
        /// The request message name.
        request: &'static str,
        /// Why the authorisation was lost.
        reason: String,
    },
    /// The client task has stopped.
    #[error("the cTrader client has shut down")]
    Closed,
}

impl ClientError {
    /// A transient failure that a later identical request may not hit.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Disconnected { .. }
            | Self::RateLimited { .. }
            | Self::Connect { .. } => true,
            Self::Broker { code, .. } => code.is_retryable(),
            _ => false,
        }
    }
}
