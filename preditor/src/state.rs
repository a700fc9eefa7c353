//! The twin's persisted state: one JSON file per symbol, written atomically after every bar.
//!
//! Atomic = write a temp file in the same directory, fsync it, rename over the old file, fsync the
//! directory. A crash at any point leaves either the old or the new state, never a torn one, so a
//! restart resumes exactly after the last bar that was fully decided.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::twin::TwinState;

/// The on-disk record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub symbol: String,
    pub timeframe: String,
    /// sha256 of the model zip the state was computed with; a different model invalidates it.
    pub model_fingerprint: String,
    pub twin: TwinState,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt state file ({source}); delete it to force a fast-forward warmup")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) the state directory.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            op: "create state directory",
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path_for(&self, symbol: &str, timeframe: &str) -> PathBuf {
        self.dir.join(format!("{symbol}_{timeframe}.json"))
    }

    /// The stored state for a symbol, if any.
    pub fn load(
        &self,
        symbol: &str,
        timeframe: &str,
    ) -> Result<Option<PersistedState>, StateError> {
        let path = self.path_for(symbol, timeframe);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path,
                    op: "read",
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Writes the state atomically (temp file, fsync, rename, fsync directory).
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let path = self.path_for(&state.symbol, &state.timeframe);
        let tmp = path.with_extension("json.tmp");
        let io = |op: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |source| StateError::Io {
                path: p,
                op,
                source,
            }
        };
        // serde_json writes f64 shortest-roundtrip, so a reloaded R is bit-identical.
        let body = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            path: path.clone(),
            op: "serialise",
            source: std::io::Error::other(e),
        })?;
        {
            let mut f = File::create(&tmp).map_err(io("create temp file", &tmp))?;
            f.write_all(&body).map_err(io("write temp file", &tmp))?;
            f.sync_all().map_err(io("fsync temp file", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("rename temp file", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync state directory", &self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::VirtualPosition;

    #[test]
    fn save_then_load_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load("EURUSD", "H1").unwrap(), None);
        let st = PersistedState {
            symbol: "EURUSD".into(),
            timeframe: "H1".into(),
            model_fingerprint: "ab".into(),
            twin: TwinState {
                position: VirtualPosition {
                    direction: -1,
                    intensity: 2,
                    entry: 1.0845500000000001,
                },
                realised_pnl: 0.1 + 0.2,
                held: 7,
                last_action: Some(5),
                last_bar_time: Some(1_700_000_000),
                last_regime: Some(3),
            },
        };
        store.save(&st).unwrap();
        assert_eq!(store.load("EURUSD", "H1").unwrap(), Some(st));
        assert!(
            !store
                .path_for("EURUSD", "H1")
                .with_extension("json.tmp")
                .exists()
        );
    }

    #[test]
    fn corrupt_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        std::fs::write(store.path_for("X", "H1"), b"{nope").unwrap();
        assert!(matches!(
            store.load("X", "H1"),
            Err(StateError::Corrupt { .. })
        ));
    }
}
