//! The intent journal: one JSON object per line, appended and fsynced *before* an order is sent,
//! and again with its result. After a crash, an intent without a result is an order whose fate is
//! unknown: the desk reconciles with the broker (by the deterministic label) instead of resending.
//! ACKs are journaled too, so a repeated signal after a restart gets the same answer.
//!
//! The file is rotated once it passes [`ROTATE_BYTES`]: the old one is kept whole as
//! `journal-<time>.jsonl` (the audit trail; nothing is deleted) and the live one starts again with
//! only what a restart needs, so startup reads a bounded file however long the executor has run.
//!
//! Repair: a crash or a full disk can leave a line without its newline (a torn tail), and a bad
//! disk can leave bytes that are not UTF-8. Reading keeps every line that parses and reports each
//! skipped one by line number and byte offset ([`Recovered`]). Writing never glues a new entry to
//! an old tear: [`Journal::open`] closes a torn tail off with a newline, and a failed (short)
//! write is cut back to the last whole line, or else the next append starts with a newline.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use protocol::{Ack, Action, BarTime, Symbol};
use serde::{Deserialize, Serialize};

use crate::desk::risk::RiskState;
use crate::orders::{Book, CloseIntent, Leg, OpenIntent, Side};

/// One journal line. Every field is typed and serialized through serde: protocol values as their
/// wire text (`"EURUSD"`, `"LONG_WEAK"`, the ACK as its line), times as RFC 3339 with
/// milliseconds, bars as their open time in Unix seconds. That is the form the untyped entries
/// of earlier versions wrote, so their journals read back unchanged
/// (`tests/data/state_91626d6`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// About to send an order.
    Intent {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        book: Book,
        coid: String,
        leg: Leg,
        symbol: Symbol,
        #[serde(with = "unix_bar")]
        bar: BarTime,
        action: Action,
        side: Option<Side>,
        lots: f64,
        position_id: Option<u64>,
    },
    /// What became of it.
    Result {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        book: Book,
        coid: String,
        ok: bool,
        position_id: Option<u64>,
        /// The volume-weighted price of everything executed (over every deal).
        price: Option<f64>,
        /// The lots executed: the whole order's, less when the broker filled an open in part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lots: Option<f64>,
        error: Option<String>,
        /// How it was learned when not from the broker's answer.
        resolved_by: Option<ResolvedBy>,
    },
    /// The ACK sent for (symbol, bar).
    Ack {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        book: Book,
        symbol: Symbol,
        #[serde(with = "unix_bar")]
        bar: BarTime,
        line: Ack,
    },
    /// The book's risk baseline and control-line kill switch, whenever they change: a second
    /// copy of what `<book>_desk.json` holds, so a lost file cannot reset the loss limits.
    Guard {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        book: Book,
        risk: Option<RiskState>,
        kill_switch: bool,
    },
    /// An operator command (`crate::ops`), journaled before it acts. A command without a
    /// `command_result` was cut short by a crash: a repeat of its id is answered, never run again.
    Command {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        id: fleet::CommandId,
        origin: fleet::Origin,
        command: fleet::Command,
    },
    /// What the command did (the answer a repeat of its id gets).
    CommandResult {
        #[serde(with = "stamp")]
        t: DateTime<Utc>,
        id: fleet::CommandId,
        result: fleet::CommandResult,
    },
}

/// Operator commands (and their results) a rotation keeps in the live journal: the ids a repeat
/// must still be answered for.
pub const COMMANDS_KEPT: usize = 256;

/// Called with the duration of every journal fsync (the `/metrics` histogram).
#[derive(Clone)]
pub struct FsyncObserver(pub std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>);

impl std::fmt::Debug for FsyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FsyncObserver")
    }
}

/// How an order's result was learned when its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedBy {
    /// Looked up in the broker's positions after a timeout, a lost link or a crash
    /// ([`crate::desk::resolve`]).
    Reconcile,
}

impl Entry {
    /// The intent of a close.
    pub fn close_intent(book: Book, t: DateTime<Utc>, c: &CloseIntent) -> Entry {
        Entry::Intent {
            t,
            book,
            coid: c.client_order_id.clone(),
            leg: Leg::Close,
            symbol: c.symbol.clone(),
            bar: c.bar,
            action: c.action,
            side: None,
            lots: c.lots,
            position_id: Some(c.position_id),
        }
    }

