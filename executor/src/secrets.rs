//! Secrets (IPC token, cTrader client secret and tokens) come from files readable by the owner only.
//! A file readable by group or others is refused: a secret that other users could read is already leaked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {path} has mode {mode:o}; group/others must have no access (0600)")]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
}

/// Checks a secret file's permissions and content without returning the secret.
pub fn check_secret_file(path: &Path) -> Result<(), SecretError> {
    read_secret(path).map(|_| ())
}

/// Reads a secret (trimmed of surrounding whitespace) from a 0600 file.
pub fn read_secret(path: &Path) -> Result<String, SecretError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let s = text.trim().to_string();
    if s.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(s)
}

/// Compares two secrets in time independent of where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_group_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_secret(&p),
            Err(SecretError::LoosePermissions { mode: 0o640, .. })
        ));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&p).unwrap(), "abc");
    }

    #[test]
    fn refuses_empty_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        assert!(matches!(read_secret(&p), Err(SecretError::Read { .. })));
        std::fs::write(&p, "  \n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(read_secret(&p), Err(SecretError::Empty { .. })));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
