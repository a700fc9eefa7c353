//! The HMM emission graph evaluated natively (`preditor::emission`) gives tract's bits on every row of
//! every golden set, in both plan shapes the twin used to run through tract (`[1, 3]` per bar and
//! `[S, 3]` per window): the condition for evaluating it natively, and for computing a bar's row once
//! for every window that contains it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;

use preditor::bars::read_bars_csv;
use preditor::features::hmm_observations;
use preditor::model::Model;
use tract_onnx::prelude::*;

type Plan = TypedRunnableModel<TypedModel>;

fn hmm_member(zip: &std::path::Path, member: &str) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut out = Vec::new();
    archive
        .by_name(member)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn tract_plan(bytes: &[u8], rows: usize) -> Plan {
    tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap()
        .with_input_fact(0, f64::fact([rows, 3]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap()
}

fn run(plan: &Plan, rows: usize, x: &[f64]) -> Vec<f64> {
    let out = plan
        .run(tvec!(
            Tensor::from_shape(&[rows, 3], x).unwrap().into_tvalue()
        ))
        .unwrap();
    out[0].as_slice::<f64>().unwrap().to_vec()
}

#[test]
fn native_emissions_equal_tract_bit_for_bit_on_every_golden_row() {
    let root = common::repo_root();
    let mut checked = 0usize;
    for case in common::golden_cases() {
        let zip = root.join(&case.model);
        let model = Model::load(&zip).unwrap();
        assert_eq!(
            model.emission_evaluator(),
            "native",
            "{}: the export.py graph must be evaluated natively",
            case.name
        );
        let spec = &model.spec;
        let k = spec.n_states;
        let s = spec.hmm_len();
        let bytes = hmm_member(&zip, &model.meta.hmm.onnx.member);
        let (row_plan, window_plan) = (tract_plan(&bytes, 1), tract_plan(&bytes, s));
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        // Every row of the series, through the per-bar plan.
        let all = hmm_observations(&bars, &spec.hmm_periods, &spec.hmm_mean, &spec.hmm_std);
        let native = model.log_emissions(&all).unwrap();
        for (r, x) in all.chunks_exact(3).enumerate() {
            let theirs = run(&row_plan, 1, x);
            for j in 0..k {
                assert_eq!(
                    native[r * k + j].to_bits(),
                    theirs[j].to_bits(),
                    "{}: row {r}, state {j}: native {} vs tract [1, 3] {}",
                    case.name,
                    native[r * k + j],
                    theirs[j]
                );
            }
            checked += 1;
        }
        // And window by window through the [S, 3] plan (rows at every position of the batch).
        for start in (0..all.len() / 3 - s).step_by(s / 3) {
            let x = &all[start * 3..(start + s) * 3];
            let theirs = run(&window_plan, s, x);
            let ours = &native[start * k..(start + s) * k];
            let differ = ours
                .iter()
                .zip(&theirs)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(differ, None, "{}: window from row {start}", case.name);
        }
    }
    assert!(checked > 20_000, "only {checked} rows checked");
}

/// A graph that is not export.py's (here: one intermediate tensor renamed, which changes nothing it
/// computes) loads, runs through tract's `[1, 3]` plan, and decides exactly as the native evaluation.
#[test]
fn another_emission_graph_runs_through_tract_with_the_same_decisions() {
    let root = common::repo_root();
    let case = common::case("EURUSD_H1");
    let zip_path = root.join(&case.model);
    let native = Model::load(&zip_path).unwrap();
    let member = native.meta.hmm.onnx.member.clone();
    let mut hmm = hmm_member(&zip_path, &member);
    // `y2` is the Mul's output (field 2 of NodeProto) and the ReduceSum's input (field 1).
    for (from, to) in [
        (&b"\x12\x02y2"[..], &b"\x12\x02q2"[..]),
        (b"\x0a\x02y2", b"\x0a\x02q2"),
    ] {
        let at: Vec<usize> = hmm
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == from)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at.len(), 1, "tensor name encoding not found once");
        hmm[at[0]..at[0] + 4].copy_from_slice(to);
    }
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let comment = archive.comment().to_vec();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut out, if name == member { &hmm } else { &bytes }).unwrap();
    }
    out.set_raw_comment(comment.into());
    let bytes = out.finish().unwrap().into_inner();
    let renamed = Model::from_bytes(std::path::Path::new("renamed.zip"), &bytes).unwrap();
    assert_eq!(renamed.emission_evaluator(), "tract");
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    let start = preditor::twin::TwinState::START;
    let (a, _) = preditor::backtest::run(&native.spec, &native, &bars, start).unwrap();
    let (b, _) = preditor::backtest::run(&renamed.spec, &renamed, &bars, start).unwrap();
    assert_eq!(a.len(), 1000);
    assert_eq!(a, b);
}
