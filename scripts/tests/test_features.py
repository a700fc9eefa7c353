"""ENV.md §4-§5 feature functions against values computed by hand on tiny inputs."""

import math

import numpy as np
import pytest

from oracle_core import (
    EnvParams,
    forward_filter,
    hmm_feature_at,
    log_emission_numpy,
    normalise,
    policy_features,
    precision_cholesky,
    scaled_emission_row,
)

# A 6-bar window with periods small enough to compute by hand.
P = EnvParams(window=6, roc_period=2, atr_period=2, ema_period=3, range_period=3, volume_ma_period=2,
              momentum_period=2, consistency_period=3, hmm_range_period=2, n_states=2)
C = [10.0, 11.0, 10.5, 12.0, 11.0, 13.0]
H = [10.5, 11.5, 11.0, 12.5, 12.0, 13.5]
L = [9.5, 10.0, 10.0, 10.5, 10.5, 11.0]
V = [100.0, 200.0, 0.0, 50.0, 30.0, 90.0]


def test_roc_is_close_over_close_p_bars_back():
    assert policy_features(C, H, L, V, P).roc == pytest.approx(13.0 / 12.0 - 1.0, rel=1e-15)


def test_atr_is_wilder_restarted_at_window_start():
    # TR: j0 = 1.0; j1 = max(1.5, 1.5, 0.0) = 1.5; j2 = max(1.0, 0.0, 1.0) = 1.0;
    # j3 = max(2.0, 2.0, 0.0) = 2.0; j4 = max(1.5, 0.0, 1.5) = 1.5; j5 = max(2.5, 2.5, 0.0) = 2.5
    # ATR1 = (1.0 + 1.5) / 2 = 1.25; ATR2 = 1.125; ATR3 = 1.5625; ATR4 = 1.53125; ATR5 = 2.015625
    f = policy_features(C, H, L, V, P)
    assert f.atr == 2.015625
    assert f.atr_pct == pytest.approx(2.015625 / 13.0, rel=1e-15)


def test_ema_distance_is_in_atr_units():
    # alpha = 0.5: E = 10, 10.5, 10.5, 11.25, 11.125, 12.0625
    f = policy_features(C, H, L, V, P)
    assert f.ema_dist == pytest.approx((13.0 - 12.0625) / 2.015625, rel=1e-15)


def test_range_position_over_last_bars():
    # last 3 bars: hh = 13.5, ll = 10.5
    assert policy_features(C, H, L, V, P).range_pos == pytest.approx((13.0 - 10.5) / 3.0, rel=1e-15)


def test_volume_ratio_against_its_mean():
    # mean of the last 2 volumes = 60
    assert policy_features(C, H, L, V, P).vol_ratio == 1.5


def test_flat_window_takes_every_guarded_branch():
    flat = [1.25] * 6
    f = policy_features(flat, flat, flat, [0.0] * 6, P)
    assert (f.roc, f.atr, f.atr_pct, f.ema_dist, f.range_pos, f.vol_ratio) == (0.0, 0.0, 0.0, 0.0, 0.5, 1.0)
    assert hmm_feature_at(flat, flat, flat, 5, P) == (0.0, 0.0, 0.0)


def test_non_positive_prices_use_the_guards():
    c = [-1.0, -2.0, -3.0, -1.0, -2.0, -4.0]
    h = [x + 0.5 for x in c]
    lo = [x - 0.5 for x in c]
    f = policy_features(c, h, lo, V, P)
    assert f.roc == 0.0 and f.atr_pct == 0.0
    assert f.atr > 0 and f.ema_dist != 0.0
    momentum, _, rng = hmm_feature_at(c, h, lo, 5, P)
    assert momentum == 0.0 and rng == 0.0


def test_hmm_features_by_hand():
    momentum, consistency, rng = hmm_feature_at(C, H, L, 5, P)
    assert momentum == pytest.approx(math.log(13.0 / 12.0), rel=1e-15)
    # signs of c3-c2, c4-c3, c5-c4 = +1, -1, +1
    assert consistency == 1.0 / 3.0
    # bars 4..5: max high 13.5, min low 10.5
    assert rng == pytest.approx(math.log(13.5 / 10.5), rel=1e-15)


def test_normalise_clips():
    assert normalise([10.0, -10.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 2.0], 5.0) == [5.0, -5.0, 0.5]


def _random_hmm(rng, k, d):
    means = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    covars = a @ np.transpose(a, (0, 2, 1)) + 0.5 * np.eye(d)
    start = rng.dirichlet(np.ones(k))
    trans = rng.dirichlet(np.ones(k), size=k)
    return means, covars, start, trans


def test_log_emission_is_the_gaussian_log_density():
    rng = np.random.default_rng(7)
    means, covars, _, _ = _random_hmm(rng, 4, 3)
    x = rng.normal(size=(20, 3))
    got = log_emission_numpy(x, means, precision_cholesky(covars))
    for t in range(20):
        for k in range(4):
            diff = x[t] - means[k]
            expected = -0.5 * (3 * math.log(2 * math.pi) + math.log(np.linalg.det(covars[k]))
                               + diff @ np.linalg.inv(covars[k]) @ diff)
            assert got[t, k] == pytest.approx(expected, rel=1e-10)


def _filter_log_b(log_b, start, trans):
    return forward_filter([scaled_emission_row(row) for row in log_b], list(start), [list(r) for r in trans])


