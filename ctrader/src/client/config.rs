//! Client configuration, validated as a whole before connecting.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::error::ClientError;
use crate::client::token_store::{TokenStore, Tokens};
use crate::codec::DEFAULT_MAX_FRAME_LEN;

/// Spotware's live-account endpoint.
pub const LIVE_HOST: &str = "live.ctraderapi.com";
/// Spotware's demo-account endpoint.
pub const DEMO_HOST: &str = "demo.ctraderapi.com";
/// The Open API protobuf port.
pub const DEFAULT_PORT: u16 = 5035;

/// Reads the wall clock as Unix milliseconds; injected so maintenance waits can be tested.
pub type WallClock = fn() -> i64;

/// The system wall clock.
pub fn system_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Everything the client needs to connect and stay connected.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server host name (or IP for a local simulator).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS name to verify, when it differs from `host`.
    pub tls_server_name: Option<String>,
    /// An extra PEM CA/certificate to trust besides the webpki roots (the simulator's certificate).
    pub extra_ca_file: Option<PathBuf>,
    /// Open API application client id.
    pub client_id: String,
    /// Open API application secret.
    pub client_secret: String,
    /// The ctidTraderAccountId to trade.
    pub account_id: i64,
    /// Current tokens.
    pub tokens: Tokens,
    /// Where refreshed tokens are persisted (strongly advised: refresh tokens are single use).
    pub token_store: Option<TokenStore>,
    /// Per-request answer timeout.
    pub request_timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Heartbeat period; the server drops a connection that stays silent for longer than about 10 s.
    pub heartbeat_interval: Duration,
    /// Silence from the server after which the connection is declared dead.
    pub dead_after: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Fraction of each reconnect delay removed at random.
    pub backoff_jitter: f64,
    /// Ordinary requests per second.
    pub normal_rate_per_sec: u32,
    /// Historical data requests per second.
    pub historical_rate_per_sec: u32,
    /// Largest frame accepted or sent.
    pub max_frame_len: usize,
    /// Capacity of the event channel; market data beyond it is dropped (and counted), other
    /// events wait for room.
    pub event_buffer: usize,
    /// Ask the server to timestamp spot events.
    pub spot_timestamps: bool,
    /// Wall clock for maintenance end times.
    pub wall_clock: WallClock,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls_server_name", &self.tls_server_name)
            .field("extra_ca_file", &self.extra_ca_file)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("tokens", &self.tokens)
            .field("token_store", &self.token_store)
            .field("request_timeout", &self.request_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("dead_after", &self.dead_after)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration with the documented defaults: 10 s request and connect timeouts, heartbeat
    /// every 10 s, dead after 30 s of silence, reconnect 1 s doubling to 60 s with 30 % jitter,
    /// 45 ordinary and 4 historical requests per second (a margin under the server's 50 and 5).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        account_id: i64,
        tokens: Tokens,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            tls_server_name: None,
            extra_ca_file: None,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            account_id,
            tokens,
            token_store: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_jitter: 0.3,
            normal_rate_per_sec: 45,
            historical_rate_per_sec: 4,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            event_buffer: 4096,
            spot_timestamps: true,
            wall_clock: system_clock_ms,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Checks every field; lists every problem at once.
    pub fn validate(&self) -> Result<(), ClientError> {
        let mut p = Vec::new();
        if self.host.trim().is_empty() {
            p.push(format!("host is empty (use {LIVE_HOST} or {DEMO_HOST})"));
        }
        if self.port == 0 {
            p.push(format!("port is 0 (the Open API port is {DEFAULT_PORT})"));
        }
        if self.client_id.trim().is_empty() {
            p.push("client_id is empty".into());
        }
        if self.client_secret.trim().is_empty() {
            p.push("client_secret is empty".into());
        }
        if self.account_id <= 0 {
            p.push(format!(
                "account_id {} is not a ctidTraderAccountId",
                self.account_id
            ));
        }
        if self.tokens.access_token.is_empty() {
            p.push("access token is empty".into());
        }
        for (name, d) in [
            ("request_timeout", self.request_timeout),
            ("connect_timeout", self.connect_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("backoff_initial", self.backoff_initial),
        ] {
            if d.is_zero() {
                p.push(format!("{name} is zero"));
            }
        }
        if self.dead_after <= self.heartbeat_interval {
            p.push(format!(
                "dead_after {:?} must exceed heartbeat_interval {:?}",
                self.dead_after, self.heartbeat_interval
            ));
        }
        if self.normal_rate_per_sec == 0 || self.historical_rate_per_sec == 0 {
            p.push("rate limits must be at least 1 request per second".into());
        }
        if self.max_frame_len < 1024 {
            p.push(format!(
                "max_frame_len {} is too small (default {DEFAULT_MAX_FRAME_LEN})",
                self.max_frame_len
            ));
        }
        if self.event_buffer == 0 {
            p.push("event_buffer is 0".into());
        }
        if let Some(f) = &self.extra_ca_file
            && !f.is_file()
        {
            p.push(format!("extra_ca_file {} does not exist", f.display()));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ClientError::Config(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access_token: "a".into(),
            refresh_token: "r".into(),
            expires_at: None,
        }
    }

    #[test]
    fn defaults_validate() {
        let c = ClientConfig::new(DEMO_HOST, DEFAULT_PORT, "id", "secret", 42, tokens());
        c.validate().expect("valid");
        assert!(!format!("{c:?}").contains("secret\""), "secret redacted");
    }

    #[test]
    fn every_problem_is_reported() {
        let mut c = ClientConfig::new(
            "",
            0,
            "",
            "",
            0,
            Tokens {
                access_token: String::new(),
                ..tokens()
            },
        );
        c.dead_after = c.heartbeat_interval;
        match c.validate() {
            Err(ClientError::Config(p)) => assert_eq!(p.len(), 7, "{p:?}"),
            other => panic!("expected Config, got {other:?}"),
        }
    }
}
