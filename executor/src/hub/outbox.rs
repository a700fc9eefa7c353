//! The durable outbox: every record for the hub is appended here first, on the core loop, and the
//! link task sends it from here, in order, after any outage (docs/HUB.md, "The outbox").
//!
//! Layout: `<state_dir>/hub_outbox/` holds numbered segments (`000000000001.log`, …), each line one
//! record as `<stream> <record JSON>\n`, and `counters.json` (the highest seq acknowledged per
//! stream, the status counter, the acknowledged position). Rules:
//! - **Append only, no fsync on the loop**: the loop's write goes to the page cache (a process
//!   crash keeps it); the link `fsync`s a segment before it first publishes from it, so a power
//!   loss can only lose records the hub never saw, and their seqs are never seen twice with
//!   different content.
//! - **seq** per stream is assigned at append; after a restart it continues from the highest of
//!   `counters.json` and the segments left. `counters.json` is written (atomically, fsynced) before
//!   an acknowledged segment is deleted, so the floor never goes back.
//! - **Bounded**: at most `cap` bytes on disk. While the broker is unreachable telemetry is not
//!   queued (a snapshot: the next one supersedes it); every other stream is queued until the cap.
//!   At the cap a new record is dropped, counted, and its seq consumed, so the hub sees the gap.
//! - **Torn tail**: a last line without its `\n` (a crash mid-write) is cut at startup; a line that
//!   does not parse is skipped and counted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fleet::{Record, Stream};
use serde::{Deserialize, Serialize};

/// Largest segment (smaller when the cap is small, so a deletion frees a fair share).
pub const SEGMENT_BYTES: u64 = 4 << 20;
const COUNTERS: &str = "counters.json";

#[derive(Debug, thiserror::Error)]
#[error("hub outbox {path}: {source}")]
pub struct OutboxError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError {
        path: path.to_path_buf(),
        source,
    }
}

/// What the loop's side and the link's side share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Bytes of every segment on disk.
    pub bytes: AtomicU64,
    /// Records dropped at the cap (or on a write error).
    pub dropped: AtomicU64,
    /// Telemetry snapshots not queued while the broker was unreachable.
    pub telemetry_skipped: AtomicU64,
    /// Records appended since the start.
    pub appended: AtomicU64,
    /// Records the broker acknowledged since the start.
    pub acked: AtomicU64,
    /// The link is connected (telemetry is queued only then).
    pub connected: AtomicBool,
    /// The executor is stopping: the link says offline and disconnects.
    pub stopping: AtomicBool,
    /// Wakes the link: a record was appended, or stopping.
    pub wake: tokio::sync::Notify,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counters {
    /// Highest seq acknowledged (or consumed) per stream name.
    seq: BTreeMap<String, u64>,
    /// The status stream's counter (the link's: online and will seqs are reserved from it).
    status: u64,
}

fn seg_name(n: u64) -> String {
    format!("{n:012}.log")
}

fn segments(dir: &Path) -> Result<Vec<u64>, OutboxError> {
    let mut out: Vec<u64> = std::fs::read_dir(dir)
        .map_err(err(dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// One line: `(stream, seq, payload)`.
fn parse_line(line: &[u8]) -> Option<(Stream, u64, &[u8])> {
    let sp = line.iter().position(|b| *b == b' ')?;
    let stream = Stream::from_name(std::str::from_utf8(&line[..sp]).ok()?)?;
    let payload = &line[sp + 1..];
    #[derive(Deserialize)]
    struct Head {
        seq: u64,
    }
    let head: Head = serde_json::from_slice(payload).ok()?;
    Some((stream, head.seq, payload))
}

/// Opens (or creates) the outbox in `dir`: the loop's [`Writer`], the link's [`Reader`].
pub fn open(dir: &Path, cap: u64) -> Result<(Writer, Reader), OutboxError> {
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err(dir))?;
    }
    let cpath = dir.join(COUNTERS);
    let counters: Counters = match std::fs::read(&cpath) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| OutboxError {
            path: cpath.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Counters::default(),
        Err(e) => return Err(err(&cpath)(e)),
    };
    let mut seq: BTreeMap<Stream, u64> = Stream::ALL
        .iter()
        .map(|s| (*s, counters.seq.get(s.as_str()).copied().unwrap_or(0)))
        .collect();
    let segs = segments(dir)?;
    let shared = Arc::new(Shared::default());
    let mut bad = 0u64;
    for (i, n) in segs.iter().enumerate() {
        let path = dir.join(seg_name(*n));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(err(&path))?;
        let good = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        if good < bytes.len() {
            // Only the last segment can have a torn tail (a crash mid-append); cut it.
            tracing::warn!(segment = %path.display(), torn = bytes.len() - good, last = i + 1 == segs.len(), "hub outbox: a torn record at the end is cut");
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(good as u64))
                .map_err(err(&path))?;
        }
        for line in bytes[..good]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            match parse_line(line) {
                Some((s, q, _)) => {
                    let e = seq.entry(s).or_default();
                    *e = (*e).max(q);
                }
                None => bad += 1,
            }
        }
        shared.bytes.fetch_add(good as u64, Ordering::Relaxed);
    }
    if bad > 0 {
        tracing::warn!(
            bad,
            "hub outbox: lines that do not parse are skipped (never sent)"
        );
    }
    let seg_limit = SEGMENT_BYTES.min((cap / 8).max(4096));
    let current = segs.last().copied().unwrap_or(1);
    let cur_path = dir.join(seg_name(current));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cur_path)
        .map_err(err(&cur_path))?;
    let seg_bytes = file.metadata().map_err(err(&cur_path))?.len();
    let first = segs.first().copied().unwrap_or(current);
    let writer = Writer {
        dir: dir.to_path_buf(),
        file: Some(file),
        seg: current,
        seg_bytes,
        seg_limit,
        seq,
        cap,
        shared: shared.clone(),
        warned_full: false,
    };
    let reader = Reader {
        dir: dir.to_path_buf(),
        shared,
        cursor: (first, 0),
        acked: (first, 0),
        file: None,
        acked_seq: Stream::ALL
            .iter()
            .map(|s| (*s, counters.seq.get(s.as_str()).copied().unwrap_or(0)))
            .collect(),
        counters,
    };
    Ok((writer, reader))
}

