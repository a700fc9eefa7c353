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
    /// An ordinary request could not be paced within its timeout (historical requests wait their
    /// turn instead).
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
    /// Connection setup failed in a way no retry can fix: the configuration or the token's grant
    /// must change first ([`ClientError::setup_fault`] says which).
    #[error("{step} failed: {error}")]
    SetupRefused {
        /// The setup step (`application auth`, `account auth`, `token refresh`, …).
        step: &'static str,
        /// The server's answer.
        error: Box<ClientError>,
    },
    /// The session was not ready in time. Transient setup failures were being retried with backoff;
    /// `last` is the last one, if an attempt had failed.
    #[error("no ready connection to {addr} within {within:?} ({})", .last.as_deref().map_or_else(|| "the server has not answered".to_string(), |l| format!("last attempt: {l}")))]
    NotReady {
        /// host:port.
        addr: String,
        /// How long the caller waited.
        within: Duration,
        /// The last setup failure.
        last: Option<String>,
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

/// What must change before a connection setup can succeed. From the documented `ProtoOAErrorCode`s
/// (spotware/openapi-proto-messages, OpenApiModelMessages.proto, "Authorization" and "General").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupFault {
    /// `CH_CLIENT_AUTH_FAILURE` ("Open API client is not activated or wrong client credentials"),
    /// `CH_OA_CLIENT_NOT_FOUND` ("Could not find this client id"): the application's client id or
    /// secret.
    Application,
    /// `CH_ACCESS_TOKEN_INVALID` ("Access token is invalid") or `OA_AUTH_TOKEN_EXPIRED` once the
    /// session's one refresh did not help: the token was revoked, or the refresh token was spent.
    AccessToken,
    /// `CH_CTID_TRADER_ACCOUNT_NOT_FOUND` ("Trading account is not found"), `RET_NO_SUCH_LOGIN`
    /// ("such account no longer exists"): the account id is not one the token reaches.
    Account,
    /// `RET_ACCOUNT_DISABLED`, `CHANNEL_IS_BLOCKED` ("Operations are not allowed for this
    /// account"): the broker must re-enable the account.
    AccountDisabled,
}

impl ClientError {
    /// A transient failure that a later identical request may not hit.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::Disconnected { .. }
            | Self::RateLimited { .. }
            | Self::Connect { .. }
            | Self::NotReady { .. } => true,
            Self::Broker { code, .. } => code.is_retryable(),
            _ => false,
        }
    }

    /// Why retrying a failed connection setup cannot help, if it cannot. Everything else at setup
    /// (network, TLS, timeouts, maintenance, rate limits, unknown codes) is retried with backoff.
    pub fn setup_fault(&self) -> Option<SetupFault> {
        match self {
            Self::SetupRefused { error, .. } => error.setup_fault(),
            // Matched as strings: RET_NO_SUCH_LOGIN and RET_ACCOUNT_DISABLED are in Spotware's
            // current proto but not in the ctrader-open-api 0.9.2 descriptors our subset follows,
            // so they arrive as `ErrorCode::Other`.
            Self::Broker { code, .. } => match code.as_str() {
                "CH_CLIENT_AUTH_FAILURE" | "CH_OA_CLIENT_NOT_FOUND" => {
                    Some(SetupFault::Application)
                }
                "CH_ACCESS_TOKEN_INVALID" | "OA_AUTH_TOKEN_EXPIRED" => {
                    Some(SetupFault::AccessToken)
                }
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND" | "RET_NO_SUCH_LOGIN" => {
                    Some(SetupFault::Account)
                }
                "RET_ACCOUNT_DISABLED" | "CHANNEL_IS_BLOCKED" => Some(SetupFault::AccountDisabled),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(code: &str) -> ClientError {
        ClientError::Broker {
            request: "ProtoOAAccountAuthReq",
            code: ErrorCode::parse(code),
            description: None,
            maintenance_end_ms: None,
        }
    }

    #[test]
    fn setup_faults_come_from_the_documented_codes() {
        for (code, fault) in [
            ("CH_CLIENT_AUTH_FAILURE", Some(SetupFault::Application)),
            ("CH_OA_CLIENT_NOT_FOUND", Some(SetupFault::Application)),
            ("CH_ACCESS_TOKEN_INVALID", Some(SetupFault::AccessToken)),
            ("OA_AUTH_TOKEN_EXPIRED", Some(SetupFault::AccessToken)),
            (
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                Some(SetupFault::Account),
            ),
            ("RET_NO_SUCH_LOGIN", Some(SetupFault::Account)),
            ("RET_ACCOUNT_DISABLED", Some(SetupFault::AccountDisabled)),
            ("CHANNEL_IS_BLOCKED", Some(SetupFault::AccountDisabled)),
            ("SERVER_IS_UNDER_MAINTENANCE", None),
            ("REQUEST_FREQUENCY_EXCEEDED", None),
            ("CONNECTIONS_LIMIT_EXCEEDED", None),
            ("CH_SERVER_NOT_REACHABLE", None),
            ("SOMETHING_NEW", None),
        ] {
            assert_eq!(broker(code).setup_fault(), fault, "{code}");
        }
        let refused = ClientError::SetupRefused {
            step: "account auth",
            error: Box::new(broker("CH_CTID_TRADER_ACCOUNT_NOT_FOUND")),
        };
        assert_eq!(refused.setup_fault(), Some(SetupFault::Account));
        assert!(!refused.is_retryable());
        let timeout = ClientError::Timeout {
            request: "ProtoOAAccountAuthReq",
            after: Duration::from_secs(1),
        };
        assert_eq!(timeout.setup_fault(), None);
    }

    #[test]
    fn not_ready_names_the_last_failure_once() {
        let e = ClientError::NotReady {
            addr: "h:1".into(),
            within: Duration::from_secs(30),
            last: Some("connect failed: cannot connect to h:1: refused".into()),
        };
        let s = e.to_string();
        assert_eq!(s.matches("refused").count(), 1, "{s}");
        assert!(!s.contains("outcome is unknown"), "{s}");
        assert!(e.is_retryable());
    }
}
