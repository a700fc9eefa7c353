//! `executor accounts`: the trading accounts the configured access token reaches
//! (`ProtoOAGetAccountListByAccessTokenReq`, via [`ctrader::client::token_accounts`]), so the trader
//! can pick the `account_id` to configure; and [`explain`]: what a connection setup that no retry
//! can fix means for this config, and what to change.

use std::fmt;

use ctrader::client::{
    ClientConfig, ClientError, DEMO_HOST, LIVE_HOST, SetupFault, TokenAccount, TokenStore,
    TokenStoreError,
};

use crate::config::CtraderConfig;
use crate::secrets::{SecretError, read_secret};

/// Why the accounts could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cTrader client secret: {0}")]
    Secret(SecretError),
    #[error("{0} (fix: run `executor auth` first; it writes this file)")]
    Tokens(TokenStoreError),
    #[error("{0}")]
    Client(ClientError),
}

/// The client configuration `ct` describes, with the secret and the tokens read from their files.
pub fn client_config(ct: &CtraderConfig) -> Result<ClientConfig, AccountsError> {
    let secret = read_secret(&ct.secret_file).map_err(AccountsError::Secret)?;
    let tokens = TokenStore::new(&ct.token_file)
        .load()
        .map_err(AccountsError::Tokens)?;
    let mut cc = ClientConfig::new(
        ct.host.clone(),
        ct.port,
        ct.client_id.clone(),
        secret,
        ct.account_id,
        tokens,
    );
    cc.extra_ca_file = ct.ca_file.clone();
    cc.request_timeout = std::time::Duration::from_millis(ct.request_timeout_ms.max(1));
    Ok(cc)
}

/// The accounts the configured token reaches, asked at the configured host.
pub async fn list(ct: &CtraderConfig) -> Result<Vec<TokenAccount>, AccountsError> {
    let cc = client_config(ct)?;
    ctrader::client::token_accounts(&cc)
        .await
        .map_err(AccountsError::Client)
}

/// Which Open API environment a host serves, when it is one of Spotware's.
fn environment(host: &str) -> Option<bool> {
    match host {
        LIVE_HOST => Some(true),
        DEMO_HOST => Some(false),
        _ => None,
    }
}

fn env_name(live: bool) -> &'static str {
    if live { "live" } else { "demo" }
}

/// Why an account cannot be used from `host`, if it cannot: "If TRUE then the account is belong to
/// Live environment and live host must be used to authorize it" (ProtoOACtidTraderAccount.isLive).
fn wrong_host(a: &TokenAccount, host: &str) -> Option<String> {
    let (live, served) = (a.is_live?, environment(host)?);
    (live != served).then(|| {
        format!(
            "a {} account: set broker.ctrader.host to {}",
            env_name(live),
            if live { LIVE_HOST } else { DEMO_HOST }
        )
    })
}

/// The table `executor accounts` prints.
pub fn render(accounts: &[TokenAccount], host: &str, configured: i64) -> String {
    if accounts.is_empty() {
        return "The access token grants no trading account. Run `executor auth` again and tick \
                the account(s) to allow on the authorization page.\n"
            .to_string();
    }
    let mut out = format!(
        "{:<20} {:<5} {:<12} {}\n",
        "ACCOUNT_ID", "ENV", "LOGIN", "BROKER"
    );
    for a in accounts {
        let env = a.is_live.map_or("?", env_name);
        let login = a.trader_login.map_or("?".to_string(), |l| l.to_string());
        out.push_str(&format!(
            "{:<20} {:<5} {:<12} {}",
            a.account_id,
            env,
            login,
            a.broker.as_deref().unwrap_or("(not given)")
        ));
        if a.account_id == configured {
            out.push_str("  <- configured");
        }
        if let Some(w) = wrong_host(a, host) {
            out.push_str(&format!("  ({w})"));
        }
        out.push('\n');
    }
    out.push_str(
        "Set broker.ctrader.account_id to the ACCOUNT_ID to trade (the ctidTraderAccountId, not the login).\n",
    );
    out
}

/// A connection setup that no retry can fix: the server's answer, what it means for this
/// config, and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRefusal {
    pub cause: String,
    pub fix: String,
}

impl fmt::Display for SetupRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cTrader {}. Fix: {}", self.cause, self.fix)
    }
}

