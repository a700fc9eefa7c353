//! The model loader against the shipped zip and deliberately broken copies of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use preditor::model::{Model, load_dir};
use serde_json::{Value, json};

fn shipped() -> PathBuf {
    common::repo_root().join("models/EURUSD_H1.zip")
}

/// The shipped zip's members and metadata.
fn parts() -> (Vec<(String, Vec<u8>)>, Value) {
    let bytes = std::fs::read(shipped()).expect("models/EURUSD_H1.zip is shipped");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let meta: Value = serde_json::from_slice(z.comment()).unwrap();
    let mut members = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        members.push((f.name().to_string(), buf));
    }
    (members, meta)
}

fn build(members: &[(String, Vec<u8>)], comment: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.set_comment(comment.to_string());
    w.finish().unwrap().into_inner()
}

/// Loads a copy of the shipped model with `edit` applied to its metadata; returns the error text.
fn refused(edit: impl FnOnce(&mut Value)) -> String {
    let (members, mut meta) = parts();
    edit(&mut meta);
    let bytes = build(&members, &meta.to_string());
    let err =
        Model::from_bytes(Path::new("models/BROKEN_H1.zip"), &bytes).expect_err("must be refused");
    let text = err.to_string();
    assert!(
        text.starts_with("models/BROKEN_H1.zip: "),
        "error names the file: {text}"
    );
    text
}

#[test]
fn shipped_model_loads_with_checked_shapes() {
    let m = Model::load(&shipped()).unwrap();
    assert_eq!((m.symbol.as_str(), m.timeframe.as_str()), ("EURUSD", "H1"));
    assert_eq!(m.spec.window, 350);
    assert_eq!(m.spec.obs_dim(), 13);
    assert_eq!(m.spec.hmm_len(), 330);
    assert_eq!(m.fingerprint.len(), 64);
    let logits = m.logits(&[0.0; 13]).unwrap();
    assert!(logits.iter().all(|l| l.is_finite()));
    let e = m.log_emissions(&vec![0.0; 330 * 3]).unwrap();
    assert_eq!(e.len(), 330 * 5);
    // Same zip bytes rebuilt identically → same fingerprint; a metadata change → a different one.
    let (members, meta) = parts();
    let a = Model::from_bytes(Path::new("a.zip"), &build(&members, &meta.to_string())).unwrap();
    let mut meta2 = meta.clone();
    meta2["generated_at"] = json!("2030-01-01T00:00:00Z");
    let b = Model::from_bytes(Path::new("b.zip"), &build(&members, &meta2.to_string())).unwrap();
    assert_ne!(a.fingerprint, b.fingerprint);
}

#[test]
fn unknown_metadata_keys_are_ignored() {
    let (members, mut meta) = parts();
    meta["future_field"] = json!({"anything": [1, 2, 3]});
    meta["hmm"]["extra"] = json!(true);
    assert!(Model::from_bytes(Path::new("x.zip"), &build(&members, &meta.to_string())).is_ok());
}

/// A metadata edit that must be refused.
type Edit = Box<dyn FnOnce(&mut Value)>;

