//! The series pass (backtest, history replay) and the live step decide exactly as the per-window
//! reference path (`backtest::run_traced`, which `tests/parity.rs` holds to the Python reference), bit
//! for bit: on every golden set, on 5,000 real bars (more than one pass), on a series with a gap, from a
//! non-flat state, and on random series with a closed-form inference (restarts of the filter included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use preditor::backtest::{run, run_traced};
use preditor::bars::{Bar, format_time, read_bars_csv};
use preditor::features::{HmmPeriods, PolicyPeriods};
use preditor::model::{Costs, EnvSpec, InferenceError, Model};
use preditor::series::window_facts;
use preditor::session::{BarOutcome, SymbolTwin};
use preditor::twin::{Decision, Inference, TwinState, VirtualPosition};
use proptest::prelude::*;

fn golden_steps(case: &common::GoldenCase) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(case.dir.join("steps.csv")).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    r.records()
        .map(|rec| {
            headers
                .iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

/// Every window's facts (features, z, ATR, regime) and every decision of the series pass against the
/// golden steps, exactly: the golden floats are Python `repr`, so they parse to the exact bits.
#[test]
fn the_series_pass_reproduces_every_golden_set_bit_for_bit() {
    let root = common::repo_root();
    for case in common::golden_cases() {
        let model = Model::load(&root.join(&case.model)).unwrap();
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        let steps = golden_steps(&case);
        let mut facts = Vec::new();
        window_facts(
            &model.spec,
            &model,
            &bars,
            model.spec.window - 1,
            &mut facts,
        )
        .unwrap();
        let (decisions, _) = run(&model.spec, &model, &bars, TwinState::START).unwrap();
        assert_eq!(facts.len(), steps.len(), "{}", case.name);
        assert_eq!(decisions.len(), steps.len(), "{}", case.name);
        for ((f, d), row) in facts.iter().zip(&decisions).zip(&steps) {
            let at = format!("{} @ {}", case.name, row["time"]);
            assert_eq!(format_time(f.time), row["time"], "{at}");
            let g = |k: &str| row[k].parse::<f64>().unwrap().to_bits();
            for (i, name) in ["roc", "atr_pct", "ema_dist", "range_pos", "vol_ratio"]
                .iter()
                .enumerate()
            {
                assert_eq!(f.raw[i].to_bits(), g(name), "{at}: {name}");
                assert_eq!(f.z[i].to_bits(), g(&format!("z{i}")), "{at}: z{i}");
            }
            assert_eq!(f.atr.to_bits(), g("atr"), "{at}: atr");
            assert_eq!(f.regime.to_string(), row["regime"], "{at}: regime");
            assert_eq!(d.action.to_string(), row["action"], "{at}: action");
            assert_eq!(d.direction.to_string(), row["position"], "{at}: position");
            assert_eq!(d.intensity.to_string(), row["intensity"], "{at}: intensity");
            assert_eq!(d.held.to_string(), row["held"], "{at}: held");
            assert_eq!(
                d.realised_pnl.to_bits(),
                g("virtual_pnl"),
                "{at}: virtual_pnl"
            );
        }
    }
}

fn traced(model: &Model, bars: &[Bar]) -> Vec<Decision> {
    run_traced(&model.spec, model, bars)
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

/// 5,000 real bars: more windows than one pass holds (4,096), so a pass boundary is crossed; and the
/// same bars with five cut out of the middle (a gap in time).
#[test]
fn the_series_pass_equals_the_per_window_path_across_passes_and_gaps() {
    let root = common::repo_root();
    let model = Model::load(&root.join("models/EURUSD_H1.zip")).unwrap();
    let bars = read_bars_csv(&root.join("data/EURUSD_H1.csv")).unwrap();
    assert!(bars.len() >= 5000);
    let mut gapped = bars[..2500].to_vec();
    gapped.extend_from_slice(&bars[2505..3200]);
    for series in [&bars[..], &gapped[..]] {
        let (fast, _) = run(&model.spec, &model, series, TwinState::START).unwrap();
        assert_eq!(fast, traced(&model, series));
    }
}

/// The twin's history replay (fast-forward) and then live bars, prepared between bars or not,
/// against the per-window path over the same bars.
#[test]
fn the_twin_replays_and_steps_exactly_as_the_per_window_path() {
    let root = common::repo_root();
    let case = common::case("XAUUSD_H1");
    let model = Arc::new(Model::load(&root.join(&case.model)).unwrap());
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    let reference = traced(&model, &bars[..1000]);
    let w = model.spec.window;
    let mut twin = SymbolTwin::new(Arc::clone(&model), None);
    let out = twin.on_history(&bars[..800]).unwrap();
    assert_eq!(out.replayed, 800 - w + 1);
    assert_eq!(out.signals, vec![reference[800 - w]]);
    for (i, bar) in bars[800..1000].iter().enumerate() {
        match twin.on_bar(*bar).unwrap() {
            BarOutcome::Decided(d) => assert_eq!(d, reference[800 - w + 1 + i], "bar {i}"),
            other => panic!("{other:?}"),
        }
        if i % 7 != 0 {
            twin.prepare_next();
        }
    }
}

/// A reconnect that missed no bar (a HISTORY that ends at the last decided bar) replays nothing, and
/// the live bars after it still decide as the per-window path.
#[test]
fn a_history_with_nothing_to_decide_then_live_bars() {
    let root = common::repo_root();
    let case = common::case("EURUSD_H1");
    let model = Arc::new(Model::load(&root.join(&case.model)).unwrap());
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    let reference = traced(&model, &bars[..700]);
    let w = model.spec.window;
    let mut twin = SymbolTwin::new(Arc::clone(&model), None);
    twin.on_history(&bars[..500]).unwrap();
    for bar in &bars[500..600] {
        twin.on_bar(*bar).unwrap();
    }
    // Same process, new connection: the history ends at the last decided bar.
    let out = twin.on_history(&bars[100..600]).unwrap();
    assert_eq!(out.replayed, 0);
    assert_eq!(
        out.signals,
        vec![reference[600 - w]],
        "the last decision is resent"
    );
    // And after a restart from the persisted state, with the same history.
    let mut again = SymbolTwin::new(Arc::clone(&model), Some(twin.persisted()));
    assert_eq!(again.on_history(&bars[100..600]).unwrap().replayed, 0);
    for (i, bar) in bars[600..700].iter().enumerate() {
        for t in [&mut twin, &mut again] {
            assert_eq!(
                t.on_bar(*bar).unwrap(),
                BarOutcome::Decided(reference[600 - w + 1 + i]),
                "bar {i}"
            );
        }
    }
}

/// The live step's intermediate values (features, z, ATR, regime) on a real model, prepared between
/// bars and not, against the per-window path's trace, bit for bit.
#[test]
fn the_live_step_matches_the_per_window_trace_bit_for_bit() {
    let root = common::repo_root();
    let case = common::case("GBPUSD_H1");
    let model = Model::load(&root.join(&case.model)).unwrap();
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    let w = model.spec.window;
    let traces = run_traced(&model.spec, &model, &bars[..w + 150]).unwrap();
    let mut live = preditor::live_window::LiveWindow::new(&model.spec);
    let mut state = TwinState::START;
    let mut prepared = 0;
    for (i, (d, t)) in traces.iter().enumerate() {
        let win = preditor::twin::Window::new(&bars[i..i + w], &model.spec).unwrap();
        let (ours, next, f) = live.decide(&model.spec, &model, &win, &state).unwrap();
        assert_eq!(&ours, d, "bar {i}");
        assert_eq!(f.raw.map(f64::to_bits), t.raw.map(f64::to_bits), "bar {i}");
        assert_eq!(f.z.map(f64::to_bits), t.z.map(f64::to_bits), "bar {i}");
        assert_eq!(f.atr.to_bits(), t.atr.to_bits(), "bar {i}");
        assert_eq!(f.regime, t.regime, "bar {i}");
        state = next;
        if i % 9 != 4 {
            live.prepare(&model.spec, &model, win.bars()).unwrap();
            prepared += 1;
        }
    }
    assert!(prepared > 100);
}

/// A backtest that starts from a held position (the resume path) decides as the per-window path does.
#[test]
fn the_series_pass_from_a_held_position_equals_the_per_window_path() {
    let root = common::repo_root();
    let case = common::case("US500_H1");
    let model = Model::load(&root.join(&case.model)).unwrap();
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    let w = model.spec.window;
    let mut start = TwinState::START;
    start.position = VirtualPosition {
        direction: -1,
        intensity: 2,
        entry: bars[w - 1].close * 1.01,
    };
    start.last_action = Some(5);
    start.held = 3;
    let (fast, _) = run(&model.spec, &model, &bars[..w + 200], start).unwrap();
    let mut state = start;
    for (i, end) in (w..=w + 200).enumerate() {
        let win = preditor::twin::Window::new(&bars[end - w..end], &model.spec).unwrap();
        let (d, next, _) = preditor::twin::step_with(&model.spec, &model, &win, &state).unwrap();
        assert_eq!(fast[i], d, "bar {i}");
        state = next;
    }
}

/// Log emissions that depend on the observation, with ties and underflow to exact zeros in reach, and
/// a policy that trades on the observation (so positions move and hold).
#[derive(Debug)]
struct ClosedForm;

impl Inference for ClosedForm {
    fn log_emissions(&self, x: &[f64]) -> Result<Vec<f64>, InferenceError> {
        Ok(x.chunks(3)
            .flat_map(|r| {
                let d = r[0] * 50.0 + r[1] - r[2];
                [
                    -(d + 0.5) * (d + 0.5) * 900.0,
                    -(d - 0.5) * (d - 0.5),
                    -d.abs(),
                ]
            })
            .collect())
    }
    fn logits(&self, obs: &[f32]) -> Result<[f32; 7], InferenceError> {
        let z = obs[0] + obs[2] - obs[obs.len() - 1];
        let r = obs[5] - obs[7];
        Ok([0.1, z, -z, z * r, -z * r, 0.2 * r, -0.3])
    }
    fn policy_rows(&self) -> usize {
        3
    }
}

fn small_spec(startprob: Vec<f64>, transmat: Vec<f64>) -> EnvSpec {
    EnvSpec {
        window: 12,
        policy: PolicyPeriods {
            roc: 3,
            atr: 4,
            ema: 5,
            range: 3,
            volume_ma: 2,
        },
        hmm_periods: HmmPeriods {
            momentum: 2,
            consistency: 3,
            range: 2,
        },
        n_states: 3,
        norm_mean: [0.0; 5],
        norm_std: [0.01, 0.001, 1.0, 0.5, 1.0],
        norm_clip: 5.0,
        unrealized_clip: 5.0,
        hmm_mean: [0.0; 3],
        hmm_std: [0.01, 1.0, 0.01],
        startprob,
        transmat,
        costs: Costs {
            point: 0.00001,
            pip_size: 0.0001,
            pip_value: 10.0,
            spread_points: 7.0,
            slippage_points: 2.0,
            commission_per_lot: 7.0,
            lot_sizes: [0.0, 0.01, 0.03, 0.05],
        },
    }
}

fn arb_series() -> impl Strategy<Value = Vec<Bar>> {
    prop::collection::vec((-3i32..=3, 0u8..3, 0u8..4), 12..80).prop_map(|steps| {
        let mut price = 1.0;
        steps
            .iter()
            .enumerate()
            .map(|(i, &(m, up, flat))| {
                // Flat stretches and non-positive prices (ENV.md §9) are in reach.
                if flat != 0 {
                    price += f64::from(m) * 0.01;
                }
                let spread = f64::from(up) * 0.004;
                Bar {
                    time: i as i64 * 3600,
                    open: price,
                    high: price + spread,
                    low: price - spread / 2.0,
                    close: price,
                    volume: u64::from(up),
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_series_decide_as_the_per_window_path(
        bars in arb_series(),
        sticky in prop::bool::ANY,
    ) {
        // A sticky chain with zeros (the filter's restart rule is reachable) or a mixing one.
        let spec = if sticky {
            small_spec(vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 1.0])
        } else {
            small_spec(vec![0.2, 0.5, 0.3], vec![0.8, 0.1, 0.1, 0.2, 0.6, 0.2, 0.3, 0.3, 0.4])
        };
        let (fast, _) = run(&spec, &ClosedForm, &bars, TwinState::START).unwrap();
        let slow: Vec<Decision> = run_traced(&spec, &ClosedForm, &bars)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        prop_assert_eq!(fast, slow);
    }
}
