"""ENV.md §4-§5 feature functions against values computed by hand on tiny inputs."""

import math

import numpy as np
import pytest

from oracle_core import (
    EnvParams,
    forward_filter,
    hmm_feature_at,
    log_emission_numpy,
    logsumexp,
    normalise,
    policy_features,
    precision_cholesky,
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


def test_logsumexp_handles_minus_infinity():
    assert logsumexp([-math.inf, -math.inf]) == -math.inf
    assert logsumexp([0.0, -math.inf]) == 0.0
    assert logsumexp([math.log(0.25), math.log(0.75)]) == pytest.approx(0.0, abs=1e-15)


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
    with np.errstate(divide="ignore"):
        regime, post = forward_filter(log_b.tolist(), np.log(start).tolist(), np.log(trans).tolist())
    assert regime == int(np.argmax(alpha))
    np.testing.assert_allclose(np.exp(post), alpha, rtol=1e-9, atol=1e-15)
