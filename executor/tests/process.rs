//! The real `executor run` binary: SIGHUP reloads the config (a bad one is refused, the running one
//! kept, and the reason logged), SIGTERM shuts down cleanly with exit status 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ws::{hello, recv_until, send};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn config(port: u16, gbp_enabled: bool, bind_host: &str) -> String {
    format!(
        r#"{{
  "timeframe": "H1",
  "log_dir": "log", "state_dir": "state",
  "ipc": {{ "bind": "{bind_host}:{port}", "token_file": "secrets/ipc.token" }},
  "broker": {{ "mode": "paper" }},
  "symbols": {{ "EURUSD": {{ "enabled": true }}, "GBPUSD": {{ "enabled": {gbp_enabled} }} }}
}}"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_or_refuses_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = common::write_config(dir.path(), &config(port, false, "127.0.0.1"));
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(
        || std::net::TcpStream::connect(addr).is_ok(),
        "the executor to listen",
    );
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        log().contains("NTP") || log().contains("adjtimex"),
        "NTP status is logged: {}",
        log()
    );

    // A bar that closes in the future is fresh under the system clock.
    let now = chrono::Utc::now().timestamp();
    let bar = protocol::BarTime::from_unix(now - now.rem_euclid(3600)).unwrap();
    let mut c = hello(addr).await;
    send(
        &mut c,
        &format!("SIGNAL|GBPUSD|LONG_WEAK|1|0.00|B:{bar}|N:1"),
    )
    .await;
    assert_eq!(
        recv_until(&mut c, "ACK|").await,
        format!("ACK|GBPUSD|LONG_WEAK|FAIL|DISABLED|B:{bar}")
    );

    // a bad config is refused; the running one stays
    std::fs::write(&cfg, config(port, true, "10.0.0.1")).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    wait_for(
        || log().contains("config reload refused"),
        "the refusal to be logged",
    );
    assert!(
        log().contains("ipc.bind"),
        "the reason names the field: {}",
        log()
    );
    let b2 = protocol::BarTime::from_unix(bar.unix_seconds() - 3600).unwrap();
    send(
        &mut c,
        &format!("SIGNAL|GBPUSD|LONG_WEAK|1|0.00|B:{b2}|N:1"),
    )
    .await;
    let r = recv_until(&mut c, "ACK|").await;
    assert!(
        r.contains("|FAIL|DISABLED|") || r.contains("|FAIL|STALE|"),
        "{r}"
    );

    // a good config is applied: GBPUSD is enabled now, so the signal gets past DISABLED (this
    // config publishes no bars, so a made-up bar is UNKNOWN_BAR)
    std::fs::write(&cfg, config(port, true, "127.0.0.1")).unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    wait_for(|| log().contains("config reloaded"), "the reload");
    let b3 = protocol::BarTime::from_unix(bar.unix_seconds() + 1).unwrap();
    send(
        &mut c,
        &format!("SIGNAL|GBPUSD|LONG_WEAK|1|0.00|B:{b3}|N:1"),
    )
    .await;
    assert_eq!(
        recv_until(&mut c, "ACK|").await,
        format!("ACK|GBPUSD|LONG_WEAK|FAIL|UNKNOWN_BAR|B:{b3}")
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = common::wait_exit(&mut child);
    assert!(status.success(), "{status:?}\n{}", log());
    assert!(log().contains("shutting down"));
}
