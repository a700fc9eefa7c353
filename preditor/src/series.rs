//! Many consecutive windows at once: the backtest and the twin's replay of a history (ENV.md §3-§7).
//!
//! Each decision still depends on its own window only, computed by the operations ENV.md prescribes in
//! its order; what is shared is work whose result cannot differ:
//! - an HMM observation and its scaled emission row depend only on their bar and the `H` before it
//!   (ENV.md §5), so each bar's row is computed once for all the windows that contain it;
//! - the forward filters of neighbouring windows are run against each other ([`series_regimes`]);
//! - the ATR and EMA recursions of eight windows run side by side ([`atr_ema_windows`]);
//! - the policy evaluates the observations of several bars in one call while the position holds
//!   ([`decide_series`]).
//!
//! `tests/series.rs` checks every decision and every intermediate value against the per-window
//! reference path ([`crate::backtest::run_traced`]) bit for bit.

use crate::bars::Bar;
use crate::features::{atr_ema_windows, hmm_features_at};
use crate::hmm::{Chain, scale_emission_row, series_regimes};
use crate::model::{EnvSpec, InferenceError};
use crate::twin::{Decision, Inference, TwinState, WindowFacts, act};

/// Windows handled per pass: bounds the memory of a long backtest to about 200 kB beyond its bars and
/// decisions (each pass recomputes the `S` rows it shares with the previous one, a few percent of a
/// pass). 1024 rather than 4096: the passes' buffers are reused instead of touching fresh pages
/// (a 5,000-bar backtest: 670 page faults instead of 780, `perf stat`).
const CHUNK: usize = 1024;

/// The scaled emission rows `e` of bars `from … to−1` of `bars` (`from ≥ H`), `K` values per bar.
pub fn scaled_rows<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    bars: &[Bar],
    from: usize,
    to: usize,
    out: &mut Vec<f64>,
) -> Result<(), InferenceError> {
    let k = spec.n_states;
    let mut log_b = vec![0.0; k];
    out.reserve((to - from) * k);
    for j in from..to {
        let f = hmm_features_at(bars, j, &spec.hmm_periods);
        let mut x = [0.0; 3];
        for d in 0..3 {
            x[d] = (f[d] - spec.hmm_mean[d]) / spec.hmm_std[d];
        }
        inference.log_emission_row(&x, &mut log_b)?;
        let at = out.len();
        out.resize(at + k, 0.0);
        scale_emission_row(&log_b, &mut out[at..]);
    }
    Ok(())
}

/// The facts of the windows ending at bars `first_end … bars.len()−1` (`first_end ≥ W−1`), appended to
/// `facts`; returns the scaled rows computed on the way (bars `first_end + 1 − S …`, see
/// [`SeriesRows`]).
pub fn window_facts<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    bars: &[Bar],
    first_end: usize,
    facts: &mut Vec<WindowFacts>,
) -> Result<SeriesRows, InferenceError> {
    let w = spec.window;
    let s = spec.hmm_len();
    let n = bars.len();
    let first_end = first_end.max(w - 1);
    let first_row = first_end + 1 - s;
    let mut rows = Vec::new();
    if first_end >= n {
        return Ok(SeriesRows { first_bar: n, rows });
    }
    scaled_rows(spec, inference, bars, first_row, n, &mut rows)?;
    let mut regimes = Vec::with_capacity(n - first_end);
    series_regimes(
        &Chain::new(&spec.startprob, &spec.transmat),
        &rows,
        s,
        &mut regimes,
    );
    let mut chains = Vec::with_capacity(n - first_end);
    atr_ema_windows(&bars[first_end + 1 - w..], w, &spec.policy, &mut chains);
    facts.reserve(n - first_end);
    for (i, (&regime, &(atr, ema))) in regimes.iter().zip(&chains).enumerate() {
        let end = first_end + i;
        facts.push(WindowFacts::new(
            spec,
            &bars[end + 1 - w..=end],
            atr,
            ema,
            regime,
        ));
    }
    Ok(SeriesRows {
        first_bar: first_row,
        rows,
    })
}

/// Scaled emission rows of consecutive bars, from `first_bar` on.
#[derive(Debug, Clone, Default)]
pub struct SeriesRows {
    pub first_bar: usize,
    pub rows: Vec<f64>,
}

/// Decides consecutive windows from `state`, as one [`act`] after another would, appending to `out`.
///
/// The policy is asked for up to [`Inference::policy_rows`] observations per call: those of the next
/// bars computed with the current position, which is what each of them sees as long as no bar before it
/// moves the position (an action whose target is the position held changes nothing, ENV.md §6). At the
/// first bar that moves it, the rest of the call's rows are dropped and the next call starts after it.
pub fn decide_series<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    facts: &[WindowFacts],
    state: &mut TwinState,
    out: &mut Vec<Decision>,
) -> Result<(), InferenceError> {
    let batch = inference.policy_rows().max(1);
    let d = spec.obs_dim();
    let mut obs = Vec::with_capacity(batch * d);
    let mut logits = Vec::with_capacity(batch);
    let mut i = 0;
    while i < facts.len() {
        let ahead = &facts[i..facts.len().min(i + batch)];
        let held = state.position;
        obs.clear();
        logits.clear();
        for f in ahead {
            f.observe(spec, &held, &mut obs);
        }
        inference.logits_rows(&obs, d, &mut logits)?;
        if logits.len() != ahead.len() {
            return Err(InferenceError {
                symbol: String::new(),
                stage: "policy",
                message: format!("{} logits for {} observations", logits.len(), ahead.len()),
            });
        }
        for (f, l) in ahead.iter().zip(&logits) {
            let (decision, next) = act(spec, f, state, l);
            out.push(decision);
            i += 1;
            let moved = !same_position(&next, state);
            *state = next;
            if moved {
                break;
            }
        }
    }
    Ok(())
}

fn same_position(a: &TwinState, b: &TwinState) -> bool {
    a.position.direction == b.position.direction
        && a.position.intensity == b.position.intensity
        && a.position.entry.to_bits() == b.position.entry.to_bits()
}

/// Decides every window ending at bars `first_end …` (at least `W−1`, ENV.md §3), advancing `state`
/// decision by decision (an error leaves it after the last decision taken), in passes of [`CHUNK`]
/// windows; returns the scaled rows of the last pass.
pub fn run<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    bars: &[Bar],
    first_end: usize,
    state: &mut TwinState,
    out: &mut Vec<Decision>,
) -> Result<SeriesRows, InferenceError> {
    let w = spec.window;
    let mut start = first_end.max(w - 1);
    let mut facts = Vec::with_capacity(CHUNK.min(bars.len().saturating_sub(start)));
    let mut rows = SeriesRows::default();
    while start < bars.len() {
        let end = bars.len().min(start + CHUNK);
        // The pass sees the bars its windows need and no later ones.
        let from = start + 1 - w;
        facts.clear();
        let mut pass = window_facts(spec, inference, &bars[from..end], w - 1, &mut facts)?;
        pass.first_bar += from;
        rows = pass;
        decide_series(spec, inference, &facts, state, out)?;
        start = end;
    }
    Ok(rows)
}
