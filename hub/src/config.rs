//! The hub's config file (`hub.json`, in the hub's config dir; docs/HUB.md §Hub config). Relative
//! paths are resolved against the config file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the config could not be used: names the file, the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read hub config {path}: {source} (fix: check the path given to --config)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hub config {path}: {message} (fix: see docs/HUB.md, section Hub config)")]
    Invalid { path: PathBuf, message: String },
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8090))
}
fn default_true() -> bool {
    true
}
fn default_ttl() -> u64 {
    60
}
fn default_session_hours() -> u64 {
    12
}
fn default_client_id() -> String {
    "oracle-hub".into()
}
fn default_hub_user() -> String {
    "hub".into()
}

/// The broker link of the hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// `mqtts://host:8883` (TLS) or `mqtt://127.0.0.1:1883` (plain, loopback only).
    pub url: String,
    /// The CA that signed the broker's certificate (PEM); absent = the system's web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_hub_user")]
    pub username: String,
    /// The hub's broker password, one line (0600).
    pub password_file: PathBuf,
    /// The MQTT client id: fixed, so the broker keeps the hub's session (and queues for it) while
    /// the hub is down.
    #[serde(default = "default_client_id")]
    pub client_id: String,
}

/// The operator's login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSection {
    pub username: String,
    /// An argon2 PHC string (`hub hash-password` prints one).
    pub password_hash: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    /// `sqlite:///var/lib/oracle-hub/hub.db` or `postgres://…`.
    database: String,
    broker: BrokerSection,
    operator: OperatorSection,
    /// The ed25519 signing key (32 bytes, base64), 0600; created by `hub init`.
    key_file: PathBuf,
    /// Mark session cookies `Secure` (keep true: browsers treat http://127.0.0.1 as secure, and
    /// a proxy in front serves HTTPS).
    #[serde(default = "default_true")]
    cookie_secure: bool,
    #[serde(default = "default_ttl")]
    command_ttl_secs: u64,
    #[serde(default = "default_session_hours")]
    session_hours: u64,
    #[serde(default, rename = "_comment")]
    _comment: Option<serde_json::Value>,
}

/// The loaded config, paths resolved.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub path: PathBuf,
    pub listen: SocketAddr,
    pub database: String,
    pub broker: BrokerSection,
    pub operator: OperatorSection,
    pub key_file: PathBuf,
    pub cookie_secure: bool,
    pub command_ttl_secs: u64,
    pub session_hours: u64,
}

impl HubConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // serde_json's error names the line and column; an unknown field names itself.
        let raw: Raw = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        if !(raw.database.starts_with("sqlite:")
            || raw.database.starts_with("postgres://")
            || raw.database.starts_with("postgresql://"))
        {
            return Err(invalid(format!(
                "database {:?} is neither sqlite:PATH nor postgres://…",
                raw.database
            )));
        }
        if !(5..=300).contains(&raw.command_ttl_secs) {
            return Err(invalid(format!(
                "command_ttl_secs {} is outside 5..=300 (an instance refuses longer-lived commands)",
                raw.command_ttl_secs
            )));
        }
        if argon2::PasswordHash::new(&raw.operator.password_hash).is_err() {
            return Err(invalid(
                "operator.password_hash is not an argon2 PHC string: run `hub hash-password`"
                    .into(),
            ));
        }
        if !raw.listen.ip().is_loopback() {
            tracing::warn!(listen = %raw.listen, "the dashboard listens beyond loopback: put a TLS proxy in front (docs/HUB.md)");
        }
        let database = match raw.database.strip_prefix("sqlite://") {
            Some(p) if !p.starts_with('/') && !p.starts_with(':') => {
                format!("sqlite://{}", dir.join(p).display())
            }
            _ => raw.database,
        };
        let mut broker = raw.broker;
        broker.ca_file = broker.ca_file.as_deref().map(resolve);
        broker.password_file = resolve(&broker.password_file);
        Ok(Self {
            path: path.to_path_buf(),
            listen: raw.listen,
            database,
            broker,
            operator: raw.operator,
            key_file: resolve(&raw.key_file),
            cookie_secure: raw.cookie_secure,
            command_ttl_secs: raw.command_ttl_secs,
            session_hours: raw.session_hours.clamp(1, 24 * 30),
        })
    }
}

/// Reads a one-line secret file, refusing one that others can read (the token must stay the
/// operator's).
pub fn read_secret(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {:o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text.trim();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$1u6Kpt2vOEJ8Ppu9P8mJ8uo8Z7Ak4Cb7W9O4tWv3e7I";

    fn cfg(extra: &str) -> String {
        format!(
            r#"{{"database": "sqlite://hub.db", "broker": {{"url": "mqtts://b:8883", "ca_file": "ca.pem", "password_file": "pw"}},
               "operator": {{"username": "op", "password_hash": "{HASH}"}}, "key_file": "hub_key"{extra}}}"#
        )
    }

    #[test]
    fn paths_resolve_against_the_config_and_defaults_are_safe() {
        let c = HubConfig::parse(&cfg(""), Path::new("/etc/oracle-hub/hub.json")).unwrap();
        assert_eq!(c.database, "sqlite:///etc/oracle-hub/hub.db");
        assert_eq!(c.key_file, Path::new("/etc/oracle-hub/hub_key"));
        assert_eq!(c.broker.password_file, Path::new("/etc/oracle-hub/pw"));
        assert!(c.listen.ip().is_loopback(), "loopback by default");
        assert!(c.cookie_secure);
        assert_eq!(c.broker.client_id, "oracle-hub");
    }

    #[test]
    fn mistakes_are_named() {
        let p = Path::new("hub.json");
        for (text, needle) in [
            (cfg(r#", "listn": "0.0.0.0:80""#), "listn"),
            (cfg(r#", "command_ttl_secs": 3600"#), "command_ttl_secs"),
            (cfg("").replace(HASH, "plain"), "password_hash"),
            (cfg("").replace("sqlite://hub.db", "mysql://x"), "database"),
            ("{".to_string(), "line"),
        ] {
            let e = HubConfig::parse(&text, p).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
