//! Shared by the cTrader client's integration tests (here and in `ctrader-sim/tests`, which includes
//! this file): the test credentials, a client configuration for a local TLS peer, and waiting on
//! client events.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ctrader::client::{
    Client, ClientConfig, ClientEvent, ConnectionEvent, EventStream, Tokens, connect,
};

/// The account the test peer's credentials open.
pub const ACCOUNT: i64 = 9_001;
/// The credentials the test peer accepts (and a client presents).
pub const CLIENT_ID: &str = "cid";
pub const CLIENT_SECRET: &str = "secret";
pub const ACCESS_TOKEN: &str = "token";
pub const REFRESH_TOKEN: &str = "refresh";

/// A client configuration for a test server on 127.0.0.1:`port` presenting the test credentials,
/// trusting the PEM certificate in `ca_file`.
pub fn client_config(port: u16, account: i64, ca_file: &Path) -> ClientConfig {
    let tokens = Tokens {
        access_token: ACCESS_TOKEN.into(),
        refresh_token: REFRESH_TOKEN.into(),
        expires_at: None,
    };
    let mut c = ClientConfig::new("127.0.0.1", port, CLIENT_ID, CLIENT_SECRET, account, tokens);
    c.extra_ca_file = Some(ca_file.to_path_buf());
    c
}

/// Connects and waits (up to 10 s) until the session is ready.
pub async fn connect_ready(config: ClientConfig) -> (Client, EventStream) {
    let (client, mut events) = connect(config).unwrap();
    wait_for(&mut events, Duration::from_secs(10), "ready", is_ready).await;
    (client, events)
}

/// Reads events until one matches; returns it and everything seen before it.
pub async fn wait_for(
    events: &mut EventStream,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> (ClientEvent, Vec<ClientEvent>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return (ev, seen),
            Ok(Some(ev)) => seen.push(ev),
            Ok(None) => panic!("event stream ended while waiting for {what}; seen {seen:#?}"),
            Err(_) => panic!("no {what} within {within:?}; seen {seen:#?}"),
        }
    }
}

pub fn is_ready(ev: &ClientEvent) -> bool {
    matches!(ev, ClientEvent::Connection(ConnectionEvent::Ready))
}
