//! A throwaway fleet CA and a broker certificate for localhost / 127.0.0.1 (`hub dev-certs`).

use std::path::{Path, PathBuf};

pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Writes fleet-ca.pem, oracle-broker.crt and oracle-broker.key (the names the shipped
    /// config uses) into `dir`.
    pub fn create(dir: &Path) -> Pki {
        hub::keys::dev_certs(dir, &["localhost".to_string()]).unwrap();
        Pki {
            ca: dir.join("fleet-ca.pem"),
            cert: dir.join("oracle-broker.crt"),
            key: dir.join("oracle-broker.key"),
        }
    }
}
