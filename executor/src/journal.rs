//! The intent journal: one JSON object per line, appended and fsynced *before* an order is sent,
//! and again with its result. After a crash, an intent without a result is an order whose fate is
//! unknown: the desk reconciles with the broker (by the deterministic label) instead of resending.
//! ACKs are journaled too, so a repeated signal after a restart gets the same answer.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::orders::{Leg, Side};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// About to send an order.
    Intent {
        t: String,
        book: String,
        coid: String,
        leg: Leg,
        symbol: String,
        bar: i64,
        action: String,
        side: Option<Side>,
        lots: f64,
        position_id: Option<u64>,
    },
    /// What became of it (`resolved_by` says `reconcile` when found after an ambiguous failure/crash).
    Result {
        t: String,
        book: String,
        coid: String,
        ok: bool,
        position_id: Option<u64>,
        price: Option<f64>,
        error: Option<String>,
        resolved_by: Option<String>,
    },
    /// The ACK line sent for (symbol, bar).
    Ack {
        t: String,
        book: String,
        symbol: String,
        bar: i64,
        line: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(entry))
    }

    /// Appends entries and waits until they are on disk, with a single fsync: the intents of one
    /// plan (closes and open) cost one disk flush before the first order goes out.
    pub fn append_all(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        self.append_lazy(entries)?;
        self.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends entries without waiting for the disk. For results and ACKs: if they are lost in a
    /// crash, the pending intent is resolved by reconciling at startup, so they need not delay the
    /// ACK; the next durable append flushes them too.
    pub fn append_lazy(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        let mut buf = Vec::new();
        for e in entries {
            buf.extend(serde_json::to_vec(e).unwrap_or_default());
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Every readable entry in the file; a torn last line (crash mid-write) is skipped.
    pub fn read_all(path: &Path) -> Result<Vec<Entry>, JournalError> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(JournalError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                out.push(e);
            } else {
                tracing::warn!(journal = %path.display(), "skipping unreadable journal line");
            }
        }
        Ok(out)
    }
}

/// Intents of `book` that have no result: orders whose outcome must be reconciled.
pub fn pending_intents<'a>(entries: &'a [Entry], book: &str) -> Vec<&'a Entry> {
    let mut pending: Vec<&Entry> = Vec::new();
    for e in entries {
        match e {
            Entry::Intent { book: b, .. } if b == book => pending.push(e),
            Entry::Result { book: b, coid, .. } if b == book => {
                pending.retain(|p| !matches!(p, Entry::Intent { coid: c, .. } if c == coid));
            }
            _ => {}
        }
    }
    pending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(coid: &str) -> Entry {
        Entry::Intent {
            t: "t".into(),
            book: "paper".into(),
            coid: coid.into(),
            leg: Leg::Open,
            symbol: "EURUSD".into(),
            bar: 1,
            action: "LONG_WEAK".into(),
            side: Some(Side::Buy),
            lots: 0.01,
            position_id: None,
        }
    }

    #[test]
    fn pending_are_intents_without_results_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.append(&intent("A")).unwrap();
        j.append(&intent("B")).unwrap();
        j.append(&Entry::Result {
            t: "t".into(),
            book: "paper".into(),
            coid: "A".into(),
            ok: true,
            position_id: Some(1),
            price: Some(1.1),
            error: None,
            resolved_by: None,
        })
        .unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"kind\":\"intent\",\"t\"").unwrap();
        let all = Journal::read_all(&p).unwrap();
        assert_eq!(all.len(), 3);
        let pend = pending_intents(&all, "paper");
        assert_eq!(pend, vec![&intent("B")]);
        assert!(pending_intents(&all, "live").is_empty());
    }
}
