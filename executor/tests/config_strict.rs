//! `executor check` (and `executor run`, which loads the config the same way) refuses what it used
//! to accept: repeated JSON keys (the last one silently won), a config without a `broker` section
//! (taken as paper mode), a replay rate of `1e-300` (a panic converting its period), and IPC tokens
//! that fail every handshake (a space, non-ASCII, 300 characters, too short).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use executor::config::{ConfigError, ExecutorConfig};

const PAPER: &str = r#""broker": { "mode": "paper" }"#;

fn problems(dir: &Path, json: &str) -> Vec<String> {
    let p = common::write_config(dir, json);
    match ExecutorConfig::load(&p) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// `executor <cmd> --config <dir>/config.json`: (success, stdout + stderr).
fn executor(cmd: &str, dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args([cmd, "--config"])
        .arg(dir.join("config.json"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_key_given_twice_is_refused_wherever_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let p = problems(
        dir.path(),
        &format!(
            r#"{{ {PAPER}, "EURUSD": {{ "enabled": false, "lot_weak": 0.01, "enabled": true }},
                 "risk": {{ "max_daily_loss_pct": 5 }}, "risk": {{ "max_daily_loss_pct": 50 }} }}"#
        ),
    );
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with("EURUSD.enabled: given more than once"),
        "{p:#?}"
    );
    assert!(
        p[1].starts_with("risk: given more than once") && p[1].contains("(fix: keep one"),
        "{p:#?}"
    );
    let (ok, text) = executor("check", dir.path());
    assert!(!ok && text.contains("EURUSD.enabled"), "{text}");
}

#[test]
fn a_config_without_a_broker_section_or_mode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = problems(dir.path(), r#"{ "EURUSD": { "enabled": true } }"#);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("broker: missing") && p[0].contains(r#""mode": "paper""#),
        "{p:#?}"
    );
    let p = problems(dir.path(), r#"{ "broker": { "paper": {} } }"#);
    assert!(
        p.len() == 1 && p[0].starts_with("broker.mode: missing"),
        "{p:#?}"
    );
    let (ok, text) = executor("check", dir.path());
    assert!(!ok && !text.contains("mode paper"), "{text}");
}

#[test]
fn a_replay_rate_whose_period_is_not_a_duration_is_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    common::write_config(
        dir.path(),
        r#"{ "broker": { "mode": "paper", "paper": { "replay_bars_per_second": 1e-300 } },
             "state_dir": "state", "log_dir": "log" }"#,
    );
    for cmd in ["check", "run"] {
        let (ok, text) = executor(cmd, dir.path());
        assert!(!ok, "{cmd}: {text}");
        assert!(
            text.contains("broker.paper.replay_bars_per_second: 1e-300 is out of range")
                && text.contains("0.001"),
            "{cmd}: {text}"
        );
        assert!(!text.contains("panicked"), "{cmd}: {text}");
    }
}

#[test]
fn ipc_tokens_the_preditor_cannot_send_are_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    common::write_config(
        dir.path(),
        &format!(r#"{{ {PAPER}, "state_dir": "state", "log_dir": "log" }}"#),
    );
    let token = dir.path().join("secrets/ipc.token");
    let long = "a".repeat(300);
    let hex = "5f0c1e7a9b3d42c8a6e1f07b2d9c4e38";
    // `|` is no longer a case: the handshake (PROTOCOL.md §7) never sends the token, so any
    // printable ASCII character is harmless in it.
    for (bad, why) in [
        (format!("two words{hex}"), "character 4 is not one"),
        (format!("tökén{hex}"), "character 2 is not one"),
        (long.clone(), "has 300 characters; at most 256"),
        ("short".to_string(), "at least 32"),
    ] {
        let bad = bad.as_str();
        std::fs::write(&token, format!("{bad}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        for cmd in ["check", "run"] {
            let (ok, text) = executor(cmd, dir.path());
            assert!(!ok, "{cmd} accepted {bad:?}: {text}");
            assert!(
                text.contains("ipc.token_file")
                    && text.contains(why)
                    && text.contains("fix: write 32 random bytes"),
                "{cmd} {bad:?}: {text}"
            );
            assert!(!text.contains(bad), "the token is never shown: {text}");
        }
    }
}
