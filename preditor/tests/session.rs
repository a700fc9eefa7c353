//! The per-symbol live logic without sockets: fast-forward warmup, resume, and bar bookkeeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use preditor::backtest;
use preditor::bars::read_bars_csv;
use preditor::model::Model;
use preditor::session::{BarOutcome, StartMode, SymbolTwin};
use preditor::twin::TwinState;

const W: usize = 350;

fn fixture() -> (Arc<Model>, Vec<preditor::bars::Bar>) {
    let case = common::case("EURUSD_H1");
    let model = Arc::new(Model::load(&common::repo_root().join(&case.model)).unwrap());
    let bars = read_bars_csv(&case.dir.join("bars.csv")).unwrap();
    (model, bars)
}

#[test]
fn fast_forward_then_live_equals_the_backtest_and_resume_skips_decided_bars() {
    let (model, bars) = fixture();
    let (reference, _) = backtest::run(
        &model.spec,
        model.as_ref(),
        &bars[..W + 40],
        TwinState::START,
    )
    .unwrap();

    let mut twin = SymbolTwin::new(Arc::clone(&model), None);
    assert_eq!(twin.mode(), StartMode::FastForward);
    let out = twin.on_history(&bars[..W + 10]).unwrap();
    assert_eq!(out.replayed, 11);
    assert_eq!(
        out.signals,
        vec![reference[10]],
        "fast-forward sends only its last decision"
    );
    for (i, bar) in bars[W + 10..W + 20].iter().enumerate() {
        assert_eq!(
            twin.on_bar(*bar).unwrap(),
            BarOutcome::Decided(reference[11 + i])
        );
    }
    // A repeated bar is not decided again.
    assert_eq!(
        twin.on_bar(bars[W + 19]).unwrap(),
        BarOutcome::AlreadyDecided
    );

    // Restart from the persisted state with 5 missed bars and a history of W + 4 bars (the window of the first missed bar).
    let persisted = twin.persisted();
    let mut again = SymbolTwin::new(Arc::clone(&model), Some(persisted.clone()));
    assert_eq!(again.mode(), StartMode::Resume);
    let out = again.on_history(&bars[21..W + 25]).unwrap();
    assert_eq!(out.replayed, 5);
    assert!(!out.unreachable_gap);
    assert_eq!(
        out.signals,
        reference[21..26].to_vec(),
        "only the missed bars"
    );
    assert_eq!(
        again.on_bar(bars[W + 25]).unwrap(),
        BarOutcome::Decided(reference[26])
    );

    // Nothing missed: the last decision is resent (the executor deduplicates it by bar time).
    let mut idle = SymbolTwin::new(Arc::clone(&model), Some(persisted.clone()));
    let out = idle.on_history(&bars[..W + 20]).unwrap();
    assert_eq!(
        (out.replayed, out.signals.clone()),
        (0, vec![reference[20]])
    );

    // A state from another model is not trusted.
    let mut foreign = persisted;
    foreign.model_fingerprint = "0".repeat(64);
    assert_eq!(
        SymbolTwin::new(model, Some(foreign)).mode(),
        StartMode::FastForward
    );
}

#[test]
fn short_history_warms_up_and_long_outage_is_flagged() {
    let (model, bars) = fixture();
    let mut twin = SymbolTwin::new(Arc::clone(&model), None);
    let out = twin.on_history(&bars[..100]).unwrap();
    assert_eq!((out.replayed, out.signals.len()), (0, 0));
    assert_eq!(
        twin.on_bar(bars[100]).unwrap(),
        BarOutcome::WarmingUp { have: 101, need: W }
    );
    for b in &bars[101..W - 1] {
        twin.on_bar(*b).unwrap();
    }
    assert!(matches!(
        twin.on_bar(bars[W - 1]).unwrap(),
        BarOutcome::Decided(_)
    ));
    // Persisted at bar W-1, then 500 bars pass while the broker only gives back W + 10.
    let mut later = SymbolTwin::new(Arc::clone(&model), Some(twin.persisted()));
    let out = later.on_history(&bars[W + 490..2 * W + 500]).unwrap();
    assert!(out.unreachable_gap);
    assert_eq!(out.replayed, 11);
}
