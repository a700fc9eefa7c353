//! The trading accounts an access token can reach, asked on a connection of its own that authorises
//! the application and nothing else. This is how a trader finds the `ctidTraderAccountId` to
//! configure, and what a refused account is checked against.
//!
//! The sequence is the documented one (help.ctrader.com/open-api/account-authentication/, steps 7
//! and 8): `ProtoOAApplicationAuthReq` with the client id and secret, then
//! `ProtoOAGetAccountListByAccessTokenReq` with the access token, answered by
//! `ProtoOAGetAccountListByAccessTokenRes` listing `ProtoOACtidTraderAccount`s. No account is
//! authorised, so a wrong or missing `account_id` does not matter here.

use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use tokio::sync::watch;

use crate::client::config::ClientConfig;
use crate::client::error::ClientError;
use crate::client::events::EventSink;
use crate::client::rate_limit::RateLimiter;
use crate::client::session::{self, LinkState, Shared, Subscriptions, expect};
use crate::messages::*;

/// One trading account as `ProtoOACtidTraderAccount` describes it (OpenApiModelMessages.proto).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAccount {
    /// `ctidTraderAccountId`: what `account_id` must be set to.
    pub account_id: i64,
    /// `isLive`: "If TRUE then the account is belong to Live environment and live host must be
    /// used to authorize it". `None` when the server left it out.
    pub is_live: Option<bool>,
    /// `traderLogin`: the number the trader sees in cTrader ("displayed on Client App UI").
    pub trader_login: Option<i64>,
    /// `brokerTitleShort`: "The name of the broker to which the account belongs to".
    pub broker: Option<String>,
}

impl From<&ProtoOaCtidTraderAccount> for TokenAccount {
    fn from(a: &ProtoOaCtidTraderAccount) -> Self {
        Self {
            account_id: i64::try_from(a.ctid_trader_account_id).unwrap_or(i64::MAX),
            is_live: a.is_live,
            trader_login: a.trader_login,
            broker: a.broker_title_short.clone().filter(|b| !b.is_empty()),
        }
    }
}

impl std::fmt::Display for TokenAccount {
    /// `12345678 (demo, login 3012345, broker IC Markets)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env = match self.is_live {
            Some(true) => "live",
            Some(false) => "demo",
            None => "live or demo not given",
        };
        write!(f, "{} ({env}", self.account_id)?;
        if let Some(l) = self.trader_login {
            write!(f, ", login {l}")?;
        }
        if let Some(b) = &self.broker {
            write!(f, ", broker {b}")?;
        }
        f.write_str(")")
    }
}

/// Connects to `config`'s host, authorises the application and lists the accounts of `config`'s
/// access token (its `account_id` is not used). One request at a time, each within
/// `request_timeout`; the connection is closed afterwards.
pub async fn token_accounts(config: &ClientConfig) -> Result<Vec<TokenAccount>, ClientError> {
    let mut problems = Vec::new();
    for (name, value) in [
        ("client_id", &config.client_id),
        ("client_secret", &config.client_secret),
        ("access token", &config.tokens.access_token),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("{name} is empty"));
        }
    }
    if !problems.is_empty() {
        return Err(ClientError::Config(problems));
    }
    // Unsolicited messages have no reader here: the event stream is dropped at once.
    let (events, _) = EventSink::channel(1);
    let shared = Shared {
        config: config.clone(),
        tls: super::tls_connector(config)?,
        subs: Mutex::new(Subscriptions::default()),
        tokens: Mutex::new(config.tokens.clone()),
        limiter: Mutex::new(RateLimiter::new(
            config.normal_rate_per_sec,
            config.historical_rate_per_sec,
        )),
        historical_queue: tokio::sync::Mutex::new(()),
        state: watch::channel(LinkState::Connecting).0,
        events,
        last_setup_failure: Mutex::new(None),
    };
    let shared = Arc::new(shared);
    let mut conn = session::open_transport(&shared).await?;
    let app = ProtoOaApplicationAuthReq {
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
        ..Default::default()
    };
    expect::<ProtoOaApplicationAuthRes>(session::call(&shared, &mut conn, &app).await)
        .map_err(refused("application auth"))?;
    let req = ProtoOaGetAccountListByAccessTokenReq {
        access_token: config.tokens.access_token.clone(),
        ..Default::default()
    };
    let res = expect::<ProtoOaGetAccountListByAccessTokenRes>(
        session::call(&shared, &mut conn, &req).await,
    )
    .map_err(refused("account list"))?;
    let _ = SinkExt::<ProtoMessage>::close(&mut conn).await;
    Ok(res
        .ctid_trader_account
        .iter()
        .map(TokenAccount::from)
        .collect())
}

/// An answer no retry can fix becomes [`ClientError::SetupRefused`] naming the step; anything
/// else (timeouts, a dropped link, maintenance) is returned as it is.
fn refused(step: &'static str) -> impl FnOnce(ClientError) -> ClientError {
    move |e| {
        if e.setup_fault().is_some() {
            ClientError::SetupRefused {
                step,
                error: Box::new(e),
            }
        } else {
            e
        }
    }
}
