//! The real `preditor run` binary against an executor (written here) that sends what bad luck or a
//! bad peer would: a HISTORY announcing 2^32-1 bars (the preditor once aborted allocating 206 GB),
//! a BAR dated 9999-12-31 (every later real bar then looked already decided), a price of 1e38
//! (every later SIGNAL became unformattable), a bar off the timeframe's grid; and states on disk
//! that no twin can be in (an intensity of 9 made it panic in a loop, a last bar in 2099 silenced
//! the symbol). Each is refused with a clear log line, and the symbol goes on, or is held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "5f0c1e7a9b3d42c8a6e1f07b2d9c4e385a1b7c0d9e2f4a6b8c3d5e7f9a0b1c2d";
const W: usize = 350;

/// The preditor process, killed when dropped.
struct Preditor(Child);

impl Drop for Preditor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    tmp: tempfile::TempDir,
    state: PathBuf,
    log: PathBuf,
    case: common::GoldenCase,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let case = common::case("EURUSD_H1");
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(
        common::repo_root().join(&case.model),
        models.join("EURUSD_H1.zip"),
    )
    .unwrap();
    let token = tmp.path().join("ipc.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    Setup {
        state: tmp.path().join("state"),
        log: tmp.path().join("preditor.log"),
        tmp,
        case,
    }
}

impl Setup {
    fn spawn(&self, port: u16) -> Preditor {
        Preditor(
            Command::new(env!("CARGO_BIN_EXE_preditor"))
                .args(["run", "--executor", &format!("ws://127.0.0.1:{port}")])
                .arg("--token-file")
                .arg(self.tmp.path().join("ipc.token"))
                .arg("--models")
                .arg(self.tmp.path().join("models"))
                .arg("--state-dir")
                .arg(&self.state)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&self.log).unwrap())
                .spawn()
                .unwrap(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The golden bars as BAR lines, with their open times.
    fn bars(&self) -> Vec<(String, String)> {
        let mut r = csv::Reader::from_path(self.case.dir.join("bars.csv")).unwrap();
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                let line = format!(
                    "BAR|EURUSD|H1|{}|{}|{}|{}|{}|{}",
                    &rec[0], &rec[1], &rec[2], &rec[3], &rec[4], &rec[5]
                );
                (rec[0].to_string(), line)
            })
            .collect()
    }
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// The next text message within `within`; `None` on close or silence.
async fn next_text(ws: &mut Ws, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Accepts the preditor and completes the handshake (PROTOCOL.md §7: HELLO both ways, AUTH).
async fn accept(listener: &TcpListener, p: &mut Preditor, setup: &Setup) -> Ws {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(60), listener.accept())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the preditor never connected (exit {:?}):\n{}",
                p.0.try_wait(),
                setup.log()
            )
        })
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let key = protocol::handshake::IpcKey::from_token(TOKEN).unwrap();
    let hello = next_text(&mut ws, Duration::from_secs(30)).await.unwrap();
    let Ok(protocol::Line::Hello(hello)) = hello.parse::<protocol::Line>() else {
        panic!("not a HELLO: {hello}")
    };
    let (hs, ours) = protocol::handshake::ExecutorHandshake::answer(
        &key,
        "0.1.0",
        protocol::Mode::Paper,
        &hello,
    )
    .unwrap();
    ws.send(Message::text(protocol::Line::Hello(ours).to_string()))
        .await
        .unwrap();
    let auth = next_text(&mut ws, Duration::from_secs(30)).await.unwrap();
    match auth.parse::<protocol::Line>() {
        Ok(protocol::Line::Auth(a)) => {
            hs.finish(&a).unwrap();
        }
        other => panic!("expected AUTH, got {other:?}"),
    }
    ws
}

