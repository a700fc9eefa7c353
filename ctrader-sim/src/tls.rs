//! The simulator's TLS identity: a self-signed certificate generated at start (written where a
//! client can trust it), or a certificate and key given on the command line.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::SimError;

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// PEM of the leaf certificate: what a client adds to its trust roots.
    pub cert_pem: String,
}

/// Generates a self-signed certificate for `localhost` and `127.0.0.1` (plus `extra_names`).
pub fn self_signed(extra_names: &[String]) -> Result<Identity, SimError> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(extra_names.iter().cloned());
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| SimError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    Ok(Identity {
        chain: vec![certified.cert.der().clone()],
        key,
        cert_pem: certified.cert.pem(),
    })
}

/// Loads a PEM certificate chain and private key.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, SimError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| SimError::Io {
            path: p.to_path_buf(),
            source: e,
        })
    };
    let cert_bytes = read(cert_path)?;
    let chain = rustls_pemfile::certs(&mut cert_bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SimError::Tls(format!("{}: {e}", cert_path.display())))?;
    if chain.is_empty() {
        return Err(SimError::Tls(format!(
            "{}: no PEM certificate found",
            cert_path.display()
        )));
    }
    let key_bytes = read(key_path)?;
    let key = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .map_err(|e| SimError::Tls(format!("{}: {e}", key_path.display())))?
        .ok_or_else(|| {
            SimError::Tls(format!("{}: no PEM private key found", key_path.display()))
        })?;
    Ok(Identity {
        chain,
        key,
        cert_pem: String::from_utf8_lossy(&cert_bytes).into_owned(),
    })
}

/// The rustls server configuration (ring provider, TLS 1.2 and 1.3, no client certificates).
pub fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| SimError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Writes the certificate PEM atomically ([`service::write_atomic`]), so a client polling for it
/// never reads half a file.
pub fn write_cert(identity: &Identity, path: &Path) -> Result<(), SimError> {
    service::write_atomic(path, identity.cert_pem.as_bytes(), service::Access::Shared).map_err(
        |e| SimError::Io {
            path: e.path.clone(),
            source: std::io::Error::new(e.source.kind(), e.to_string()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_builds_a_server_config() {
        let id = self_signed(&["sim.example".to_string()]).unwrap();
        assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&id).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim.pem");
        write_cert(&id, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), id.cert_pem);
    }

    #[test]
    fn loads_pem_files_and_names_the_bad_one() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let loaded = load(&cert, &key).unwrap();
        assert_eq!(loaded.chain[0], *ck.cert.der());
        server_config(&loaded).unwrap();
        let err = load(&key, &key).unwrap_err().to_string();
        assert!(
            err.contains("k.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
    }
}
