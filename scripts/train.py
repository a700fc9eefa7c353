"""Train the HMM regime detector and the PPO policy on the in-sample bars (ENV.md §10).

    scripts/.venv/bin/python scripts/train.py --bars data/EURUSD_H1.csv --out build/EURUSD_H1 \
        [--timesteps 300000] [--seed 42] [--in-sample 0.7]

Writes into --out: `ppo.zip` (stable-baselines3), `hmm.pkl` (hmmlearn GaussianHMM, pickled) and
`env_config.json` (the environment parameters, normalisation, HMM scaler, split and seeds) — the three
inputs of export.py. CPU only, one torch thread, fixed seeds: the same command gives the same model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import time
from pathlib import Path

import numpy as np

from oracle_core import Costs, EnvParams, format_time, load_bars, precision_cholesky
from export import full_covariances
from normalization import NORM_CLIP, UNREALIZED_CLIP, compute_normalization, env_section
from oracle_env import DecisionTable, TradingEnv, build_table, hmm_feature_series
from symbols import BY_NAME

EPISODE_LEN = 1024


def take(table: DecisionTable, mask: np.ndarray) -> DecisionTable:
    return DecisionTable(table.bar_index[mask], table.close[mask], table.atr[mask], table.raw[mask], table.regime[mask])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=Path, default=Path("data/EURUSD_H1.csv"))
    ap.add_argument("--symbol", default="EURUSD", help="costs come from symbols.py for this symbol")
    ap.add_argument("--timeframe", default="H1")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--timesteps", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--in-sample", type=float, default=0.7, help="fraction of bars used for training")
    args = ap.parse_args()

    import torch
    from hmmlearn.hmm import GaussianHMM
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    set_random_seed(args.seed)
    started = time.time()

    p = EnvParams()
    costs = Costs.from_json(BY_NAME[args.symbol].training_config())
    bars = load_bars(args.bars)
    n = len(bars)
    n_in = int(n * args.in_sample)
    if n_in < p.window + 100 or n - n_in < 100:
        raise SystemExit(f"{args.bars}: {n} bars are too few for a {args.in_sample:.0%} split with window {p.window}")

    # The normalization of ENV.md §4/§10, by the same function scripts/normalization.py runs for users.
    norm = compute_normalization(bars, p, n_in, NORM_CLIP, UNREALIZED_CLIP)
    # HMM: fitted on the scaled features of the in-sample bars (each feature uses bars i-H … i only).
    series = hmm_feature_series(bars, p)
    scaler_mean, scaler_std = norm["hmm_scaler"]["mean"], norm["hmm_scaler"]["std"]
    scaled = (series - np.array(scaler_mean)) / np.array(scaler_std)
    hmm = GaussianHMM(n_components=p.n_states, covariance_type="full", n_iter=200, tol=1e-4, random_state=args.seed)
    hmm.fit(scaled[p.hmm_lookback : n_in])
    print(f"hmm: converged={hmm.monitor_.converged} iter={hmm.monitor_.iter} loglik={hmm.monitor_.history[-1]:.3f}")
    hmm_model = {
        "means": np.asarray(hmm.means_, dtype=np.float64),
        "prec_chol": precision_cholesky(full_covariances(hmm)),
        "startprob": np.asarray(hmm.startprob_, dtype=np.float64),
        "transmat": np.asarray(hmm.transmat_, dtype=np.float64),
    }

    table = build_table(bars, p, scaled, hmm_model)
    in_mask = table.bar_index < n_in
    train_table = take(table, in_mask)
    norm_mean, norm_std = norm["observation"]["norm"]["mean"], norm["observation"]["norm"]["std"]
    reward_scale = costs.value_per_price * costs.lot_sizes[3] * float(np.median(train_table.atr))
    print(f"features ready in {time.time() - started:.1f}s: {int(in_mask.sum())} in-sample decisions, reward_scale={reward_scale:.4f}")
    print("regime counts in-sample:", np.bincount(train_table.regime, minlength=p.n_states).tolist())

    def make_env():
        return TradingEnv(train_table, p, costs, norm_mean, norm_std, NORM_CLIP, UNREALIZED_CLIP, reward_scale, EPISODE_LEN)

    vec = DummyVecEnv([make_env for _ in range(4)])
    vec.seed(args.seed)
    ppo_kwargs = dict(
        n_steps=512,
        batch_size=256,
        n_epochs=10,
        learning_rate=3e-4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.01,
        policy_kwargs={"net_arch": [64, 64]},
    )
    model = PPO("MlpPolicy", vec, seed=args.seed, device="cpu", verbose=0, **ppo_kwargs)
    model.learn(total_timesteps=args.timesteps)
    print(f"ppo trained {args.timesteps} steps in {time.time() - started:.1f}s total")

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "ppo.zip")
    with open(args.out / "hmm.pkl", "wb") as f:
        pickle.dump(hmm, f)
    first_oos = int(table.bar_index[~in_mask][0])
    config = {
        "symbol": args.symbol,
        "timeframe": args.timeframe,
        "training_config": costs.to_json(),
        "env": {**env_section(p), **norm},
        "training": {
            "data_file": str(args.bars),
            "data_sha256": hashlib.sha256(args.bars.read_bytes()).hexdigest(),
            "bars": n,
            "in_sample": {"bars": [0, n_in - 1], "from": format_time(bars.time[0]), "to": format_time(bars.time[n_in - 1]),
                          "decisions": [p.window - 1, n_in - 1]},
            "out_of_sample": {"bars": [n_in, n - 1], "from": format_time(bars.time[n_in]), "to": format_time(bars.time[n - 1]),
                              "decisions": [first_oos, n - 1], "history_from_bar": n_in - p.window + 1},
            "seeds": {"numpy": args.seed, "torch": args.seed, "hmm": args.seed, "ppo": args.seed},
            "hmm": {"covariance_type": "full", "n_iter": 200, "tol": 1e-4, "converged": bool(hmm.monitor_.converged)},
            "ppo": {"algorithm": "PPO", "policy": "MlpPolicy", "timesteps": args.timesteps, "n_envs": 4,
                    "episode_len": EPISODE_LEN, **{k: v for k, v in ppo_kwargs.items() if k != "policy_kwargs"},
                    "net_arch": [64, 64], "library": "stable-baselines3"},
            "reward": {"kind": "delta_liquidation_equity", "scale": reward_scale,
                       "scale_rule": "pip_value / pip_size * lot_sizes[3] * median in-sample ATR"},
            "train_seconds": round(time.time() - started, 1),
        },
    }
    (args.out / "env_config.json").write_text(json.dumps(config, indent=2))
    print(f"wrote {args.out}/ppo.zip, hmm.pkl, env_config.json")


if __name__ == "__main__":
    main()