    /// The intent of an open.
    pub fn open_intent(book: Book, t: DateTime<Utc>, o: &OpenIntent) -> Entry {
        Entry::Intent {
            t,
            book,
            coid: o.client_order_id.clone(),
            leg: Leg::Open,
            symbol: o.symbol.clone(),
            bar: o.bar,
            action: o.action,
            side: Some(o.side),
            lots: o.lots,
            position_id: None,
        }
    }

    /// The book an entry is about (`None` for an operator command: it is about the executor).
    pub fn book(&self) -> Option<Book> {
        match self {
            Entry::Intent { book, .. }
            | Entry::Result { book, .. }
            | Entry::Ack { book, .. }
            | Entry::Guard { book, .. } => Some(*book),
            Entry::Command { .. } | Entry::CommandResult { .. } => None,
        }
    }
}

/// Times as RFC 3339 UTC with milliseconds (`2026-02-03T10:15:00.000Z`); any RFC 3339 reads back.
mod stamp {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| de::Error::custom(format!("time {text:?}: {e}")))
    }
}

/// A bar as its open time in Unix seconds.
mod unix_bar {
    use protocol::BarTime;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(b: &BarTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(b.unix_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BarTime, D::Error> {
        let secs = i64::deserialize(d)?;
        BarTime::from_unix(secs).map_err(|e| de::Error::custom(format!("bar {secs}: {e}")))
    }
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

/// Size past which the live journal is archived and started again (about 25,000 entries).
pub const ROTATE_BYTES: u64 = 8 * 1024 * 1024;

/// What the journal writes to: a file opened for append, or (in tests) a file that fails like a
/// full disk does.
pub trait JournalFile: Write + Send + std::fmt::Debug {
    fn sync_data(&self) -> std::io::Result<()>;
    /// Bytes in the file now.
    fn byte_len(&self) -> std::io::Result<u64>;
    /// Cuts the file back to `len` bytes.
    fn set_len(&self, len: u64) -> std::io::Result<()>;
}

impl JournalFile for File {
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
    fn byte_len(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Box<dyn JournalFile>,
    /// The file ends with a newline (or is empty): the next entry starts a line of its own.
    /// False after a write failed part-way and could not be cut back.
    clean_tail: bool,
    fsync_observer: Option<FsyncObserver>,
}

impl Journal {
    /// Opens (creating) the journal for append. A torn last line left by a crash or a full disk
    /// is closed off with a newline first, so it stays one unreadable line of its own and the next
    /// entry is whole.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut j = Journal::over(path, Box::new(file));
        j.clean_tail = ends_with_newline(path).map_err(io)?;
        if !j.clean_tail {
            let at = j.file.byte_len().map_err(io)?;
            j.file.write_all(b"\n").map_err(io)?;
            j.file.sync_data().map_err(io)?;
            j.clean_tail = true;
            tracing::warn!(journal = %path.display(), offset = at,
                "the journal ended in a torn line (a crash or a full disk mid-write); closed it off so new entries stay whole");
        }
        Ok(j)
    }

    /// A journal writing through `file` (fault injection in tests: a disk that fills up).
    pub fn over(path: &Path, file: Box<dyn JournalFile>) -> Self {
        Journal {
            path: path.to_path_buf(),
            file,
            clean_tail: true,
            fsync_observer: None,
        }
    }

    /// Reports the duration of every fsync to `observer` from now on.
    pub fn observe_fsync(&mut self, observer: FsyncObserver) {
        self.fsync_observer = Some(observer);
    }

    /// Appends one entry and waits until it is on disk.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        self.append_all(std::slice::from_ref(entry))
    }

    /// Appends entries and waits until they are on disk, with a single fsync: the intents of one
    /// plan (closes and open) cost one disk flush before the first order goes out.
    pub fn append_all(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        self.append_lazy(entries)?;
        let started = std::time::Instant::now();
        let synced = self.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        });
        if let Some(o) = &self.fsync_observer {
            (o.0)(started.elapsed());
        }
        synced
    }

