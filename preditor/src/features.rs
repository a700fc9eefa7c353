//! Features (ENV.md §4-§5) as pure f64 functions over one window.
//!
//! Nothing is carried across windows: the ATR and EMA restart at the window start on purpose, so that a
//! decision depends only on the trailing `W` bars (the training environment computes them the same way).

use crate::bars::Bar;

/// Periods of the policy features (`rl_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyPeriods {
    pub roc: usize,
    pub atr: usize,
    pub ema: usize,
    pub range: usize,
    pub volume_ma: usize,
}

/// Periods of the HMM features (`hmm_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HmmPeriods {
    pub momentum: usize,
    pub consistency: usize,
    pub range: usize,
}

impl HmmPeriods {
    /// `H`: the look-back each HMM observation needs.
    pub fn lookback(&self) -> usize {
        self.momentum.max(self.consistency).max(self.range)
    }
}

/// The raw policy feature vector `r` (ENV.md §4) plus the ATR the observation's unrealised term uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyFeatures {
    /// `[roc, atr_pct, ema_dist, range_pos, vol_ratio]`.
    pub raw: [f64; 5],
    /// `ATR_{W−1}` in price units.
    pub atr: f64,
}

/// Wilder's ATR restarted at the window start (ENV.md §4.2). Needs `period ≤ window.len()`.
pub fn wilder_atr(window: &[Bar], period: usize) -> f64 {
    let tr = |j: usize| -> f64 {
        let b = &window[j];
        if j == 0 {
            b.high - b.low
        } else {
            let pc = window[j - 1].close;
            (b.high - b.low)
                .max((b.high - pc).abs())
                .max((b.low - pc).abs())
        }
    };
    let mut sum = 0.0;
    for j in 0..period {
        sum += tr(j);
    }
    let p = period as f64;
    let mut atr = sum / p;
    for j in period..window.len() {
        atr += (tr(j) - atr) / p;
    }
    atr
}

/// EMA of closes restarted at the window start (ENV.md §4.3): `E_{W−1}`.
pub fn ema_close(window: &[Bar], period: usize) -> f64 {
    let alpha = 2.0 / (period as f64 + 1.0);
    let mut e = window[0].close;
    for b in &window[1..] {
        e += alpha * (b.close - e);
    }
    e
}

/// The five policy features of the window ending at its last bar. `window` must hold `W` bars and every
/// period must be `< W` (the model loader guarantees both).
pub fn policy_features(window: &[Bar], p: &PolicyPeriods) -> PolicyFeatures {
    let atr = wilder_atr(window, p.atr);
    let ema = ema_close(window, p.ema);
    policy_features_with(window, atr, ema, p)
}

/// [`policy_features`] given the window's `ATR_{W−1}` and `E_{W−1}` (computed by [`wilder_atr`] and
/// [`ema_close`], or by the incremental forms below, which give the same bits).
pub fn policy_features_with(
    window: &[Bar],
    atr: f64,
    ema: f64,
    p: &PolicyPeriods,
) -> PolicyFeatures {
    let n = window.len();
    let last = n - 1;
    let c = window[last].close;

    let c_ref = window[last - p.roc].close;
    let roc = if c_ref > 0.0 { c / c_ref - 1.0 } else { 0.0 };

    let atr_pct = if c > 0.0 { atr / c } else { 0.0 };

    let ema_dist = if atr > 0.0 { (c - ema) / atr } else { 0.0 };

    let recent = &window[n - p.range..];
    let hh = recent
        .iter()
        .map(|b| b.high)
        .fold(f64::NEG_INFINITY, f64::max);
    let ll = recent.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
    let range_pos = if hh > ll { (c - ll) / (hh - ll) } else { 0.5 };

    // Tick volumes are whole numbers, exact in f64 below 2^53.
    let mut vsum = 0.0;
    for b in &window[n - p.volume_ma..] {
        vsum += b.volume as f64;
    }
    let m = vsum / p.volume_ma as f64;
    let vol_ratio = if m > 0.0 {
        window[last].volume as f64 / m
    } else {
        1.0
    };

    PolicyFeatures {
        raw: [roc, atr_pct, ema_dist, range_pos, vol_ratio],
        atr,
    }
}

/// `TR_j` for `j ≥ 1` (ENV.md §4.2): depends only on the bar and the close before it.
fn true_range(bar: &Bar, prev_close: f64) -> f64 {
    (bar.high - bar.low)
        .max((bar.high - prev_close).abs())
        .max((bar.low - prev_close).abs())
}

