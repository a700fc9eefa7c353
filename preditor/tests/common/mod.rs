//! Shared helpers of the integration tests: where the repo, the models and the golden sets are.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Debug, Clone)]
pub struct GoldenCase {
    pub name: String,
    pub dir: PathBuf,
    /// Model zip, relative to the repo root.
    pub model: String,
}

/// Every golden set, and a panic if a shipped model (`models/*.zip`) has none: a missing golden set
/// must fail the parity tests, not skip them.
pub fn golden_cases() -> Vec<GoldenCase> {
    let root = repo_root();
    let golden = root.join("scripts/tests/golden");
    let models = root.join("models");
    let mut shipped: Vec<String> = std::fs::read_dir(&models)
        .unwrap_or_else(|e| panic!("{}: {e} — the shipped models are missing", models.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".zip").map(str::to_string)
        })
        .collect();
    shipped.sort();
    assert!(!shipped.is_empty(), "no model zip in {}", models.display());
    let mut cases = Vec::new();
    for stem in &shipped {
        let dir = golden.join(stem);
        assert!(
            dir.join("steps.csv").is_file()
                && dir.join("bars.csv").is_file()
                && dir.join("reference.csv").is_file(),
            "golden set missing for models/{stem}.zip: expected {}/{{bars,steps,reference}}.csv \
             (regenerate with `scripts/.venv/bin/python scripts/make_golden.py`)",
            dir.display()
        );
    }
    let entries = std::fs::read_dir(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} — golden files missing (scripts/make_golden.py)",
            golden.display()
        )
    });
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let case_json = dir.join("case.json");
        let text = std::fs::read_to_string(&case_json)
            .unwrap_or_else(|e| panic!("{}: {e}", case_json.display()));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let model = v["model"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no `model`", case_json.display()))
            .to_string();
        cases.push(GoldenCase {
            name: dir.file_name().unwrap().to_string_lossy().to_string(),
            dir,
            model,
        });
    }
    cases
}

/// The golden case of a shipped model (`EURUSD_H1`).
pub fn case(name: &str) -> GoldenCase {
    golden_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("golden set {name} missing"))
}
