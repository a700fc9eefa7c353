//! Where the executor is and the key it must prove: the `--executor` URL (a loopback IP over
//! `ws://`) and the IPC token file (0600).

use std::path::Path;

use protocol::handshake::IpcKey;

use super::LiveError;

/// The `--executor` URL if it names a loopback IP address over plain `ws://`. A host name is refused:
/// what it resolves to is not ours to check at every reconnect.
pub fn executor_url(url: &str) -> Result<String, LiveError> {
    let bad = |what: &str| LiveError::ExecutorAddress {
        url: url.to_string(),
        what: what.to_string(),
    };
    let uri: tokio_tungstenite::tungstenite::http::Uri =
        url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("ws") {
        return Err(bad("the scheme must be ws://"));
    }
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad("the host must be a loopback IP address, not a name"))?;
    if !ip.is_loopback() {
        return Err(bad("not a loopback address"));
    }
    if uri.port_u16().is_none() {
        return Err(bad("no port"));
    }
    Ok(url.to_string())
}

/// Reads the IPC token as the handshake's key; the file must not be readable by group or others
/// (0600) and the token must be long and random (see `protocol::handshake`).
pub fn read_key(path: &Path) -> Result<IpcKey, LiveError> {
    let token = read_token(path)?;
    IpcKey::from_token(&token).map_err(|e| LiveError::Token {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Reads the IPC token; the file must not be readable by group or others (0600).
pub fn read_token(path: &Path) -> Result<String, LiveError> {
    Ok(service::read_secret(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executor_must_be_a_loopback_ip_over_ws() {
        for ok in ["ws://127.0.0.1:8765", "ws://127.0.0.2:1", "ws://[::1]:8765"] {
            assert_eq!(executor_url(ok).unwrap(), ok);
        }
        for (bad, why) in [
            ("ws://10.0.0.1:8765", "not a loopback address"),
            ("ws://192.0.2.7:8765", "not a loopback address"),
            ("ws://[2001:db8::1]:8765", "not a loopback address"),
            ("ws://localhost:8765", "not a name"),
            ("ws://executor.example:8765", "not a name"),
            ("wss://127.0.0.1:8765", "ws://"),
            ("http://127.0.0.1:8765", "ws://"),
            ("ws://127.0.0.1", "no port"),
            ("127.0.0.1:8765", "ws://"),
            ("not a url", "not a URL"),
        ] {
            let e = executor_url(bad).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("ws://127.0.0.1:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_key_needs_a_long_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_key(&p).unwrap_err().to_string();
        assert!(e.contains("at least 32"), "{e}");
        std::fs::write(&p, format!("{}\n", "a1".repeat(32))).unwrap();
        assert!(read_key(&p).is_ok());
    }

    #[test]
    fn token_file_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "secret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(
            read_token(&p)
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
        std::fs::write(&p, "  \n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&p).unwrap_err().to_string().contains("empty"));
    }
}