/// `(ATR_{m−1}, E_{m−1})` of the window positions `0 … m−1` held in `head` (`m = head.len() ≥ P_atr`):
/// the first `m` steps of [`wilder_atr`] and [`ema_close`], in their order. [`atr_ema_step`] adds a bar.
pub fn atr_ema_head(head: &[Bar], p: &PolicyPeriods) -> (f64, f64) {
    let period = p.atr as f64;
    // From 0.0 as in `wilder_atr` (0.0 + x is not x for x = −0.0).
    let mut sum = 0.0;
    sum += head[0].high - head[0].low;
    for j in 1..p.atr {
        sum += true_range(&head[j], head[j - 1].close);
    }
    let mut atr = sum / period;
    for j in p.atr..head.len() {
        atr += (true_range(&head[j], head[j - 1].close) - atr) / period;
    }
    let alpha = 2.0 / (p.ema as f64 + 1.0);
    let mut e = head[0].close;
    for b in &head[1..] {
        e += alpha * (b.close - e);
    }
    (atr, e)
}

/// One more window position (`j ≥ P_atr`, `j ≥ 1`) of the ATR and EMA recursions.
pub fn atr_ema_step(
    (atr, ema): (f64, f64),
    bar: &Bar,
    prev_close: f64,
    p: &PolicyPeriods,
) -> (f64, f64) {
    let alpha = 2.0 / (p.ema as f64 + 1.0);
    (
        atr + (true_range(bar, prev_close) - atr) / p.atr as f64,
        ema + alpha * (bar.close - ema),
    )
}

/// Windows evaluated together by [`atr_ema_windows`]: independent recursions side by side, so the
/// divisions and adds of eight windows overlap instead of waiting on one another.
const LANES: usize = 8;

/// `(ATR_{W−1}, E_{W−1})` of every window of `w` bars over `bars` (window `i` = `bars[i … i+w−1]`,
/// `i = 0 … len−w`), appended to `out`: the same operations as [`wilder_atr`] and [`ema_close`] on each
/// window, in the same order (each lane is one window), so the same bits.
pub fn atr_ema_windows(bars: &[Bar], w: usize, p: &PolicyPeriods, out: &mut Vec<(f64, f64)>) {
    if bars.len() < w || w == 0 {
        return;
    }
    let windows = bars.len() - w + 1;
    // Per-bar inputs, padded so the last lanes may read past the end (their results are dropped).
    let pad = LANES - 1;
    let mut hl = Vec::with_capacity(bars.len() + pad);
    let mut tr = Vec::with_capacity(bars.len() + pad);
    let mut close = Vec::with_capacity(bars.len() + pad);
    for (i, b) in bars.iter().enumerate() {
        hl.push(b.high - b.low);
        tr.push(if i == 0 {
            0.0
        } else {
            true_range(b, bars[i - 1].close)
        });
        close.push(b.close);
    }
    for v in [&mut hl, &mut tr, &mut close] {
        let last = v[v.len() - 1];
        v.resize(v.len() + pad, last);
    }
    let lanes = |v: &[f64], at: usize| -> [f64; LANES] {
        let mut a = [0.0; LANES];
        a.copy_from_slice(&v[at..at + LANES]);
        a
    };
    let period = p.atr as f64;
    let alpha = 2.0 / (p.ema as f64 + 1.0);
    out.reserve(windows);
    for base in (0..windows).step_by(LANES) {
        let mut sum = [0.0; LANES];
        let first = lanes(&hl, base);
        for l in 0..LANES {
            sum[l] += first[l];
        }
        for j in 1..p.atr {
            let t = lanes(&tr, base + j);
            for l in 0..LANES {
                sum[l] += t[l];
            }
        }
        let mut atr = sum.map(|s| s / period);
        let mut ema = lanes(&close, base);
        for j in 1..w {
            let c = lanes(&close, base + j);
            for l in 0..LANES {
                ema[l] += alpha * (c[l] - ema[l]);
            }
            if j >= p.atr {
                let t = lanes(&tr, base + j);
                for l in 0..LANES {
                    atr[l] += (t[l] - atr[l]) / period;
                }
            }
        }
        for l in 0..LANES.min(windows - base) {
            out.push((atr[l], ema[l]));
        }
    }
}

