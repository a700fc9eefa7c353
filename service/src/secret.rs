//! Secret files (the IPC token, the cTrader client secret, the OAuth token file): readable by
//! their owner only. A file that group or others can read is refused: a secret other users could
//! read is already leaked, and running on it would hide that.
//!
//! The file is checked twice, by path before it is opened (so a FIFO or a device never blocks or
//! floods the read) and by handle after (so what is read is the file that was checked, even if the
//! path is swapped in between), and at most [`MAX_SECRET_BYTES`] are read.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Largest secret file read. Tokens and client secrets are under a kilobyte; a larger file is not a
/// secret of ours and is not read into memory.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Why a secret file was refused. Every message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be opened or read (missing, no permission, an I/O error).
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Group or others have some access to the file.
    #[error(
        "secret file {path} has mode {mode:o}: group or others can access it; run `chmod 600 {path}`"
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    /// A directory, FIFO, socket or device where a file was expected.
    #[error("secret file {path} is not a regular file; point it at the file holding the secret")]
    NotAFile { path: PathBuf },
    /// More than [`MAX_SECRET_BYTES`].
    #[error("secret file {path} is larger than {limit} bytes: not a secret of ours")]
    TooLarge { path: PathBuf, limit: u64 },
    /// Nothing but white space.
    #[error("secret file {path} is empty; write the secret into it")]
    Empty { path: PathBuf },
}

impl SecretError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::LoosePermissions { path, .. }
            | Self::NotAFile { path }
            | Self::TooLarge { path, .. }
            | Self::Empty { path } => path,
        }
    }
}

/// The whole content of a private (0600 or stricter) regular file, as text.
pub fn read_private(path: &Path) -> Result<String, SecretError> {
    let read_err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let before = std::fs::metadata(path).map_err(read_err)?;
    check(path, &before)?;
    let file = File::open(path).map_err(read_err)?;
    let opened = file.metadata().map_err(read_err)?;
    // Swapped between the check and the open: judge what was opened.
    if (opened.dev(), opened.ino()) != (before.dev(), before.ino()) {
        check(path, &opened)?;
    }
    let mut text = String::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_SECRET_BYTES,
        });
    }
    Ok(text)
}

/// A secret on one line: the file's content trimmed of surrounding white space, never empty.
pub fn read_secret(path: &Path) -> Result<String, SecretError> {
    let text = read_private(path)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(secret.to_string())
}

/// Checks a secret file (as [`read_secret`] would) without keeping the secret.
pub fn check_secret_file(path: &Path) -> Result<(), SecretError> {
    read_secret(path).map(drop)
}

fn check(path: &Path, meta: &Metadata) -> Result<(), SecretError> {
    if !meta.is_file() {
        return Err(SecretError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::LoosePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn reads_a_private_file_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = private(dir.path(), "tok", b"  abc\n");
        assert_eq!(read_secret(&p).unwrap(), "abc");
        assert_eq!(read_private(&p).unwrap(), "  abc\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            read_secret(&p).unwrap(),
            "abc",
            "stricter than 0600 is fine"
        );
    }

    #[test]
    fn refuses_a_file_group_or_others_can_access() {
        let dir = tempfile::tempdir().unwrap();
        let p = private(dir.path(), "tok", b"abc\n");
        for mode in [0o640, 0o604, 0o610, 0o601, 0o666] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_secret(&p).unwrap_err();
            assert!(
                matches!(e, SecretError::LoosePermissions { mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
            assert_eq!(e.path(), p);
        }
    }

    #[test]
    fn refuses_missing_empty_and_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_secret(&dir.path().join("absent")),
            Err(SecretError::Read { .. })
        ));
        let blank = private(dir.path(), "blank", b"  \n\t");
        assert!(matches!(
            read_secret(&blank),
            Err(SecretError::Empty { .. })
        ));
        let big = private(
            dir.path(),
            "big",
            &vec![b'a'; MAX_SECRET_BYTES as usize + 1],
        );
        let e = read_secret(&big).unwrap_err();
        assert!(matches!(e, SecretError::TooLarge { .. }), "{e}");
        let at_limit = private(dir.path(), "ok", &vec![b'a'; MAX_SECRET_BYTES as usize]);
        assert_eq!(
            read_secret(&at_limit).unwrap().len(),
            MAX_SECRET_BYTES as usize
        );
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        // Opening a FIFO with no writer blocks forever; the check by path comes first.
        assert!(matches!(
            read_secret(&fifo),
            Err(SecretError::NotAFile { .. })
        ));
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            read_secret(&sub),
            Err(SecretError::NotAFile { .. })
        ));
    }

    /// `mkfifo(1)`: the crate has no libc binding of its own.
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
