//! The causal HMM regime (ENV.md §5): the scaled forward filter over one window's observations.
//!
//! The recursion restarts at every window start (that is the definition the policy was trained on), so
//! it is recomputed in full for each decision; only the filtered posterior of the last observation is
//! used. Never Viterbi or smoothing: both would look at bars after the decision bar.
//!
//! Rabiner's scaling keeps the recursion in probability space: each step is `K²` multiply-adds
//! instead of `K²` `exp`/`ln` calls, and the per-bar emission factors `e_s` ([`scaled_emission_row`])
//! depend only on their bar, so callers cache them. The operation order below is normative: the
//! Python reference (`scripts/oracle_core.py`) performs the same operations in the same order, so the
//! two agree bit for bit.

/// `e[k] = exp(log b_k(x) − m)`, `m = max_k log b_k(x)`: the bar's emission densities scaled so that
/// their maximum is 1 (the common factor `exp(m)` cancels in the normalisation).
pub fn scaled_emission_row(log_emission: &[f64]) -> Vec<f64> {
    let m = log_emission
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    log_emission.iter().map(|&v| (v - m).exp()).collect()
}

/// Filtered posterior `P(state | x_0 … x_{S−1})` of the last observation (normalised, sums to 1).
///
/// `scaled_emission` is row-major `[S, K]` (rows from [`scaled_emission_row`]), `startprob` has `K`
/// entries, `transmat` is row-major `[K, K]` (`A[i,k]` at `i*K + k`).
pub fn forward_filter(
    scaled_emission: &[f64],
    k: usize,
    startprob: &[f64],
    transmat: &[f64],
) -> Vec<f64> {
    let mut rows = scaled_emission.chunks_exact(k);
    let Some(first) = rows.next() else {
        return vec![0.0; k];
    };
    let mut alpha: Vec<f64> = startprob.iter().zip(first).map(|(p, e)| p * e).collect();
    normalise_or_restart(&mut alpha, first);
    let mut next = vec![0.0; k];
    for e in rows {
        for (to, slot) in next.iter_mut().enumerate() {
            // Left to right from 0.0, one multiply then one add per term (Rust never contracts to FMA).
            let mut p = 0.0;
            for (from, a) in alpha.iter().enumerate() {
                p += a * transmat[from * k + to];
            }
            *slot = p * e[to];
        }
        std::mem::swap(&mut alpha, &mut next);
        normalise_or_restart(&mut alpha, e);
    }
    alpha
}

/// Divides by the left-to-right sum. A zero (or non-finite) sum only happens when exact zeros in `π`
/// or `A` meet emissions that underflowed to 0: the filter then restarts from the emission alone.
fn normalise_or_restart(alpha: &mut [f64], e: &[f64]) {
    let mut n = 0.0;
    for a in alpha.iter() {
        n += a;
    }
    if n > 0.0 && n.is_finite() {
        alpha.iter_mut().for_each(|a| *a /= n);
    } else {
        let mut z = 0.0;
        for x in e {
            z += x;
        }
        for (a, x) in alpha.iter_mut().zip(e) {
            *a = x / z;
        }
    }
}

/// `argmax_k`, the lowest index on a tie (NaN never wins).
pub fn argmax_f64(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaled(log_rows: &[&[f64]]) -> Vec<f64> {
        log_rows
            .iter()
            .flat_map(|r| scaled_emission_row(r))
            .collect()
    }

    #[test]
    fn scaled_rows_peak_at_one() {
        let e = scaled_emission_row(&[-3.0, 2.5, -700.0, 1.0]);
        assert_eq!(e[1], 1.0);
        assert_eq!(e[0], (-5.5f64).exp());
        assert_eq!(e[2], (-702.5f64).exp());
    }

    /// Two states, two observations, against the probability-space recursion worked by hand:
    /// `e_0 = [1, 0.2]`, `α_0 = [0.6, 0.08] / 0.68`; `e_1 = [1/3, 1]`,
    /// `α_1 ∝ [0.436 / 3, 0.244]`, i.e. `[0.436, 0.732] / 1.168`.
    #[test]
    fn forward_filter_two_states_by_hand() {
        let pi = [0.6f64, 0.4];
        let a = [0.7f64, 0.3, 0.2, 0.8];
        let e = scaled(&[&[0.5f64.ln(), 0.1f64.ln()], &[0.2f64.ln(), 0.6f64.ln()]]);
        let post = forward_filter(&e, 2, &pi, &a);
        assert!((post[0] - 0.436 / 1.168).abs() < 1e-14);
        assert!((post[1] - 0.732 / 1.168).abs() < 1e-14);
        assert_eq!(argmax_f64(&post), 1);
        let post0 = forward_filter(&e[..2], 2, &pi, &a);
        assert!((post0[0] - 0.6 / 0.68).abs() < 1e-14);
        assert_eq!(argmax_f64(&post0), 0);
    }

    #[test]
    fn impossible_paths_restart_from_the_emission() {
        // State 1 unreachable (π_1 = 0, A[0,1] = 0); state 0's emission underflows to exactly 0.
        let pi = [1.0, 0.0];
        let a = [1.0, 0.0, 0.0, 1.0];
        let post = forward_filter(&scaled(&[&[-1000.0, 0.0]]), 2, &pi, &a);
        assert_eq!(post, vec![0.0, 1.0]);
        let rows: [&[f64]; 3] = [&[0.0, 0.0], &[-1000.0, 0.0], &[0.0, 0.5f64.ln()]];
        let post = forward_filter(&scaled(&rows), 2, &pi, &a);
        assert_eq!(post, vec![0.0, 1.0]);
        assert_eq!(argmax_f64(&post), 1);
    }

    #[test]
    fn impossible_transitions_stay_impossible() {
        let pi = [1.0, 0.0];
        let a = [1.0, 0.0, 0.5, 0.5];
        let e = scaled(&[&[0.0, 5.0], &[0.0, 5.0], &[0.0, 5.0]]);
        let post = forward_filter(&e, 2, &pi, &a);
        assert_eq!(post, vec![1.0, 0.0]);
        assert_eq!(argmax_f64(&post), 0);
    }

    #[test]
    fn ties_pick_the_lowest_index() {
        assert_eq!(argmax_f64(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax_f64(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), 0);
    }
}