/// What `error` (a [`ClientError::SetupRefused`] of kind `fault`) means for `ct`. `reachable` is
/// the token's account list, asked after an account or token refusal (`None` when not asked).
pub fn explain(
    fault: SetupFault,
    error: &ClientError,
    ct: &CtraderConfig,
    reachable: Option<Result<Vec<TokenAccount>, ClientError>>,
) -> SetupRefusal {
    let id = ct.account_id;
    let auth_again = "run `executor auth --config CONFIG --redirect-uri URI` to grant access again";
    let list = |v: &[TokenAccount]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (context, fix) = match (fault, reachable) {
        (SetupFault::Application, _) => (
            None,
            format!(
                "check broker.ctrader.client_id and the secret in {}: both are under your \
                 application's \"Credentials\" at openapi.ctrader.com/apps, and its status must be \
                 Active",
                ct.secret_file.display()
            ),
        ),
        (SetupFault::AccountDisabled, _) => (
            None,
            format!(
                "the broker has disabled account {id} or blocked it for Open API: ask the broker, \
                 or configure another account (`executor accounts --config CONFIG` lists them)"
            ),
        ),
        (_, Some(Ok(accounts))) => match accounts.iter().find(|a| a.account_id == id) {
            Some(a) => match wrong_host(a, &ct.host) {
                Some(w) => (Some(format!("account {a} is {w}")), w),
                None => (
                    Some(format!("the token lists account {a}")),
                    format!("the token was refused for it: {auth_again}"),
                ),
            },
            None if accounts.is_empty() => (
                Some("the access token grants no trading account".to_string()),
                "run `executor auth` again and tick the account to allow".to_string(),
            ),
            None => (
                Some(format!(
                    "account_id {id} is not one this access token can trade; it reaches: {}",
                    list(&accounts)
                )),
                format!(
                    "set broker.ctrader.account_id to one of them (`executor accounts --config \
                     CONFIG` lists them), or {auth_again} and tick account {id}"
                ),
            ),
        },
        (_, Some(Err(e))) if e.setup_fault() == Some(SetupFault::AccessToken) => (
            Some("the access token is refused too when listing its accounts".to_string()),
            format!("the token was revoked or its refresh token already spent: {auth_again}"),
        ),
        (fault, Some(Err(e))) => (
            Some(format!("the token's accounts could not be listed: {e}")),
            match fault {
                SetupFault::AccessToken => auth_again.to_string(),
                _ => format!(
                    "check broker.ctrader.account_id ({id}) against `executor accounts --config CONFIG`"
                ),
            },
        ),
        (SetupFault::AccessToken, None) => (None, auth_again.to_string()),
        (SetupFault::Account, None) => (
            None,
            "set broker.ctrader.account_id to an account `executor accounts --config CONFIG` lists"
                .to_string(),
        ),
    };
    SetupRefusal {
        cause: match context {
            Some(c) => format!("{error}; {c}"),
            None => error.to_string(),
        },
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn ct(host: &str, account_id: i64) -> CtraderConfig {
        CtraderConfig {
            host: host.into(),
            port: 5035,
            ca_file: None,
            client_id: "id".into(),
            secret_file: PathBuf::from("/etc/s"),
            token_file: PathBuf::from("/etc/t"),
            account_id,
            request_timeout_ms: 5000,
        }
    }

    fn account(id: i64, live: bool) -> TokenAccount {
        TokenAccount {
            account_id: id,
            is_live: Some(live),
            trader_login: Some(id + 7),
            broker: Some("Broker".into()),
        }
    }

    fn refused(code: &str) -> ClientError {
        ClientError::SetupRefused {
            step: "account auth",
            error: Box::new(ClientError::Broker {
                request: "ProtoOAAccountAuthReq",
                code: ctrader::domain::ErrorCode::parse(code),
                description: Some("Trading account 999 not found".into()),
                maintenance_end_ms: None,
            }),
        }
    }

    #[test]
    fn a_wrong_account_names_the_ones_the_token_reaches() {
        let e = refused("CH_CTID_TRADER_ACCOUNT_NOT_FOUND");
        let r = explain(
            SetupFault::Account,
            &e,
            &ct(DEMO_HOST, 999),
            Some(Ok(vec![account(11, false), account(12, true)])),
        );
        let s = r.to_string();
        assert!(s.contains("Trading account 999 not found"), "{s}");
        assert!(s.contains("11 (demo, login 18, broker Broker)"), "{s}");
        assert!(s.contains("12 (live"), "{s}");
        assert!(r.fix.contains("broker.ctrader.account_id"), "{s}");
        assert_eq!(s.matches("not found").count(), 1, "{s}");
    }

    #[test]
    fn a_live_account_on_the_demo_host_is_told_to_switch_hosts() {
        let e = refused("CH_CTID_TRADER_ACCOUNT_NOT_FOUND");
        let r = explain(
            SetupFault::Account,
            &e,
            &ct(DEMO_HOST, 12),
            Some(Ok(vec![account(12, true)])),
        );
        assert!(r.fix.contains(LIVE_HOST), "{r}");
    }

    #[test]
    fn a_revoked_token_and_bad_credentials_say_what_to_redo() {
        let e = refused("CH_ACCESS_TOKEN_INVALID");
        let r = explain(
            SetupFault::AccessToken,
            &e,
            &ct(DEMO_HOST, 11),
            Some(Err(refused("CH_ACCESS_TOKEN_INVALID"))),
        );
        assert!(r.fix.contains("executor auth"), "{r}");
        let r = explain(
            SetupFault::Application,
            &refused("CH_CLIENT_AUTH_FAILURE"),
            &ct(DEMO_HOST, 11),
            None,
        );
        assert!(
            r.fix.contains("client_id") && r.fix.contains("/etc/s"),
            "{r}"
        );
    }

    #[test]
    fn the_table_marks_the_configured_account_and_a_host_mismatch() {
        let t = render(&[account(11, false), account(12, true)], DEMO_HOST, 11);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ACCOUNT_ID"), "{t}");
        assert!(
            lines[1].starts_with("11 ")
                && lines[1].contains("demo")
                && lines[1].contains("<- configured"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("12 ") && lines[2].contains(LIVE_HOST),
            "{t}"
        );
        assert!(render(&[], DEMO_HOST, 0).contains("executor auth"));
    }
}
