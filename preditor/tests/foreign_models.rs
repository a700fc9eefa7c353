//! Models trained elsewhere: the fixtures of `scripts/tests/fixtures/foreign` (real stable-baselines3 +
//! hmmlearn files, `scripts/make_fixtures.py`) converted by `scripts/export.py` (needs `$ORACLE_PYTHON`,
//! set by scripts/test.sh; no torch) decide in `preditor backtest` exactly as SB3's `predict` and
//! hmmlearn's forward pass did natively; and a v1 zip is named for what it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use preditor::model::Model;
use serde_json::Value;

fn fixtures() -> PathBuf {
    common::repo_root().join("scripts/tests/fixtures/foreign")
}

fn python() -> String {
    std::env::var("ORACLE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ORACLE_PYTHON is not set: run the tests via scripts/test.sh, which creates scripts/.venv \
             (export.py needs numpy and onnx)"
        )
    })
}

/// Runs `scripts/export.py` for one fixture case into `out`.
fn export(case: &Value, out: &Path) {
    let fix = fixtures();
    let arg = |k: &str| fix.join(case[k].as_str().unwrap());
    let mut cmd = Command::new(python());
    cmd.arg(common::repo_root().join("scripts/export.py"))
        .arg("--ppo")
        .arg(arg("ppo"))
        .arg("--hmm")
        .arg(arg("hmm"))
        .arg("--config")
        .arg(arg("config"))
        .arg("--out")
        .arg(out)
        .args(["--generated-at", "2026-01-01T00:00:00Z"]);
    if case["vecnormalize"].is_string() {
        cmd.arg("--vecnormalize").arg(arg("vecnormalize"));
    }
    let res = cmd.output().expect("run $ORACLE_PYTHON scripts/export.py");
    assert!(
        res.status.success(),
        "export.py {}: {}",
        case["name"],
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn converted_foreign_models_decide_as_sb3_and_hmmlearn() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 9, "8 HMM pairs + VecNormalize");
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = dir.path().join(format!("{name}.zip"));
        export(case, &model);
        let out = dir.path().join(format!("{name}.csv"));
        let res = Command::new(env!("CARGO_BIN_EXE_preditor"))
            .arg("backtest")
            .arg("--model")
            .arg(&model)
            .arg("--bars")
            .arg(fixtures().join("bars.csv"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let ours = std::fs::read_to_string(&out).unwrap();
        let expected =
            std::fs::read_to_string(fixtures().join(case["expected"].as_str().unwrap())).unwrap();
        let (ours, expected): (Vec<&str>, Vec<&str>) =
            (ours.lines().collect(), expected.lines().collect());
        assert_eq!(ours.len(), expected.len(), "{name}: row count");
        let diff: Vec<_> = ours
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .take(3)
            .collect();
        assert!(
            diff.is_empty(),
            "{name}: rows differ from native SB3 + hmmlearn: {diff:?}"
        );
        compared += ours.len() - 1;
    }
    eprintln!(
        "{compared} decisions of {} converted foreign models equal SB3 + hmmlearn",
        cases.len()
    );
}

/// The specification's v1 zip, from real fixture members and its §3 metadata.
fn v1_zip(dir: &Path) -> PathBuf {
    let p = dir.join("EURUSD_M15.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    for (member, file) in [
        ("EURUSD_M15_hmm.pkl", "hmm_k3_full.pkl"),
        ("EURUSD_M15_ppo.zip", "ppo_mlp_k3.zip"),
    ] {
        w.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(&std::fs::read(fixtures().join(file)).unwrap())
            .unwrap();
    }
    w.set_comment(
        r#"{"format_version":"2.0","symbol":{"name":"EURUSD","clean":"EURUSD","timeframe":"M15"},"training_config":{"point":0.00001,"pip_value":10.0,"spread_points":7,"slippage_points":2,"commission_per_lot":7.0,"digits":5,"lot_sizes":[0,0.01,0.03,0.05]},"hmm_config":{"n_states":3,"momentum_period":12,"consistency_period":12,"range_period":20},"rl_config":{"roc_period":10,"atr_period":14,"ema_period":200,"range_period":20,"volume_ma_period":20},"actions":{}}"#,
    );
    w.finish().unwrap();
    p
}

#[test]
fn a_v1_zip_is_named_with_its_conversion_command() {
    let dir = tempfile::tempdir().unwrap();
    let p = v1_zip(dir.path());
    let err = Model::load(&p).expect_err("a v1 zip is not a runnable model");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: a v1 model zip (EURUSD_M15_ppo.zip",
            p.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("scripts/export.py --v1 {}", p.display())),
        "{text}"
    );
    assert!(
        !text.contains("pip_size"),
        "not the first field v1 lacks: {text}"
    );

    let res = Command::new(env!("CARGO_BIN_EXE_preditor"))
        .arg("check")
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(!res.status.success());
    assert!(stdout.contains("a v1 model zip"), "{stdout}");
    assert!(stdout.contains("--v1"), "{stdout}");
}
