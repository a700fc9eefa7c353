//! A throwaway fleet CA and a broker certificate for localhost / 127.0.0.1 (rcgen).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Writes fleet-ca.pem, oracle-broker.crt and oracle-broker.key (the names the shipped
    /// config uses) into `dir`.
    pub fn create(dir: &Path) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let p = Pki {
            ca: dir.join("fleet-ca.pem"),
            cert: dir.join("oracle-broker.crt"),
            key: dir.join("oracle-broker.key"),
        };
        std::fs::write(&p.ca, ca.pem()).unwrap();
        std::fs::write(&p.cert, server.pem()).unwrap();
        std::fs::write(&p.key, server_key.serialize_pem()).unwrap();
        p
    }
}
