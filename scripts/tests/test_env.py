"""The training TradingEnv (precomputed per-bar table) agrees with the reference twin on a golden set,
and its rewards add up to the PnL the twin reports."""

import csv
import json
import math
from pathlib import Path

import numpy as np

from oracle_core import load_bars
from oracle_env import env_from_metadata
from oracle_core import read_model_zip

ROOT = Path(__file__).resolve().parents[2]
CASE = Path(__file__).resolve().parent / "golden" / "EURUSD_H1"


def test_env_steps_like_the_reference_twin():
    info = json.loads((CASE / "case.json").read_text())
    meta, _ = read_model_zip(ROOT / info["model"])
    bars = load_bars(CASE / "bars.csv")
    with open(CASE / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    scale = 7.0
    env = env_from_metadata(bars, meta, reward_scale=scale)
    obs, _ = env.reset(seed=0)
    assert len(env.table.close) == len(rows)
    np.testing.assert_array_equal(env.table.regime, [int(r["regime"]) for r in rows])
    total = 0.0
    for k, row in enumerate(rows):
        expected_obs = np.array([float(row[f"obs{i}"]) for i in range(len(obs))], dtype=np.float32)
        np.testing.assert_array_equal(obs, expected_obs, err_msg=row["time"])
        if k == len(rows) - 1:
            break
        obs, reward, terminated, truncated, step_info = env.step(int(row["action"]))
        total += reward
        assert math.isclose(step_info["realized"], float(row["virtual_pnl"]), rel_tol=1e-9, abs_tol=1e-9), row["time"]
        assert terminated == (k == len(rows) - 2) and not truncated
    # Rewards telescope to the final liquidation equity (realised + closing the open position now).
    assert math.isclose(total * scale, step_info["equity"], rel_tol=1e-9, abs_tol=1e-9)


def test_random_episodes_stay_inside_the_table():
    info = json.loads((CASE / "case.json").read_text())
    meta, _ = read_model_zip(ROOT / info["model"])
    env = env_from_metadata(load_bars(CASE / "bars.csv"), meta, reward_scale=7.0, episode_len=50)
    env.action_space.seed(1)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        steps, done = 0, False
        while not done:
            obs, _, done, _, _ = env.step(env.action_space.sample())
            steps += 1
        assert steps == 50
