//! The policy plan evaluates several observations per call (`preditor::plans::POLICY_BATCH`). A row's
//! logits must not depend on where it sits in the call or on the other rows, or the backtest (rows of
//! several bars per call) and the live twin (one row per call) could disagree in the last bit. The plan
//! is the fallback of the native evaluator (`preditor::policy`), and its reference: both are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use preditor::model::Model;
use rand::{Rng, SeedableRng};

#[test]
fn a_rows_logits_do_not_depend_on_its_place_or_its_neighbours() {
    let root = common::repo_root();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for name in ["EURUSD_H1", "XAUUSD_H1", "NAS100_H1"] {
        let model = Model::load(&root.join(format!("models/{name}.zip"))).unwrap();
        let d = model.spec.obs_dim();
        let batch = preditor::plans::POLICY_BATCH;
        assert!(
            batch > 1,
            "{name}: the policy plan should take several rows"
        );
        let mut compared = 0;
        for _ in 0..50 {
            let row: Vec<f32> = (0..d).map(|_| rng.random_range(-5.0f32..5.0)).collect();
            let mut one = Vec::new();
            model.tract_logits_rows(&row, &mut one).unwrap();
            let alone = one[0];
            assert_eq!(
                model.logits(&row).unwrap().map(f32::to_bits),
                alone.map(f32::to_bits),
                "{name}: the twin's evaluator gives the plan's bits"
            );
            for place in 0..batch {
                let mut many: Vec<f32> = (0..batch * d)
                    .map(|_| rng.random_range(-5.0f32..5.0))
                    .collect();
                many[place * d..(place + 1) * d].copy_from_slice(&row);
                let mut out = Vec::new();
                model.tract_logits_rows(&many, &mut out).unwrap();
                assert_eq!(out.len(), batch);
                assert_eq!(
                    out[place].map(f32::to_bits),
                    alone.map(f32::to_bits),
                    "{name}: row at place {place}"
                );
                compared += 1;
            }
        }
        assert!(compared >= 50 * batch);
    }
}
