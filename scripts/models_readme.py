"""Write models/README.md from the shipped zips' metadata (the figures are the reference backtests that
export.py --evaluate recorded in `training.results`).

    scripts/.venv/bin/python scripts/models_readme.py
"""

from __future__ import annotations

from pathlib import Path

from oracle_core import read_model_zip

ROOT = Path(__file__).resolve().parent.parent

HEAD = """# Demo models — a demonstration, not trading advice

These 20 models exist so the project runs end to end (`scripts/demo.sh`, the parity tests). They are not
investment advice, and nothing here says they make money: read the out-of-sample column.

**What is really trained.** Only `EURUSD_H1.zip`'s policy and HMM are trained, on real EURUSD H1 bars
(`data/EURUSD_H1.csv`, 5,000 bars 2017-04-19 … 2018-02-07, from the `backtesting` package — see
`data/README.md`). The 19 others **share EURUSD's policy and HMM unchanged**, exported under their own names
with their own `training_config` (point, pip_size, pip_value, digits, spread, slippage, commission, lot sizes
— typical retail-CFD values from `scripts/symbols.py`, not any broker's). Their figures below are backtests on
their demo series `data/demo/<SYM>.csv`, which are **derived** from the same EURUSD series (rotated, rescaled
to each symbol's price level and rounded to its digits), not real prices of those instruments. For them the
"in-sample" and "out-of-sample" columns are only bar positions (0–3499 and 3500–4999) on derived data: the
policy saw neither, so those figures say nothing about skill; EURUSD's out-of-sample column is the honest one.

Rebuild everything from scratch (venv, data, training, the 20 zips, golden files, this page):

```sh
scripts/build_models.sh          # ~10-15 min on 2 CPU cores; TIMESTEPS=... to change the PPO budget
```

## Format

`<SYM>_<TF>.zip` holds `<SYM>_<TF>_ppo.onnx` (policy logits) and `<SYM>_<TF>_hmm.onnx` (HMM emission
log-densities); the zip comment is the JSON metadata. Both are defined in `scripts/ENV.md` §8, which is the
contract the preditor (Rust) and the Python reference (`scripts/oracle_core.py`) implement.

## Training

"""

CONVERT = """
## Converting a model trained elsewhere

`scripts/export.py` converts a stable-baselines3 PPO `.zip` and a pickled hmmlearn `GaussianHMM` without
torch, stable-baselines3 or hmmlearn: the light venv (`scripts/setup_venv.sh`) is enough. It reads the files
with a restricted unpickler (nothing in them is executed) and builds the policy graph from the weights.
What converts: SB3's `ActorCriticPolicy` ("MlpPolicy") with the default FlattenExtractor, Tanh or ReLU,
any `net_arch`; a `Discrete(7)` action space in the seed's order WAIT, LONG_WEAK … SHORT_STRONG; a Box
observation of `5 + K + 3` values in ENV.md §7's order; a GaussianHMM of any covariance_type on the 3 HMM
features of §5. Anything else is refused with one line naming the file, the problem and the fix (exit 2).

### Step by step (SB3 + hmmlearn files)

1. The feature normalization the model was trained with (`env_config.json`): from the bars and split you
   trained on, the way train.py computes it (ENV.md §4, §10):

   ```sh
   scripts/setup_venv.sh
   scripts/.venv/bin/python scripts/normalization.py --bars my_training_bars.csv --in-sample 0.7 \\
       --symbol EURUSD --timeframe H1 --out env_config.json      # or --in-sample-bars N; --n-states K
   ```

2. The costs (`training_config`): your broker's values in a JSON file (`point, pip_size, pip_value,
   spread_points, slippage_points, commission_per_lot, digits, lot_sizes`), given with `--training-config`.
   Without one, export refuses — or, with `--demo-costs`, uses `scripts/symbols.py`'s demo values and says so.

3. Convert, check, backtest:

   ```sh
   scripts/.venv/bin/python scripts/export.py --ppo my_ppo.zip --hmm my_hmm.pkl --config env_config.json \\
       --training-config my_costs.json --out models/EURUSD_H1.zip [--evaluate my_bars.csv]
   target/release/preditor check models/EURUSD_H1.zip
   scripts/.venv/bin/python scripts/reference.py backtest --model models/EURUSD_H1.zip --bars my_bars.csv --out check.csv
   ```

   The zip is validated before it is written: a model that fails never reaches `--out`.

### A model trained with VecNormalize

SB3's `VecNormalize` normalizes the observations the policy sees; its statistics live in the file
`VecNormalize.save()` wrote (`vecnormalize.pkl`), not in the model zip. Give it, and export puts the
normalizer into the policy graph (ENV.md §8: `clip((obs − mean) / sqrt(var + epsilon), ±clip_obs)` in
float64, then float32, with the saved mean, var, epsilon, clip_obs and norm_obs); `norm_reward` only scales
training rewards and does not change actions.

```sh
scripts/.venv/bin/python scripts/export.py --ppo my_ppo.zip --vecnormalize vecnormalize.pkl --hmm my_hmm.pkl \\
    --config env_config.json --training-config my_costs.json --out models/EURUSD_H1.zip
```

Without `--vecnormalize`, export refuses such a policy: SB3 records `_last_original_obs` in the zip only when
the training env was a VecNormalize, and export also checks that the last observation the policy was trained
on (`_last_obs`) is in ENV.md §7's layout — one-hot regime, direction −1/0/1, intensity q/3 — which a
normalized observation is not. A normalizer from another run is refused the same way (un-normalizing that
observation must give the layout). What cannot be detected: a zip saved before any training (no `_last_obs`;
export says it could not check), or another observation transform that keeps §7's layout.

### Converting a v1 zip

The specification's v1 zip (`EURUSD_M15.zip` = `EURUSD_M15_hmm.pkl` + `EURUSD_M15_ppo.zip`, metadata in the
zip comment) lacks the feature normalization and `training_config.pip_size`; `preditor check` and
`reference.py` name it as a v1 zip and print the command. One command converts it:

```sh
scripts/.venv/bin/python scripts/normalization.py --bars my_training_bars.csv --periods-from EURUSD_M15.zip \\
    --out norm.json                            # the bars and in-sample split the model was trained on
scripts/.venv/bin/python scripts/export.py --v1 EURUSD_M15.zip --config norm.json --pip-size 0.0001 \\
    --out models/EURUSD_M15.zip                # [--vecnormalize vecnormalize.pkl] [--training-config costs.json]
```

Run it without `--config` / `--pip-size` and it lists exactly what is missing. The window is the
specification's 350 bars unless the config says otherwise.

The conversion is faithful only if the model was trained on exactly ENV.md's features (§4-§5) and position
logic (§6): the twin computes those, whatever the original code did.
"""