    /// Appends entries without waiting for the disk. For results and ACKs: if they are lost in a
    /// crash, the pending intent is resolved by reconciling at startup, so they need not delay the
    /// ACK; the next durable append flushes them too.
    ///
    /// A write that fails part-way (ENOSPC) is cut back to where it started, so the file holds
    /// whole lines only; if even that fails, the next append starts with a newline instead.
    pub fn append_lazy(&mut self, entries: &[Entry]) -> Result<(), JournalError> {
        let mut buf = Vec::new();
        if !self.clean_tail {
            buf.push(b'\n');
        }
        for e in entries {
            buf.extend(serde_json::to_vec(e).unwrap_or_default());
            buf.push(b'\n');
        }
        let start = self.file.byte_len().ok();
        match self.file.write_all(&buf) {
            Ok(()) => {
                self.clean_tail = true;
                Ok(())
            }
            Err(source) => {
                let cut = start.is_some_and(|len| self.file.set_len(len).is_ok());
                // Cut back: the tail is as clean as it was before. Not cut: unknown, so assume torn.
                self.clean_tail &= cut;
                tracing::error!(journal = %self.path.display(), error = %source, cut_back = cut,
                    "journal write failed");
                Err(JournalError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Bytes in the live file now.
    pub fn len_bytes(&self) -> u64 {
        self.file.byte_len().unwrap_or(0)
    }

    /// Archives the live file as `journal-<stamp>.jsonl` beside it and starts it again with
    /// [`retained`] entries. The archive is a hard link to the old file and the new one replaces it
    /// by rename, so a crash at any step leaves a complete journal (the old or the new). Call it
    /// between batches, with no order in flight. Returns the archive's path and the entries kept.
    ///
    /// The file is read twice, one line at a time, rather than once into memory: a full journal is
    /// ~25,000 entries, and the ~17 MB they took parsed stayed the process's RSS after they were
    /// freed (the allocator keeps freed small blocks), one step up per rotation until the largest
    /// (`tests/journal_rotation_memory.rs`).
    pub fn rotate(
        &mut self,
        keep_acks: usize,
        stamp: &str,
    ) -> Result<(PathBuf, usize), JournalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        self.file.sync_data().map_err(io(&self.path))?;
        // Pass 1: the orders that have a result, how many ACKs each book and symbol has and how
        // many guards each book has.
        let mut finished: HashSet<(Book, String)> = HashSet::new();
        let mut acks: HashMap<(Book, Symbol), usize> = HashMap::new();
        let mut guards: HashMap<Book, usize> = HashMap::new();
        // The ids of the last COMMANDS_KEPT commands (bounded), and how many commands there are.
        let mut last_commands: std::collections::VecDeque<fleet::CommandId> =
            std::collections::VecDeque::with_capacity(COMMANDS_KEPT + 1);
        let mut commands = 0usize;
        let skipped = Self::for_each(&self.path, |e| match e {
            Entry::Result { book, coid, .. } => {
                finished.insert((book, coid));
            }
            Entry::Ack { book, symbol, .. } => *acks.entry((book, symbol)).or_default() += 1,
            Entry::Guard { book, .. } => *guards.entry(book).or_default() += 1,
            Entry::Command { id, .. } => {
                commands += 1;
                last_commands.push_back(id);
                if last_commands.len() > COMMANDS_KEPT {
                    last_commands.pop_front();
                }
            }
            Entry::Intent { .. } | Entry::CommandResult { .. } => {}
        })?;
        let kept_commands: HashSet<fleet::CommandId> = last_commands.into_iter().collect();
        if skipped > 0 {
            tracing::warn!(journal = %self.path.display(), skipped,
                "rotation skips unreadable journal lines (the archive keeps them)");
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let archive = dir.join(format!("journal-{stamp}.jsonl"));
        std::fs::hard_link(&self.path, &archive).map_err(io(&archive))?;
        // Pass 2: what `retained` keeps, in order: intents without a result, the last `keep_acks`
        // ACKs of each book and symbol, each book's last guard, the last COMMANDS_KEPT commands
        // with their results; streamed into the replacement.
        let mut kept = 0;
        let mut read_failed = None;
        let written = service::write_atomic_with(&self.path, service::Access::Shared, |out| {
            let mut acks_seen: HashMap<(Book, Symbol), usize> = HashMap::new();
            let mut guards_seen: HashMap<Book, usize> = HashMap::new();
            let mut commands_seen = 0usize;
            let mut failed = None;
            let read = Self::for_each(&self.path, |e| {
                let keep = match &e {
                    Entry::Intent { book, coid, .. } => !finished.contains(&(*book, coid.clone())),
                    Entry::Result { .. } => false,
                    Entry::Ack { book, symbol, .. } => {
                        let key = (*book, symbol.clone());
                        let total = acks.get(&key).copied().unwrap_or(0);
                        let n = acks_seen.entry(key).or_default();
                        *n += 1;
                        *n + keep_acks > total
                    }
                    Entry::Guard { book, .. } => {
                        let n = guards_seen.entry(*book).or_default();
                        *n += 1;
                        Some(&*n) == guards.get(book)
                    }
                    Entry::Command { .. } => {
                        commands_seen += 1;
                        commands_seen + COMMANDS_KEPT > commands
                    }
                    Entry::CommandResult { id, .. } => kept_commands.contains(id),
                };
                if keep && failed.is_none() {
                    let mut line = serde_json::to_vec(&e).unwrap_or_default();
                    line.push(b'\n');
                    failed = out.write_all(&line).err();
                    kept += 1;
                }
            });
            if let Err(e) = read {
                read_failed = Some(e);
                return Err(std::io::Error::other("the journal could not be read again"));
            }
            failed.map_or(Ok(()), Err)
        });
        if let Some(e) = read_failed {
            return Err(e);
        }
        written.map_err(|e| JournalError::Io {
            path: e.path,
            source: std::io::Error::new(e.source.kind(), format!("{}: {}", e.op, e.source)),
        })?;
        self.file = Box::new(
            OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io(&self.path))?,
        );
        self.clean_tail = true;
        Ok((archive, kept))
    }

    /// Calls `f` with every entry of the file in order, reading one line at a time; returns how
    /// many non-empty lines were not entries (a torn tail, bytes that are not UTF-8: the lines
    /// [`Journal::recover`] reports and skips too).
    fn for_each(path: &Path, mut f: impl FnMut(Entry)) -> Result<usize, JournalError> {
        use std::io::BufRead;
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        let mut skipped = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                return Ok(skipped);
            }
            let piece = line.strip_suffix(b"\n").unwrap_or(&line);
            if piece.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Entry>(piece) {
                Ok(e) => f(e),
                Err(_) => skipped += 1,
            }
        }
    }

    /// Every readable entry in the file (see [`Journal::recover`]); each skipped line is logged
    /// with its line number and byte offset.
    pub fn read_all(path: &Path) -> Result<Vec<Entry>, JournalError> {
        Self::recover(path).map(|r| r.entries)
    }

    /// Reads the file line by line, keeping every line that parses as an entry and reporting the
    /// others: a torn last line, bytes that are not UTF-8, anything that is not an entry. Nothing
    /// but an I/O error on the file itself stops the read.
    pub fn recover(path: &Path) -> Result<Recovered, JournalError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)
                    .map_err(|source| JournalError::Io {
                        path: path.to_path_buf(),
                        source,
                    })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(JournalError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let out = recover_bytes(&bytes);
        for s in &out.skipped {
            tracing::warn!(journal = %path.display(), line = s.line, offset = s.offset,
                bytes = s.len, why = %s.why, "skipped an unreadable journal line");
        }
        if !out.skipped.is_empty() {
            tracing::warn!(journal = %path.display(), kept = out.entries.len(), skipped = out.skipped.len(),
                "journal read with unreadable lines skipped (listed above); the file is left as it is for inspection");
        }
        Ok(out)
    }
}

