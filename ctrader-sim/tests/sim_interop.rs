//! Interoperability: the real `ctrader-sim` binary driven by Spotware's official Python message
//! classes (`tests/python/official_client.py`). Both sides are independent implementations of the
//! Open API; if either one is wrong, the script reports the mismatch and exits non-zero.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Kills the simulator (our own child, by its pid) when the test ends, pass or fail.
struct Sim {
    child: Child,
    listen_port: u16,
    control_port: u16,
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> String {
    std::env::var("ORACLE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ORACLE_PYTHON is not set: run the tests via scripts/test.sh, which creates the venv \
             (protobuf + ctrader-open-api) and exports it"
        )
    })
}

fn port_of(line: &str, key: &str) -> u16 {
    let field = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    field.rsplit(':').next().unwrap().parse().unwrap()
}

fn start_sim(cert: &Path, client_secret: &str) -> Sim {
    start_sim_with(cert, client_secret, &[])
}

fn start_sim_with(cert: &Path, client_secret: &str, extra: &[&str]) -> Sim {
    let data = crate_dir().join("tests/data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctrader-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--speed",
            "4",
            "--start-bar",
            "20",
            "--ticks-per-bar",
            "2",
        ])
        .args([
            "--client-id",
            "interop-id",
            "--client-secret",
            client_secret,
        ])
        .args(["--access-token", "interop-token", "--account-id", "4242"])
        .arg("--data")
        .arg(&data)
        .arg("--cert-out")
        .arg(cert)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ctrader-sim");
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    if !line.starts_with("ctrader-sim listening=") {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let _ = child.kill();
        panic!("ctrader-sim did not start: stdout {line:?}, stderr {err}");
    }
    Sim {
        listen_port: port_of(&line, "listening="),
        control_port: port_of(&line, "control="),
        stdout: Some(reader),
        child,
    }
}

#[test]
fn official_python_client_runs_a_full_session_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim.pem");
    let sim = start_sim(&cert, "interop-secret");
    assert!(sim.control_port > 0);
    let out = Command::new(python())
        .arg(crate_dir().join("tests/python/official_client.py"))
        .args(["--port", &sim.listen_port.to_string()])
        .arg("--cafile")
        .arg(&cert)
        .arg("--data")
        .arg(crate_dir().join("tests/data"))
        .args([
            "--client-id",
            "interop-id",
            "--client-secret",
            "interop-secret",
        ])
        .args(["--access-token", "interop-token", "--account-id", "4242"])
        .output()
        .expect("run the official Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "official client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ALL OK"), "{stdout}");
    for step in [
        "CH_CLIENT_AUTH_FAILURE",
        "market order",
        "get trendbars",
        "INCORRECT_BOUNDARIES",
        "reconcile",
        "close: partial then full",
    ] {
        assert!(
            stdout.contains(step),
            "step {step:?} missing from:\n{stdout}"
        );
    }
}

#[test]
fn python_client_with_a_wrong_secret_is_refused_with_the_real_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim.pem");
    // The simulator accepts other credentials than the script's: the script's good login must fail.
    let sim = start_sim(&cert, "another-secret");
    let out = Command::new(python())
        .arg(crate_dir().join("tests/python/official_client.py"))
        .args(["--port", &sim.listen_port.to_string()])
        .arg("--cafile")
        .arg(&cert)
        .arg("--data")
        .arg(crate_dir().join("tests/data"))
        .args([
            "--client-id",
            "interop-id",
            "--client-secret",
            "interop-secret",
        ])
        .args(["--access-token", "interop-token", "--account-id", "4242"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail\n{stdout}");
    assert!(stderr.contains("MISMATCH: app auth"), "stderr: {stderr}");
}

#[test]
fn fault_flags_apply_at_start_and_sigterm_writes_the_latency_stats() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim.pem");
    let stats = dir.path().join("stats.json");
    let stats_arg = stats.display().to_string();
    let mut sim = start_sim_with(
        &cert,
        "interop-secret",
        &[
            "--fault",
            "delay 200ms",
            "--fault",
            "margin-fail eurusd",
            "--stats-out",
            &stats_arg,
        ],
    );
    let control = std::net::TcpStream::connect(("127.0.0.1", sim.control_port)).unwrap();
    let mut answers = BufReader::new(control.try_clone().unwrap());
    let mut ask = |cmd: &str| {
        (&control).write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        line
    };
    let status = ask("status");
    assert!(
        status.contains("delay_ms=200") && status.contains("margin_fail=[EURUSD]"),
        "{status}"
    );
    assert!(ask("stats").contains("\"per_symbol\""));
    assert!(stats.exists(), "`stats` writes --stats-out");
    std::fs::remove_file(&stats).unwrap();
    // SIGTERM by our child's own pid: the simulator prints and writes its statistics, then exits 0.
    let term = Command::new("kill")
        .args(["-TERM", &sim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = sim.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut rest = String::new();
    sim.stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(rest.contains("\"overall\""), "stdout after SIGTERM: {rest}");
    let json = std::fs::read_to_string(&stats).unwrap();
    assert!(json.contains("\"per_symbol\""), "{json}");
}
