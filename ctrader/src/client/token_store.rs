//! OAuth tokens on disk. A refresh token is single-use: once the server has answered a refresh the
//! old one is dead, so the new pair must be on disk before anything else can fail. The file is
//! replaced atomically and durably with mode 0600 ([`service::atomic`]), so a crash leaves either
//! the old or the new pair, never a torn file; it is read as a secret ([`service::secret`]).

use std::fmt;
use std::path::{Path, PathBuf};

use service::atomic::{Access, AtomicWriteError, write_atomic};
use service::secret::{SecretError, read_private};

use serde::{Deserialize, Serialize};

/// An access token and the refresh token that renews it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Bearer token for account authorisation.
    pub access_token: String,
    /// Single-use token that obtains a new pair.
    pub refresh_token: String,
    /// When the access token expires (Unix seconds), if known.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

// Secrets never reach logs: Debug shows only their lengths.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "access_token",
                &format_args!("<{} chars>", self.access_token.len()),
            )
            .field(
                "refresh_token",
                &format_args!("<{} chars>", self.refresh_token.len()),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why the token file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The file is missing, unreadable, readable by group or others, or not a small regular file.
    #[error("token file: {0}")]
    Secret(#[from] SecretError),
    /// Replacing the file failed (the old pair is still there unless the step was the
    /// directory fsync).
    #[error("token file: {0}")]
    Write(#[from] AtomicWriteError),
    /// Another I/O failure with the file or its directory.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error(
        "token file {path} is not valid: {reason} (expected JSON {{\"access_token\": \"…\", \"refresh_token\": \"…\"}})"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A JSON token file with 0600 permissions.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// A store at `path` (the file need not exist until [`TokenStore::save`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the tokens, refusing a file that group or others can read.
    pub fn load(&self) -> Result<Tokens, TokenStoreError> {
        let text = read_private(&self.path)?;
        let tokens: Tokens = serde_json::from_str(&text).map_err(|e| TokenStoreError::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if tokens.access_token.is_empty() || tokens.refresh_token.is_empty() {
            return Err(TokenStoreError::Format {
                path: self.path.clone(),
                reason: "a token is empty".into(),
            });
        }
        Ok(tokens)
    }

    /// Replaces the tokens atomically (0600, see the module documentation).
    pub fn save(&self, tokens: &Tokens) -> Result<(), TokenStoreError> {
        let json = serde_json::to_vec_pretty(tokens).map_err(|e| TokenStoreError::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(write_atomic(&self.path, &json, Access::Private)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn tokens(n: u32) -> Tokens {
        Tokens {
            access_token: format!("access-{n}"),
            refresh_token: format!("refresh-{n}"),
            expires_at: Some(1_700_000_000),
        }
    }

    #[test]
    fn save_then_load_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TokenStore::new(dir.path().join("tokens.json"));
        store.save(&tokens(1)).expect("save");
        store.save(&tokens(2)).expect("overwrite");
        assert_eq!(store.load().expect("load"), tokens(2));
        let mode = fs::metadata(store.path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "no temp file left behind: {leftovers:?}"
        );
    }

    #[test]
    fn refuses_readable_files_and_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        fs::write(&path, "{}").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let store = TokenStore::new(&path);
        assert!(matches!(
            store.load(),
            Err(TokenStoreError::Secret(SecretError::LoosePermissions {
                mode: 0o644,
                ..
            }))
        ));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = store.load().expect_err("missing fields");
        assert!(matches!(err, TokenStoreError::Format { .. }), "{err}");
        assert!(matches!(
            TokenStore::new(dir.path().join("absent")).load(),
            Err(TokenStoreError::Secret(SecretError::Read { .. }))
        ));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = format!("{:?}", tokens(7));
        assert!(!s.contains("access-7") && !s.contains("refresh-7"), "{s}");
    }
}
