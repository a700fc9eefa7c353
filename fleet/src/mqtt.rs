//! MQTT v5 connection options (rumqttc) for every fleet client — the hub, the executor's link and
//! the synthetic instances: `mqtts://` with rustls (ring provider) and the fleet CA, or `mqtt://` in
//! plain TCP. The only I/O of this crate (reading the CA file), behind the `mqtt` feature.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("broker url {0:?}: expected mqtts://host:port or mqtt://host:port")]
    Url(String),
    #[error("CA file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("keepalive {0:?} is below 5 s, the least rumqttc accepts")]
    KeepAlive(Duration),
}

/// `(tls, host, port)` from `mqtts://host:port` / `mqtt://host:port`.
pub fn parse_url(url: &str) -> Result<(bool, String, u16), LinkError> {
    let bad = || LinkError::Url(url.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((tls, host.to_string(), port))
}

/// A rustls client config that trusts `ca_file` (PEM), or the web roots when absent.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, LinkError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let ca_err = |message: String| LinkError::Ca {
                path: p.display().to_string(),
                message,
            };
            let pem = std::fs::read(p).map_err(|e| ca_err(e.to_string()))?;
            let mut n = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(ca_err("no PEM certificate in it".into()));
            }
        }
        None => {
            return Err(LinkError::Tls(
                "mqtts:// needs ca_file (the fleet CA)".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LinkError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Options for one client. `keep_alive`: the broker declares the client dead after 1.5× it
/// (MQTT v5 §3.1.2.10) and publishes its last will.
pub fn options(
    url: &str,
    ca_file: Option<&Path>,
    client_id: &str,
    username: &str,
    password: &str,
    keep_alive: Duration,
) -> Result<MqttOptions, LinkError> {
    let (tls, host, port) = parse_url(url)?;
    // rumqttc panics below 5 s (v5/mod.rs set_keep_alive): refuse it here instead.
    if keep_alive < Duration::from_secs(5) {
        return Err(LinkError::KeepAlive(keep_alive));
    }
    let mut o = MqttOptions::new(client_id, host, port);
    o.set_credentials(username, password);
    o.set_keep_alive(keep_alive);
    o.set_max_packet_size(Some(crate::limits::BROKER_MAX_PACKET as u32));
    if tls {
        let cfg = tls_config(ca_file)?;
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(cfg))));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtts://broker.example:8883").unwrap(),
            (true, "broker.example".into(), 8883)
        );
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883/").unwrap(),
            (false, "127.0.0.1".into(), 1883)
        );
        for bad in [
            "http://x:1",
            "mqtts://x",
            "mqtts://:1",
            "mqtts://x:99999",
            "x:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
