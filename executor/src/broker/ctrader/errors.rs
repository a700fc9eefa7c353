//! What the cTrader client's errors and session events mean to the executor: the broker error
//! the engine understands, and what the operator must read in the log.

use ctrader::client::{ClientError, ClientEvent, ConnectionEvent};

use crate::broker::BrokerError;

/// Maps a client error to the broker error the engine understands.
pub fn map_error(e: ClientError) -> BrokerError {
    match e {
        ClientError::Timeout { .. } => BrokerError::Timeout,
        ClientError::Disconnected { .. } => BrokerError::Disconnected,
        ClientError::Closed
        | ClientError::Connect { .. }
        | ClientError::Tls(_)
        | ClientError::Unauthorized { .. } => BrokerError::NotConnected,
        ClientError::Broker {
            code, description, ..
        } => {
            let d = description.unwrap_or_default();
            // Order errors arrive as code strings, not all of them in ProtoOAErrorCode.
            match code.as_str() {
                "NOT_ENOUGH_MONEY" => BrokerError::NotEnoughMoney(d),
                "MARKET_CLOSED" | "SYMBOL_HAS_HOLIDAY" | "NO_QUOTES" => {
                    BrokerError::MarketClosed(d)
                }
                "TRADING_BAD_VOLUME" => BrokerError::BadVolume(d),
                // The close's ticket names the position (the code does not).
                "POSITION_NOT_FOUND" => BrokerError::PositionNotFound(0),
                other => BrokerError::Rejected {
                    code: other.to_string(),
                    description: d,
                },
            }
        }
        other => BrokerError::Rejected {
            code: "CLIENT".into(),
            description: other.to_string(),
        },
    }
}

/// What the operator must know about the account's session: an invalidated token, a cancelled
/// application connection, and a lost authorisation with its fix.
pub(super) fn log_session_event(ev: &ClientEvent) {
    match ev {
        ClientEvent::TokenInvalidated {
            account_ids,
            reason,
        } => tracing::warn!(
            ?account_ids,
            reason = reason.as_deref().unwrap_or("none given"),
            "cTrader invalidated the access token; reconnecting with the token file's pair, or one refresh"
        ),
        ClientEvent::ClientDisconnected { reason } => tracing::error!(
            reason = reason.as_deref().unwrap_or("none given"),
            "cTrader cancelled this application's connection; reconnecting"
        ),
        ClientEvent::Connection(ConnectionEvent::AuthorizationLost { account_id, reason }) => {
            tracing::error!(
                account_id,
                %reason,
                "cTrader refused the account's token and its refresh: trading on this account has stopped; run `executor auth --config <this config>` to write a new token pair to broker.ctrader.token_file, the executor picks it up within seconds"
            )
        }
        _ => {}
    }
}
