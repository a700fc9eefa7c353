//! The `hub` section (docs/HUB.md §4): where this instance reports and whose commands it takes.
//! Without it the executor runs exactly as before (no link, no outbox).

use std::path::PathBuf;
use std::time::Duration;

use fleet::InstanceId;
use fleet::ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::walker::Walker;

/// Telemetry period bounds: faster than 1 s floods the hub, slower than an hour hides an instance.
pub const MIN_TELEMETRY_SECS: u64 = 1;
pub const MAX_TELEMETRY_SECS: u64 = 3600;
/// rumqttc refuses a keepalive under 5 s (`fleet::mqtt::options`); above 300 s a dead instance
/// would stay "online" for minutes.
pub const MIN_KEEPALIVE_SECS: u64 = 5;
pub const MAX_KEEPALIVE_SECS: u64 = 300;
/// Outbox bounds (bytes on disk); the default holds days of bars and signals for a few symbols.
pub const MIN_OUTBOX_BYTES: u64 = 1 << 20;
pub const DEFAULT_OUTBOX_BYTES: u64 = 64 << 20;
pub const MAX_OUTBOX_BYTES: u64 = 4 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// `mqtts://host:port`.
    pub broker: String,
    pub ca_file: PathBuf,
    pub instance_id: InstanceId,
    /// The broker password (0600).
    pub token_file: PathBuf,
    pub hub_public_key: VerifyingKey,
    pub telemetry_period: Duration,
    pub keepalive: Duration,
    /// The outbox's hard cap in bytes (docs/HUB.md, "The outbox").
    pub outbox_max_bytes: u64,
}

const KEYS: &[&str] = &[
    "broker",
    "ca_file",
    "instance_id",
    "token_file",
    "hub_public_key",
    "telemetry_secs",
    "keepalive_secs",
    "outbox_max_bytes",
    "_comment",
];

impl Walker {
    /// `hub`: every field named when wrong; `None` when absent or wrong.
    pub(super) fn hub(&mut self, v: Option<&Value>) -> Option<HubConfig> {
        let p = "hub";
        let m = self.object(v?, p)?;
        self.unknown_keys(m, p, KEYS);
        let snippet = "the snippet `hub add-instance ID` printed (docs/HUB.md §4)";
        let required = |w: &mut Walker, key: &str| {
            let s = w.str_field(m, p, key).map(str::to_string);
            if s.is_none() && !m.contains_key(key) {
                w.problem(
                    &format!("hub.{key}"),
                    "missing",
                    format!("copy it from {snippet}"),
                );
            }
            s
        };
        let broker = required(self, "broker");
        let broker = broker.and_then(|b| match fleet::mqtt::parse_url(&b) {
            Ok((true, _, _)) => Some(b),
            Ok((false, _, _)) => {
                self.problem(
                    "hub.broker",
                    format!("{b:?} is plain TCP: the token and every record would cross the network in clear"),
                    "use mqtts://host:8883 (the broker's TLS listener, hub/mosquitto/oracle-fleet.conf)",
                );
                None
            }
            Err(e) => {
                self.problem("hub.broker", e.to_string(), "write mqtts://broker.example:8883");
                None
            }
        });
        let ca_file = required(self, "ca_file").map(|s| self.resolve(&s));
        let ca_file = ca_file.and_then(|ca| match fleet::mqtt::tls_config(Some(&ca)) {
            Ok(_) => Some(ca),
            Err(e) => {
                self.problem(
                    "hub.ca_file",
                    e.to_string(),
                    "point it at the PEM of the CA that signed the broker's certificate (copied from the hub)",
                );
                None
            }
        });
        let instance_id = required(self, "instance_id").and_then(|s| match InstanceId::new(&s) {
            Ok(id) => Some(id),
            Err(e) => {
                self.problem(
                    "hub.instance_id",
                    e.to_string(),
                    "use the id given to `hub add-instance` (1-32 of a-z 0-9 _ -)",
                );
                None
            }
        });
        let token_file = required(self, "token_file").map(|s| self.resolve(&s));
        if let Some(t) = &token_file {
            self.secret_file("hub.token_file", t);
        }
        let hub_public_key = required(self, "hub_public_key").and_then(|s| {
            match fleet::signed::decode_public_key(&s) {
                Ok(k) => Some(k),
                Err(e) => {
                    self.problem(
                        "hub.hub_public_key",
                        e,
                        "copy the 44-character key `hub gen-key` or `hub add-instance` printed",
                    );
                    None
                }
            }
        });
        let secs = |w: &mut Walker, key: &str, default: u64, lo: u64, hi: u64| {
            let n = w.u64_field(m, p, key, default);
            if !(lo..=hi).contains(&n) {
                w.problem(
                    &format!("hub.{key}"),
                    format!("{n} is outside {lo}..={hi}"),
                    format!("write a whole number from {lo} to {hi}"),
                );
            }
            n.clamp(lo, hi)
        };
        let telemetry = secs(
            self,
            "telemetry_secs",
            10,
            MIN_TELEMETRY_SECS,
            MAX_TELEMETRY_SECS,
        );
        let keepalive = secs(
            self,
            "keepalive_secs",
            10,
            MIN_KEEPALIVE_SECS,
            MAX_KEEPALIVE_SECS,
        );
        let outbox = secs(
            self,
            "outbox_max_bytes",
            DEFAULT_OUTBOX_BYTES,
            MIN_OUTBOX_BYTES,
            MAX_OUTBOX_BYTES,
        );
        Some(HubConfig {
            broker: broker?,
            ca_file: ca_file?,
            instance_id: instance_id?,
            token_file: token_file?,
            hub_public_key: hub_public_key?,
            telemetry_period: Duration::from_secs(telemetry),
            keepalive: Duration::from_secs(keepalive),
            outbox_max_bytes: outbox,
        })
    }
}
