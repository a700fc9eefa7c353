//! The local control channel of `executor ctl`: a Unix socket `<state_dir>/ctl.sock`, mode 0600,
//! that only the executor's own user (or root) may use.
//!
//! Two locks on the door: the socket file's mode (the kernel refuses `connect` to anyone without
//! write permission on it, unix(7)), and the peer's credentials, read with `SO_PEERCRED` on every
//! connection (the uid of the process that connected, as the kernel recorded it; socket(7)), so a
//! socket whose mode was loosened by hand still refuses other users.
//!
//! Framing: one request, one answer, each a single line of JSON ending in `\n` (or the end of the
//! client's writes). A request is at most [`MAX_REQUEST_BYTES`] and must arrive within
//! [`REQUEST_TIMEOUT`]; anything else is answered with a refusal and the connection closed. The
//! answer is a [`fleet::CommandOutcome`] (origin `local`).
//!
//! ```text
//! {"v":1,"id":"5f0c1e7a9b3d42c8a6e1f07b2d9c4e38","command":{"op":"pause"}}
//! {"v":1,"id":"…","command":{"op":"flatten","symbol":"EURUSD"},"confirm":"<nonce from the first answer>"}
//! {"v":1,"id":"…","snapshot":"/var/backups/oracle-trader/tmp.x1y2/executor"}
//! ```

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fleet::{
    Command, CommandId, CommandOutcome, CommandResult, Nonce, Origin, Refusal, RefusalCode,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub const SOCKET_NAME: &str = "ctl.sock";
/// The request format version.
pub const CTL_VERSION: u32 = 1;
/// A request larger than this is refused before it is parsed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command may take in the core loop (a Flatten waits for its closes).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; more wait for a free slot.
pub const MAX_CONNECTIONS: usize = 8;

/// One request on the socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlRequest {
    pub v: u32,
    pub id: CommandId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Nonce>,
    /// Write a consistent copy of the state directory into this (empty, existing) directory,
    /// between two batches (scripts/backup.sh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
}

/// What a request asks of the core loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Command {
        command: Command,
        confirm: Option<Nonce>,
    },
    Snapshot(PathBuf),
}

/// A request for the core loop, and where its answer goes.
#[derive(Debug)]
pub struct CtlCall {
    pub id: CommandId,
    pub ask: Ask,
    pub reply: oneshot::Sender<CommandOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "control socket {path}: something that is not a socket is in the way; move it aside (the executor creates the socket)"
    )]
    NotASocket { path: PathBuf },
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// Binds `<state_dir>/ctl.sock` with mode 0600. A socket left by an executor that died is removed
/// first: the caller holds the state directory's lock, so no other executor serves it.
pub fn bind(state_dir: &Path) -> Result<UnixListener, CtlError> {
    let path = socket_path(state_dir);
    let io = |source| CtlError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(&path).map_err(io)?,
        Ok(_) => return Err(CtlError::NotASocket { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    // Between bind and chmod the socket has the umask's mode: the peer check below refuses other
    // users during that instant too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Which peers may send commands: the executor's own user, and root (which can read the state
/// directory and signal the process anyway, so refusing it would protect nothing).
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub uid: u32,
    pub root: bool,
}

impl Allowed {
    /// The executor's effective uid, and root.
    pub fn me() -> Self {
        Self {
            uid: nix::unistd::geteuid().as_raw(),
            root: true,
        }
    }

    pub fn permits(self, peer_uid: u32) -> bool {
        peer_uid == self.uid || (self.root && peer_uid == 0)
    }
}

/// Accepts connections until the listener fails or the core loop is gone; each is served in a
/// task of its own, [`MAX_CONNECTIONS`] at once.
pub async fn serve(listener: UnixListener, calls: mpsc::Sender<CtlCall>, allowed: Allowed) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if calls.is_closed() {
            return;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            serve_one(stream, calls, allowed).await;
            drop(slot);
        });
    }
}

fn refused(
    id: Option<CommandId>,
    op: Option<String>,
    code: RefusalCode,
    message: String,
) -> CommandOutcome {
    CommandOutcome {
        command_id: id,
        origin: Origin::Local,
        op,
        result: CommandResult::Refused(Refusal::new(code, message)),
    }
}

