"""The reference TradingEnv (gymnasium) of scripts/ENV.md, used for training.

Per-bar features and regimes are pure functions of each bar's window (ENV.md §3-§5), so for speed the
env precomputes them once per bar with the very functions of oracle_core (`DecisionTable`); the
position, observation and reward are stepped live. `reference.py backtest` does not use this table: it
recomputes every decision from its window through the model zip's ONNX graphs.

Reward (ENV.md §10, Python only): the change of marked-to-market liquidation equity from one decision
bar to the next — realised PnL plus what closing the open position at the bar's close would yield, net
of spread, slippage and commission — divided by `reward_scale` (account currency). Summed over an
episode it is the episode's final liquidation equity / reward_scale, so the agent is paid exactly the
PnL the twin reports, costs included.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from oracle_core import (
    ACTIONS,
    Bars,
    Costs,
    EnvParams,
    params_from_metadata,
    precision_cholesky,
    VirtualPosition,
    build_observation,
    forward_filter,
    hmm_feature_at,
    log_emission_numpy,
    normalise,
    policy_features,
    scaled_emission_row,
)


@dataclass
class DecisionTable:
    """Per decision bar t = W-1 … n-1: close, atr, raw policy features and regime."""

    bar_index: np.ndarray  # [N] index into the bars
    close: np.ndarray  # [N]
    atr: np.ndarray  # [N]
    raw: np.ndarray  # [N,5]
    regime: np.ndarray  # [N]


def hmm_feature_series(bars: Bars, p: EnvParams) -> np.ndarray:
    """Raw HMM features of every bar i >= H (rows 0 … H-1 are NaN): the same values at the same bar in
    every window, since each uses only bars i-H … i."""
    out = np.full((len(bars), 3), np.nan)
    for i in range(p.hmm_lookback, len(bars)):
        out[i] = hmm_feature_at(bars.close, bars.high, bars.low, i, p)
    return out


def raw_policy_table(bars: Bars, p: EnvParams) -> tuple[np.ndarray, np.ndarray]:
    """Raw policy features and ATR of every decision bar, each from its own window."""
    n = len(bars) - p.window + 1
    raw = np.empty((n, 5))
    atr = np.empty(n)
    for k in range(n):
        s, e = k, k + p.window
        f = policy_features(bars.close[s:e], bars.high[s:e], bars.low[s:e], bars.volume[s:e], p)
        raw[k] = f.raw
        atr[k] = f.atr
    return raw, atr


def regimes(
    scaled_hmm: np.ndarray,
    means: np.ndarray,
    prec_chol: np.ndarray,
    startprob: np.ndarray,
    transmat: np.ndarray,
    p: EnvParams,
) -> np.ndarray:
    """Filtered-posterior regime of every decision bar, restarting the filter at each window (§5). The
    scaled emissions e_s depend only on their bar, so they are computed once per bar and shared."""
    log_b = log_emission_numpy(np.nan_to_num(scaled_hmm), means, prec_chol).tolist()
    e_rows = [scaled_emission_row(row) for row in log_b]
    start = [float(x) for x in startprob]
    trans = [[float(x) for x in row] for row in transmat]
    n = len(scaled_hmm) - p.window + 1
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        t = k + p.window - 1
        out[k] = forward_filter(e_rows[t - p.window + 1 + p.hmm_lookback : t + 1], start, trans)[0]
    return out


def build_table(bars: Bars, p: EnvParams, hmm_scaled: np.ndarray, hmm_model: dict) -> DecisionTable:
    raw, atr = raw_policy_table(bars, p)
    reg = regimes(hmm_scaled, hmm_model["means"], hmm_model["prec_chol"], hmm_model["startprob"], hmm_model["transmat"], p)
    idx = np.arange(p.window - 1, len(bars))
    close = np.asarray(bars.close, dtype=np.float64)[idx]
    return DecisionTable(idx, close, atr, raw, reg)


def hmm_model_from_metadata(meta: dict) -> dict:
    """The HMM parameters a model zip's metadata carries (hmm.means / hmm.covars are informational there)."""
    h = meta["hmm"]
    return {
        "means": np.asarray(h["means"], dtype=np.float64),
        "prec_chol": precision_cholesky(np.asarray(h["covars"], dtype=np.float64)),
        "startprob": np.asarray(h["startprob"], dtype=np.float64),
        "transmat": np.asarray(h["transmat"], dtype=np.float64),
    }


def env_from_metadata(bars: Bars, meta: dict, reward_scale: float, episode_len: int | None = None) -> "TradingEnv":
    """A TradingEnv over `bars` with a model zip's parameters (for evaluation and tests)."""
    p = params_from_metadata(meta)
    scaler = meta["hmm"]["scaler"]
    scaled = (hmm_feature_series(bars, p) - np.array(scaler["mean"])) / np.array(scaler["std"])
    table = build_table(bars, p, scaled, hmm_model_from_metadata(meta))
    obs = meta["observation"]
    return TradingEnv(table, p, Costs.from_json(meta["training_config"]), obs["norm"]["mean"], obs["norm"]["std"],
                      obs["norm"]["clip"], obs["unrealized_clip"], reward_scale, episode_len)


class TradingEnv(gym.Env):
    """Observation ENV.md §7, the seed's 7 actions, position logic of VirtualPosition, reward §10.

    An episode covers `episode_len` consecutive decision bars from a random start (seeded through
    `reset(seed=…)`), flat at the start; `episode_len=None` runs the whole table from its first bar.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        table: DecisionTable,
        p: EnvParams,
        costs: Costs,
        norm_mean: list[float],
        norm_std: list[float],
        norm_clip: float,
        unrealized_clip: float,
        reward_scale: float,
        episode_len: int | None = None,
    ):
        super().__init__()
        self.table, self.p, self.costs = table, p, costs
        self.z = np.array([normalise(r, norm_mean, norm_std, norm_clip) for r in table.raw.tolist()])
        self.unrealized_clip = unrealized_clip
        self.reward_scale = reward_scale
        self.episode_len = episode_len
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(p.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        self._k = 0
        self._end = 0
        self._position = VirtualPosition(costs)

    def _obs(self) -> np.ndarray:
        k, pos = self._k, self._position
        close, atr = float(self.table.close[k]), float(self.table.atr[k])
        u = pos.unrealized_feature(close, atr, self.unrealized_clip)
        return build_observation(self.z[k].tolist(), int(self.table.regime[k]), self.p.n_states, pos.direction, pos.intensity, u)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        n = len(self.table.close)
        if self.episode_len is None or self.episode_len >= n:
            self._k, self._end = 0, n - 1
        else:
            self._k = int(self.np_random.integers(0, n - self.episode_len))
            self._end = self._k + self.episode_len
        self._position = VirtualPosition(self.costs)
        return self._obs(), {}

    def step(self, action: int):
        _, d, q = ACTIONS[int(action)]
        pos = self._position
        close = float(self.table.close[self._k])
        before = pos.liquidation_equity(close)
        pos.execute(d, q, close)
        self._k += 1
        after = pos.liquidation_equity(float(self.table.close[self._k]))
        reward = (after - before) / self.reward_scale
        terminated = self._k >= self._end
        info = {"realized": pos.realized, "equity": after}
        return self._obs(), float(reward), terminated, False, info
