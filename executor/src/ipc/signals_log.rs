//! `signals.log`: every protocol line in and out, one per line, flushed at once so `tail -f` shows
//! the conversation. The preditor's token is redacted before it gets here.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{SecondsFormat, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

/// Told of every line [`SignalsLog::record`] writes (the `/metrics` counters), with its time.
pub type LineObserver = Arc<dyn Fn(Dir, &str, std::time::Instant) + Send + Sync>;

pub struct SignalsLog {
    file: Mutex<File>,
    observer: OnceLock<LineObserver>,
}

impl std::fmt::Debug for SignalsLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalsLog").finish_non_exhaustive()
    }
}

impl SignalsLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(SignalsLog {
            file: Mutex::new(file),
            observer: OnceLock::new(),
        })
    }

    /// Sets the observer of single lines (once; a second call is ignored). HISTORY blocks
    /// ([`SignalsLog::record_all`]) are not observed: they are history, not live traffic.
    pub fn set_observer(&self, observer: LineObserver) {
        let _ = self.observer.set(observer);
    }

    /// `2026-02-03T10:15:01.123Z c3 < SIGNAL|...` (`<` in from the preditor, `>` out to it).
    pub fn record(&self, conn: u64, dir: Dir, text: &str) {
        let arrow = match dir {
            Dir::In => '<',
            Dir::Out => '>',
        };
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        if let Ok(mut f) = self.file.lock() {
            // A full disk must not stop trading; the journal (fsynced) is the record that matters.
            let _ = writeln!(f, "{ts} c{conn} {arrow} {text}");
            let _ = f.flush();
        }
        if let Some(o) = self.observer.get() {
            o(dir, text, std::time::Instant::now());
        }
    }

    /// Several lines with one write (a HISTORY block is hundreds of lines).
    pub fn record_all<'a>(&self, conn: u64, dir: Dir, lines: impl IntoIterator<Item = &'a str>) {
        let arrow = match dir {
            Dir::In => '<',
            Dir::Out => '>',
        };
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut text = String::new();
        for l in lines {
            text.push_str(&format!("{ts} c{conn} {arrow} {l}\n"));
        }
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(text.as_bytes());
            let _ = f.flush();
        }
    }
}
