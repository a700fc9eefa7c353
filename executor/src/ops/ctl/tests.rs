#![allow(clippy::unwrap_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;
use tokio::io::AsyncBufReadExt;

/// A core loop that answers every command `ok` with its op, and counts what reached it.
fn fake_core(mut rx: mpsc::Receiver<CtlCall>) -> tokio::task::JoinHandle<Vec<Ask>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(call) = rx.recv().await {
            let op = match &call.ask {
                Ask::Command { command, .. } => command.op().to_string(),
                Ask::Snapshot(_) => "snapshot".into(),
            };
            seen.push(call.ask.clone());
            let _ = call.reply.send(CommandOutcome {
                command_id: Some(call.id),
                origin: Origin::Local,
                op: Some(op.clone()),
                result: CommandResult::Ok { detail: Some(op) },
            });
        }
        seen
    })
}

async fn exchange(path: &Path, bytes: &[u8]) -> CommandOutcome {
    let mut s = UnixStream::connect(path).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(s)
        .read_line(&mut line)
        .await
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn refusal(o: &CommandOutcome) -> &Refusal {
    match &o.result {
        CommandResult::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn commands_reach_the_core_and_bad_requests_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(dir.path()).unwrap();
    let path = socket_path(dir.path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (tx, rx) = mpsc::channel(4);
    let core = fake_core(rx);
    let server = tokio::spawn(serve(listener, tx, Allowed::me()));

    let ok = exchange(
        &path,
        br#"{"v":1,"id":"0123456789abcdef","command":{"op":"pause"}}
"#,
    )
    .await;
    assert_eq!(ok.op.as_deref(), Some("pause"));
    assert_eq!(ok.command_id.unwrap().as_str(), "0123456789abcdef");

    let big = format!(
        "{{\"v\":1,\"id\":\"0123456789abcdef\",\"command\":{{\"op\":\"status\"}},\"x\":\"{}\"}}\n",
        "a".repeat(MAX_REQUEST_BYTES)
    );
    for (bytes, code, words) in [
        (b"not json\n".to_vec(), RefusalCode::Malformed, "expected"),
        (
            br#"{"v":1,"id":"0123456789abcdef","command":{"op":"explode"}}"#.to_vec(),
            RefusalCode::Malformed,
            "command: unknown variant `explode`",
        ),
        (
            br#"{"v":1,"id":"0123456789abcdef","command":{"op":"set_lots","symbol":"EURUSD","lot_weak":0.01}}"#
                .to_vec(),
            RefusalCode::Malformed,
            "missing field `lot_moderate`",
        ),
        (
            br#"{"v":1,"id":"short","command":{"op":"pause"}}"#.to_vec(),
            RefusalCode::Malformed,
            "id: expected a command id",
        ),
        (
            br#"{"v":2,"id":"0123456789abcdef","command":{"op":"pause"}}"#.to_vec(),
            RefusalCode::UnsupportedVersion,
            "version 2",
        ),
        (
            br#"{"v":1,"id":"0123456789abcdef"}"#.to_vec(),
            RefusalCode::Malformed,
            "exactly one of",
        ),
        (
            br#"{"v":1,"id":"0123456789abcdef","command":{"op":"pause"},"sudo":true}"#.to_vec(),
            RefusalCode::Malformed,
            "unknown field `sudo`",
        ),
        (big.into_bytes(), RefusalCode::TooLarge, "over 65536 bytes"),
    ] {
        let o = exchange(&path, &bytes).await;
        let r = refusal(&o);
        assert_eq!(r.code, code, "{r}");
        assert!(r.message.contains(words), "{words:?} not in {r}");
    }
    server.abort();
    let _ = server.await;
    let seen = core.await.unwrap();
    // Only the one good command reached the core loop.
    assert_eq!(
        seen,
        vec![Ask::Command {
            command: Command::Pause,
            confirm: None
        }]
    );
}

#[tokio::test]
async fn another_user_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(dir.path()).unwrap();
    let path = socket_path(dir.path());
    let (tx, rx) = mpsc::channel(4);
    let core = fake_core(rx);
    // This process's uid is not the one allowed (and root is not): as if another user connected.
    let me = nix::unistd::geteuid().as_raw();
    let allowed = Allowed {
        uid: me.wrapping_add(4242),
        root: false,
    };
    let server = tokio::spawn(serve(listener, tx, allowed));
    let o = exchange(
        &path,
        br#"{"v":1,"id":"0123456789abcdef","command":{"op":"pause"}}"#,
    )
    .await;
    let r = refusal(&o);
    assert!(
        r.message.contains(&format!("uid {me} may not control")),
        "{r}"
    );
    server.abort();
    let _ = server.await;
    assert!(core.await.unwrap().is_empty(), "nothing reached the core");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_file_in_the_way_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(bind(dir.path()).unwrap());
    // The socket file of a dead executor is still there: bound again.
    assert!(socket_path(dir.path()).exists());
    drop(bind(dir.path()).unwrap());
    std::fs::remove_file(socket_path(dir.path())).unwrap();
    std::fs::write(socket_path(dir.path()), "x").unwrap();
    let e = bind(dir.path()).unwrap_err().to_string();
    assert!(e.contains("not a socket"), "{e}");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_answered_and_dropped() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let listener = bind(dir.path()).unwrap();
    let path = socket_path(dir.path());
    let (tx, rx) = mpsc::channel(4);
    let _core = fake_core(rx);
    let server = tokio::spawn(serve(listener, tx, Allowed::me()));
    let s = UnixStream::connect(&path).await.unwrap();
    let mut line = String::new();
    let mut r = tokio::io::BufReader::new(s);
    r.read_line(&mut line).await.unwrap();
    let o: CommandOutcome = serde_json::from_str(&line).unwrap();
    assert!(refusal(&o).message.contains("no whole request line"));
    server.abort();
}
