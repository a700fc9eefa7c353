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
    let mut e = vec![0.0; log_emission.len()];
    scale_emission_row(log_emission, &mut e);
    e
}

/// [`scaled_emission_row`] into `out` (same length as `log_emission`).
pub fn scale_emission_row(log_emission: &[f64], out: &mut [f64]) {
    let m = log_emission
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    for (slot, &v) in out.iter_mut().zip(log_emission) {
        *slot = (v - m).exp();
    }
}

/// The HMM's parameters (`π`, `A`) and the recursion's steps (ENV.md §5).
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    k: usize,
    startprob: Vec<f64>,
    /// `A`, row-major `[K, K]`.
    transmat: Vec<f64>,
}

impl Chain {
    /// `transmat` is row-major `[K, K]` (`A[i,k]` at `i*K + k`).
    pub fn new(startprob: &[f64], transmat: &[f64]) -> Self {
        Self {
            k: startprob.len(),
            startprob: startprob.to_vec(),
            transmat: transmat.to_vec(),
        }
    }

    pub fn n_states(&self) -> usize {
        self.k
    }

    /// `α_0 = π ⊙ e_0`, normalised (ENV.md §5).
    pub fn start(&self, alpha: &mut [f64], e: &[f64]) {
        for ((a, p), x) in alpha.iter_mut().zip(&self.startprob).zip(e) {
            *a = p * x;
        }
        normalise_or_restart(alpha, e);
    }

    /// `α_s` from `α_{s−1}` (in `alpha`) and `e_s`; `scratch` holds `K` values.
    pub fn step(&self, alpha: &mut [f64], e: &[f64], scratch: &mut [f64]) {
        // The usual state counts get loops of fixed length the compiler unrolls (the same operations
        // in the same order as the general loop).
        let done = match self.k {
            2 => step_k::<2>(&self.transmat, alpha, e),
            3 => step_k::<3>(&self.transmat, alpha, e),
            4 => step_k::<4>(&self.transmat, alpha, e),
            5 => step_k::<5>(&self.transmat, alpha, e),
            6 => step_k::<6>(&self.transmat, alpha, e),
            7 => step_k::<7>(&self.transmat, alpha, e),
            8 => step_k::<8>(&self.transmat, alpha, e),
            _ => false,
        };
        if !done {
            step_any(self.k, &self.transmat, alpha, e, scratch);
            normalise_or_restart(alpha, e);
        }
    }

    /// The filtered posterior of the last of `rows` (row-major `[S, K]`, `S ≥ 1`) into `alpha`.
    pub fn filter(&self, rows: &[f64], alpha: &mut [f64], scratch: &mut [f64]) {
        let mut it = rows.chunks_exact(self.k);
        if let Some(first) = it.next() {
            self.start(alpha, first);
        }
        for e in it {
            self.step(alpha, e, scratch);
        }
    }
}

/// `p[k] = Σ_{i} α[i]·A[i,k]` (left to right over `i` from `0.0`, one multiply then one add per term;
/// Rust never contracts to FMA), then `α[k] = p[k]·e[k]`. The loop over `k` is innermost so that the
/// `K` independent sums advance together; each still adds its terms in the order of `i`.
fn step_any(k: usize, transmat: &[f64], alpha: &mut [f64], e: &[f64], p: &mut [f64]) {
    p.fill(0.0);
    for (a, row) in alpha.iter().zip(transmat.chunks_exact(k)) {
        for (slot, t) in p.iter_mut().zip(row) {
            *slot += a * t;
        }
    }
    for ((slot, x), q) in alpha.iter_mut().zip(e).zip(p.iter()) {
        *slot = q * x;
    }
}

/// [`step_any`] then [`normalise_or_restart`] for a fixed `K`; false if the lengths are not `K`.
// Index loops: the formulas of ENV.md §5 read as written, over arrays the compiler unrolls.
#[allow(clippy::needless_range_loop)]
fn step_k<const K: usize>(transmat: &[f64], alpha: &mut [f64], e: &[f64]) -> bool {
    let (Ok(a), Ok(x), Some((rows, _))) = (
        <&mut [f64; K]>::try_from(alpha),
        <&[f64; K]>::try_from(e),
        transmat.as_chunks::<K>().0.split_first_chunk::<K>(),
    ) else {
        return false;
    };
    let mut p = [0.0; K];
    for i in 0..K {
        for k in 0..K {
            p[k] += a[i] * rows[i][k];
        }
    }
    let mut n = 0.0;
    for k in 0..K {
        p[k] *= x[k];
        n += p[k];
    }
    if n > 0.0 && n.is_finite() {
        for k in 0..K {
            a[k] = p[k] / n;
        }
    } else {
        let mut z = 0.0;
        for k in 0..K {
            z += x[k];
        }
        for k in 0..K {
            a[k] = x[k] / z;
        }
    }
    true
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
    let chain = Chain::new(startprob, transmat);
    let mut alpha = vec![0.0; k];
    let mut scratch = vec![0.0; k];
    chain.filter(scaled_emission, &mut alpha, &mut scratch);
    alpha
}

