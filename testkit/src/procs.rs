//! Processes the tests start: run unprivileged when the test is root, stopped by their own pid.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, chown};

/// (uid, gid) of `name` when the test runs as root (servers that refuse or drop root run as it).
pub fn unprivileged(name: &str) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let u = User::from_name(name)
        .ok()
        .flatten()
        .or_else(|| User::from_name("nobody").ok().flatten())?;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// Makes `cmd` run as `user` (and hands it `dir`) when we are root.
pub fn as_unprivileged(cmd: &mut Command, dir: &Path, user: &str) {
    if let Some((uid, gid)) = unprivileged(user) {
        chown_tree(dir, uid, gid);
        cmd.uid(uid).gid(gid);
    }
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    let _ = chown(dir, Some(uid.into()), Some(gid.into()));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                chown_tree(&p, uid, gid);
            } else {
                let _ = chown(&p, Some(uid.into()), Some(gid.into()));
            }
        }
    }
}

/// Signals one process by its pid.
#[derive(Debug, Clone, Copy)]
pub struct Stopper(i32);

impl Stopper {
    pub fn new(pid: u32) -> Self {
        Stopper(pid as i32)
    }
    pub fn signal(&self, s: Signal) {
        let _ = kill(Pid::from_raw(self.0), s);
    }
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }
    pub fn pid(&self) -> i32 {
        self.0
    }
}
