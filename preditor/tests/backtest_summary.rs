//! `preditor backtest`'s summary against the Python reference: the same closed trades, win rate and
//! realised PnL as `scripts/reference.py backtest` prints (its JSON summary, computed by
//! `oracle_core.summarize` from the reference's own trade list), and the maximum drawdown recomputed
//! here from the reference's CSV.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{case, repo_root};

fn python() -> String {
    std::env::var("ORACLE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ORACLE_PYTHON is not set: run the tests via scripts/test.sh, which creates the venv \
             (onnxruntime) and exports it"
        )
    })
}

/// The value after `label` on the summary line that starts with it, e.g. `PnL` → `85.29`.
fn field<'a>(summary: &'a str, label: &str) -> &'a str {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{summary}"))
        .trim_start()
}

#[test]
fn the_summary_agrees_with_the_reference_to_the_cent() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    for name in ["EURUSD_H1", "DEGENERATE_EURUSD_H1"] {
        let c = case(name);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_preditor"))
            .args(["backtest", "--model"])
            .arg(root.join(&c.model))
            .arg("--bars")
            .arg(c.dir.join("bars.csv"))
            .arg("--out")
            .arg(tmp.path().join("ours.csv"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        let ours = String::from_utf8(out.stdout).unwrap();

        let reference = std::process::Command::new(python())
            .arg(root.join("scripts/reference.py"))
            .args(["backtest", "--model"])
            .arg(root.join(&c.model))
            .arg("--bars")
            .arg(c.dir.join("bars.csv"))
            .arg("--out")
            .arg(tmp.path().join("ref.csv"))
            .output()
            .unwrap();
        assert!(reference.status.success(), "{name}: {reference:?}");
        let json: serde_json::Value = serde_json::from_slice(&reference.stdout).unwrap();
        let trades = json["closed_trades"].as_u64().unwrap();
        let pnl = json["realized_pnl"].as_f64().unwrap();

        let trades_line = field(&ours, "trades");
        assert!(
            trades_line.starts_with(&format!("{trades} closed")),
            "{name}: {trades_line}"
        );
        match json["win_rate"].as_f64() {
            Some(w) => assert!(
                trades_line.contains(&format!("win rate {:.2}%", 100.0 * w)),
                "{name}: reference win rate {w}, ours {trades_line}"
            ),
            None => assert!(trades_line.contains("no win rate"), "{name}: {trades_line}"),
        }
        let pnl_line = field(&ours, "PnL");
        assert!(
            pnl_line.starts_with(&format!("{pnl:.2} ")),
            "{name}: reference {pnl}, ours {pnl_line}"
        );

        // Maximum drawdown of the realised PnL, from the reference CSV: the start (0) is a peak.
        let csv = std::fs::read_to_string(tmp.path().join("ref.csv")).unwrap();
        let (mut peak, mut dd) = (0.0f64, 0.0f64);
        for line in csv.lines().skip(1) {
            let r: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
            peak = peak.max(r);
            dd = dd.max(peak - r);
        }
        let dd_line = field(&ours, "max drawdown");
        assert!(
            dd_line.starts_with(&format!("{dd:.2} ")),
            "{name}: from the reference CSV {dd}, ours {dd_line}"
        );
    }
}
