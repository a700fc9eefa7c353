"""Regenerate scripts/tests/fixtures/foreign/: models trained by real stable-baselines3 and hmmlearn outside
train.py, and what SB3 and hmmlearn themselves decide with them. Needs the training venv:

    scripts/setup_venv.sh --train && scripts/.venv/bin/python scripts/make_fixtures.py      # ~2 min, 2 cores

The CI tests (scripts/tests/test_foreign.py, preditor/tests/foreign_models.rs) convert these files with
export.py (no torch) and must reproduce the recorded decisions, so they check on every run that an SB3 +
hmmlearn pair converts exactly. Contents:
- `env_config_k3.json`, `env_config_k7.json`: normalization.py's config over the first 3,500 bars of
  data/EURUSD_H1.csv (+ EURUSD's demo training_config), for 3 and 7 HMM states;
- `hmm_k{3,7}_{full,diag,spherical,tied}.pkl`: hmmlearn GaussianHMMs fitted on the scaled in-sample features;
- `ppo_mlp_k3.zip` (default MlpPolicy, Tanh, [64, 64]), `ppo_relu_k7.zip` (ReLU, pi [128, 64], vf [64, 64]),
  `ppo_vecnorm_k3.zip` + `vecnormalize_k3.pkl` (default MlpPolicy inside VecNormalize(norm_obs, norm_reward,
  clip_obs 10)), briefly trained with PPO on oracle_env.TradingEnv;
- error cases: `ppo_5actions.zip` (a real SB3 policy with Discrete(5)), `hmm_4features.pkl`;
- `bars.csv`: bars 3151-4099 (600 out-of-sample decisions after 349 bars of history);
- `expected/<case>.csv`: the backtest decided natively — ENV.md's features (oracle_core), the regime from
  hmmlearn's own forward pass (`_compute_log_likelihood` + `_hmmc.forward_log`, argmax of the last row),
  the action from SB3's `model.predict(obs, deterministic=True)` (after `VecNormalize.normalize_obs`) —
  in reference.py's layout;
- `sb3.npz`: per policy, observations (those of the backtests plus random ones in ENV.md §7's layout) with
  SB3's actions, the raw action_net logits from torch and, for VecNormalize, SB3's normalized observation;
- `hmmlearn.npz`: scaled feature rows `x` and, per HMM, hmmlearn's `_compute_log_likelihood` of them.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np

from normalization import build_config
from oracle_core import (
    ACTION_NAMES,
    ACTIONS,
    Costs,
    EnvParams,
    VirtualPosition,
    build_observation,
    format_time,
    load_bars,
    normalise,
    policy_features,
    precision_cholesky,
    scale_hmm_features,
    window_hmm_features,
    write_bars,
)
from oracle_env import TradingEnv, build_table, hmm_feature_series
from export import full_covariances
from symbols import BY_NAME

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "scripts" / "tests" / "fixtures" / "foreign"
BARS = ROOT / "data" / "EURUSD_H1.csv"
N_IN = 3500
FIRST, LAST = N_IN - 349, N_IN + 600 - 1
COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
TIMESTEPS = 4096
SEED = 11


def main() -> None:
    import torch
    from hmmlearn import _hmmc
    from hmmlearn.hmm import GaussianHMM
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    import gymnasium as gym
    import hmmlearn
    import stable_baselines3

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "expected").mkdir(exist_ok=True)
    bars = load_bars(BARS)
    costs_json = BY_NAME["EURUSD"].training_config()
    costs = Costs.from_json(costs_json)
    eval_bars = bars.slice(FIRST, LAST + 1)
    write_bars(OUT / "bars.csv", eval_bars)

    configs, hmms, tables = {}, {}, {}
    for k in (3, 7):
        p = EnvParams(n_states=k)
        cfg = build_config(BARS, bars, p, N_IN, 5.0, 5.0, "EURUSD", "H1")
        cfg["training_config"] = costs_json
        cfg["training"]["data_file"] = "data/EURUSD_H1.csv"
        (OUT / f"env_config_k{k}.json").write_text(json.dumps(cfg, indent=2) + "\n")
        configs[k] = cfg
        scaler = cfg["env"]["hmm_scaler"]
        scaled = (hmm_feature_series(bars, p) - np.array(scaler["mean"])) / np.array(scaler["std"])
        for ct in COVARIANCE_TYPES:
            hmm = GaussianHMM(n_components=k, covariance_type=ct, n_iter=100, tol=1e-4, random_state=SEED)
            hmm.fit(scaled[p.hmm_lookback:N_IN])
            hmms[(k, ct)] = hmm
            with open(OUT / f"hmm_k{k}_{ct}.pkl", "wb") as f:
                pickle.dump(hmm, f)
        full = hmms[(k, "full")]
        model = {"means": np.asarray(full.means_), "prec_chol": precision_cholesky(full_covariances(full)),
                 "startprob": np.asarray(full.startprob_), "transmat": np.asarray(full.transmat_)}
        table = build_table(bars.slice(0, N_IN), p, scaled[:N_IN], model)
        norm = cfg["env"]["observation"]["norm"]
        scale = costs.value_per_price * costs.lot_sizes[3] * float(np.median(table.atr))
        tables[k] = lambda p=p, table=table, norm=norm, scale=scale: TradingEnv(
            table, p, costs, norm["mean"], norm["std"], 5.0, 5.0, scale, 256)

    ppo_args = dict(n_steps=256, batch_size=128, n_epochs=4, seed=SEED, device="cpu", verbose=0)
    policies = {}
    m = PPO("MlpPolicy", DummyVecEnv([tables[3]] * 2), **ppo_args)
    policies["ppo_mlp_k3"] = (m.learn(TIMESTEPS), None, 3)
    # On these bars this policy holds one action throughout (a short run of PPO settles there); its conversion is
    # also checked on sb3.npz's random observations, where it takes several actions.
    m = PPO("MlpPolicy", DummyVecEnv([tables[7]] * 2), **ppo_args, ent_coef=0.05,
            policy_kwargs={"activation_fn": torch.nn.ReLU, "net_arch": {"pi": [128, 64], "vf": [64, 64]}})
    policies["ppo_relu_k7"] = (m.learn(TIMESTEPS), None, 7)
    vec = VecNormalize(DummyVecEnv([tables[3]] * 2), norm_obs=True, norm_reward=True, clip_obs=10.0)
    m = PPO("MlpPolicy", vec, **ppo_args)
    m.learn(TIMESTEPS)
    vec.save(str(OUT / "vecnormalize_k3.pkl"))
    vec.training = False
    policies["ppo_vecnorm_k3"] = (m, vec, 3)
    for name, (model, _, _) in policies.items():
        model.save(OUT / f"{name}.zip")

    class FiveActions(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(11,), dtype=np.float32)
        action_space = gym.spaces.Discrete(5)

    PPO("MlpPolicy", FiveActions(), seed=SEED, device="cpu", policy_kwargs={"net_arch": [8]}).save(OUT / "ppo_5actions.zip")
    rng = np.random.default_rng(SEED)
    with open(OUT / "hmm_4features.pkl", "wb") as f:
        pickle.dump(GaussianHMM(3, covariance_type="diag", n_iter=5, random_state=SEED).fit(rng.normal(size=(300, 4))), f)

    def raw_logits(model, obs):
        with torch.no_grad():
            t = torch.as_tensor(obs)
            feats = model.policy.extract_features(t, model.policy.pi_features_extractor)
            return model.policy.action_net(model.policy.mlp_extractor.forward_actor(feats)).numpy()

    def native_backtest(model, vec, hmm, cfg, p):
        env = cfg["env"]
        norm, scaler = env["observation"]["norm"], env["hmm_scaler"]
        pos, rows, seen = VirtualPosition(costs), [], []
        for t in range(p.window - 1, len(eval_bars)):
            s = t - p.window + 1
            c, h, lo, v = (eval_bars.close[s:t + 1], eval_bars.high[s:t + 1], eval_bars.low[s:t + 1],
                           eval_bars.volume[s:t + 1])
            feats = policy_features(c, h, lo, v, p)
            z = normalise(feats.raw, norm["mean"], norm["std"], norm["clip"])
            x = scale_hmm_features(window_hmm_features(c, h, lo, p), scaler["mean"], scaler["std"])
            _, fwd = _hmmc.forward_log(hmm.startprob_, hmm.transmat_, hmm._compute_log_likelihood(x))
            regime = int(np.argmax(fwd[-1]))
            u = pos.unrealized_feature(c[-1], feats.atr, env["observation"]["unrealized_clip"])
            obs = build_observation(z, regime, p.n_states, pos.direction, pos.intensity, u)
            seen.append(obs)
            inp = vec.normalize_obs(obs[None]) if vec is not None else obs[None]
            action = int(model.predict(inp, deterministic=True)[0][0])
            _, d, q = ACTIONS[action]
            pos.execute(d, q, c[-1])
            rows.append((format_time(eval_bars.time[t]), regime, ACTION_NAMES[action], pos.direction, pos.intensity,
                         repr(pos.realized)))
        return rows, seen

    def layout_obs(k, n):
        out = np.zeros((n, 5 + k + 3), dtype=np.float64)
        out[:, :5] = rng.uniform(-5, 5, size=(n, 5))
        out[::7, :5] = rng.choice([-5.0, 5.0], size=(len(out[::7]), 5))
        out[np.arange(n), 5 + rng.integers(0, k, size=n)] = 1.0
        a = rng.integers(0, 7, size=n)
        out[:, 5 + k] = [ACTIONS[i][1] for i in a]
        out[:, 6 + k] = [ACTIONS[i][2] / 3 for i in a]
        out[:, 7 + k] = np.where(out[:, 5 + k] != 0, rng.uniform(-5, 5, size=n), 0.0)
        return out.astype(np.float32)

    cases, seen_by_policy = [], {name: [] for name in policies}
    pairs = [("ppo_mlp_k3", 3, ct, None) for ct in COVARIANCE_TYPES]
    pairs += [("ppo_relu_k7", 7, ct, None) for ct in COVARIANCE_TYPES]
    pairs += [("ppo_vecnorm_k3", 3, "full", "vecnormalize_k3.pkl")]
    for policy_name, k, ct, vn_file in pairs:
        model, vec, _ = policies[policy_name]
        name = f"{policy_name[4:]}_{ct}"
        rows, seen = native_backtest(model, vec, hmms[(k, ct)], configs[k], EnvParams(n_states=k))
        if not seen_by_policy[policy_name]:  # one backtest's observations per policy are enough
            seen_by_policy[policy_name] = seen
        with open(OUT / "expected" / f"{name}.csv", "w", encoding="utf-8") as f:
            f.write("time,regime,action,position,intensity,virtual_pnl\n")
            f.writelines(",".join(str(x) for x in r) + "\n" for r in rows)
        actions = sorted({r[2] for r in rows})
        print(f"{name}: {len(rows)} decisions, regimes {sorted({r[1] for r in rows})}, actions {actions}, pnl {rows[-1][5]}")
        cases.append({"name": name, "ppo": f"{policy_name}.zip", "hmm": f"hmm_k{k}_{ct}.pkl",
                      "config": f"env_config_k{k}.json", "vecnormalize": vn_file, "expected": f"expected/{name}.csv"})

    recorded = {}
    for name, (model, vec, k) in policies.items():
        obs = np.concatenate([np.stack(seen_by_policy[name]), layout_obs(k, 400)])
        inp = vec.normalize_obs(obs) if vec is not None else obs
        recorded[f"{name}/obs"] = obs
        recorded[f"{name}/actions"] = model.predict(inp, deterministic=True)[0].astype(np.int64)
        recorded[f"{name}/logits"] = raw_logits(model, inp)
        if vec is not None:
            recorded[f"{name}/normalized"] = inp
    np.savez_compressed(OUT / "sb3.npz", **recorded)
    hmm_rows = {}
    scaler = configs[3]["env"]["hmm_scaler"]
    x = (hmm_feature_series(eval_bars, EnvParams()) - np.array(scaler["mean"])) / np.array(scaler["std"])
    x = np.concatenate([x[20:320], rng.normal(scale=4.0, size=(50, 3))])
    hmm_rows["x"] = x
    for (k, ct), hmm in hmms.items():
        hmm_rows[f"hmm_k{k}_{ct}/loglik"] = hmm._compute_log_likelihood(x)
    np.savez_compressed(OUT / "hmmlearn.npz", **hmm_rows)
    manifest = {
        "bars": "bars.csv", "bars_source": f"data/EURUSD_H1.csv rows {FIRST}-{LAST}", "cases": cases,
        "made_by": "scripts/make_fixtures.py",
        "versions": {"stable-baselines3": stable_baselines3.__version__, "torch": torch.__version__.split("+")[0],
                     "hmmlearn": hmmlearn.__version__, "numpy": np.__version__},
    }
    (OUT / "cases.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    sys.exit(main())