/// A journal line that was not read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Length in bytes, without the newline.
    pub len: usize,
    pub why: String,
}

/// What [`Journal::recover`] read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovered {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

/// The entries of journal bytes, and the lines that are not entries. Empty lines are no loss and
/// are not reported.
fn recover_bytes(bytes: &[u8]) -> Recovered {
    let mut out = Recovered::default();
    let mut offset = 0usize;
    let mut pieces = bytes.split(|b| *b == b'\n').peekable();
    let mut line = 0;
    while let Some(piece) = pieces.next() {
        line += 1;
        let last = pieces.peek().is_none();
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Entry>(piece) {
            // A tail without its newline may be a whole entry whose newline did not make it.
            Ok(e) => out.entries.push(e),
            Err(e) => out.skipped.push(Skipped {
                line,
                offset: start as u64,
                len: piece.len(),
                why: if last {
                    format!("torn last line without a newline ({e})")
                } else if std::str::from_utf8(piece).is_err() {
                    format!("not UTF-8 ({e})")
                } else {
                    e.to_string()
                },
            }),
        }
    }
    out
}

/// Whether the file is empty or ends with a newline.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// What a restart needs from a journal, in the original order: every intent that has no result
/// yet (with nothing else about it), the last `keep_acks` ACKs of each book and symbol (how a
/// repeated signal gets the same answer) and each book's last guard (risk baseline, kill switch).
/// Results of finished orders are history, kept in archives.
pub fn retained(entries: &[Entry], keep_acks: usize) -> Vec<&Entry> {
    let finished: HashSet<(Book, &str)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Result { book, coid, .. } => Some((*book, coid.as_str())),
            _ => None,
        })
        .collect();
    let mut acks_left: HashMap<(Book, &Symbol), usize> = HashMap::new();
    let mut guard_kept: HashSet<Book> = HashSet::new();
    let mut commands_left = COMMANDS_KEPT;
    let mut command_kept: HashSet<&fleet::CommandId> = HashSet::new();
    let mut keep = vec![false; entries.len()];
    for (i, e) in entries.iter().enumerate().rev() {
        keep[i] = match e {
            Entry::Intent { book, coid, .. } => !finished.contains(&(*book, coid.as_str())),
            Entry::Result { .. } => false,
            Entry::Ack { book, symbol, .. } => {
                let left = acks_left.entry((*book, symbol)).or_insert(keep_acks);
                let k = *left > 0;
                *left = left.saturating_sub(1);
                k
            }
            Entry::Guard { book, .. } => guard_kept.insert(*book),
            // Newest first: the last COMMANDS_KEPT commands, each with its result (which comes
            // after it, so it is met first and kept when its command will be).
            Entry::CommandResult { .. } => true,
            Entry::Command { id, .. } => {
                let k = commands_left > 0;
                commands_left = commands_left.saturating_sub(1);
                if k {
                    command_kept.insert(id);
                }
                k
            }
        };
    }
    entries
        .iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .filter(|e| match e {
            Entry::CommandResult { id, .. } => command_kept.contains(id),
            _ => true,
        })
        .collect()
}