/// The regime of every window of `s` consecutive rows over a series of scaled emission rows `rows`
/// (row-major `[N, K]`): window `w` covers rows `w … w+s−1`, `w = 0 … N−s`; appended to `out`.
///
/// Each window's recursion restarts at its own first row, as the definition says; the work is shared
/// only where it provably changes nothing. Window `w` and window `w−1` run the same step function over
/// the same rows from row `w` on, so once window `w`'s `α` at some row has the same bits as window
/// `w−1`'s at that row, every later `α` of the two is the same too (same inputs, same IEEE operations):
/// the rest of window `w−1`'s trajectory is reused, and only window `w`'s last row is stepped. The filter
/// forgets its start, so on the shipped models this happens after about 30 rows (at most 78 on
/// EURUSD's 5,000 bars) instead of 330; without it the window simply runs to its end.
pub fn series_regimes(chain: &Chain, rows: &[f64], s: usize, out: &mut Vec<u16>) {
    if s > 0 && rows.len() / chain.k.max(1) >= s {
        out.reserve(rows.len() / chain.k + 1 - s);
    }
    series_alphas(chain, rows, s, |alpha| out.push(argmax_f64(alpha) as u16));
}

/// The filtered `α` at the last row of every window of `s` rows, in window order, to `sink`.
pub fn series_alphas(chain: &Chain, rows: &[f64], s: usize, mut sink: impl FnMut(&[f64])) {
    // The usual state counts run several windows side by side ([`series_alphas_lanes`]).
    let done = match chain.k {
        2 => series_alphas_lanes::<2>(chain, rows, s, &mut sink),
        3 => series_alphas_lanes::<3>(chain, rows, s, &mut sink),
        4 => series_alphas_lanes::<4>(chain, rows, s, &mut sink),
        5 => series_alphas_lanes::<5>(chain, rows, s, &mut sink),
        6 => series_alphas_lanes::<6>(chain, rows, s, &mut sink),
        7 => series_alphas_lanes::<7>(chain, rows, s, &mut sink),
        8 => series_alphas_lanes::<8>(chain, rows, s, &mut sink),
        _ => false,
    };
    if !done {
        series_alphas_one_by_one(chain, rows, s, sink);
    }
}

/// [`series_alphas`] one window after the other: the plain form of the join, and the path for
/// other state counts.
pub fn series_alphas_one_by_one(
    chain: &Chain,
    rows: &[f64],
    s: usize,
    mut sink: impl FnMut(&[f64]),
) {
    let k = chain.k;
    let n = rows.len() / k;
    if s == 0 || n < s {
        return;
    }
    let row = |r: usize| &rows[r * k..(r + 1) * k];
    // `trajectory[r % s]`: the latest window's α after row r, for the s rows it covers.
    let mut trajectory = vec![0.0; s * k];
    let mut alpha = vec![0.0; k];
    let mut scratch = vec![0.0; k];
    for w in 0..=(n - s) {
        let end = w + s - 1;
        let mut r = w;
        chain.start(&mut alpha, row(w));
        loop {
            let slot = (r % s) * k;
            if r == end {
                trajectory[slot..slot + k].copy_from_slice(&alpha);
                break;
            }
            // For w ≥ 1 the trajectory still holds window w−1's α for rows w−1 … end−1.
            if w > 0 && bits_equal(&alpha, &trajectory[slot..slot + k]) {
                let last = ((end - 1) % s) * k;
                alpha.copy_from_slice(&trajectory[last..last + k]);
                chain.step(&mut alpha, row(end), &mut scratch);
                let end_slot = (end % s) * k;
                trajectory[end_slot..end_slot + k].copy_from_slice(&alpha);
                break;
            }
            trajectory[slot..slot + k].copy_from_slice(&alpha);
            r += 1;
            chain.step(&mut alpha, row(r), &mut scratch);
        }
        sink(&alpha);
    }
}

/// Windows [`series_alphas_lanes`] runs side by side.
const LANES: usize = 4;

