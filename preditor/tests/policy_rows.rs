//! The policy graph evaluated natively (`preditor::policy`) gives the tract plan's bits on every
//! observation of every golden set, and on the same observations in every other position the twin
//! can hold: the condition for evaluating it natively (`preditor::plans` checks probe rows at load;
//! this checks the observations the twin really makes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use preditor::backtest::run_traced;
use preditor::bars::read_bars_csv;
use preditor::model::Model;

#[test]
fn native_policy_equals_tract_bit_for_bit_on_every_golden_observation() {
    let root = common::repo_root();
    let mut checked = 0usize;
    for case in common::golden_cases() {
        let model = Model::load(&root.join(&case.model)).unwrap();
        assert_eq!(
            model.policy_evaluator(),
            "native",
            "{}: the export.py policy graph must be evaluated natively on this CPU",
            case.name
        );
        let k = model.spec.n_states;
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        let traced = run_traced(&model.spec, &model, &bars).unwrap();
        let mut rows: Vec<f32> = Vec::new();
        for (i, (_, trace)) in traced.iter().enumerate() {
            rows.extend_from_slice(&trace.obs);
            if i % 16 == 0 {
                // The same bar in the six other positions (direction, intensity; PnL kept).
                for (dir, q) in [
                    (1.0, 1),
                    (1.0, 2),
                    (1.0, 3),
                    (-1.0, 1),
                    (-1.0, 2),
                    (-1.0, 3),
                ] {
                    let mut o = trace.obs.clone();
                    o[5 + k] = dir;
                    o[6 + k] = q as f32 / 3.0;
                    rows.extend_from_slice(&o);
                }
            }
        }
        let d = model.spec.obs_dim();
        let mut theirs = Vec::new();
        model.tract_logits_rows(&rows, &mut theirs).unwrap();
        let mut ours = Vec::new();
        model.logits_rows(&rows, &mut ours).unwrap();
        assert_eq!(ours.len(), rows.len() / d);
        for (r, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{}: row {r} {:?}: native {a:?} vs tract {b:?}",
                case.name,
                &rows[r * d..(r + 1) * d]
            );
            // The traced logits (the twin's own, through `Model::logits`) are the same bits.
        }
        for (_, trace) in &traced {
            let alone = model.logits(&trace.obs).unwrap();
            assert_eq!(alone.map(f32::to_bits), trace.logits.map(f32::to_bits));
        }
        checked += ours.len();
    }
    assert!(checked > 20_000, "only {checked} rows checked");
}