#[test]
fn each_bad_field_is_named() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "format_version",
            Box::new(|m| m["format_version"] = json!("1.0")),
        ),
        (
            "training_config.pip_size",
            Box::new(|m| {
                m["training_config"]
                    .as_object_mut()
                    .unwrap()
                    .remove("pip_size");
            }),
        ),
        (
            "training_config.lot_sizes",
            Box::new(|m| m["training_config"]["lot_sizes"] = json!([0.0, 0.01, 0.03])),
        ),
        (
            "actions.3",
            Box::new(|m| m["actions"]["3"]["intensity"] = json!(2)),
        ),
        (
            "actions",
            Box::new(|m| {
                m["actions"].as_object_mut().unwrap().remove("6");
            }),
        ),
        (
            "rl_config.ema_period",
            Box::new(|m| m["rl_config"]["ema_period"] = json!(400)),
        ),
        (
            "hmm_config.range_period",
            Box::new(|m| m["hmm_config"]["range_period"] = json!(0)),
        ),
        ("ppo.obs_dim", Box::new(|m| m["ppo"]["obs_dim"] = json!(12))),
        (
            "observation.features",
            Box::new(|m| {
                m["observation"]["features"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "observation.norm.std",
            Box::new(|m| m["observation"]["norm"]["std"][2] = json!(0.0)),
        ),
        (
            "observation.norm.mean",
            Box::new(|m| m["observation"]["norm"]["mean"] = json!([0.0])),
        ),
        (
            "hmm.scaler.std",
            Box::new(|m| m["hmm"]["scaler"]["std"][0] = json!(-1.0)),
        ),
        (
            "hmm.startprob",
            Box::new(|m| m["hmm"]["startprob"] = json!([0.5, 0.5])),
        ),
        (
            "hmm.transmat[2]",
            Box::new(|m| m["hmm"]["transmat"][2][0] = json!(0.5)),
        ),
        (
            "hmm.transmat",
            Box::new(|m| {
                m["hmm"]["transmat"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "hmm.features",
            Box::new(|m| m["hmm"]["features"] = json!(["range", "momentum", "consistency"])),
        ),
        (
            "env.window",
            Box::new(|m| m["env"]["window"] = json!("350")),
        ),
        (
            "training_config.lot_sizes[0]",
            Box::new(|m| m["training_config"]["lot_sizes"][0] = json!(0.01)),
        ),
        (
            "EURUSD_H1_nope.onnx",
            Box::new(|m| m["ppo"]["onnx"]["member"] = json!("EURUSD_H1_nope.onnx")),
        ),
        (
            "logits",
            Box::new(|m| m["ppo"]["onnx"]["output"] = json!("probs")),
        ),
    ];
    for (field, edit) in cases {
        let text = refused(edit);
        assert!(
            text.contains(field),
            "error for {field} should name it: {text}"
        );
    }
}

#[test]
fn broken_members_and_archives_are_refused() {
    let (members, meta) = parts();
    let comment = meta.to_string();
    // A member missing.
    let only_ppo: Vec<_> = members
        .iter()
        .filter(|(n, _)| n.ends_with("_ppo.onnx"))
        .cloned()
        .collect();
    let e = Model::from_bytes(Path::new("m.zip"), &build(&only_ppo, &comment)).unwrap_err();
    assert!(
        e.to_string().contains("EURUSD_H1_hmm.onnx") && e.to_string().contains("missing"),
        "{e}"
    );
    // A member that is not ONNX.
    let garbage: Vec<_> = members
        .iter()
        .map(|(n, d)| {
            if n.ends_with("_hmm.onnx") {
                (n.clone(), b"not onnx".to_vec())
            } else {
                (n.clone(), d.clone())
            }
        })
        .collect();
    let e = Model::from_bytes(Path::new("m.zip"), &build(&garbage, &comment)).unwrap_err();
    assert!(e.to_string().contains("EURUSD_H1_hmm.onnx"), "{e}");
    // The members swapped: shapes do not fit.
    let swapped: Vec<_> = members
        .iter()
        .map(|(n, d)| {
            let other = members.iter().find(|(o, _)| o != n).unwrap();
            (
                n.clone(),
                if n.ends_with(".onnx") {
                    other.1.clone()
                } else {
                    d.clone()
                },
            )
        })
        .collect();
    assert!(Model::from_bytes(Path::new("m.zip"), &build(&swapped, &comment)).is_err());
    // Not a zip; no comment; comment not JSON.
    let e = Model::from_bytes(Path::new("m.zip"), b"PK but not really").unwrap_err();
    assert!(e.to_string().contains("not a zip"), "{e}");
    let e = Model::from_bytes(Path::new("m.zip"), &build(&members, "")).unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
    let e = Model::from_bytes(
        Path::new("m.zip"),
        &build(&members, "{\"format_version\": "),
    )
    .unwrap_err();
    assert!(e.to_string().contains("metadata"), "{e}");
}

#[test]
fn a_directory_loads_the_good_and_reports_each_bad_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(shipped(), dir.path().join("EURUSD_H1.zip")).unwrap();
    std::fs::write(dir.path().join("GBPUSD_H1.zip"), b"garbage").unwrap();
    let (members, mut meta) = parts();
    meta["format_version"] = json!("3.0");
    std::fs::write(
        dir.path().join("USDJPY_H1.zip"),
        build(&members, &meta.to_string()),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), b"not a model").unwrap();
    let set = load_dir(dir.path()).unwrap();
    assert_eq!(set.models.len(), 1);
    assert_eq!(set.models[0].symbol, "EURUSD");
    assert_eq!(set.refused.len(), 2);
    assert!(set.refused[0].to_string().contains("GBPUSD_H1.zip"));
    assert!(
        set.refused[1].to_string().contains("USDJPY_H1.zip")
            && set.refused[1].to_string().contains("format_version")
    );
}

/// A window far beyond any history (100,000,000 bars) was accepted, and its twin never decided:
/// `preditor check` (and the daemon, which loads models the same way) refuses it with the bound.
#[test]
fn a_window_no_history_can_fill_is_refused_by_check() {
    let text = refused(|m| m["env"]["window"] = json!(100_000_000));
    assert!(
        text.contains("`env.window` = 100000000") && text.contains("at most 10000"),
        "{text}"
    );
    let (members, mut meta) = parts();
    meta["env"]["window"] = json!(100_000_000);
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("EURUSD_H1.zip");
    std::fs::write(&zip, build(&members, &meta.to_string())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_preditor"))
        .arg("check")
        .arg(&zip)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("refused") && stdout.contains("env.window"),
        "{stdout}"
    );
}
