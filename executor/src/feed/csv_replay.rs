//! The paper replay's bars, read from their CSV files as the replay goes.
//!
//! Each `<SYMBOL>.csv` is read whole once at load, by the workspace's one bars reader
//! (`protocol::bars_file`), and checked as before (every row, and that every bar makes a BAR line
//! with the symbol's digits), but not kept: the replay keeps the file open, where each block of
//! [`BLOCK`] rows starts and a digest of the bars in it. It then reads one block ahead per symbol
//! as it publishes, and a WARMUP's history again from the file. So the replay holds about 12 kB
//! per symbol instead of 48 bytes per bar per symbol (20 MB of the executor's RSS in a 20,000-bar
//! soak of 20 symbols), and publishes exactly the bars, in the order, that holding them did.
//!
//! A file that changes under the replay cannot make it publish something else: each block read
//! again must give the bars it gave at load (its digest), or the replay stops with an error naming
//! the file and the line, before publishing anything of that step. The file is read through the
//! descriptor opened at load, so a file renamed over it (a new file at the same path) is not read:
//! the replay goes on with the bars it checked, and says once that the path names another file.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use protocol::bars_file::{BarsFileError, BarsReader, RowStart};
use protocol::{Bar, BarLine, Symbol, Timeframe};

use crate::feed::bars::BarsError;

/// Rows per block: what is read ahead per symbol (48 bytes a bar: 12 kB).
pub const BLOCK: usize = 256;

/// Why the replay could not go on reading a file it had checked at load.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A row no longer reads (a malformed line, a line cut short).
    #[error("{0} (the file changed after the replay checked it at start)")]
    Row(#[from] BarsFileError),
    #[error(
        "{path}:{line}: the file ends here, but it held {bars} bars when the replay checked it at start (truncated while the replay runs?)"
    )]
    Truncated {
        path: PathBuf,
        line: u64,
        bars: usize,
    },
    #[error(
        "{path}:{first}-{last}: these lines no longer hold the bars the replay checked at start (the file was rewritten while the replay runs)"
    )]
    Changed {
        path: PathBuf,
        first: u64,
        last: u64,
    },
}

/// Where one block of rows starts, and what it held at load.
#[derive(Debug, Clone)]
struct Block {
    start: RowStart,
    /// The open time of the bar before the block (the order check of its first row).
    previous: Option<i64>,
    digest: u64,
}

/// Reads a file by position (`pread`), leaving the descriptor's own offset alone, so that any
/// number of readers share one descriptor.
struct At<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.offset = match pos {
            SeekFrom::Start(o) => o,
            SeekFrom::Current(d) => self.offset.saturating_add_signed(d),
            SeekFrom::End(_) => {
                return Err(std::io::Error::other(
                    "not needed: the replay seeks from the start",
                ));
            }
        };
        Ok(self.offset)
    }
}

fn digest(bars: &[Bar]) -> u64 {
    // `DefaultHasher::new()` has fixed keys: the same bars give the same digest in one process.
    let mut h = DefaultHasher::new();
    for b in bars {
        (b.time, b.open.to_bits(), b.high.to_bits()).hash(&mut h);
        (b.low.to_bits(), b.close.to_bits(), b.volume).hash(&mut h);
    }
    h.finish()
}

/// One symbol's file: checked at load, read again block by block.
#[derive(Debug)]
struct BarFile {
    symbol: Symbol,
    timeframe: Timeframe,
    digits: usize,
    path: PathBuf,
    file: File,
    /// `(st_dev, st_ino)` of the file at load, to notice a file renamed over it.
    identity: (u64, u64),
    replaced_reported: AtomicBool,
    bars: usize,
    block: usize,
    blocks: Vec<Block>,
}

