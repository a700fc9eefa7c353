//! Consistent copies of an executor's state for backups (`executor snapshot`, scripts/backup.sh,
//! docs/OPERATIONS.md "Backups").
//!
//! Why a copy is never torn: the state directory's files (journal, desks, overlay, commands) are
//! written only by the core loop. A running executor copies them itself, between two batches, on a
//! `snapshot` request on its control socket: the loop is busy copying, so nothing writes them
//! meanwhile. A stopped executor is copied under its `executor.lock`, so it cannot start (and
//! write) mid-copy. The config and secret files are replaced whole (temp + rename) or edited by
//! hand, so a copy of each is a whole file.
//!
//! A snapshot directory holds `state/` (the state files), `files/` (the config and the secrets it
//! names) and `MANIFEST`, one line per item: `kind<TAB>path in the snapshot<TAB>original
//! path<TAB>mode<TAB>owner:group` (scripts/restore.sh puts each back where the manifest says).

use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::ExecutorConfig;
use crate::state::{StateError, StateLock};

use super::ctl::{CTL_VERSION, CtlRequest};
use super::ctl_client::{self, ClientError};

pub const MANIFEST: &str = "MANIFEST";
/// The manifest's first line (its format version).
pub const MANIFEST_HEADER: &str = "# oracle-trader snapshot v1: kind\tpath\toriginal\tmode\towner";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot: {path}: {what}")]
    Io { path: PathBuf, what: String },
    #[error(
        "snapshot: the state directory {0} does not exist (has this executor ever run with this config? check state_dir)"
    )]
    NoStateDir(PathBuf),
    #[error(
        "snapshot: {0} already exists; give a new directory (the snapshot is written there whole or not at all)"
    )]
    OutExists(PathBuf),
    #[error("snapshot: the running executor: {0}")]
    Executor(String),
    #[error("snapshot: {0}")]
    Ctl(#[from] ClientError),
    #[error("snapshot: {0}")]
    Lock(#[from] StateError),
    #[error("snapshot: {path} cannot go in the manifest (a tab or a newline in its name)")]
    Name { path: PathBuf },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |e| SnapshotError::Io {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// Whether the state directory's entry `name` belongs in a snapshot: regular files but the lock
/// (held by the process) and temporary files (a write in progress; its target is copied).
fn is_state_file(name: &str, regular: bool) -> bool {
    regular && name != "executor.lock" && !name.ends_with(".tmp")
}

/// Copies the state directory's files into the existing directory `to`, each synced to disk.
/// Returns the number of files and bytes copied.
pub fn copy_state_files(state_dir: &Path, to: &Path) -> Result<(usize, u64), SnapshotError> {
    let (mut files, mut bytes) = (0usize, 0u64);
    for e in std::fs::read_dir(state_dir).map_err(io(state_dir))? {
        let e = e.map_err(io(state_dir))?;
        let name = e.file_name();
        let regular = e.file_type().is_ok_and(|t| t.is_file());
        if !is_state_file(&name.to_string_lossy(), regular) {
            continue;
        }
        let dest = to.join(&name);
        bytes += copy_synced(&e.path(), &dest)?;
        files += 1;
    }
    sync_dir(to)?;
    Ok((files, bytes))
}

/// Copies `from` to a new file `to` (mode 0600: secrets among them) and syncs it.
fn copy_synced(from: &Path, to: &Path) -> Result<u64, SnapshotError> {
    let mut src = File::open(from).map_err(io(from))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(to))?;
    let n = std::io::copy(&mut src, &mut dst).map_err(io(to))?;
    dst.sync_all().map_err(io(to))?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn mkdir_private(dir: &Path) -> Result<(), SnapshotError> {
    DirBuilder::new().mode(0o700).create(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            SnapshotError::OutExists(dir.to_path_buf())
        } else {
            io(dir)(e)
        }
    })
}

/// How a snapshot was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The running executor copied its state between two batches.
    RunningExecutor,
    /// No executor was running: copied under its lock.
    Lock,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub via: Via,
    pub state_files: usize,
    pub other_files: usize,
    pub bytes: u64,
}

