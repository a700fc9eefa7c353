//! Replacing a file so that a crash at any moment leaves the old content or the new, never a torn
//! file: write a temporary file in the same directory, fsync it, rename it over the target, fsync
//! the directory (the rename is only durable once the directory entry is). Readers polling the file
//! never see half of it either.
//!
//! The temporary file is created by the `tempfile` crate: a fresh random name opened with
//! `O_EXCL`, so two writers never share one and a stale file from an earlier crash is never
//! reused; it is removed if anything fails before the rename. A kill between its creation and the
//! rename leaves it behind (nothing can remove it then), so each successful write also removes
//! this target's temporary files older than [`STALE_TEMP_AFTER`]: a daemon killed over and over
//! does not fill its state directory.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A temporary file of ours this old was left by a killed writer: a live one is renamed within
/// milliseconds of its creation (one write and one fsync), so a minute leaves a wide margin.
pub const STALE_TEMP_AFTER: Duration = Duration::from_secs(60);

/// Who may read the file once written (before the process umask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// 0600: secrets (tokens), and state no one else needs.
    Private,
    /// 0666 less the umask, as `File::create` makes it: reports, certificates others read.
    Shared,
}

/// A step of the replacement failed; the target is unchanged unless `op` is the directory fsync
/// (then the new content is in place but may not survive a power loss).
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct AtomicWriteError {
    /// What was being done: `create temp file`, `write temp file`, `fsync temp file`, `rename
    /// temp file`, `fsync directory`.
    pub op: &'static str,
    /// The file (or directory) it was done to.
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes` atomically and durably (see the module documentation).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), AtomicWriteError> {
    write_atomic_with(path, access, |out| out.write_all(bytes))
}

/// As [`write_atomic`], the content streamed by `write` (through a buffer) instead of held whole
/// in memory: for files too large to build first, such as a rotated journal. An error from `write`
/// leaves the target unchanged (`op` is `write temp file`).
pub fn write_atomic_with<F>(path: &Path, access: Access, write: F) -> Result<(), AtomicWriteError>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| AtomicWriteError {
            op,
            path: p,
            source,
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = match access {
        Access::Private => 0o600,
        Access::Shared => 0o666,
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(fail("create temp file", dir))?;
    let tmp_path = tmp.path().to_path_buf();
    let mut out = std::io::BufWriter::new(tmp);
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(fail("write temp file", &tmp_path))?;
    let tmp = out
        .into_inner()
        .map_err(|e| fail("write temp file", &tmp_path)(e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(fail("fsync temp file", &tmp_path))?;
    tmp.persist(path)
        .map_err(|e| fail("rename temp file", path)(e.error))?;
    sync_dir(dir).map_err(fail("fsync directory", dir))?;
    remove_stale_temps(dir, &name, SystemTime::now());
    Ok(())
}

/// Removes the temporary files of target `name` in `dir` (`.{name}.XXXXXX.tmp`, as made above)
/// last modified before `now - STALE_TEMP_AFTER`. Best effort: the write already succeeded, and a
/// file that cannot be read or removed now is tried again at the next write.
fn remove_stale_temps(dir: &Path, name: &str, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(f) = file_name.to_str() else {
            continue;
        };
        let Some(middle) = f
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(".tmp"))
        else {
            continue;
        };
        // tempfile's random part: alphanumerics only, so `.state.json.bak.tmp` of another tool
        // (or a target named `state.json.x`) is never taken for ours.
        if middle.is_empty() || !middle.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age >= STALE_TEMP_AFTER);
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// fsync of a directory. A filesystem that cannot fsync directories says so with `EINVAL` or
/// `ENOTSUP` (fsync(2)); the rename is then as durable as that filesystem makes it, which is not
/// an error of ours. Any other failure is.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_stream_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.jsonl");
        write_atomic(&p, b"old", Access::Shared).unwrap();
        let err = write_atomic_with(&p, Access::Shared, |out| {
            out.write_all(b"half of the new")?;
            Err(std::io::Error::other("the source ran dry"))
        })
        .unwrap_err();
        assert_eq!(err.op, "write temp file");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["journal.jsonl"]);
        write_atomic_with(&p, Access::Shared, |out| out.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one", Access::Shared).unwrap();
        write_atomic(&p, b"two", Access::Shared).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(dir.path()), vec!["state.json"]);
    }

    #[test]
    fn private_files_are_0600_whatever_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.json");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"new", Access::Private).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_atomic(&p, b"newer", Access::Shared).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o600, 0o600, "shared files are the owner's too");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"old", Access::Shared).unwrap();
        // The target is a non-empty directory: the rename fails after the temp file was written.
        let blocked = dir.path().join("blocked");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), "x").unwrap();
        let e = write_atomic(&blocked, b"new", Access::Shared).unwrap_err();
        assert_eq!(e.op, "rename temp file", "{e}");
        assert!(e.to_string().contains("blocked"), "{e}");
        assert_eq!(names(dir.path()), vec!["blocked", "state.json"]);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn a_killed_writers_stale_temp_files_are_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let old = SystemTime::now() - STALE_TEMP_AFTER - Duration::from_secs(5);
        let stale = dir.path().join(".state.json.a1B2c3.tmp");
        let live = dir.path().join(".state.json.Z9y8X7.tmp");
        // Not ours: another target's temp file, and names our pattern does not make.
        let other_target = dir.path().join(".journal.jsonl.q1w2e3.tmp");
        let not_ours = dir.path().join(".state.json.bak-1.tmp");
        for f in [&stale, &live, &other_target, &not_ours] {
            std::fs::write(f, "half").unwrap();
        }
        for f in [&stale, &other_target, &not_ours] {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        write_atomic(&p, b"new", Access::Private).unwrap();
        assert_eq!(
            names(dir.path()),
            vec![
                ".journal.jsonl.q1w2e3.tmp",
                ".state.json.Z9y8X7.tmp",
                ".state.json.bak-1.tmp",
                "state.json"
            ]
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/state.json");
        let e = write_atomic(&p, b"x", Access::Shared).unwrap_err();
        assert_eq!(e.op, "create temp file");
        assert!(e.path.ends_with("no/such/dir"), "{e}");
    }
}
