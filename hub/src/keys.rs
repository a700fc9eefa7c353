//! Secret files the hub owns: its ed25519 signing key and random tokens. Written 0600 from the
//! first byte (created with that mode, never chmod-ed after the secret is in).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use fleet::ed25519_dalek::SigningKey;

use crate::config::read_secret;

/// `len` random bytes from the thread RNG (ChaCha seeded from the OS: rand's documented CSPRNG).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    rand::random::<[u8; N]>()
}

/// A random token for a broker credential or a session: 32 bytes, base64url (43 characters, no
/// character the password file or a cookie would misread).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Writes a new secret file with mode 0600. `replace`: overwrite an existing one (rotation).
pub fn write_secret(path: &Path, text: &str, replace: bool) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if replace {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Creates the signing key file (refuses to overwrite one: every instance trusts its public key).
pub fn create_signing_key(path: &Path) -> std::io::Result<SigningKey> {
    let key = SigningKey::from_bytes(&random_bytes::<32>());
    write_secret(path, &B64.encode(key.to_bytes()), false)?;
    Ok(key)
}

/// Loads the signing key; refuses a file others can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, String> {
    let text = read_secret(path)?;
    let bytes = B64
        .decode(text.as_bytes())
        .map_err(|e| format!("{}: not base64: {e}", path.display()))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "{}: {} bytes, an ed25519 key is 32",
            path.display(),
            bytes.len()
        )
    })?;
    Ok(SigningKey::from_bytes(&arr))
}

/// A throwaway CA and a broker certificate for `names` (plus 127.0.0.1), for tests and demos.
pub fn dev_certs(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct subject names: with rcgen's default CN on both, OpenSSL (mosquitto_pub, a
    // Python client) takes the broker's certificate for self-signed and refuses it.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Oracle fleet dev CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut sans = names.to_vec();
    sans.push("127.0.0.1".into());
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "oracle-broker");
    let cert = params.signed_by(&key, &ca)?;
    std::fs::write(dir.join("fleet-ca.pem"), ca.pem())?;
    std::fs::write(dir.join("oracle-broker.crt"), cert.pem())?;
    write_secret(
        &dir.join("oracle-broker.key"),
        key.serialize_pem().trim_end(),
        true,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hub_key");
        let k = create_signing_key(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_signing_key(&p).unwrap().to_bytes(), k.to_bytes());
        assert!(
            create_signing_key(&p).is_err(),
            "an existing key must not be replaced"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_signing_key(&p).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
    }
}