impl BarFile {
    fn open(
        path: &Path,
        symbol: &Symbol,
        timeframe: Timeframe,
        digits: usize,
        block: usize,
    ) -> Result<Self, BarsError> {
        let io = |source| {
            BarsError::File(BarsFileError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let mut rows = BarsReader::new().rows(
            At {
                file: &file,
                offset: 0,
            },
            path,
        )?;
        let mut blocks = Vec::new();
        let mut pending: Vec<Bar> = Vec::with_capacity(block);
        let mut previous = None;
        let mut bars = 0;
        while let Some((bar, start)) = rows.next_bar()? {
            // Every bar must make a line now, so that publishing it later cannot fail.
            bar.to_line(symbol, timeframe, digits)
                .map_err(|e| BarsError::Digits {
                    path: path.to_path_buf(),
                    time: protocol::bar::format_time(bar.time),
                    why: e.to_string(),
                })?;
            if bars % block == 0 {
                if let Some(b) = blocks.last_mut() {
                    finish(b, &mut pending);
                }
                blocks.push(Block {
                    start,
                    previous,
                    digest: 0,
                });
            }
            previous = Some(bar.time);
            pending.push(bar);
            bars += 1;
        }
        if let Some(b) = blocks.last_mut() {
            finish(b, &mut pending);
        }
        Ok(BarFile {
            symbol: symbol.clone(),
            timeframe,
            digits,
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
            replaced_reported: AtomicBool::new(false),
            bars,
            block,
            blocks,
        })
    }

    /// The bars of block `k` as they were at load.
    fn read_block(&self, k: usize) -> Result<Vec<Bar>, ReplayError> {
        self.report_replaced();
        let b = &self.blocks[k];
        let want = self.block.min(self.bars - k * self.block);
        let at = At {
            file: &self.file,
            offset: 0,
        };
        let mut rows = BarsReader::new().rows_from(at, &self.path, &b.start, b.previous)?;
        let mut out = Vec::with_capacity(want);
        let mut last_line = b.start.line();
        while out.len() < want {
            match rows.next_bar()? {
                Some((bar, start)) => {
                    last_line = start.line();
                    out.push(bar);
                }
                None => {
                    return Err(ReplayError::Truncated {
                        path: self.path.clone(),
                        line: rows.end_line(),
                        bars: self.bars,
                    });
                }
            }
        }
        if digest(&out) != b.digest {
            return Err(ReplayError::Changed {
                path: self.path.clone(),
                first: b.start.line(),
                last: last_line,
            });
        }
        Ok(out)
    }

    /// Bars `from..to`, read again from the file.
    fn read(&self, from: usize, to: usize) -> Result<Vec<Bar>, ReplayError> {
        let mut out = Vec::with_capacity(to - from);
        let mut k = from / self.block;
        while k * self.block < to {
            let first = k * self.block;
            let block = self.read_block(k)?;
            let lo = from.saturating_sub(first);
            let hi = (to - first).min(block.len());
            out.extend_from_slice(&block[lo..hi]);
            k += 1;
        }
        Ok(out)
    }

    fn line(&self, bar: &Bar) -> Option<BarLine> {
        bar.to_line(&self.symbol, self.timeframe, self.digits).ok()
    }

    /// Says once that the path now names another file than the one the replay reads.
    fn report_replaced(&self) {
        if self.replaced_reported.load(Ordering::Relaxed) {
            return;
        }
        let now = std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if now.as_ref().is_ok_and(|id| *id == self.identity) {
            return;
        }
        self.replaced_reported.store(true, Ordering::Relaxed);
        tracing::warn!(
            path = %self.path.display(),
            "the replay's bars file was replaced or removed while the replay runs; the replay goes on with the file it checked at start (restart the executor to replay the new one)"
        );
    }
}

fn finish(b: &mut Block, pending: &mut Vec<Bar>) {
    b.digest = digest(pending);
    pending.clear();
}

/// One symbol's place in the replay.
#[derive(Debug)]
struct Cursor {
    file: BarFile,
    /// Index of the next bar to publish.
    next: usize,
    /// Bars `next..next + ahead.len()`, read ahead from the file.
    ahead: VecDeque<Bar>,
}

impl Cursor {
    /// The next bar to publish, read from the file when the read-ahead is empty; `None` at the end.
    fn peek(&mut self) -> Result<Option<&Bar>, ReplayError> {
        if self.ahead.is_empty() && self.next < self.file.bars {
            let k = self.next / self.file.block;
            let block = self.file.read_block(k)?;
            let skip = self.next - k * self.file.block;
            self.ahead.extend(block.into_iter().skip(skip));
        }
        Ok(self.ahead.front())
    }
}

/// Replays CSV bars: every step publishes the next timestamp's bars of all symbols together.
#[derive(Debug)]
pub struct CsvBarSource {
    cursors: BTreeMap<Symbol, Cursor>,
}

impl CsvBarSource {
    /// Loads `<dir>/<SYMBOL>.csv` for each symbol that has one; bars before `start_bar` are history.
    pub fn load(
        dir: &Path,
        symbols: &[(Symbol, Timeframe, usize)],
        start_bar: usize,
    ) -> Result<Self, BarsError> {
        Self::load_in_blocks(dir, symbols, start_bar, BLOCK)
    }

    /// [`CsvBarSource::load`] with `block` rows per block (tests cross block boundaries with small
    /// blocks).
    pub fn load_in_blocks(
        dir: &Path,
        symbols: &[(Symbol, Timeframe, usize)],
        start_bar: usize,
        block: usize,
    ) -> Result<Self, BarsError> {
        let block = block.max(1);
        let mut cursors = BTreeMap::new();
        for (sym, tf, digits) in symbols {
            let path = dir.join(format!("{}.csv", sym.as_str()));
            if !path.is_file() {
                continue;
            }
            let file = BarFile::open(&path, sym, *tf, *digits, block)?;
            let next = start_bar.min(file.bars);
            cursors.insert(
                sym.clone(),
                Cursor {
                    file,
                    next,
                    ahead: VecDeque::new(),
                },
            );
        }
        Ok(CsvBarSource { cursors })
    }

    pub fn symbols(&self) -> impl Iterator<Item = &Symbol> {
        self.cursors.keys()
    }

    /// The next step's bars (all symbols sharing the earliest pending open time); empty at the end.
    /// An error publishes nothing of the step: every symbol's next bar is read before any is taken.
    pub fn step(&mut self) -> Result<Vec<BarLine>, ReplayError> {
        let mut earliest: Option<i64> = None;
        for c in self.cursors.values_mut() {
            if let Some(b) = c.peek()? {
                earliest = Some(earliest.map_or(b.time, |t| t.min(b.time)));
            }
        }
        let Some(t) = earliest else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for c in self.cursors.values_mut() {
            if c.ahead.front().is_some_and(|b| b.time == t) {
                let bar = c.ahead.pop_front().expect("the front was just seen");
                out.extend(c.file.line(&bar));
                c.next += 1;
            }
        }
        Ok(out)
    }

    /// The last `count` published (closed) bars of a symbol, oldest first; `Ok(None)` for a
    /// symbol or timeframe the replay does not have.
    pub fn history(
        &self,
        symbol: &Symbol,
        timeframe: Timeframe,
        count: usize,
    ) -> Result<Option<Vec<BarLine>>, ReplayError> {
        let Some(c) = self.cursors.get(symbol) else {
            return Ok(None);
        };
        if c.file.bars > 0 && c.file.timeframe != timeframe {
            return Ok(None);
        }
        let bars = c.file.read(c.next.saturating_sub(count), c.next)?;
        Ok(Some(bars.iter().filter_map(|b| c.file.line(b)).collect()))
    }

    pub fn is_finished(&self) -> bool {
        self.cursors.values().all(|c| c.next >= c.file.bars)
    }

    /// Bars held in memory (the read-ahead), for the bound's test.
    pub fn bars_held(&self) -> usize {
        self.cursors.values().map(|c| c.ahead.len()).sum()
    }
}

#[cfg(test)]
mod tests;
