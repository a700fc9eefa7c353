//! The `hub` section (docs/HUB.md §4): absent, the executor runs as before; present, every
//! problem is named with its field and fix, as `executor check` prints them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use executor::config::{ConfigError, ExecutorConfig};
use serde_json::{Value, json};

fn with_hub(hub: Option<Value>) -> String {
    let mut v: Value = serde_json::from_str(&common::paper_config(
        r#"{"EURUSD": {"enabled": true, "lot_weak": 0.01, "lot_moderate": 0.02, "lot_strong": 0.03}}"#,
        r#"{"max_daily_loss_pct": 5, "max_total_loss_pct": 10}"#,
        "",
    ))
    .unwrap();
    if let Some(h) = hub {
        v["hub"] = h;
    }
    v.to_string()
}

fn problems(dir: &Path, json: &str) -> Vec<(String, String)> {
    let p = common::write_config(dir, json);
    match ExecutorConfig::load(&p) {
        Err(ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .map(|p| (p.field.clone(), p.to_string()))
            .collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn secret(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn key() -> String {
    let k = fleet::ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    fleet::signed::encode_public_key(&k.verifying_key())
}

#[test]
fn without_the_section_there_is_no_link() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(common::load(dir.path(), &with_hub(None)).hub, None);
}

#[test]
fn a_valid_section_is_read_with_paths_against_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = testkit::pki::Pki::create(dir.path());
    secret(&dir.path().join("hub_token"), "tok\n", 0o600);
    let cfg = common::load(
        dir.path(),
        &with_hub(Some(json!({
            "broker": "mqtts://broker.example:8883", "ca_file": pki.ca, "instance_id": "eu-1",
            "token_file": "hub_token", "hub_public_key": key(), "telemetry_secs": 5
        }))),
    );
    let h = cfg.hub.unwrap();
    assert_eq!(h.instance_id.as_str(), "eu-1");
    assert_eq!(h.token_file, dir.path().join("hub_token"));
    assert_eq!(h.telemetry_period.as_secs(), 5);
    assert_eq!(h.keepalive.as_secs(), 10, "the default");
}

#[test]
fn every_problem_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not-a-ca.pem"), "hello").unwrap();
    secret(&dir.path().join("loose_token"), "tok\n", 0o644);
    let p = problems(
        dir.path(),
        &with_hub(Some(json!({
            "broker": "mqtt://broker.example:1883", "ca_file": "not-a-ca.pem",
            "instance_id": "Bad Id", "token_file": "loose_token", "hub_public_key": "abc",
            "telemetry_secs": 0, "keepalive_secs": 2, "outbox_max_bytes": 10, "colour": "red"
        }))),
    );
    let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
    for f in [
        "hub.broker",
        "hub.ca_file",
        "hub.instance_id",
        "hub.token_file",
        "hub.hub_public_key",
        "hub.telemetry_secs",
        "hub.keepalive_secs",
        "hub.outbox_max_bytes",
        "hub.colour",
    ] {
        assert!(fields.contains(&f), "{f} not named in {p:#?}");
    }
    let broker = &p.iter().find(|(f, _)| f == "hub.broker").unwrap().1;
    assert!(broker.contains("mqtts://"), "{broker}");
    let token = &p.iter().find(|(f, _)| f == "hub.token_file").unwrap().1;
    assert!(token.contains("chmod 600"), "{token}");

    let p = problems(dir.path(), &with_hub(Some(json!({}))));
    let missing: Vec<&str> = p
        .iter()
        .filter(|(_, t)| t.contains("missing"))
        .map(|(f, _)| f.as_str())
        .collect();
    assert_eq!(
        missing,
        [
            "hub.broker",
            "hub.ca_file",
            "hub.instance_id",
            "hub.token_file",
            "hub.hub_public_key"
        ]
    );
}
