//! What the session does when the broker stops accepting the account's token.
//!
//! `ProtoOAAccountsTokenInvalidatedEvent` is "sent when a session to a specific trader's account is
//! terminated by the server [...] Reasons to trigger: account was deleted, cTID was deleted, token
//! was refreshed, token was revoked" (spotware/openapi-proto-messages `OpenApiMessages.proto`). The
//! session drops the link and sets up again. Account authorisation then tries, in order: the token
//! pair in the token file if it differs from the one refused (`executor auth`, or another refresh,
//! wrote a new one), then one `ProtoOARefreshTokenReq` ("Request to refresh the access token using
//! refresh token of granted trader's account"). When both fail with a token refusal
//! (`CH_ACCESS_TOKEN_INVALID`, `OA_AUTH_TOKEN_EXPIRED`) no retry can help: the session reports
//! [`crate::client::ConnectionEvent::AuthorizationLost`] and stops contacting the server. Requests
//! fail at once with [`ClientError::Unauthorized`]. It looks at the token file every
//! [`TOKEN_FILE_POLL`] and sets up again once the file holds a different pair; nothing else wakes it.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::client::error::ClientError;
use crate::client::events::ConnectionEvent;
use crate::client::session::{Command, LinkState, Shared, lock};
use crate::client::token_store::Tokens;

/// How often a session that lost its authorisation reads the token file for a new pair.
pub const TOKEN_FILE_POLL: Duration = Duration::from_secs(5);

/// A setup failure that means the token (and its refresh) was refused, with the reason to report;
/// `None` for anything a later attempt may get past (network, timeouts, maintenance, rate limits).
/// Called after the account authorisation has already tried the token file and one refresh.
pub fn token_refused(step: &str, error: &ClientError) -> Option<String> {
    match error {
        ClientError::Broker { code, .. } if code.needs_token_refresh() => {
            Some(format!("{step} refused the token: {error}"))
        }
        // No refresh token to try (the file holds only an access token).
        ClientError::TokenStore(why) if step == "token refresh" => Some(format!("{step}: {why}")),
        _ => None,
    }
}

/// The pair in the token file, if it is usable and not the one just refused.
pub fn newer_pair(loaded: Option<Tokens>, refused_access_token: &str) -> Option<Tokens> {
    loaded.filter(|t| !t.access_token.is_empty() && t.access_token != refused_access_token)
}

/// Adopts the token file's pair if it differs from `refused_access_token`.
pub(crate) async fn reload_tokens(shared: &Shared, refused_access_token: &str) -> bool {
    let Some(store) = &shared.config.token_store else {
        return false;
    };
    match newer_pair(store.load().ok(), refused_access_token) {
        Some(tokens) => {
            *lock(&shared.tokens) = tokens;
            shared
                .events
                .connection(ConnectionEvent::TokensReloaded)
                .await;
            true
        }
        None => false,
    }
}

/// The broker refused the token and its refresh: report it, fail every request at once, and read
/// the token file every `TOKEN_FILE_POLL` until it holds another pair. `None` when the client shut
/// down meanwhile.
pub(crate) async fn park_until_new_tokens(
    shared: &Shared,
    cmds: &mut mpsc::Receiver<Command>,
    reason: String,
) -> Option<()> {
    let _ = shared.state.send(LinkState::Disconnected);
    tracing::error!(%reason, "ctrader authorisation lost; no more attempts until the token file changes");
    shared
        .events
        .connection(ConnectionEvent::AuthorizationLost {
            account_id: shared.config.account_id,
            reason: reason.clone(),
        })
        .await;
    let refused = lock(&shared.tokens).access_token.clone();
    let mut poll = tokio::time::interval(TOKEN_FILE_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                if reload_tokens(shared, &refused).await {
                    return Some(());
                }
            }
            cmd = cmds.recv() => match cmd {
                None => return None,
                Some(c) => {
                    let _ = c.reply.send(Err(ClientError::Unauthorized {
                        request: c.request,
                        reason: reason.clone(),
                    }));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorCode;

    fn broker(code: &str) -> ClientError {
        ClientError::Broker {
            request: "ProtoOARefreshTokenReq",
            code: ErrorCode::parse(code),
            description: Some("Invalid token".into()),
            maintenance_end_ms: None,
        }
    }

    #[test]
    fn only_token_refusals_stop_the_session() {
        assert!(token_refused("token refresh", &broker("CH_ACCESS_TOKEN_INVALID")).is_some());
        assert!(token_refused("account auth", &broker("OA_AUTH_TOKEN_EXPIRED")).is_some());
        let none = ClientError::TokenStore("no refresh token".into());
        assert!(token_refused("token refresh", &none).is_some());
        for transient in [
            broker("SERVER_IS_UNDER_MAINTENANCE"),
            broker("REQUEST_FREQUENCY_EXCEEDED"),
            ClientError::Timeout {
                request: "ProtoOAAccountAuthReq",
                after: Duration::from_secs(10),
            },
            ClientError::Disconnected {
                request: "ProtoOARefreshTokenReq",
            },
        ] {
            assert_eq!(
                token_refused("token refresh", &transient),
                None,
                "{transient}"
            );
        }
    }

    #[test]
    fn a_new_pair_is_one_that_differs_from_the_refused_token() {
        let pair = |a: &str| Tokens {
            access_token: a.into(),
            refresh_token: "r".into(),
            expires_at: None,
        };
        assert_eq!(newer_pair(Some(pair("old")), "old"), None);
        assert_eq!(newer_pair(Some(pair("")), "old"), None);
        assert_eq!(newer_pair(None, "old"), None);
        assert_eq!(newer_pair(Some(pair("new")), "old"), Some(pair("new")));
    }
}