/// [`series_alphas`] for `K` states, [`LANES`] consecutive windows at a time; false (nothing
/// appended) if the lengths are not `K`'s.
///
/// One step of the filter waits on the step before (its sums, its division), so one window at a
/// time leaves the core idle most of each step; four windows' steps are independent, and they run
/// side by side in vector registers, each lane doing exactly [`step_k`]'s operations in its order.
/// (Four, not eight: a group runs until its slowest lane has joined, and with eight the wasted
/// steps ate the gain; on EURUSD's 5,000 bars four lanes took the pass from 2.8 to 1.6–1.9 ms.)
/// Every lane runs its window from its own first row until its `α` has the bits of the window
/// before's at the same row (lane 0 compares with the previous group's last window, kept in
/// `trajectory`) or it reaches its last row. After the join, a window's `α` is its predecessor's,
/// row for row, up to the predecessor's last row; its own last row is one step from there. Lanes
/// keep stepping after they have joined (their values stay true), so a later lane always has its
/// predecessor's `α` to compare with. `tests/series.rs` and the unit tests compare the result with
/// the per-window definition and with [`series_alphas_one_by_one`].
// Index loops: lanes × states arrays, read as the formulas are written.
#[allow(clippy::needless_range_loop)]
fn series_alphas_lanes<const K: usize>(
    chain: &Chain,
    rows: &[f64],
    s: usize,
    sink: &mut impl FnMut(&[f64]),
) -> bool {
    let (rows, []) = rows.as_chunks::<K>() else {
        return false;
    };
    let (Some((a, _)), Ok(pi)) = (
        chain.transmat.as_chunks::<K>().0.split_first_chunk::<K>(),
        <&[f64; K]>::try_from(chain.startprob.as_slice()),
    ) else {
        return false;
    };
    let n = rows.len();
    if s == 0 || n < s {
        return true;
    }
    let windows = n + 1 - s;
    // `trajectory[r % s]`: the previous group's last window's α after row r, for its s rows.
    let mut trajectory = vec![[0.0f64; K]; s];
    let mut have_prev = false;
    let lanes_max = LANES.min(s);
    let mut w0 = 0;
    while w0 < windows {
        let lanes = lanes_max.min(windows - w0);
        let last = lanes - 1;
        // α[state][lane]; lanes not started yet hold a harmless distribution.
        let mut alpha = [[1.0 / K as f64; LANES]; K];
        let mut joined = [false; LANES];
        let mut finished = [false; LANES];
        let mut fin = [[0.0f64; K]; LANES];
        // The previous window's α at its last row (row w0 + s − 2).
        let prev_end = if have_prev {
            trajectory[(w0 + s - 2) % s]
        } else {
            [0.0; K]
        };
        let mut r = w0;
        loop {
            let x = &rows[r];
            step_lanes::<K>(a, &mut alpha, x);
            // A lane starting at this row starts instead of stepping.
            if r - w0 < lanes {
                let i = r - w0;
                let mut a0 = [0.0f64; K];
                for k in 0..K {
                    a0[k] = pi[k] * x[k];
                }
                normalise_or_restart(&mut a0, x);
                for k in 0..K {
                    alpha[k][i] = a0[k];
                }
            }
            let mut all_done = true;
            for i in 0..lanes {
                let (start, end) = (w0 + i, w0 + i + s - 1);
                if r < start {
                    all_done = false;
                    continue;
                }
                if r == end {
                    for k in 0..K {
                        fin[i][k] = alpha[k][i];
                    }
                    finished[i] = true;
                }
                if r < end && !joined[i] && !finished[i] {
                    joined[i] = match i {
                        0 => {
                            have_prev
                                && (0..K).all(|k| {
                                    alpha[k][0].to_bits() == trajectory[r % s][k].to_bits()
                                })
                        }
                        _ => (0..K).all(|k| alpha[k][i].to_bits() == alpha[k][i - 1].to_bits()),
                    };
                }
                all_done &= joined[i] || finished[i];
            }
            // The group's last window's α at this row, once the comparisons of this row are made.
            if r >= w0 + last {
                for k in 0..K {
                    trajectory[r % s][k] = alpha[k][last];
                }
            }
            if all_done {
                break;
            }
            r += 1;
        }
        // Lanes that joined before their last row: one step from the predecessor's last α.
        for i in 0..lanes {
            if !finished[i] {
                let mut a_end = if i == 0 { prev_end } else { fin[i - 1] };
                step_k::<K>(&chain.transmat, &mut a_end, &rows[w0 + i + s - 1]);
                fin[i] = a_end;
                trajectory[(w0 + i + s - 1) % s] = a_end;
            }
            sink(&fin[i]);
        }
        have_prev = true;
        w0 += lanes;
    }
    true
}

