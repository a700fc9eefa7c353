//! Connection setup as a new user meets it: a setup that no retry can fix (wrong account, wrong
//! application secret, a revoked token) ends `wait_ready` at once with the cause; a transient one
//! is retried until the wait ends and then named; and the accounts a token reaches are listed on a
//! connection of their own, whatever `account_id` says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{ACCOUNT, Sim};
use ctrader::client::{ClientError, SetupFault, connect, token_accounts};
use ctrader_sim::core::{BROKER_TITLE, trader_login};

/// `wait_ready`'s answer for `config`, and how long it took.
async fn ready(config: ctrader::client::ClientConfig, within: Duration) -> (ClientError, Duration) {
    let (client, _events) = connect(config).unwrap();
    let start = Instant::now();
    let e = client
        .wait_ready(within)
        .await
        .expect_err("setup must fail");
    (e, start.elapsed())
}

fn refused(e: &ClientError) -> (&'static str, SetupFault) {
    match e {
        ClientError::SetupRefused { step, .. } => (step, e.setup_fault().unwrap()),
        other => panic!("expected SetupRefused, got {other:?}: {other}"),
    }
}

#[tokio::test]
async fn a_wrong_account_ends_the_wait_at_once_with_the_servers_answer() {
    let sim = Sim::start(1.0).await;
    let mut c = sim.client_config();
    c.account_id = 999;
    let (e, took) = ready(c, Duration::from_secs(20)).await;
    assert_eq!(refused(&e), ("account auth", SetupFault::Account), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("CH_CTID_TRADER_ACCOUNT_NOT_FOUND") && s.contains("999"),
        "{s}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn wrong_application_credentials_and_a_revoked_token_are_not_retried() {
    let sim = Sim::start(1.0).await;
    let mut c = sim.client_config();
    c.client_secret = "not-the-secret".into();
    let (e, took) = ready(c, Duration::from_secs(20)).await;
    assert_eq!(
        refused(&e),
        ("application auth", SetupFault::Application),
        "{e}"
    );
    assert!(e.to_string().contains("CH_CLIENT_AUTH_FAILURE"), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Access token refused, and the one refresh the session tries refused too.
    let mut c = sim.client_config();
    c.tokens.access_token = "revoked".into();
    c.tokens.refresh_token = "spent".into();
    let (e, took) = ready(c, Duration::from_secs(20)).await;
    assert_eq!(
        refused(&e),
        ("token refresh", SetupFault::AccessToken),
        "{e}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_the_wait_ends_then_named_once() {
    // A port with nothing listening: connection refused, every attempt.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sim = Sim::start(1.0).await;
    let mut c = sim.client_config();
    c.port = port;
    let (client, _events) = connect(c).unwrap();
    let e = client
        .wait_ready(Duration::from_millis(1500))
        .await
        .expect_err("nothing listens");
    let ClientError::NotReady {
        last: Some(last), ..
    } = &e
    else {
        panic!("expected NotReady with the last failure, got {e:?}");
    };
    assert!(last.starts_with("connect failed"), "{last}");
    let s = e.to_string();
    assert_eq!(s.matches(&format!("127.0.0.1:{port}")).count(), 2, "{s}");
    assert!(!s.contains("outcome is unknown"), "{s}");
    assert!(e.is_retryable() && e.setup_fault().is_none());
}

#[tokio::test]
async fn the_tokens_accounts_are_listed_whatever_account_id_says() {
    let sim = Sim::start(1.0).await;
    let mut c = sim.client_config();
    c.account_id = 0;
    let accounts = token_accounts(&c).await.unwrap();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    let a = &accounts[0];
    assert_eq!(a.account_id, ACCOUNT);
    assert_eq!(a.is_live, Some(false));
    assert_eq!(a.trader_login, Some(trader_login(ACCOUNT)));
    assert_eq!(a.broker.as_deref(), Some(BROKER_TITLE));
    assert_eq!(
        a.to_string(),
        format!(
            "{ACCOUNT} (demo, login {}, broker {BROKER_TITLE})",
            trader_login(ACCOUNT)
        )
    );

    c.tokens.access_token = "revoked".into();
    let e = token_accounts(&c).await.unwrap_err();
    assert_eq!(
        refused(&e),
        ("account list", SetupFault::AccessToken),
        "{e}"
    );
}