/// Sends `line` and returns the SIGNAL lines that come back within `within`.
async fn send_bar(ws: &mut Ws, line: &str, within: Duration) -> Vec<String> {
    ws.send(Message::text(line.to_string())).await.unwrap();
    let mut out = Vec::new();
    while let Some(t) = next_text(ws, within).await {
        out.extend(
            t.lines()
                .filter(|l| l.starts_with("SIGNAL|"))
                .map(str::to_string),
        );
        if !out.is_empty() {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bars_and_a_huge_history_count_are_refused_and_the_symbol_goes_on() {
    let s = setup();
    let bars = s.bars();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut p = s.spawn(listener.local_addr().unwrap().port());
    let mut ws = accept(&listener, &mut p, &s).await;
    let warmup = next_text(&mut ws, Duration::from_secs(30)).await.unwrap();
    assert!(warmup.starts_with("WARMUP|EURUSD|H1|"), "{warmup}");

    // A HISTORY announcing u32::MAX bars, then the real ones.
    let n = W + 10;
    let mut block = vec!["HISTORY|EURUSD|H1|4294967295".to_string()];
    block.extend(bars[..n].iter().map(|(_, l)| l.clone()));
    block.push("HISTORY_END|EURUSD|H1".into());
    ws.send(Message::text(block.join("\n"))).await.unwrap();
    let first = next_text(&mut ws, Duration::from_secs(60)).await;
    assert!(
        first
            .as_deref()
            .is_some_and(|t| t.contains(&format!("B:{}", bars[n - 1].0))),
        "no SIGNAL for the last history bar ({first:?}); preditor exit {:?}:\n{}",
        p.0.try_wait(),
        s.log()
    );

    // Bars no real series has: refused, and no SIGNAL.
    let (next_time, next_line) = &bars[n];
    let fields: Vec<&str> = next_line.split('|').collect();
    let future = "BAR|EURUSD|H1|9999-12-31T00:00:00Z|1.10000|1.10100|1.09900|1.10050|10";
    let huge = format!(
        "BAR|EURUSD|H1|{next_time}|1{z}|1{z}|1{z}|1{z}|10",
        z = "0".repeat(38)
    );
    let off_grid = format!(
        "BAR|EURUSD|H1|{}|{}",
        next_time.replace(":00:00Z", ":30:00Z"),
        fields[4..].join("|")
    );
    for bad in [future, huge.as_str(), off_grid.as_str()] {
        let got = send_bar(&mut ws, bad, Duration::from_millis(1500)).await;
        assert!(got.is_empty(), "{bad} was decided: {got:?}");
    }
    // The next real bar is decided as if nothing had happened.
    let got = send_bar(&mut ws, next_line, Duration::from_secs(30)).await;
    assert!(
        got.len() == 1 && got[0].contains(&format!("|B:{next_time}|")),
        "{got:?}\n{}",
        s.log()
    );
    assert!(
        p.0.try_wait().unwrap().is_none(),
        "the preditor died:\n{}",
        s.log()
    );
    let log = s.log();
    for why in [
        "a bar from the future",
        "beyond ±1e9",
        "not on the 3600 s grid",
    ] {
        assert!(log.contains(why), "no refusal saying {why:?}:\n{log}");
    }
}

/// A state of this model whose `field` is replaced by `value`, written where the preditor reads it.
fn write_bad_state(s: &Setup, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let model = std::sync::Arc::new(
        preditor::model::Model::load(&common::repo_root().join(&s.case.model)).unwrap(),
    );
    let bars = preditor::bars::read_bars_csv(&s.case.dir.join("bars.csv")).unwrap();
    let mut twin = preditor::session::SymbolTwin::new(model, None);
    twin.on_history(&bars[..W + 20]).unwrap();
    let store = preditor::state::StateStore::open(&s.state).unwrap();
    store.save(&twin.persisted()).unwrap();
    let path = store.path_for("EURUSD", "H1");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    path
}

/// Starts the preditor on a state no twin can be in: it must hold the symbol (no WARMUP, so no
/// bar is ever decided from it), stay up, leave the file as it is and say what to do.
async fn held_on(edit: impl FnOnce(&mut serde_json::Value), field: &str) {
    let s = setup();
    let path = write_bad_state(&s, edit);
    let before = std::fs::read(&path).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut p = s.spawn(listener.local_addr().unwrap().port());
    let mut ws = accept(&listener, &mut p, &s).await;
    let got = next_text(&mut ws, Duration::from_secs(3)).await;
    assert!(
        got.is_none(),
        "a WARMUP for a symbol whose state is unusable: {got:?}\n{}",
        s.log()
    );
    assert!(
        p.0.try_wait().unwrap().is_none(),
        "the preditor died:\n{}",
        s.log()
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the state file is kept as it is"
    );
    let log = s.log();
    assert!(
        log.contains("symbol held")
            && log.contains(&path.display().to_string())
            && log.contains(field)
            && log.contains("restore the file from a backup"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_with_an_impossible_intensity_holds_the_symbol_instead_of_panicking() {
    held_on(
        |v| v["twin"]["position"]["intensity"] = serde_json::json!(9),
        "twin.position.intensity",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_whose_last_bar_is_in_2099_holds_the_symbol() {
    held_on(
        |v| v["twin"]["last_bar_time"] = serde_json::json!(4_070_908_800i64), // 2099-01-01
        "twin.last_bar_time",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_whose_pnl_cannot_be_written_holds_the_symbol() {
    held_on(
        |v| v["twin"]["realised_pnl"] = serde_json::json!(1e300),
        "twin.realised_pnl",
    )
    .await;
}

/// A precondition of the tests above: the golden bars lie in the past of the machine's clock, so
/// only the bars made bad on purpose are refused.
#[test]
fn golden_bars_are_in_the_past() {
    let s = setup();
    let last = s.bars().last().unwrap().0.clone();
    let t = preditor::bars::parse_time(&last).unwrap();
    assert!(t < chrono::Utc::now().timestamp(), "{last}");
}