/// [`step_k`] on every lane of `alpha` (`[state][lane]`) with the same emission row `x`: per lane
/// the same operations in the same order, so the same bits.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn step_lanes<const K: usize>(a: &[[f64; K]; K], alpha: &mut [[f64; LANES]; K], x: &[f64; K]) {
    let mut p = [[0.0f64; LANES]; K];
    for i in 0..K {
        for k in 0..K {
            for l in 0..LANES {
                p[k][l] += alpha[i][l] * a[i][k];
            }
        }
    }
    let mut n = [0.0f64; LANES];
    for k in 0..K {
        for l in 0..LANES {
            p[k][l] *= x[k];
            n[l] += p[k][l];
        }
    }
    let mut z = 0.0;
    for k in 0..K {
        z += x[k];
    }
    for k in 0..K {
        for l in 0..LANES {
            let ok = n[l] > 0.0 && n[l].is_finite();
            alpha[k][l] = if ok { p[k][l] / n[l] } else { x[k] / z };
        }
    }
}

fn bits_equal(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
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

    /// xorshift in [0, 1).
    fn uniform(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A random chain of `k` states (rows of `A` normalised; with `zeros`, some exact zeros in
    /// `π` and `A`) and `n` scaled emission rows (with `zeros`, some emissions exactly 0, so that
    /// restarts happen).
    fn random_case(k: usize, n: usize, zeros: bool, seed: &mut u64) -> (Chain, Vec<f64>) {
        let mut pi: Vec<f64> = (0..k).map(|_| uniform(seed) + 0.01).collect();
        if zeros {
            pi[0] = 0.0;
        }
        let sum: f64 = pi.iter().sum();
        pi.iter_mut().for_each(|p| *p /= sum);
        let mut a = vec![0.0; k * k];
        for i in 0..k {
            // Mildly sticky chains: the filter forgets its start within tens of rows, so windows join.
            for j in 0..k {
                a[i * k + j] = if i == j {
                    1.0 + uniform(seed)
                } else {
                    uniform(seed)
                };
                if zeros && j == (i + 1) % k {
                    a[i * k + j] = 0.0;
                }
            }
            let sum: f64 = a[i * k..(i + 1) * k].iter().sum();
            a[i * k..(i + 1) * k].iter_mut().for_each(|v| *v /= sum);
        }
        let mut rows = Vec::with_capacity(n * k);
        for _ in 0..n {
            let log: Vec<f64> = (0..k)
                .map(|j| {
                    if zeros && uniform(seed) < 0.05 {
                        -1000.0
                    } else {
                        -6.0 * uniform(seed) - if j == 0 { 0.0 } else { 1.0 }
                    }
                })
                .collect();
            rows.extend(scaled_emission_row(&log));
        }
        (Chain::new(&pi, &a), rows)
    }

    fn alpha_bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The lanes, the one-by-one join and the definition (each window filtered from its own
    /// start, [`forward_filter`]) give the same bits for every window, over state counts, window
    /// lengths shorter and longer than the lanes, partial last groups, and restarts.
    #[test]
    fn window_lanes_give_every_windows_own_filter() {
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        for k in [2usize, 3, 5, 8, 9] {
            for (s, n) in [
                (1, 7),
                (3, 40),
                (8, 8),
                (9, 30),
                (20, 205),
                (60, 250),
                (120, 400),
            ] {
                for zeros in [false, true] {
                    let (chain, rows) = random_case(k, n, zeros, &mut seed);
                    let mut lanes = Vec::new();
                    series_alphas(&chain, &rows, s, |a| lanes.push(alpha_bits(a)));
                    let mut plain = Vec::new();
                    series_alphas_one_by_one(&chain, &rows, s, |a| plain.push(alpha_bits(a)));
                    assert_eq!(lanes.len(), n + 1 - s, "k={k} s={s} n={n}");
                    for w in 0..=(n - s) {
                        let own = forward_filter(
                            &rows[w * k..(w + s) * k],
                            k,
                            &chain.startprob,
                            &chain.transmat,
                        );
                        assert_eq!(
                            lanes[w],
                            alpha_bits(&own),
                            "lanes: k={k} s={s} n={n} zeros={zeros} window {w}"
                        );
                        assert_eq!(
                            plain[w], lanes[w],
                            "one by one: k={k} s={s} n={n} window {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn ties_pick_the_lowest_index() {
        assert_eq!(argmax_f64(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax_f64(&[f64::NEG_INFINITY, f64::NEG_INFINITY]), 0);
    }
}
