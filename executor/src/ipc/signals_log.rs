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

    /// `2026-02-03T10:15:01.123456Z c3 < SIGNAL|...` (`<` in from the preditor, `>` out to it).
    pub fn record(&self, conn: u64, dir: Dir, text: &str) {
        self.record_lines(conn, dir, std::iter::once(text));
    }

    /// Lines that travel together (one WebSocket message: a bar close's BARs, a batch of SIGNALs
    /// or ACKs), stamped alike and written with one `write`, each told to the observer. The log is
    /// on the signal path: a `writeln!` on the unbuffered file costs one system call per piece of
    /// the format (eight per line), 160 for a bar close of 20 symbols.
    pub fn record_lines<'a>(&self, conn: u64, dir: Dir, lines: impl IntoIterator<Item = &'a str>) {
        let lines: Vec<&str> = lines.into_iter().collect();
        self.record_all(conn, dir, lines.iter().copied());
        if let Some(o) = self.observer.get() {
            let at = std::time::Instant::now();
            for l in lines {
                o(dir, l, at);
            }
        }
    }

    /// Several lines with one write, not observed (a HISTORY block is hundreds of lines).
    pub fn record_all<'a>(&self, conn: u64, dir: Dir, lines: impl IntoIterator<Item = &'a str>) {
        let lines: Vec<&str> = lines.into_iter().collect();
        self.write(&stamp(conn, dir, &lines));
    }

    fn write(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Ok(mut f) = self.file.lock() {
            // A full disk must not stop trading; the journal (fsynced) is the record that matters.
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// The lines as `signals.log` shows them: one stamp for all, in microseconds (the stages of a bar
/// close are hundreds of microseconds long).
fn stamp(conn: u64, dir: Dir, lines: &[&str]) -> String {
    use std::fmt::Write as _;
    let arrow = match dir {
        Dir::In => '<',
        Dir::Out => '>',
    };
    let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut text = String::new();
    for l in lines {
        let _ = writeln!(text, "{ts} c{conn} {arrow} {l}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message's lines share one stamp, in microseconds, each line told to the observer once.
    #[test]
    fn lines_of_one_message_are_stamped_alike_to_the_microsecond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signals.log");
        let log = SignalsLog::open(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        log.set_observer(Arc::new(move |d, t: &str, _| {
            s.lock().unwrap().push((d, t.to_string()))
        }));
        log.record_lines(3, Dir::Out, ["BAR|EURUSD|x", "BAR|GBPUSD|y"]);
        log.record(3, Dir::In, "SIGNAL|EURUSD|WAIT");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let stamps: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(stamps[0], stamps[1], "{text}");
        for s in &stamps {
            // 2026-12-01T20:15:01.123456Z
            let frac = s.strip_suffix('Z').unwrap().split('.').nth(1).unwrap();
            assert_eq!(frac.len(), 6, "microseconds: {s}");
            chrono::DateTime::parse_from_rfc3339(s).unwrap();
        }
        assert!(lines[0].ends_with(" c3 > BAR|EURUSD|x"), "{text}");
        assert!(lines[1].ends_with(" c3 > BAR|GBPUSD|y"), "{text}");
        assert!(lines[2].ends_with(" c3 < SIGNAL|EURUSD|WAIT"), "{text}");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Dir::Out, "BAR|EURUSD|x".to_string()),
                (Dir::Out, "BAR|GBPUSD|y".to_string()),
                (Dir::In, "SIGNAL|EURUSD|WAIT".to_string()),
            ]
        );
    }
}