async fn serve_one(mut stream: UnixStream, calls: mpsc::Sender<CtlCall>, allowed: Allowed) {
    let peer = peer_uid(&stream);
    let answer = match peer {
        Err(e) => refused(
            None,
            None,
            RefusalCode::Failed,
            format!("cannot read the peer's credentials: {e}"),
        ),
        Ok(uid) if !allowed.permits(uid) => {
            tracing::warn!(uid, "control socket: a command from another user refused");
            refused(
                None,
                None,
                RefusalCode::Failed,
                format!(
                    "uid {uid} may not control this executor: run executor ctl as its own user (uid {}), e.g. sudo -u oracle executor ctl …",
                    allowed.uid
                ),
            )
        }
        Ok(_) => match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
            Err(_) => refused(
                None,
                None,
                RefusalCode::Malformed,
                format!("no whole request line within {REQUEST_TIMEOUT:?}"),
            ),
            Ok(Err(outcome)) => *outcome,
            Ok(Ok(req)) => ask_core(req, &calls).await,
        },
    };
    let mut line = serde_json::to_vec(&answer).unwrap_or_default();
    line.push(b'\n');
    if let Err(e) = stream.write_all(&line).await {
        tracing::debug!(error = %e, "control socket: the client left before its answer");
    }
    let _ = stream.shutdown().await;
}

fn peer_uid(stream: &UnixStream) -> Result<u32, nix::Error> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map(|c| c.uid())
}

/// Reads one request line (bounded), and parses it.
async fn read_request(stream: &mut UnixStream) -> Result<CtlRequest, Box<CommandOutcome>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|e| {
            Box::new(refused(
                None,
                None,
                RefusalCode::Malformed,
                format!("reading the request: {e}"),
            ))
        })?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            break;
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(Box::new(refused(
                None,
                None,
                RefusalCode::TooLarge,
                format!("the request is over {MAX_REQUEST_BYTES} bytes"),
            )));
        }
    }
    if buf.len() > MAX_REQUEST_BYTES {
        return Err(Box::new(refused(
            None,
            None,
            RefusalCode::TooLarge,
            format!("the request is over {MAX_REQUEST_BYTES} bytes"),
        )));
    }
    parse_request(&buf).map_err(Box::new)
}

/// Parses a request line: the refusal names the field that is wrong.
pub fn parse_request(bytes: &[u8]) -> Result<CtlRequest, CommandOutcome> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let req: CtlRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        refused(
            None,
            None,
            RefusalCode::Malformed,
            format!("{at}{}", e.inner()),
        )
    })?;
    let op = req.command.as_ref().map(|c| c.op().to_string());
    if req.v != CTL_VERSION {
        return Err(refused(
            Some(req.id),
            op,
            RefusalCode::UnsupportedVersion,
            format!(
                "request version {}, this executor reads {CTL_VERSION}",
                req.v
            ),
        ));
    }
    match (&req.command, &req.snapshot) {
        (Some(_), None) | (None, Some(_)) => Ok(req),
        _ => Err(refused(
            Some(req.id),
            op,
            RefusalCode::Malformed,
            "a request carries exactly one of `command` and `snapshot`".into(),
        )),
    }
}

async fn ask_core(req: CtlRequest, calls: &mpsc::Sender<CtlCall>) -> CommandOutcome {
    let op = req
        .command
        .as_ref()
        .map_or("snapshot".to_string(), |c| c.op().to_string());
    let ask = match (req.command, req.snapshot) {
        (Some(command), _) => Ask::Command {
            command,
            confirm: req.confirm,
        },
        (None, Some(dir)) => Ask::Snapshot(dir),
        (None, None) => Ask::Snapshot(PathBuf::new()),
    };
    let (reply, answer) = oneshot::channel();
    let call = CtlCall {
        id: req.id.clone(),
        ask,
        reply,
    };
    let failed = |m: &str| {
        refused(
            Some(req.id.clone()),
            Some(op.clone()),
            RefusalCode::Failed,
            m.into(),
        )
    };
    if calls.send(call).await.is_err() {
        return failed("the executor is shutting down");
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => failed("the executor stopped before answering"),
        Err(_) => failed(
            "no answer within 60 s: the command may still complete; check `executor ctl status`",
        ),
    }
}

#[cfg(test)]
mod tests;