/// One manifest line's mode and owner, from the original's metadata.
fn mode_owner(path: &Path) -> Result<(u32, String), SnapshotError> {
    let m = std::fs::metadata(path).map_err(io(path))?;
    let user = nix::unistd::User::from_uid(m.uid().into())
        .ok()
        .flatten()
        .map_or(m.uid().to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(m.gid().into())
        .ok()
        .flatten()
        .map_or(m.gid().to_string(), |g| g.name);
    Ok((m.mode() & 0o7777, format!("{user}:{group}")))
}

fn manifest_line(kind: &str, rel: &str, original: &Path) -> Result<String, SnapshotError> {
    let abs = std::path::absolute(original).map_err(io(original))?;
    let text = abs.to_string_lossy();
    if text.contains(['\t', '\n']) || abs.to_str().is_none() {
        return Err(SnapshotError::Name { path: abs });
    }
    let (mode, owner) = mode_owner(&abs)?;
    Ok(format!("{kind}\t{rel}\t{text}\t{mode:04o}\t{owner}\n"))
}

/// The files besides the state directory a restore needs: the config and the secrets it names
/// (those that exist), and the kill switch file when it lives elsewhere and is set.
fn other_files(cfg: &ExecutorConfig) -> Vec<PathBuf> {
    let mut v = vec![cfg.path.clone(), cfg.ipc.token_file.clone()];
    if let Some(ct) = &cfg.broker.ctrader {
        v.push(ct.secret_file.clone());
        v.push(ct.token_file.clone());
    }
    let kill = &cfg.risk.kill_switch_file;
    if kill.parent() != Some(cfg.state_dir.as_path()) {
        v.push(kill.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    v.into_iter()
        .filter(|p| p.is_file() && seen.insert(p.clone()))
        .collect()
}

/// `executor snapshot --config FILE --out DIR`: writes a snapshot into the new directory `out`
/// (removed again if anything fails), through the running executor or under its lock.
pub fn take(cfg: &ExecutorConfig, out: &Path) -> Result<Taken, SnapshotError> {
    if !cfg.state_dir.is_dir() {
        return Err(SnapshotError::NoStateDir(cfg.state_dir.clone()));
    }
    mkdir_private(out)?;
    let r = fill(cfg, out);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(out);
    }
    r
}

fn fill(cfg: &ExecutorConfig, out: &Path) -> Result<Taken, SnapshotError> {
    let state_out = out.join("state");
    let (via, (state_files, mut bytes)) = match StateLock::acquire(&cfg.state_dir) {
        Ok(_lock) => {
            mkdir_private(&state_out)?;
            (Via::Lock, copy_state_files(&cfg.state_dir, &state_out)?)
        }
        Err(StateError::Locked { .. }) => (Via::RunningExecutor, through_executor(cfg, out)?),
        Err(e) => return Err(e.into()),
    };
    let mut manifest = String::from(MANIFEST_HEADER);
    manifest.push('\n');
    manifest += &manifest_line("dir", "state", &cfg.state_dir)?;
    let files_out = out.join("files");
    mkdir_private(&files_out)?;
    let others = other_files(cfg);
    for (i, f) in others.iter().enumerate() {
        let name = f
            .file_name()
            .map_or("file".into(), |n| n.to_string_lossy().into_owned());
        let rel = format!("files/{i}-{name}");
        manifest += &manifest_line("file", &rel, f)?;
        bytes += copy_synced(f, &out.join(&rel))?;
    }
    sync_dir(&files_out)?;
    let mpath = out.join(MANIFEST);
    let mut m = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&mpath)
        .map_err(io(&mpath))?;
    m.write_all(manifest.as_bytes()).map_err(io(&mpath))?;
    m.sync_all().map_err(io(&mpath))?;
    sync_dir(out)?;
    Ok(Taken {
        via,
        state_files,
        other_files: others.len(),
        bytes,
    })
}

/// Has the running executor copy its state into a staging directory inside its state directory
/// (the one place its sandbox lets it write), then moves that to `out/state`.
fn through_executor(cfg: &ExecutorConfig, out: &Path) -> Result<(usize, u64), SnapshotError> {
    let staging = cfg
        .state_dir
        .join(format!(".snapshot-{}", ctl_client::new_id()));
    mkdir_private(&staging)?;
    let r = ask_and_move(cfg, &staging, &out.join("state"));
    let _ = std::fs::remove_dir_all(&staging);
    r
}

fn ask_and_move(
    cfg: &ExecutorConfig,
    staging: &Path,
    state_out: &Path,
) -> Result<(usize, u64), SnapshotError> {
    let req = CtlRequest {
        v: CTL_VERSION,
        id: ctl_client::new_id(),
        command: None,
        confirm: None,
        snapshot: Some(staging.to_path_buf()),
    };
    let outcome = ctl_client::call(&cfg.state_dir, &req)?;
    if let fleet::CommandResult::Refused(r) = &outcome.result {
        return Err(SnapshotError::Executor(r.message.clone()));
    }
    // Same filesystem: one rename. Elsewhere (a backup disk): copied, then the staging removed.
    match std::fs::rename(staging, state_out) {
        Ok(()) => {
            let mut n = (0usize, 0u64);
            for e in std::fs::read_dir(state_out).map_err(io(state_out))? {
                let m = e
                    .map_err(io(state_out))?
                    .metadata()
                    .map_err(io(state_out))?;
                n = (n.0 + 1, n.1 + m.len());
            }
            sync_dir(out_parent(state_out))?;
            Ok(n)
        }
        Err(_) => {
            mkdir_private(state_out)?;
            copy_state_files(staging, state_out)
        }
    }
}

fn out_parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_and_temporary_files_stay_out() {
        assert!(is_state_file("journal.jsonl", true));
        assert!(is_state_file("live_desk.json", true));
        assert!(!is_state_file("executor.lock", true));
        assert!(!is_state_file("live_desk.json.tmp", true));
        assert!(!is_state_file("ctl.sock", false));
        assert!(!is_state_file(".snapshot-ab", false));
    }

    #[test]
    fn a_name_with_a_tab_is_refused_for_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a\tb");
        std::fs::write(&p, "x").unwrap();
        assert!(matches!(
            manifest_line("file", "files/0-x", &p),
            Err(SnapshotError::Name { .. })
        ));
        let ok = dir.path().join("ok.json");
        std::fs::write(&ok, "x").unwrap();
        let line = manifest_line("file", "files/0-ok.json", &ok).unwrap();
        let f: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[2], ok.to_str().unwrap());
    }
}
