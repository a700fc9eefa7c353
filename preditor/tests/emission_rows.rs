//! Per-bar HMM emissions (the `[1, 3]` plan) are bit-identical to the rows of the per-window `[S, 3]`
//! run: the condition for caching emissions per bar instead of recomputing a window's 330 rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use preditor::bars::read_bars_csv;
use preditor::features::hmm_observations;
use preditor::model::Model;

#[test]
fn row_plan_matches_window_plan_bit_for_bit() {
    let root = common::repo_root();
    for name in ["EURUSD_H1", "DEGENERATE_EURUSD_H1", "XAUUSD_H1", "US500_H1"] {
        let case = common::case(name);
        let model = Model::load(&root.join(&case.model)).unwrap();
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        let spec = &model.spec;
        let k = spec.n_states;
        let mut checked = 0;
        for end in (spec.window..=bars.len()).step_by(97) {
            let window = &bars[end - spec.window..end];
            let x = hmm_observations(window, &spec.hmm_periods, &spec.hmm_mean, &spec.hmm_std);
            let full = model.log_emissions(&x).unwrap();
            for (s, row) in x.chunks(3).enumerate() {
                let one = model.log_emission_row(&[row[0], row[1], row[2]]).unwrap();
                for j in 0..k {
                    assert_eq!(
                        one[j].to_bits(),
                        full[s * k + j].to_bits(),
                        "{name}: window ending {end}, row {s}, state {j}: {} vs {}",
                        one[j],
                        full[s * k + j]
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 500, "{name}: only {checked} rows checked");
    }
}

/// The cached step (backtest, live) decides exactly like the uncached reference path.
#[test]
fn cached_backtest_equals_uncached_steps() {
    let root = common::repo_root();
    for name in ["EURUSD_H1", "DEGENERATE_EURUSD_H1"] {
        let case = common::case(name);
        let model = Model::load(&root.join(&case.model)).unwrap();
        let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
        // Five bars cut out of the middle: a time gap the per-time cache must not trip over.
        let mut gapped = bars[..500].to_vec();
        gapped.extend_from_slice(&bars[505..]);
        for series in [&bars, &gapped] {
            let (cached, _) = preditor::backtest::run(
                &model.spec,
                &model,
                series,
                preditor::twin::TwinState::START,
            )
            .unwrap();
            let uncached: Vec<_> = preditor::backtest::run_traced(&model.spec, &model, series)
                .unwrap()
                .into_iter()
                .map(|(d, _)| d)
                .collect();
            assert_eq!(cached, uncached, "{name}");
        }
    }
}
