"""The feature normalization a model was trained with, computed from its training bars as train.py does.

    scripts/.venv/bin/python scripts/normalization.py --bars my_training_bars.csv --out norm.json \
        [--in-sample 0.7 | --in-sample-bars N] [--periods-from EURUSD_M15.zip|model.zip|env_config.json] \
        [--symbol EURUSD --timeframe M15] [--norm-clip 5.0] [--unrealized-clip 5.0]

ENV.md §4 and §10: the policy features' `μ, σ` are the mean and population standard deviation of the raw
features `r` over the in-sample decision bars (t = W−1 … n_in−1), a σ below 1e-12 stored as 1; the HMM
scaler is the mean and population std of the raw HMM features over the in-sample rows i = H … n_in−1.
`--in-sample` is the fraction train.py uses (n_in = int(n · fraction), default 0.7); give exactly the bars
and the split your model was trained on, or the normalization (and so every decision) differs.
The output is an env_config.json (train.py's layout, without training_config) for export.py --config.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oracle_core import POLICY_FEATURES, Bars, EnvParams, InputError, OracleError, format_time, load_bars
from oracle_env import hmm_feature_series, raw_policy_table

NORM_CLIP = 5.0
UNREALIZED_CLIP = 5.0
# The specification's FIFO holds 350 bars and its v1 metadata has no window field.
V1_WINDOW = 350


def population_std(x: np.ndarray) -> list[float]:
    std = x.std(axis=0, ddof=0)
    return [float(s) if s >= 1e-12 else 1.0 for s in std]


def compute_normalization(bars: Bars, p: EnvParams, n_in: int, norm_clip: float = NORM_CLIP,
                          unrealized_clip: float = UNREALIZED_CLIP) -> dict[str, Any]:
    """`observation` and `hmm_scaler` of env_config.json from the first `n_in` bars (the in-sample part)."""
    if n_in < p.window:
        raise InputError(f"in-sample part has {n_in} bars, fewer than the window ({p.window}): no decision to normalize over")
    series = hmm_feature_series(bars.slice(0, n_in), p)
    fit_rows = series[p.hmm_lookback : n_in]
    raw, _ = raw_policy_table(bars.slice(0, n_in), p)
    return {
        "observation": {
            "norm": {"features": list(POLICY_FEATURES), "mean": [float(x) for x in raw.mean(axis=0)],
                     "std": population_std(raw), "clip": norm_clip},
            "unrealized_clip": unrealized_clip,
        },
        "hmm_scaler": {"mean": [float(x) for x in fit_rows.mean(axis=0)], "std": population_std(fit_rows)},
    }


def env_section(p: EnvParams) -> dict[str, Any]:
    return {
        "window": p.window,
        "rl_config": {"roc_period": p.roc_period, "atr_period": p.atr_period, "ema_period": p.ema_period,
                      "range_period": p.range_period, "volume_ma_period": p.volume_ma_period},
        "hmm_config": {"n_states": p.n_states, "momentum_period": p.momentum_period,
                       "consistency_period": p.consistency_period, "range_period": p.hmm_range_period},
    }


def _int(obj: dict, section: str, key: str, where: str) -> int:
    value = obj.get(section, {}).get(key) if isinstance(obj.get(section), dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{where}: field '{section}.{key}' is missing or not an integer")
    return value


def params_from_file(path: Path, window: int | None) -> EnvParams:
    """The periods recorded in a v1 zip's comment, a model zip's comment or an env_config.json."""
    where = str(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                meta = json.loads(zf.comment.decode("utf-8"))
        else:
            meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (--periods-from)") from None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read its metadata JSON: {err}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: metadata is not a JSON object")
    env = meta.get("env") if isinstance(meta.get("env"), dict) else {}
    if "rl_config" in env:  # env_config.json nests the periods in "env"; a zip comment has them at the top
        meta = env
    w = window or meta.get("window") or env.get("window") or V1_WINDOW
    p = EnvParams(
        window=int(w),
        roc_period=_int(meta, "rl_config", "roc_period", where),
        atr_period=_int(meta, "rl_config", "atr_period", where),
        ema_period=_int(meta, "rl_config", "ema_period", where),
        range_period=_int(meta, "rl_config", "range_period", where),
        volume_ma_period=_int(meta, "rl_config", "volume_ma_period", where),
        momentum_period=_int(meta, "hmm_config", "momentum_period", where),
        consistency_period=_int(meta, "hmm_config", "consistency_period", where),
        hmm_range_period=_int(meta, "hmm_config", "range_period", where),
        n_states=_int(meta, "hmm_config", "n_states", where),
    )
    try:
        p.validate()
    except OracleError as err:
        raise InputError(f"{path}: {err}") from None
    return p


def split_bars(n: int, fraction: float | None, n_in: int | None) -> int:
    if n_in is None:
        n_in = int(n * (0.7 if fraction is None else fraction))
    if not 0 < n_in <= n:
        raise InputError(f"in-sample size {n_in} is not within the {n} bars of the file")
    return n_in


def build_config(bars_path: Path, bars: Bars, p: EnvParams, n_in: int, norm_clip: float, unrealized_clip: float,
                 symbol: str | None, timeframe: str | None) -> dict[str, Any]:
    norm = compute_normalization(bars, p, n_in, norm_clip, unrealized_clip)
    n = len(bars)
    training: dict[str, Any] = {
        "data_file": str(bars_path),
        "data_sha256": hashlib.sha256(bars_path.read_bytes()).hexdigest(),
        "bars": n,
        "in_sample": {"bars": [0, n_in - 1], "from": format_time(bars.time[0]), "to": format_time(bars.time[n_in - 1]),
                      "decisions": [p.window - 1, n_in - 1]},
        "normalization": "scripts/normalization.py (ENV.md §4, §10: in-sample mean and population std)",
    }
    if n_in < n:
        training["out_of_sample"] = {"bars": [n_in, n - 1], "from": format_time(bars.time[n_in]),
                                     "to": format_time(bars.time[n - 1]), "decisions": [max(n_in, p.window - 1), n - 1],
                                     "history_from_bar": max(0, n_in - p.window + 1)}
    config: dict[str, Any] = {}
    if symbol:
        config["symbol"] = symbol
    if timeframe:
        config["timeframe"] = timeframe
    config["env"] = {**env_section(p), **norm}
    config["training"] = training
    return config


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=Path, required=True, help="the bars CSV the model was trained on (ENV.md §1)")
    ap.add_argument("--out", type=Path, required=True, help="env_config.json to write")
    split = ap.add_mutually_exclusive_group()
    split.add_argument("--in-sample", type=float, default=None, help="fraction of the bars used in training (default 0.7, as train.py)")
    split.add_argument("--in-sample-bars", type=int, default=None, help="number of leading bars used in training")
    ap.add_argument("--periods-from", type=Path, default=None,
                    help="v1 zip, model zip or env_config.json whose rl_config/hmm_config to use (default: ENV.md §2's)")
    ap.add_argument("--window", type=int, default=None, help=f"env.window (default: the file's, else {V1_WINDOW})")
    ap.add_argument("--n-states", type=int, default=None, help="hmm_config.n_states when --periods-from is not given")
    ap.add_argument("--norm-clip", type=float, default=NORM_CLIP)
    ap.add_argument("--unrealized-clip", type=float, default=UNREALIZED_CLIP)
    ap.add_argument("--symbol", default=None)
    ap.add_argument("--timeframe", default=None)
    args = ap.parse_args(argv)
    try:
        if args.periods_from:
            p = params_from_file(args.periods_from, args.window)
        else:
            p = EnvParams(window=args.window or EnvParams().window, n_states=args.n_states or EnvParams().n_states)
            p.validate()
        bars = load_bars(args.bars)
        n_in = split_bars(len(bars), args.in_sample, args.in_sample_bars)
        config = build_config(args.bars, bars, p, n_in, args.norm_clip, args.unrealized_clip, args.symbol, args.timeframe)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(config, indent=2) + "\n")
    except OracleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {args.out}: cannot write: {err}", file=sys.stderr)
        return 2
    env = config["env"]
    print(f"wrote {args.out}: window {p.window}, in-sample bars 0-{n_in - 1} of {len(bars)}; "
          f"norm mean {env['observation']['norm']['mean']}, std {env['observation']['norm']['std']}; "
          f"hmm scaler mean {env['hmm_scaler']['mean']}, std {env['hmm_scaler']['std']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
