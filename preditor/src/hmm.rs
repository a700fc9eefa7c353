//! The causal HMM regime (ENV.md §5): the forward filter in log space over one window's observations.
//!
//! The recursion restarts at every window start (that is the definition the policy was trained on), so
//! it is recomputed in full for each decision; only the filtered posterior of the last observation is
//! used. Never Viterbi or smoothing: both would look at bars after the decision bar.

/// `logsumexp(v) = M + ln Σ exp(v_i − M)`, `M = max v`; `−∞` when every term is `−∞`.
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let mut s = 0.0;
    for &x in v {
        s += (x - m).exp();
    }
    m + s.ln()
}

/// Filtered log posterior of the last observation.
///
/// `log_emission` is row-major `[S, K]`, `log_start` has `K` entries, `log_trans` is row-major `[K, K]`
/// (`ln A[i,k]` at `i*K + k`). Returns `a_{S−1}` (normalised).
pub fn forward_filter(
    log_emission: &[f64],
    k: usize,
    log_start: &[f64],
    log_trans: &[f64],
) -> Vec<f64> {
    let s_len = log_emission.len() / k;
    let mut alpha: Vec<f64> = (0..k).map(|i| log_start[i] + log_emission[i]).collect();
    let norm = logsumexp(&alpha);
    alpha.iter_mut().for_each(|a| *a -= norm);
    let mut next = vec![0.0; k];
    let mut terms = vec![0.0; k];
    for s in 1..s_len {
        let row = &log_emission[s * k..(s + 1) * k];
        for (to, slot) in next.iter_mut().enumerate() {
            for from in 0..k {
                terms[from] = alpha[from] + log_trans[from * k + to];
            }
            *slot = logsumexp(&terms) + row[to];
        }
        let norm = logsumexp(&next);
        for (a, n) in alpha.iter_mut().zip(&next) {
            *a = n - norm;
        }
    }
    alpha
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

    #[test]
    fn logsumexp_handles_minus_infinity() {
        assert_eq!(
            logsumexp(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
            f64::NEG_INFINITY
        );
        assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        assert!((logsumexp(&[f64::NEG_INFINITY, 1.5]) - 1.5).abs() < 1e-15);
    }

    /// Two states, two observations, against the probability-space recursion worked by hand.
    #[test]
    fn forward_filter_matches_probability_space() {
        let pi = [0.6f64, 0.4];
        let a = [[0.7f64, 0.3], [0.2, 0.8]];
        let b = [[0.5f64, 0.1], [0.2, 0.6]]; // b[s][k]
        // alpha_0 ∝ [0.30, 0.04]; alpha_1[k] ∝ Σ_i alpha_0[i] A[i,k] · b_1[k]
        let a0 = [0.30 / 0.34, 0.04 / 0.34];
        let p1 = [
            (a0[0] * 0.7 + a0[1] * 0.2) * 0.2,
            (a0[0] * 0.3 + a0[1] * 0.8) * 0.6,
        ];
        let z = p1[0] + p1[1];
        let le: Vec<f64> = b.iter().flat_map(|r| r.iter().map(|x| x.ln())).collect();
        let ls: Vec<f64> = pi.iter().map(|x| x.ln()).collect();
        let lt: Vec<f64> = a.iter().flat_map(|r| r.iter().map(|x| x.ln())).collect();
        let post = forward_filter(&le, 2, &ls, &lt);
        assert!((post[0].exp() - p1[0] / z).abs() < 1e-12);
        assert!((post[1].exp() - p1[1] / z).abs() < 1e-12);
        assert_eq!(argmax_f64(&post), 1);
    }

    #[test]
    fn impossible_transitions_stay_impossible() {
        // State 1 unreachable from the start and from state 0.
        let ls = [0.0, f64::NEG_INFINITY];
        let lt = [0.0, f64::NEG_INFINITY, 0.5f64.ln(), 0.5f64.ln()];
        let le = [0.0, 5.0, 0.0, 5.0, 0.0, 5.0];
        let post = forward_filter(&le, 2, &ls, &lt);
        assert_eq!(post[0], 0.0);
        assert_eq!(post[1], f64::NEG_INFINITY);
        assert_eq!(argmax_f64(&post), 0);
    }

    #[test]
    fn ties_pick_the_lowest_index() {
        assert_eq!(argmax_f64(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax_f64(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), 0);
    }
}