/// `z = clip((r − μ) / σ, −C, C)` (ENV.md §4, normalisation).
pub fn normalise(raw: &[f64; 5], mean: &[f64; 5], std: &[f64; 5], clip: f64) -> [f64; 5] {
    let mut z = [0.0; 5];
    for i in 0..5 {
        z[i] = ((raw[i] - mean[i]) / std[i]).clamp(-clip, clip);
    }
    z
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Unscaled HMM features `[momentum, consistency, range]` at window position `j` (needs `j ≥ H`).
pub fn hmm_features_at(window: &[Bar], j: usize, p: &HmmPeriods) -> [f64; 3] {
    let c = window[j].close;
    let c_ref = window[j - p.momentum].close;
    let momentum = if c > 0.0 && c_ref > 0.0 {
        (c / c_ref).ln()
    } else {
        0.0
    };

    let mut signs = 0.0;
    for i in (j + 1 - p.consistency)..=j {
        signs += sign(window[i].close - window[i - 1].close);
    }
    // ENV.md §5: the sum divided by P (not multiplied by 1/P, which rounds differently).
    let consistency = signs / p.consistency as f64;

    let span = &window[j + 1 - p.range..=j];
    let hh = span
        .iter()
        .map(|b| b.high)
        .fold(f64::NEG_INFINITY, f64::max);
    let ll = span.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
    let range = if ll > 0.0 { (hh / ll).ln() } else { 0.0 };

    [momentum, consistency, range]
}

/// The scaled HMM observations `x_s`, `s = 0 … W−H−1`, row-major `[S, 3]` (ENV.md §5).
pub fn hmm_observations(
    window: &[Bar],
    p: &HmmPeriods,
    mean: &[f64; 3],
    std: &[f64; 3],
) -> Vec<f64> {
    let h = p.lookback();
    let mut xs = Vec::with_capacity((window.len() - h) * 3);
    for j in h..window.len() {
        let f = hmm_features_at(window, j, p);
        for d in 0..3 {
            xs.push((f[d] - mean[d]) / std[d]);
        }
    }
    xs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bar(i: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar {
            time: i * 3600,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v as u64,
        }
    }

    const SMALL: PolicyPeriods = PolicyPeriods {
        roc: 2,
        atr: 2,
        ema: 3,
        range: 2,
        volume_ma: 2,
    };

    /// Four bars, every value worked out by hand below.
    fn four() -> Vec<Bar> {
        vec![
            bar(0, 10.0, 11.0, 9.0, 10.0, 100.0),
            bar(1, 10.0, 12.0, 10.0, 12.0, 200.0),
            bar(2, 12.0, 13.0, 11.0, 11.0, 300.0),
            bar(3, 11.0, 14.0, 11.0, 14.0, 100.0),
        ]
    }

    #[test]
    fn policy_features_match_hand_computation() {
        let f = policy_features(&four(), &SMALL);
        // roc: 14 / c[1]=12 − 1
        assert!((f.raw[0] - (14.0 / 12.0 - 1.0)).abs() < 1e-15);
        // TR = [2, max(2,2,0)=2, max(2,1,1)=2, max(3,3,0)=3]; ATR_1 = 2; ATR_2 = 2; ATR_3 = 2 + (3−2)/2 = 2.5
        assert_eq!(f.atr, 2.5);
        assert!((f.raw[1] - 2.5 / 14.0).abs() < 1e-15);
        // EMA α = 0.5: 10 → 11 → 11 → 12.5; ema_dist = (14 − 12.5) / 2.5 = 0.6
        assert!((f.raw[2] - 0.6).abs() < 1e-15);
        // last 2 bars: hh 14, ll 11 → (14−11)/3 = 1
        assert_eq!(f.raw[3], 1.0);
        // volume: m = (300+100)/2 = 200 → 100/200
        assert_eq!(f.raw[4], 0.5);
    }

    #[test]
    fn flat_and_degenerate_windows_take_the_guarded_branches() {
        let flat: Vec<Bar> = (0..6).map(|i| bar(i, 1.0, 1.0, 1.0, 1.0, 0.0)).collect();
        let f = policy_features(&flat, &SMALL);
        assert_eq!(f.raw, [0.0, 0.0, 0.0, 0.5, 1.0]);
        let hp = HmmPeriods {
            momentum: 2,
            consistency: 2,
            range: 2,
        };
        assert_eq!(hmm_features_at(&flat, 3, &hp), [0.0, 0.0, 0.0]);
        let negative: Vec<Bar> = (0..6)
            .map(|i| bar(i, -2.0, -1.0, -3.0, -2.0, 1.0))
            .collect();
        let f = policy_features(&negative, &SMALL);
        assert_eq!(f.raw[0], 0.0);
        assert_eq!(f.raw[1], 0.0);
        let h = hmm_features_at(&negative, 3, &hp);
        assert_eq!((h[0], h[2]), (0.0, 0.0));
    }

    #[test]
    fn hmm_features_match_hand_computation() {
        let hp = HmmPeriods {
            momentum: 2,
            consistency: 3,
            range: 2,
        };
        let w = four();
        let f = hmm_features_at(&w, 3, &hp);
        assert_eq!(f[0], (14.0f64 / 12.0).ln());
        // signs of 12−10, 11−12, 14−11 = +1 −1 +1 → 1/3
        assert_eq!(f[1], 1.0 / 3.0);
        assert_eq!(f[2], (14.0f64 / 11.0).ln());
        let xs = hmm_observations(&w, &hp, &[0.0, 1.0, 0.0], &[1.0, 2.0, 1.0]);
        assert_eq!(xs.len(), 3);
        assert_eq!(xs[1], (f[1] - 1.0) / 2.0);
    }

    #[test]
    fn normalise_clips() {
        let z = normalise(
            &[10.0, -10.0, 1.0, 0.0, 2.0],
            &[0.0; 5],
            &[1.0, 1.0, 2.0, 1.0, 1.0],
            5.0,
        );
        assert_eq!(z, [5.0, -5.0, 0.5, 0.0, 2.0]);
    }

    fn arb_window(len: usize) -> impl Strategy<Value = Vec<Bar>> {
        prop::collection::vec(
            (
                0.01f64..1000.0,
                0.0f64..10.0,
                0.0f64..10.0,
                0.0f64..1.0,
                0.0f64..1e6,
            ),
            len,
        )
        .prop_map(|rows| {
            rows.iter()
                .enumerate()
                .map(|(i, &(o, up, down, frac, v))| {
                    let c = (o + (up + down) * frac - down).max(0.001);
                    let hi = o.max(c) + up;
                    let lo = o.min(c) - down;
                    bar(i as i64, o, hi, lo, c, v)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn policy_features_are_finite_and_range_pos_is_a_fraction(w in arb_window(40)) {
            let p = PolicyPeriods { roc: 10, atr: 14, ema: 30, range: 20, volume_ma: 20 };
            let f = policy_features(&w, &p);
            prop_assert!(f.raw.iter().all(|x| x.is_finite()), "{:?}", f.raw);
            prop_assert!((0.0..=1.0).contains(&f.raw[3]), "range_pos {}", f.raw[3]);
            prop_assert!(f.atr >= 0.0);
            prop_assert!(f.raw[4] >= 0.0);
        }

        #[test]
        fn hmm_features_are_finite_and_bounded(w in arb_window(40)) {
            let hp = HmmPeriods { momentum: 12, consistency: 12, range: 20 };
            for j in hp.lookback()..w.len() {
                let f = hmm_features_at(&w, j, &hp);
                prop_assert!(f.iter().all(|x| x.is_finite()), "{:?}", f);
                prop_assert!((-1.0..=1.0).contains(&f[1]));
            }
        }

        #[test]
        fn flat_windows_of_any_price_take_the_guarded_values(price in -100.0f64..100.0, n in 21usize..60) {
            let w: Vec<Bar> = (0..n).map(|i| bar(i as i64, price, price, price, price, 0.0)).collect();
            let p = PolicyPeriods { roc: 10, atr: 14, ema: 30, range: 20, volume_ma: 20 };
            let f = policy_features(&w, &p);
            prop_assert_eq!(f.atr, 0.0);
            prop_assert_eq!(&f.raw[1..], &[0.0, 0.0, 0.5, 1.0][..]);
            let hp = HmmPeriods { momentum: 12, consistency: 12, range: 20 };
            let h = hmm_features_at(&w, n - 1, &hp);
            prop_assert_eq!(h[1], 0.0);
            prop_assert_eq!(h[2], 0.0);
            prop_assert_eq!(h[0], 0.0);
        }

        #[test]
        fn features_depend_only_on_the_window(w in arb_window(50), extra in arb_window(10)) {
            // Prepending unrelated history must not change a window's features.
            let p = PolicyPeriods { roc: 10, atr: 14, ema: 30, range: 20, volume_ma: 20 };
            let mut longer = extra.clone();
            longer.extend_from_slice(&w);
            let tail = &longer[longer.len() - w.len()..];
            prop_assert_eq!(policy_features(&w, &p), policy_features(tail, &p));
        }
    }
}