/// Intents of `book` that have no result: orders whose outcome must be reconciled.
pub fn pending_intents(entries: &[Entry], book: Book) -> Vec<&Entry> {
    let mut pending: Vec<&Entry> = Vec::new();
    for e in entries {
        match e {
            Entry::Intent { book: b, .. } if *b == book => pending.push(e),
            Entry::Result { book: b, coid, .. } if *b == book => {
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

    fn t() -> DateTime<Utc> {
        "2026-02-03T10:15:00.123Z".parse().unwrap()
    }

    fn bar(hours: i64) -> BarTime {
        BarTime::from_unix(1_770_112_800 + hours * 3600).unwrap()
    }

    fn intent(coid: &str) -> Entry {
        Entry::Intent {
            t: t(),
            book: Book::Paper,
            coid: coid.into(),
            leg: Leg::Open,
            symbol: "EURUSD".parse().unwrap(),
            bar: bar(1),
            action: Action::LongWeak,
            side: Some(Side::Buy),
            lots: 0.01,
            position_id: None,
        }
    }

    fn result(coid: &str) -> Entry {
        Entry::Result {
            t: t(),
            book: Book::Paper,
            coid: coid.into(),
            ok: true,
            position_id: Some(1),
            price: Some(1.1),
            lots: Some(0.01),
            error: None,
            resolved_by: None,
        }
    }

    fn ack(symbol: &str, hours: i64) -> Entry {
        let symbol: Symbol = symbol.parse().unwrap();
        Entry::Ack {
            t: t(),
            book: Book::Paper,
            symbol: symbol.clone(),
            bar: bar(hours),
            line: Ack::ok(symbol, Action::LongWeak, None, None).with_bar_time(Some(bar(hours))),
        }
    }

    /// The JSON of every kind is the form the untyped entries had (what older journals hold).
    #[test]
    fn entries_serialize_as_the_untyped_journal_did() {
        let line = |e: &Entry| serde_json::to_string(e).unwrap();
        assert_eq!(
            line(&intent("C")),
            r#"{"kind":"intent","t":"2026-02-03T10:15:00.123Z","book":"paper","coid":"C","leg":"Open","symbol":"EURUSD","bar":1770116400,"action":"LONG_WEAK","side":"Buy","lots":0.01,"position_id":null}"#
        );
        assert_eq!(
            line(&ack("EURUSD", 1)),
            r#"{"kind":"ack","t":"2026-02-03T10:15:00.123Z","book":"paper","symbol":"EURUSD","bar":1770116400,"line":"ACK|EURUSD|LONG_WEAK|OK|B:2026-02-03T11:00:00Z"}"#
        );
        let resolved = Entry::Result {
            t: t(),
            book: Book::Live,
            coid: "C".into(),
            ok: false,
            position_id: None,
            price: None,
            lots: None,
            error: Some("x".into()),
            resolved_by: Some(ResolvedBy::Reconcile),
        };
        assert_eq!(
            line(&resolved),
            r#"{"kind":"result","t":"2026-02-03T10:15:00.123Z","book":"live","coid":"C","ok":false,"position_id":null,"price":null,"error":"x","resolved_by":"reconcile"}"#
        );
        for e in [
            intent("C"),
            result("C"),
            ack("EURUSD", 1),
            resolved,
            guard(Book::Live, true),
        ] {
            assert_eq!(serde_json::from_str::<Entry>(&line(&e)).unwrap(), e);
        }
    }

    /// A line whose fields are not what their type says is skipped and reported, by field.
    #[test]
    fn a_mistyped_field_costs_its_line_and_says_which() {
        let bad = [
            (
                r#"{"kind":"ack","t":"2026-02-03T10:15:00.123Z","book":"paper","symbol":"EURUSD","bar":1770116400,"line":"SIGNAL|EURUSD|WAIT|1|0.00"}"#,
                "expected a ACK line",
            ),
            (
                r#"{"kind":"guard","t":"2026-02-03T10:15:00.123Z","book":"demo","risk":null,"kill_switch":true}"#,
                "demo",
            ),
            (
                r#"{"kind":"guard","t":"yesterday","book":"paper","risk":null,"kill_switch":true}"#,
                "yesterday",
            ),
        ];
        for (text, why) in bad {
            let r = recover_bytes(format!("{text}\n").as_bytes());
            assert!(r.entries.is_empty(), "{text}");
            assert!(r.skipped[0].why.contains(why), "{:?}", r.skipped);
        }
    }

    #[test]
    fn rotation_archives_everything_and_keeps_pending_intents_and_the_last_acks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        let mut all = Vec::new();
        for bar in 0..5 {
            let coid = format!("C{bar}");
            all.push(intent(&coid));
            all.push(result(&coid));
            all.push(ack("EURUSD", bar));
            all.push(ack("GBPUSD", bar));
        }
        all.push(intent("PENDING"));
        j.append_all(&all).unwrap();
        let before = std::fs::read(&p).unwrap();

        let (archive, kept) = j.rotate(2, "20260203T100000.000Z").unwrap();
        assert_eq!(
            std::fs::read(&archive).unwrap(),
            before,
            "the archive is the old file, whole"
        );
        let now = Journal::read_all(&p).unwrap();
        assert_eq!(
            now,
            vec![
                ack("EURUSD", 3),
                ack("GBPUSD", 3),
                ack("EURUSD", 4),
                ack("GBPUSD", 4),
                intent("PENDING"),
            ]
        );
        assert_eq!(kept, 5);
        assert_eq!(pending_intents(&now, Book::Paper), vec![&intent("PENDING")]);
        // The handle follows the new file.
        j.append(&result("PENDING")).unwrap();
        assert!(pending_intents(&Journal::read_all(&p).unwrap(), Book::Paper).is_empty());
        assert!(j.len_bytes() < before.len() as u64);
    }

    fn guard(book: Book, kill_switch: bool) -> Entry {
        Entry::Guard {
            t: t(),
            book,
            risk: None,
            kill_switch,
        }
    }

    /// Rotation keeps each book's last risk baseline and kill switch: a rotated journal is still
    /// the second copy of the desk files.
    #[test]
    fn rotation_keeps_each_books_last_guard() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.append_all(&[
            guard(Book::Paper, false),
            guard(Book::Live, true),
            intent("A"),
            result("A"),
            guard(Book::Paper, true),
        ])
        .unwrap();
        j.rotate(2, "20260203T100000.000Z").unwrap();
        assert_eq!(
            Journal::read_all(&p).unwrap(),
            vec![guard(Book::Live, true), guard(Book::Paper, true)]
        );
    }

    /// A crash (or ENOSPC) mid-write leaves a line without its newline. The next entry must start
    /// on a line of its own, or it is glued to the fragment and lost (a close intent was lost so).
    #[test]
    fn an_entry_appended_after_a_torn_tail_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        Journal::open(&p).unwrap().append(&intent("A")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"kind\":\"intent\",\"t\":\"2026").unwrap();
        drop(f);
        let mut j = Journal::open(&p).unwrap();
        j.append(&intent("CLOSE")).unwrap();
        j.append(&intent("NEXT")).unwrap();
        assert_eq!(
            Journal::read_all(&p).unwrap(),
            vec![intent("A"), intent("CLOSE"), intent("NEXT")]
        );
    }

    /// A disk with `room` bytes left: writes past it are cut short and fail with ENOSPC, as a
    /// full filesystem does. `can_cut` says whether truncating back works.
    #[derive(Debug)]
    struct FullDisk {
        file: File,
        room: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        can_cut: bool,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            use std::sync::atomic::Ordering;
            let room = self.room.load(Ordering::SeqCst);
            if room == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = self.file.write(&buf[..buf.len().min(room)])?;
            self.room.fetch_sub(n, Ordering::SeqCst);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    impl JournalFile for FullDisk {
        fn sync_data(&self) -> std::io::Result<()> {
            self.file.sync_data()
        }
        fn byte_len(&self) -> std::io::Result<u64> {
            JournalFile::byte_len(&self.file)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            if self.can_cut {
                self.file.set_len(len)
            } else {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            }
        }
    }

    fn full_disk(
        p: &Path,
        room: usize,
        can_cut: bool,
    ) -> (Journal, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let room = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(room));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        let disk = FullDisk {
            file,
            room: room.clone(),
            can_cut,
        };
        (Journal::over(p, Box::new(disk)), room)
    }

    /// ENOSPC part-way through a write: the error reaches the caller, the file is cut back to its
    /// whole lines, and once space is back the next entries are whole and readable.
    #[test]
    fn a_short_write_is_cut_back_and_the_next_entry_is_whole() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let (mut j, room) = full_disk(&p, 10_000, true);
        j.append(&intent("A")).unwrap();
        let whole = std::fs::read(&p).unwrap();
        room.store(40, Ordering::SeqCst);
        let e = j.append_all(&[intent("B"), intent("C")]).unwrap_err();
        assert!(e.to_string().contains("No space left"), "{e}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            whole,
            "cut back to the whole lines"
        );
        room.store(10_000, Ordering::SeqCst);
        j.append(&intent("D")).unwrap();
        let r = Journal::recover(&p).unwrap();
        assert_eq!(r.entries, vec![intent("A"), intent("D")]);
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    }

    /// The same when the file cannot be cut back: the fragment stays, alone on its line, and the
    /// next entry (a close intent, say) is not glued to it.
    #[test]
    fn a_short_write_that_cannot_be_cut_back_is_closed_off_before_the_next_entry() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let (mut j, room) = full_disk(&p, 10_000, false);
        j.append(&intent("A")).unwrap();
        let whole = std::fs::read(&p).unwrap().len() as u64;
        room.store(25, Ordering::SeqCst);
        assert!(j.append(&intent("B")).is_err());
        room.store(10_000, Ordering::SeqCst);
        j.append(&intent("CLOSE")).unwrap();
        let r = Journal::recover(&p).unwrap();
        assert_eq!(r.entries, vec![intent("A"), intent("CLOSE")]);
        assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
        assert_eq!(
            (r.skipped[0].line, r.skipped[0].offset, r.skipped[0].len),
            (2, whole, 25)
        );
    }

    /// Every skipped line is reported with its line number and byte offset; a torn tail as such.
    #[test]
    fn recovery_reports_what_it_skipped_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.append(&intent("A")).unwrap();
        drop(j);
        let a_len = std::fs::read(&p).unwrap().len() as u64;
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\xff\xfe\n").unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(b"{\"kind\":\"nonsense\"}\n").unwrap();
        f.write_all(&serde_json::to_vec(&intent("B")).unwrap())
            .unwrap();
        let torn = b"{\"kind\":\"res";
        f.write_all(b"\n").unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        let r = Journal::recover(&p).unwrap();
        assert_eq!(r.entries, vec![intent("A"), intent("B")]);
        let at: Vec<(usize, u64)> = r.skipped.iter().map(|s| (s.line, s.offset)).collect();
        assert_eq!(
            at,
            vec![
                (2, a_len),
                (4, a_len + 4),
                (6, std::fs::metadata(&p).unwrap().len() - torn.len() as u64)
            ]
        );
        assert!(r.skipped[0].why.contains("not UTF-8"), "{:?}", r.skipped[0]);
        assert!(
            r.skipped[2].why.contains("torn last line"),
            "{:?}",
            r.skipped[2]
        );
        // Opening closes the tear off: the file ends with a newline, nothing is rewritten.
        let before = std::fs::read(&p).unwrap();
        Journal::open(&p).unwrap();
        let after = std::fs::read(&p).unwrap();
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(&after[before.len()..], b"\n");
    }

    /// Invalid UTF-8 in one line costs that line only, never the executor's start.
    #[test]
    fn invalid_utf8_costs_only_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.append(&intent("A")).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"kind\":\"ack\",\"line\":\"\xff\xfe\"}\n")
            .unwrap();
        f.write_all(b"\xc3\x28 not json either\n").unwrap();
        drop(f);
        Journal::open(&p).unwrap().append(&intent("B")).unwrap();
        assert_eq!(
            Journal::read_all(&p).unwrap(),
            vec![intent("A"), intent("B")]
        );
    }

    /// The streaming rotation keeps exactly what [`retained`] keeps, in the same order, whatever the
    /// mix (results before or long after their intents, several books and symbols, guards, more
    /// commands than are kept, answered at once, late or never, a torn line).
    #[test]
    fn rotation_keeps_what_retained_keeps() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut below = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("journal.jsonl");
            let mut all = Vec::new();
            let mut open: Vec<String> = Vec::new();
            let mut unanswered: Vec<fleet::CommandId> = Vec::new();
            // Past COMMANDS_KEPT commands, so the rotation has some to drop.
            for i in 0..2000 {
                match below(6) {
                    4 => {
                        let mut bytes = [0u8; 16];
                        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
                        let id = fleet::CommandId::from_random(bytes);
                        all.push(Entry::Command {
                            t: t(),
                            id: id.clone(),
                            origin: fleet::Origin::Local,
                            command: fleet::Command::Pause,
                        });
                        unanswered.push(id);
                    }
                    5 if !unanswered.is_empty() => {
                        let id = unanswered.swap_remove(below(unanswered.len() as u64));
                        all.push(Entry::CommandResult {
                            t: t(),
                            id,
                            result: fleet::CommandResult::Ok { detail: None },
                        });
                    }
                    0 => {
                        let coid = format!("C{i}");
                        all.push(intent(&coid));
                        open.push(coid);
                    }
                    1 if !open.is_empty() => {
                        let coid = open.swap_remove(below(open.len() as u64));
                        all.push(result(&coid));
                    }
                    2 if below(8) == 0 => {
                        let book = if below(2) == 0 {
                            Book::Live
                        } else {
                            Book::Paper
                        };
                        all.push(Entry::Guard {
                            t: t(),
                            book,
                            risk: None,
                            kill_switch: below(2) == 0,
                        });
                    }
                    _ => {
                        let symbol = ["EURUSD", "GBPUSD", "XAUUSD"][below(3)];
                        let mut a = ack(symbol, i);
                        if let Entry::Ack { book, .. } = &mut a
                            && below(2) == 0
                        {
                            *book = Book::Live;
                        }
                        all.push(a);
                    }
                }
            }
            let mut j = Journal::open(&p).unwrap();
            j.append_all(&all).unwrap();
            let mut f = OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"{\"kind\":\"ack\",\"t\"\n").unwrap();
            let keep = below(6);
            let expected: Vec<Entry> = retained(&all, keep).into_iter().cloned().collect();
            let (_, kept) = j.rotate(keep, &format!("round{round}")).unwrap();
            assert_eq!(Journal::read_all(&p).unwrap(), expected, "round {round}");
            assert_eq!(kept, expected.len());
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
            t: t(),
            book: Book::Paper,
            coid: "A".into(),
            ok: true,
            position_id: Some(1),
            price: Some(1.1),
            lots: Some(0.01),
            error: None,
            resolved_by: None,
        })
        .unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"kind\":\"intent\",\"t\"").unwrap();
        let all = Journal::read_all(&p).unwrap();
        assert_eq!(all.len(), 3);
        let pend = pending_intents(&all, Book::Paper);
        assert_eq!(pend, vec![&intent("B")]);
        assert!(pending_intents(&all, Book::Live).is_empty());
    }
}