def test_scaled_emission_row_peaks_at_one_and_ignores_a_common_shift():
    row = [-3.0, 2.5, -700.0, 1.0]
    e = scaled_emission_row(row)
    assert e[1] == 1.0 and max(e) == 1.0
    assert e == [math.exp(-5.5), 1.0, math.exp(-702.5), math.exp(-1.5)]
    assert scaled_emission_row([x - 1000.0 for x in row]) == pytest.approx(e, rel=1e-12)


def test_forward_filter_two_states_by_hand():
    # pi = [0.6, 0.4], A = [[0.7, 0.3], [0.2, 0.8]], b_0 = [0.5, 0.1], b_1 = [0.2, 0.6].
    # e_0 = b_0 / 0.5 = [1, 0.2]; alpha_0 = [0.6, 0.08] / 0.68.
    # e_1 = b_1 / 0.6 = [1/3, 1]; p = alpha_0 A = [(0.42 + 0.016), (0.18 + 0.064)] / 0.68
    # alpha_1 ∝ [0.436 / 3, 0.244] -> [0.436 / (0.436 + 0.732), 0.732 / (0.436 + 0.732)].
    log_b = [[math.log(0.5), math.log(0.1)], [math.log(0.2), math.log(0.6)]]
    regime, post = _filter_log_b(log_b, [0.6, 0.4], [[0.7, 0.3], [0.2, 0.8]])
    assert post == pytest.approx([0.436 / 1.168, 0.732 / 1.168], rel=1e-14)
    assert regime == 1
    # A single observation: the posterior is the normalised pi * b_0.
    regime0, post0 = _filter_log_b(log_b[:1], [0.6, 0.4], [[0.7, 0.3], [0.2, 0.8]])
    assert post0 == pytest.approx([0.6 / 0.68, 0.08 / 0.68], rel=1e-14) and regime0 == 0


def test_forward_filter_restarts_from_the_emission_when_every_path_is_impossible():
    # State 1 is unreachable (pi_1 = 0, A[0,1] = 0) and state 0's emission underflows to exactly 0:
    # the normaliser is 0, so the filter restarts from the emission alone.
    start, trans = [1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]
    regime, post = _filter_log_b([[-1000.0, 0.0]], start, trans)
    assert (regime, post) == (1, [0.0, 1.0])
    # The same at a later step: alpha_0 = [1, 0]; step 1 kills state 0 and cannot reach state 1.
    regime, post = _filter_log_b([[0.0, 0.0], [-1000.0, 0.0], [0.0, math.log(0.5)]], start, trans)
    assert regime == 1 and post == [0.0, 1.0]
    # Without the zeros nothing restarts: the posterior keeps pi's mass on state 0 at step 0.
    regime, post = _filter_log_b([[0.0, math.log(0.25)]], [0.5, 0.5], trans)
    assert regime == 0 and post == pytest.approx([0.8, 0.2], rel=1e-15)


def _logsumexp(values):
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


def _log_space_filter(log_b, start, trans):
    """The previous normative definition (log space), kept here as an independent check."""
    with np.errstate(divide="ignore"):
        ls, lt = np.log(start).tolist(), np.log(trans).tolist()
    k = len(start)
    a = [ls[i] + log_b[0][i] for i in range(k)]
    a = [x - _logsumexp(a) for x in a]
    for row in log_b[1:]:
        nxt = [_logsumexp([a[i] + lt[i][j] for i in range(k)]) + row[j] for j in range(k)]
        a = [x - _logsumexp(nxt) for x in nxt]
    return a


def test_forward_filter_argmax_agrees_with_the_log_space_recursion():
    rng = np.random.default_rng(23)
    compared = near_ties = 0
    for trial in range(300):
        k = int(rng.integers(2, 7))
        _, _, start, trans = _random_hmm(rng, k, 3)
        if trial % 3 == 0:
            trans[0, k - 1] = 0.0  # zero transitions as fitted HMMs may have
            trans /= trans.sum(axis=1, keepdims=True)
        log_b = rng.normal(scale=float(rng.choice([1.0, 5.0, 40.0])), size=(int(rng.integers(1, 120)), k)).tolist()
        regime, post = _filter_log_b(log_b, start, trans)
        ref = _log_space_filter(log_b, start, trans)
        assert sum(post) == pytest.approx(1.0, rel=1e-12)
        np.testing.assert_allclose(post, np.exp(ref), rtol=1e-9, atol=1e-12)
        top = sorted(ref, reverse=True)
        if top[0] - top[1] < 1e-9:
            near_ties += 1
            continue
        compared += 1
        assert regime == int(np.argmax(ref)), f"trial {trial}"
    assert compared > 250 and near_ties < 10


def test_forward_filter_matches_probability_space_recursion():
    rng = np.random.default_rng(11)
    k = 5
    _, _, start, trans = _random_hmm(rng, k, 3)
    trans[0, 1] = 0.0  # a zero transition: ln 0 = -inf must be handled
    trans /= trans.sum(axis=1, keepdims=True)
    log_b = rng.normal(scale=3.0, size=(60, k))
    alpha = start * np.exp(log_b[0])
    alpha /= alpha.sum()
    for s in range(1, 60):
        alpha = (alpha @ trans) * np.exp(log_b[s])
        alpha /= alpha.sum()
    regime, post = _filter_log_b(log_b.tolist(), start.tolist(), trans.tolist())
    assert regime == int(np.argmax(alpha))
    np.testing.assert_allclose(post, alpha, rtol=1e-9, atol=1e-15)
