//! `executor ctl`: sends one request to the running executor's control socket and prints the
//! answer (see [`crate::ops::ctl`] for the socket and its framing).
//!
//! Exit status: 0 done (or the status printed), 1 refused, not confirmed or failed, 3 no executor
//! to talk to. A Flatten answers `needs_confirmation` first: with `--yes` the same command goes
//! again with the nonce at once; on a terminal the operator is asked; otherwise nothing is flattened.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fleet::{CommandId, CommandOutcome, CommandResult, Nonce};

use super::ctl::{ANSWER_TIMEOUT, Ask, CTL_VERSION, CtlRequest, socket_path};

/// Exit statuses of `executor ctl`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("config {path}: {what}")]
    Config { path: PathBuf, what: String },
    #[error(
        "no executor is serving {path}: {what} (is `executor run` running with this config? `systemctl status oracle-executor@…`)"
    )]
    NotRunning { path: PathBuf, what: String },
    #[error(
        "permission denied on {path}: run executor ctl as the executor's user, e.g. `sudo -u oracle executor ctl …`"
    )]
    Denied { path: PathBuf },
    #[error("control socket {path}: {what}")]
    Io { path: PathBuf, what: String },
}

/// The executor's `state_dir`, read from the config without validating the rest (ctl must work
/// when, say, a secret file is being rotated): the same default and relative-path rule as the
/// executor's (`var/state` beside the config file).
pub fn state_dir_of(config: &Path) -> Result<PathBuf, ClientError> {
    let err = |what: String| ClientError::Config {
        path: config.to_path_buf(),
        what,
    };
    let text = std::fs::read_to_string(config).map_err(|e| err(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let dir = match v.get("state_dir") {
        None | Some(serde_json::Value::Null) => "var/state",
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(_) => return Err(err("state_dir is not a string".into())),
    };
    let p = PathBuf::from(dir);
    Ok(if p.is_absolute() {
        p
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    })
}

/// A fresh random command id (32 hex digits from the kernel's RNG).
pub fn new_id() -> CommandId {
    let mut b = [0u8; 16];
    // getrandom fails only when the kernel has no entropy source at all; an all-zero id would
    // then repeat, and a repeat is answered, never run: safe, and the operator sees the answer.
    let _ = getrandom::fill(&mut b);
    CommandId::from_random(b)
}

/// Sends one request and waits for its answer.
pub fn call(state_dir: &Path, req: &CtlRequest) -> Result<CommandOutcome, ClientError> {
    let path = socket_path(state_dir);
    let mut s = UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::Denied { path: path.clone() },
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning {
                path: path.clone(),
                what: e.to_string(),
            }
        }
        _ => ClientError::Io {
            path: path.clone(),
            what: e.to_string(),
        },
    })?;
    let io = |e: std::io::Error| ClientError::Io {
        path: path.clone(),
        what: e.to_string(),
    };
    s.set_read_timeout(Some(ANSWER_TIMEOUT + Duration::from_secs(5)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| io(std::io::Error::other(e)))?;
    line.push(b'\n');
    // A refusal before the request is read (another user) can close the socket under our write:
    // the answer is read whatever the write did, and the write's error shown only without one.
    let written = s.write_all(&line);
    let mut answer = String::new();
    // The answer is one line; bounded like everything read from a peer.
    let read = BufReader::new(s.take(1 << 20)).read_line(&mut answer);
    if answer.trim().is_empty() {
        written.map_err(io)?;
        read.map_err(io)?;
    }
    serde_json::from_str(&answer).map_err(|e| ClientError::Io {
        path: path.clone(),
        what: format!("the answer is not a command outcome ({e}): {answer:.200}"),
    })
}

/// What the operator asked for on the command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub ask: Ask,
    pub id: Option<CommandId>,
    pub json: bool,
    pub yes: bool,
}

fn request(id: CommandId, ask: &Ask, confirm: Option<Nonce>) -> CtlRequest {
    let (command, snapshot) = match ask {
        Ask::Command { command, .. } => (Some(command.clone()), None),
        Ask::Snapshot(dir) => (None, Some(dir.clone())),
    };
    CtlRequest {
        v: CTL_VERSION,
        id,
        command,
        confirm,
        snapshot,
    }
}

/// Runs `executor ctl`: prints the answer on stdout (errors on stderr) and returns the exit status.
pub fn run(config: &Path, inv: &Invocation) -> u8 {
    let state_dir = match state_dir_of(config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("executor ctl: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    let first_id = inv.id.clone().unwrap_or_else(new_id);
    let mut outcome = match call(&state_dir, &request(first_id, &inv.ask, None)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("executor ctl: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    if let CommandResult::NeedsConfirmation { nonce, summary, .. } = &outcome.result {
        if !inv.json {
            println!("{summary}");
        }
        let confirmed = inv.yes || ask_operator();
        if !confirmed {
            if inv.json {
                println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
            } else {
                println!("not confirmed: nothing was done (run it again with --yes to confirm)");
            }
            return EXIT_REFUSED;
        }
        outcome = match call(
            &state_dir,
            &request(new_id(), &inv.ask, Some(nonce.clone())),
        ) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("executor ctl: {e}");
                return EXIT_UNREACHABLE;
            }
        };
    }
    if inv.json {
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
    } else {
        print!("{}", render(&outcome));
    }
    match outcome.result {
        CommandResult::Refused(_) | CommandResult::NeedsConfirmation { .. } => EXIT_REFUSED,
        CommandResult::Flattened { ref failed, .. } if !failed.is_empty() => EXIT_REFUSED,
        _ => EXIT_OK,
    }
}

/// On a terminal, asks for `yes`; elsewhere (a script, a pipe) the answer is no.
fn ask_operator() -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("type yes to confirm: ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().take(64).read_line(&mut line);
    line.trim() == "yes"
}

/// The answer as a person reads it.
pub fn render(o: &CommandOutcome) -> String {
    let id = o.command_id.as_ref().map_or("-", CommandId::as_str);
    let op = o.op.as_deref().unwrap_or("request");
    match &o.result {
        CommandResult::Ok { detail } => {
            format!(
                "{op}: ok{}\n",
                detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )
        }
        CommandResult::Refused(r) => format!(
            "{op}: refused {}{}: {} (id {id})\n",
            serde_json::to_value(r.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            r.field
                .as_ref()
                .map(|f| format!(" [{f}]"))
                .unwrap_or_default(),
            r.message
        ),
        CommandResult::NeedsConfirmation { summary, .. } => {
            format!("{op}: needs a confirmation: {summary}\n")
        }
        CommandResult::Status(doc) => super::status::render(doc),
        CommandResult::Flattened { closed, failed } => {
            let mut out = format!(
                "flatten: paused, closed {} position(s){}\n",
                closed.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(", {} close(s) FAILED", failed.len())
                }
            );
            for c in closed {
                out.push_str(&format!(
                    "  closed {:<5} {:<10} #{:<10} {:?} {} lots at {}\n",
                    super::status::book_name(c.book),
                    c.symbol,
                    c.position_id,
                    c.side,
                    c.lots,
                    c.price
                        .map_or("an unknown price (found closed by a lookup)".into(), |p| p
                            .to_string())
                ));
            }
            for f in failed {
                out.push_str(&format!(
                    "  FAILED {:<5} {:<10} #{:<10} {} (still open)\n",
                    super::status::book_name(f.book),
                    f.symbol,
                    f.position_id,
                    f.error
                ));
            }
            out
        }
    }
}
