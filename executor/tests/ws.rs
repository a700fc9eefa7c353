//! The WebSocket server with a real client: the handshake, bad input, size limits, and the
//! one-preditor-at-a-time rule (a newer authenticated connection replaces the older one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ws::{self, recv, send};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

const SYMBOLS: &str = r#"{ "EURUSD": { "enabled": true, "digits": 5 } }"#;

fn config(dir: &std::path::Path) -> executor::config::ExecutorConfig {
    common::load(dir, &common::paper_config(SYMBOLS, "{}", ""))
}

/// A preditor HELLO with a fixed nonce (for tests that do not complete the handshake).
fn preditor_hello() -> String {
    format!("HELLO|preditor|0.1.0|{}", "ab".repeat(32))
}

#[tokio::test]
async fn the_handshake_authenticates_both_sides_without_the_token_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut c = ws::connect(run.addr).await;
    ws::handshake(&mut c, common::TOKEN, "0.1.0").await.unwrap();
    // Authenticated: a WARMUP is served.
    send(&mut c, "WARMUP|EURUSD|H1|2").await;
    let r = recv(&mut c).await.unwrap();
    // (no bars in this config: the refusal is an authenticated answer too)
    assert!(
        r.starts_with("ERROR|UNKNOWN_SYMBOL|no EURUSD H1 bars"),
        "{r}"
    );
    run.stop().await;
    // Handshake values never reach the log, and the token is nowhere.
    let log = std::fs::read_to_string(dir.path().join("log/signals.log")).unwrap();
    assert!(log.contains("< HELLO|preditor|0.1.0|***"), "{log}");
    // The executor's HELLO keeps its mode (a log reader wants it) and stars its nonce and proof.
    assert!(
        log.contains(&format!(
            "> HELLO|executor|{}|paper|***|***\n",
            executor::VERSION
        )),
        "{log}"
    );
    assert!(log.contains("< AUTH|***"), "{log}");
    assert!(!log.contains(common::TOKEN), "{log}");
}

#[tokio::test]
async fn the_executors_hello_proves_it_holds_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut c = ws::connect(run.addr).await;
    // A preditor with another token refuses this executor before sending anything else.
    let e = ws::handshake(&mut c, &"f".repeat(64), "0.1.0")
        .await
        .unwrap_err();
    assert!(e.contains("proof is wrong"), "{e}");
    run.stop().await;
}

#[tokio::test]
async fn a_wrong_proof_is_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut c = ws::connect(run.addr).await;
    send(&mut c, &preditor_hello()).await;
    assert!(recv(&mut c).await.unwrap().starts_with("HELLO|executor|"));
    send(&mut c, &format!("AUTH|{}", "00".repeat(32))).await;
    let r = recv(&mut c).await.unwrap();
    assert!(r.starts_with("ERROR|UNAUTHENTICATED|bad proof"), "{r}");
    assert_eq!(recv(&mut c).await, None, "connection must be closed");
    // The old form (the token in HELLO) is refused too, and the token is not echoed.
    let mut c = ws::connect(run.addr).await;
    send(
        &mut c,
        &format!("HELLO|preditor|0.1.0|{}", common::TOKEN.replace('5', "X")),
    )
    .await;
    let r = recv(&mut c).await.unwrap();
    assert!(
        r.starts_with("ERROR|MALFORMED|HELLO line, field nonce"),
        "{r}"
    );
    assert!(!r.contains(&common::TOKEN[10..30].replace('5', "X")), "{r}");
    // the server is still serving
    let _ok = ws::hello(run.addr).await;
    run.stop().await;
}

#[tokio::test]
async fn lines_before_hello_are_unauthenticated_and_garbage_after_keeps_connection() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut c = ws::connect(run.addr).await;
    send(&mut c, "WARMUP|EURUSD|H1|10").await;
    assert!(
        recv(&mut c)
            .await
            .unwrap()
            .starts_with("ERROR|UNAUTHENTICATED|")
    );
    ws::handshake(&mut c, common::TOKEN, "0.1.0").await.unwrap();

    for garbage in [
        "",
        "\u{7f}\u{1}|||",
        "SIGNAL|",
        "HELLO|preditor|x|y",
        "AUTH|y",
        "🙂🙂🙂",
    ] {
        send(&mut c, garbage).await;
        let r = recv(&mut c).await.unwrap();
        assert!(r.starts_with("ERROR|"), "{garbage:?} -> {r}");
    }
    send(
        &mut c,
        "SIGNAL|EURUSD|LONG_WEAK|3|notanumber|B:2026-02-03T10:00:00Z|N:1",
    )
    .await;
    assert_eq!(
        recv(&mut c).await.unwrap(),
        "ACK|EURUSD|LONG_WEAK|FAIL|MALFORMED"
    );
    c.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert!(recv(&mut c).await.unwrap().starts_with("ERROR|MALFORMED|"));
    // still up and answering
    send(&mut c, "WARMUP|EURUSD|H1|10").await;
    let r = recv(&mut c).await.unwrap();
    assert!(
        r.starts_with("ERROR|UNKNOWN_SYMBOL|") || r.starts_with("HISTORY|"),
        "{r}"
    );
    run.stop().await;
}

#[tokio::test]
async fn oversized_line_gets_too_long_and_oversized_message_drops_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut c = ws::hello(run.addr).await;
    send(
        &mut c,
        &format!("SIGNAL|EURUSD|{}", "A".repeat(protocol::MAX_LINE_LEN)),
    )
    .await;
    assert!(recv(&mut c).await.unwrap().starts_with("ERROR|TOO_LONG|"));
    // a message over the WebSocket limit: the connection is dropped, the process survives
    let huge = "X".repeat(executor::ipc::MAX_MESSAGE_BYTES + 1);
    let _ = c.send(Message::text(huge)).await;
    assert_eq!(recv(&mut c).await, None);
    let _again = ws::hello(run.addr).await;
    run.stop().await;
}

#[tokio::test]
async fn second_authenticated_connection_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await;
    let mut first = ws::hello(run.addr).await;
    // an unauthenticated second connection does not disturb the first
    let mut lurker = ws::connect(run.addr).await;
    send(&mut lurker, &preditor_hello()).await;
    assert!(
        recv(&mut lurker)
            .await
            .unwrap()
            .starts_with("HELLO|executor|")
    );
    send(&mut lurker, &format!("AUTH|{}", "00".repeat(32))).await;
    assert!(
        recv(&mut lurker)
            .await
            .unwrap()
            .starts_with("ERROR|UNAUTHENTICATED|bad proof")
    );
    let mut second = ws::hello(run.addr).await;
    let r = recv(&mut first).await.unwrap();
    assert!(r.starts_with("ERROR|REPLACED|"), "{r}");
    assert_eq!(recv(&mut first).await, None);
    // the second one is served
    send(
        &mut second,
        "SIGNAL|XAGUSD|LONG_WEAK|3|0.00|B:2026-02-03T10:00:00Z|N:1",
    )
    .await;
    assert_eq!(
        recv(&mut second).await.unwrap(),
        "ACK|XAGUSD|LONG_WEAK|FAIL|UNKNOWN_SYMBOL|B:2026-02-03T10:00:00Z"
    );
    run.stop().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_hello_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let run = ws::start(config(dir.path())).await; // hello_timeout_secs = 3
    let mut c = ws::connect(run.addr).await;
    let r = recv(&mut c).await.unwrap();
    assert_eq!(r, "ERROR|UNAUTHENTICATED|handshake not completed in time");
    assert_eq!(recv(&mut c).await, None);
    run.stop().await;
}