/// The loop's side: appends records, assigning each stream's seq.
#[derive(Debug)]
pub struct Writer {
    dir: PathBuf,
    file: Option<File>,
    seg: u64,
    seg_bytes: u64,
    seg_limit: u64,
    seq: BTreeMap<Stream, u64>,
    cap: u64,
    shared: Arc<Shared>,
    warned_full: bool,
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    Queued(u64),
    /// Telemetry while disconnected.
    Skipped,
    /// At the cap or on a write error; the seq is consumed.
    Dropped(u64),
}

impl Writer {
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Appends one record (never waits on the network; one `write` to the page cache).
    pub fn append<B: Serialize>(&mut self, stream: Stream, ts_ms: i64, body: B) -> Appended {
        if stream == Stream::Telemetry && !self.shared.connected.load(Ordering::Relaxed) {
            self.shared
                .telemetry_skipped
                .fetch_add(1, Ordering::Relaxed);
            return Appended::Skipped;
        }
        let seq = {
            let n = self.seq.entry(stream).or_default();
            *n += 1;
            *n
        };
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(stream.as_str().as_bytes());
        line.push(b' ');
        line.extend_from_slice(&Record::new(seq, ts_ms, body).to_bytes());
        line.push(b'\n');
        let len = line.len() as u64;
        if self.shared.bytes.load(Ordering::Relaxed) + len > self.cap {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !self.warned_full {
                tracing::error!(
                    cap = self.cap,
                    "hub outbox full: new records are dropped (counted; the hub sees the gap in seq) until the broker takes some"
                );
                self.warned_full = true;
            }
            return Appended::Dropped(seq);
        }
        self.warned_full = false;
        if let Err(e) = self.write(&line) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "hub outbox: cannot append a record (dropped, counted)");
            // A write cut short leaves a torn line: the next record starts a new segment.
            self.file = None;
            return Appended::Dropped(seq);
        }
        self.seg_bytes += len;
        self.shared.bytes.fetch_add(len, Ordering::Relaxed);
        self.shared.appended.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Appended::Queued(seq)
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() || self.seg_bytes + line.len() as u64 > self.seg_limit {
            self.seg += 1;
            let path = self.dir.join(seg_name(self.seg));
            self.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
            self.seg_bytes = 0;
        }
        match &mut self.file {
            Some(f) => f.write_all(line),
            None => Ok(()),
        }
    }

    /// Says stopping to the link.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

/// A record read back for sending.
#[derive(Debug, Clone)]
pub struct Item {
    pub stream: Stream,
    pub seq: u64,
    pub payload: Vec<u8>,
    /// Where the next record starts (the acknowledged position once this one is acked).
    pub end: (u64, u64),
}

/// The link's side: reads records in order, fsyncs before handing them out, deletes what the
/// broker acknowledged.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    shared: Arc<Shared>,
    cursor: (u64, u64),
    acked: (u64, u64),
    file: Option<(u64, BufReader<File>)>,
    counters: Counters,
    acked_seq: BTreeMap<Stream, u64>,
}