def fmt(summary: dict | None) -> str:
    if not summary:
        return "—"
    win = "—" if summary["win_rate"] is None else f"{100 * summary['win_rate']:.1f} %"
    return f"{summary['realized_pnl']:.2f} / {summary['closed_trades']} / {win}"


def main() -> None:
    rows = []
    first = None
    for path in sorted((ROOT / "models").glob("*.zip")):
        meta, _ = read_model_zip(path)
        tr = meta["training"]
        if meta["symbol"]["name"] == "EURUSD":
            first = meta
        tc = meta["training_config"]
        res = tr.get("results", {})
        rows.append(
            f"| `{path.name}` | {tr.get('shared_from', '**trained**')} | {tc['spread_points']:g} / {tc['slippage_points']:g} / "
            f"{tc['commission_per_lot']:g} | {tc['pip_value']:g} per {tc['pip_size']:g} | "
            f"{', '.join(f'{x:g}' for x in tc['lot_sizes'][1:])} | `{res.get('bars_file', '—')}` | "
            f"{fmt(res.get('in_sample'))} | {fmt(res.get('out_of_sample'))} |"
        )
    text = HEAD
    if first:
        tr = first["training"]
        ppo = tr["ppo"]
        text += (
            f"- Data: `{tr['data_file']}` (sha256 `{tr['data_sha256']}`), {tr['bars']} bars.\n"
            f"- In-sample: bars {tr['in_sample']['bars'][0]}–{tr['in_sample']['bars'][1]} ({tr['in_sample']['from']} … "
            f"{tr['in_sample']['to']}); decisions from bar {tr['in_sample']['decisions'][0]}.\n"
            f"- Out-of-sample: bars {tr['out_of_sample']['bars'][0]}–{tr['out_of_sample']['bars'][1]} "
            f"({tr['out_of_sample']['from']} … {tr['out_of_sample']['to']}); never seen in training (the 349 bars "
            f"before it serve as history only).\n"
            f"- HMM: hmmlearn GaussianHMM, {first['hmm_config']['n_states']} states, full covariance, seed "
            f"{tr['seeds']['hmm']}, converged: {tr['hmm']['converged']}.\n"
            f"- PPO: stable-baselines3 MlpPolicy {ppo['net_arch']}, {ppo['timesteps']} timesteps, {ppo['n_envs']} envs, "
            f"episodes of {ppo['episode_len']} bars, seed {tr['seeds']['ppo']}, CPU; reward ENV.md §10.\n"
            f"- Training took {tr['train_seconds']} s on this machine.\n\n"
        )
    text += (
        "## Results (reference backtest, `scripts/reference.py`; account currency USD)\n\n"
        "PnL is the realised virtual PnL `R` of ENV.md §6 (costs included; a position still open at the end is not "
        "counted); trades = closed positions; win rate = share of closes with a positive net result.\n\n"
        "| model | policy/HMM | spread / slippage (points) / commission per lot | pip value | lots W/M/S | bars | "
        "in-sample PnL / trades / win | out-of-sample PnL / trades / win |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    text += CONVERT
    (ROOT / "models" / "README.md").write_text(text)
    print(f"wrote models/README.md ({len(rows)} models)")


if __name__ == "__main__":
    main()
