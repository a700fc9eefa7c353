//! Open API error codes arrive as strings (`ProtoErrorRes.errorCode`, `ProtoOAErrorRes.errorCode`,
//! `ProtoOAOrderErrorEvent.errorCode`). Known ones map onto the two generated enums; anything else
//! is kept verbatim, because the server uses codes outside the published enums (e.g. trading
//! rejections) and new ones appear over time.

use std::fmt;

use crate::messages::{ProtoErrorCode, ProtoOaErrorCode};

/// A broker error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// One of `ProtoErrorCode` (transport-level errors).
    Common(ProtoErrorCode),
    /// One of `ProtoOAErrorCode`.
    OpenApi(ProtoOaErrorCode),
    /// Any other code string.
    Other(String),
}

impl ErrorCode {
    /// Parses a code string; never fails.
    pub fn parse(code: &str) -> Self {
        if let Some(c) = ProtoOaErrorCode::from_str_name(code) {
            Self::OpenApi(c)
        } else if let Some(c) = ProtoErrorCode::from_str_name(code) {
            Self::Common(c)
        } else {
            Self::Other(code.to_string())
        }
    }

    /// The code string as sent by the server.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Common(c) => c.as_str_name(),
            Self::OpenApi(c) => c.as_str_name(),
            Self::Other(s) => s,
        }
    }

    /// A transient condition: the same request may succeed later without any change (after a wait,
    /// a reconnect or the rate limit clearing). Order placement still reconciles before resending.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Common(c) => matches!(
                c,
                ProtoErrorCode::TimeoutError
                    | ProtoErrorCode::CantRouteRequest
                    | ProtoErrorCode::ConcurrentModification
                    | ProtoErrorCode::UnknownError
            ),
            Self::OpenApi(c) => matches!(
                c,
                ProtoOaErrorCode::ChServerNotReachable
                    | ProtoOaErrorCode::RequestFrequencyExceeded
                    | ProtoOaErrorCode::ServerIsUnderMaintenance
                    | ProtoOaErrorCode::NoQuotes
                    | ProtoOaErrorCode::PositionLocked
                    | ProtoOaErrorCode::PendingExecution
            ),
            Self::Other(_) => false,
        }
    }

    /// The access token is expired or invalid: refresh it, then authorise the account again.
    pub fn needs_token_refresh(&self) -> bool {
        matches!(
            self,
            Self::OpenApi(
                ProtoOaErrorCode::OaAuthTokenExpired | ProtoOaErrorCode::ChAccessTokenInvalid
            )
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        assert_eq!(
            ErrorCode::parse("NOT_ENOUGH_MONEY"),
            ErrorCode::OpenApi(ProtoOaErrorCode::NotEnoughMoney)
        );
        assert_eq!(
            ErrorCode::parse("MARKET_CLOSED"),
            ErrorCode::Common(ProtoErrorCode::MarketClosed)
        );
        assert_eq!(
            ErrorCode::parse("SOMETHING_NEW"),
            ErrorCode::Other("SOMETHING_NEW".into())
        );
        for s in ["NOT_ENOUGH_MONEY", "MARKET_CLOSED", "SOMETHING_NEW", ""] {
            assert_eq!(ErrorCode::parse(s).as_str(), s);
        }
    }

    #[test]
    fn retryable_codes() {
        assert!(ErrorCode::parse("REQUEST_FREQUENCY_EXCEEDED").is_retryable());
        assert!(ErrorCode::parse("SERVER_IS_UNDER_MAINTENANCE").is_retryable());
        assert!(ErrorCode::parse("TIMEOUT_ERROR").is_retryable());
        assert!(!ErrorCode::parse("NOT_ENOUGH_MONEY").is_retryable());
        assert!(!ErrorCode::parse("TRADING_BAD_VOLUME").is_retryable());
        assert!(!ErrorCode::parse("SOMETHING_NEW").is_retryable());
        assert!(ErrorCode::parse("OA_AUTH_TOKEN_EXPIRED").needs_token_refresh());
        assert!(!ErrorCode::parse("NO_QUOTES").needs_token_refresh());
    }
}