impl Reader {
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Sends everything after the acknowledged position again (a new connection: rumqttc drops
    /// what was unacknowledged with a clean start, docs/HUB.md §4).
    pub fn rewind(&mut self) {
        self.cursor = self.acked;
        self.file = None;
    }

    /// Up to `max` records from the cursor on, fsynced.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Item>, OutboxError> {
        let mut out = Vec::new();
        while out.len() < max {
            let (seg, off) = self.cursor;
            let path = self.dir.join(seg_name(seg));
            if self.file.as_ref().is_none_or(|(s, _)| *s != seg) {
                match File::open(&path) {
                    Ok(mut f) => {
                        f.seek(SeekFrom::Start(off)).map_err(err(&path))?;
                        self.file = Some((seg, BufReader::new(f)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // A later segment exists only when this one was never written.
                        match segments(&self.dir)?.into_iter().find(|n| *n > seg) {
                            Some(n) => {
                                self.cursor = (n, 0);
                                continue;
                            }
                            None => break,
                        }
                    }
                    Err(e) => return Err(err(&path)(e)),
                }
            }
            let Some((_, r)) = &mut self.file else { break };
            let mut line = Vec::new();
            let n = r.read_until(b'\n', &mut line).map_err(err(&path))?;
            if n > 0 && line.ends_with(b"\n") {
                self.cursor.1 += n as u64;
                let body = &line[..line.len() - 1];
                match parse_line(body) {
                    Some((stream, seq, payload)) => out.push(Item {
                        stream,
                        seq,
                        payload: payload.to_vec(),
                        end: self.cursor,
                    }),
                    None => {
                        tracing::warn!(segment = %path.display(), "hub outbox: a line that does not parse is skipped")
                    }
                }
                continue;
            }
            // End of what is written (a partial line is read again next time, from its start).
            let written_to = self.cursor.1;
            self.file = None;
            let later = segments(&self.dir)?.into_iter().find(|n| *n > seg);
            match later {
                // The writer moved on, so this segment is final: read its rest once more (it
                // may have been appended between our read and the rotation), then move.
                Some(next) => {
                    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    if len > written_to {
                        continue;
                    }
                    self.cursor = (next, 0);
                }
                None => break,
            }
        }
        // Durable before the hub can see it (module doc).
        let touched: std::collections::BTreeSet<u64> = out.iter().map(|i| i.end.0).collect();
        for seg in touched {
            let path = self.dir.join(seg_name(seg));
            File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(err(&path))?;
        }
        Ok(out)
    }

    /// The broker acknowledged `item` (and, in order, everything before it). Segments wholly
    /// behind the acknowledged position are deleted, after `counters.json` says their seqs.
    pub fn ack(&mut self, item: &Item) -> Result<(), OutboxError> {
        self.shared.acked.fetch_add(1, Ordering::Relaxed);
        let e = self.acked_seq.entry(item.stream).or_default();
        *e = (*e).max(item.seq);
        let before = self.acked.0;
        self.acked = item.end;
        if self.acked.0 > before {
            self.release(self.acked.0)?;
        }
        Ok(())
    }

    /// Deletes the segments before `upto` (wholly acknowledged).
    fn release(&mut self, upto: u64) -> Result<(), OutboxError> {
        let old: Vec<u64> = segments(&self.dir)?
            .into_iter()
            .filter(|n| *n < upto)
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        self.save_counters()?;
        for n in old {
            let path = self.dir.join(seg_name(n));
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(err(&path))?;
            self.shared.bytes.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reserves the status seqs of one connection: `(online, will)`, persisted first.
    pub fn reserve_status(&mut self) -> Result<(u64, u64), OutboxError> {
        let online = self.counters.status + 1;
        self.counters.status += 2;
        self.save_counters()?;
        Ok((online, online + 1))
    }

    /// The next status seq (a clean shutdown's offline), persisted first.
    pub fn next_status(&mut self) -> Result<u64, OutboxError> {
        self.counters.status += 1;
        self.save_counters()?;
        Ok(self.counters.status)
    }

    fn save_counters(&mut self) -> Result<(), OutboxError> {
        for (s, q) in &self.acked_seq {
            let e = self.counters.seq.entry(s.as_str().to_string()).or_default();
            *e = (*e).max(*q);
        }
        let bytes = serde_json::to_vec(&self.counters).unwrap_or_default();
        let path = self.dir.join(COUNTERS);
        service::write_atomic(&path, &bytes, service::Access::Private).map_err(|e| OutboxError {
            path: e.path,
            source: e.source,
        })
    }
}

#[cfg(test)]
mod tests;
