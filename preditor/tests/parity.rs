//! Parity with the Python reference (scripts/oracle_core.py + onnxruntime) on every golden set.
//!
//! Golden files live in `scripts/tests/golden/<case>/` (see its README). A missing golden set for a
//! shipped model is a failure, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{golden_cases, repo_root};
use preditor::backtest::run_traced;
use preditor::bars::{format_time, read_bars_csv};
use preditor::model::Model;

const REL: f64 = 1e-9;
const ABS_NEAR_ZERO: f64 = 1e-12;
/// tract vs onnxruntime, f32 logits: different kernels, same maths.
const LOGIT_ABS: f64 = 1e-5;

static INEXACT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static COMPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Within tolerance; also counts how many compared values are not bit-identical (reported).
fn close(a: f64, b: f64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    COMPARED.fetch_add(1, Relaxed);
    if a.to_bits() != b.to_bits() {
        INEXACT.fetch_add(1, Relaxed);
    }
    a == b || (a - b).abs() <= ABS_NEAR_ZERO || (a - b).abs() <= REL * a.abs().max(b.abs())
}

/// Reads a CSV into header-keyed rows of strings.
fn read_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn f(row: &HashMap<String, String>, key: &str) -> f64 {
    row.get(key)
        .unwrap_or_else(|| panic!("golden column {key} missing"))
        .parse()
        .unwrap_or_else(|e| panic!("golden column {key}: {e}"))
}

#[test]
fn every_golden_set_matches_step_by_step() {
    let root = repo_root();
    let cases = golden_cases();
    let mut failures: Vec<String> = Vec::new();
    let mut max_logit_diff = 0.0f64;
    for case in &cases {
        let model = Model::load(&root.join(&case.model)).expect("golden model loads");
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        let steps = read_rows(&case.dir.join("steps.csv"));
        let ours = run_traced(&model.spec, &model, &bars).unwrap();
        assert_eq!(
            ours.len(),
            steps.len(),
            "{}: decision count (ours vs golden steps.csv)",
            case.name
        );
        let d = model.spec.obs_dim();
        for ((dec, tr), row) in ours.iter().zip(&steps) {
            let t = format_time(dec.time);
            let mut fail = |what: &str, ours: String, golden: String| {
                if failures.len() < 40 {
                    failures.push(format!(
                        "{} @ {t}: {what}: ours {ours}, golden {golden}",
                        case.name
                    ));
                }
            };
            if row["time"] != t {
                fail("time", t.clone(), row["time"].clone());
                continue;
            }
            let names = ["roc", "atr_pct", "ema_dist", "range_pos", "vol_ratio"];
            for (i, name) in names.iter().enumerate() {
                let g = f(row, name);
                if !close(tr.raw[i], g) {
                    fail(name, tr.raw[i].to_string(), g.to_string());
                }
                let gz = f(row, &format!("z{i}"));
                if !close(tr.z[i], gz) {
                    fail(&format!("z{i}"), tr.z[i].to_string(), gz.to_string());
                }
            }
            if !close(tr.atr, f(row, "atr")) {
                fail("atr", tr.atr.to_string(), row["atr"].clone());
            }
            for (i, name) in ["hmm_momentum", "hmm_consistency", "hmm_range"]
                .iter()
                .enumerate()
            {
                let g = f(row, name);
                if !close(tr.hmm_last[i], g) {
                    fail(name, tr.hmm_last[i].to_string(), g.to_string());
                }
            }
            for i in 0..d {
                let g = f(row, &format!("obs{i}")) as f32;
                if tr.obs[i].to_bits() != g.to_bits() {
                    fail(&format!("obs{i}"), tr.obs[i].to_string(), g.to_string());
                }
            }
            for i in 0..7 {
                let g = f(row, &format!("logit{i}"));
                let diff = (f64::from(tr.logits[i]) - g).abs();
                max_logit_diff = max_logit_diff.max(diff);
                if diff > LOGIT_ABS {
                    fail(
                        &format!("logit{i}"),
                        tr.logits[i].to_string(),
                        g.to_string(),
                    );
                }
            }
            for (what, ours, golden) in [
                ("regime", i64::from(dec.regime), &row["regime"]),
                ("action", i64::from(dec.action), &row["action"]),
                ("position", i64::from(dec.direction), &row["position"]),
                ("intensity", i64::from(dec.intensity), &row["intensity"]),
                ("held", i64::from(dec.held), &row["held"]),
            ] {
                if ours.to_string() != *golden {
                    fail(what, ours.to_string(), golden.clone());
                }
            }
            let g = f(row, "virtual_pnl");
            if !close(dec.realised_pnl, g) {
                fail("virtual_pnl", dec.realised_pnl.to_string(), g.to_string());
            }
        }
    }
    eprintln!(
        "parity: {} case(s), max |logit tract − onnxruntime| = {max_logit_diff:e}; f64 values not bit-identical: {} of {}",
        cases.len(),
        INEXACT.load(std::sync::atomic::Ordering::Relaxed),
        COMPARED.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "parity failures (first {}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The CLI on the real-data case and the degenerate one (the step-by-step test above already covers
/// every golden set through the same `backtest::run_traced` path; the CLI adds parsing and formatting,
/// and a debug-build decision costs ~10 ms, so all 21 cases twice would dominate `cargo test`).
#[test]
fn backtest_cli_reproduces_reference_csv() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<_> = golden_cases()
        .into_iter()
        .filter(|c| c.name == "EURUSD_H1" || c.name == "DEGENERATE_EURUSD_H1")
        .collect();
    assert_eq!(
        cases.len(),
        2,
        "golden sets EURUSD_H1 and DEGENERATE_EURUSD_H1 are required"
    );
    for case in cases {
        let out = tmp.path().join(format!("{}.csv", case.name));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_preditor"))
            .arg("backtest")
            .arg("--model")
            .arg(root.join(&case.model))
            .arg("--bars")
            .arg(case.dir.join("bars.csv"))
            .arg("--out")
            .arg(&out)
            .env("RUST_LOG", "warn")
            .status()
            .unwrap();
        assert!(status.success(), "{}: preditor backtest failed", case.name);
        let ours = read_rows(&out);
        let golden = read_rows(&case.dir.join("reference.csv"));
        assert_eq!(ours.len(), golden.len(), "{}: row count", case.name);
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("time,regime,action,position,intensity,virtual_pnl\n"));
        // Same formatting as the reference (Python repr floats): the files are byte-identical.
        let reference = std::fs::read_to_string(case.dir.join("reference.csv")).unwrap();
        let first_diff = text.lines().zip(reference.lines()).find(|(a, b)| a != b);
        assert!(
            first_diff.is_none(),
            "{}: first differing row: ours {:?}",
            case.name,
            first_diff
        );
        for (o, g) in ours.iter().zip(&golden) {
            for col in ["time", "regime", "action", "position", "intensity"] {
                assert_eq!(
                    o[col], g[col],
                    "{} @ {}: column {col}",
                    case.name, g["time"]
                );
            }
            let (a, b) = (f(o, "virtual_pnl"), f(g, "virtual_pnl"));
            assert!(
                close(a, b),
                "{} @ {}: virtual_pnl ours {a} golden {b}",
                case.name,
                g["time"]
            );
        }
    }
}
