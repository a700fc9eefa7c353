"""Convert a model trained elsewhere (or by train.py) into the atomic zip of ENV.md §8. numpy + onnx only:
no torch, stable-baselines3 or hmmlearn is needed, and nothing in the input files is executed.

    scripts/.venv/bin/python scripts/export.py --ppo my_ppo.zip --hmm my_hmm.pkl --config env_config.json \
        --out models/EURUSD_H1.zip [--vecnormalize vecnormalize.pkl] [--training-config costs.json | --demo-costs] \
        [--symbol GBPUSD] [--timeframe H1] [--evaluate bars.csv]
    scripts/.venv/bin/python scripts/export.py --v1 EURUSD_M15.zip --config norm.json [--pip-size 0.0001] \
        --out models/EURUSD_M15.zip

- `<SYM>_<TF>_ppo.onnx`: the SB3 MlpPolicy's deterministic head built from its weights (policy_export.py),
  behind the VecNormalize observation normalizer when `--vecnormalize` is given; input `obs` [batch, D] f32,
  output `logits` [batch, 7] f32.
- `<SYM>_<TF>_hmm.onnx`: built with onnx.helper, f64, input `x` [T,3] -> `log_emission` [T,K]: Gaussian
  log-densities from per-state means and precision-Cholesky factors (any hmmlearn covariance_type:
  the stored covariances are expanded to full matrices per state, which we factor).
- the zip comment: the JSON metadata (ENV.md §8), at most 65535 bytes.
`--config` is the env_config.json of train.py or scripts/normalization.py (periods and feature normalization).
`training_config` (the costs) comes from `--training-config FILE`, else from the config, else — only with
`--demo-costs` — from symbols.py's demo values, and the source is printed. `--symbol` exports under another
symbol's name (the policy and HMM are unchanged; the config's costs are then not used). `--v1` converts the
specification's v1 zip (v1_zip.py). `--evaluate BARS` runs the reference backtest over the config's
in-sample and out-of-sample ranges and records the figures in `training.results`.
The zip is written to a temporary file beside `--out`, loaded back and validated (and evaluated), and only
then renamed to `--out`: a model that fails validation is never left there. Any bad input is one line on
stderr naming the file, the problem and the fix, and exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifacts import GaussianHmm, ObsNormalizer, Sb3Policy, read_file, read_gaussian_hmm, read_sb3_policy, read_vecnormalize
from oracle_core import (
    ACTIONS,
    FORMAT_VERSION,
    HMM_FEATURES,
    InputError,
    ModelError,
    OracleError,
    OracleModel,
    load_bars,
    precision_cholesky,
    run_backtest,
    summarize,
)
from policy_export import OPSET, check_policy_spaces, check_training_observation, observation_features, policy_onnx_bytes
from symbols import BY_NAME

# Fixed member timestamps so the same inputs give byte-identical members.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
COST_KEYS = ("point", "pip_size", "pip_value", "spread_points", "slippage_points", "commission_per_lot", "digits",
             "lot_sizes")
FIX_CONFIG = "write it with scripts/normalization.py (or train.py)"


def full_covariances(hmm) -> np.ndarray:
    """Per-state full covariance matrices [K,D,D] for any hmmlearn covariance_type.

    Built from the stored `_covars_` (what hmmlearn's own likelihood uses) rather than the `covars_`
    property, whose 'spherical' shape is wrong in hmmlearn 0.3.3 ([K*D, D, D] instead of [K, D, D])."""
    k, d = np.asarray(hmm.means_).shape
    raw = np.asarray(hmm._covars_, dtype=np.float64)
    kind = hmm.covariance_type
    if kind == "full":
        return raw.reshape(k, d, d).copy()
    if kind == "diag":
        return np.stack([np.diag(raw[i]) for i in range(k)])
    if kind == "spherical":
        # [K] before fitting, [K, D] (equal values) after: hmmlearn itself then reads it as a diagonal.
        per_state = np.broadcast_to(raw.reshape(k, -1), (k, d))
        return np.stack([np.diag(per_state[i]) for i in range(k)])
    if kind == "tied":
        return np.stack([raw.reshape(d, d)] * k)
    raise InputError(f"unknown hmmlearn covariance_type {kind!r}")


def hmm_onnx_bytes(means: np.ndarray, prec_chol: np.ndarray) -> bytes:
    """x [T,D] f64 -> log_emission [T,K] f64 with Sub, Transpose, MatMul, Mul, ReduceSum, Add only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, d = means.shape
    const = np.array(
        [-0.5 * d * math.log(2 * math.pi) + float(np.sum(np.log(np.diagonal(prec_chol[i])))) for i in range(k)],
        dtype=np.float64,
    )
    inits = [
        numpy_helper.from_array(np.asarray(means, dtype=np.float64), "means"),  # [K,D]
        numpy_helper.from_array(np.asarray(prec_chol, dtype=np.float64), "prec_chol"),  # [K,D,D]
        numpy_helper.from_array(const, "log_norm"),  # [K]
        numpy_helper.from_array(np.array(-0.5, dtype=np.float64), "minus_half"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axis1"], ["x_t1d"]),  # [T,1,D]
        helper.make_node("Sub", ["x_t1d", "means"], ["diff"]),  # [T,K,D]
        helper.make_node("Transpose", ["diff"], ["diff_ktd"], perm=[1, 0, 2]),  # [K,T,D]
        helper.make_node("MatMul", ["diff_ktd", "prec_chol"], ["y"]),  # [K,T,D]: (x - m_k)ᵀ U_k
        helper.make_node("Mul", ["y", "y"], ["y2"]),
        helper.make_node("ReduceSum", ["y2", "axis2"], ["maha_kt"], keepdims=0),  # [K,T]
        helper.make_node("Transpose", ["maha_kt"], ["maha"], perm=[1, 0]),  # [T,K]
        helper.make_node("Mul", ["maha", "minus_half"], ["half_maha"]),
        helper.make_node("Add", ["half_maha", "log_norm"], ["log_emission"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hmm_log_emission",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["T", d])],
        [helper.make_tensor_value_info("log_emission", TensorProto.DOUBLE, ["T", k])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oracle-export")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# ---------------------------------------------------------------------------------------------- inputs


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(read_file(path, what).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: the {what} is not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: the {what} is not a JSON object")
    return obj


def _field(obj: Any, dotted: str, kind: type | tuple[type, ...], where: str, fix: str) -> Any:
    cur = obj
    for key in dotted.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise InputError(f"{where}: field '{dotted}' is missing; {fix}")
        cur = cur[key]
    if not isinstance(cur, kind) or isinstance(cur, bool):
        raise InputError(f"{where}: field '{dotted}' is a {type(cur).__name__}, not a {getattr(kind, '__name__', kind)}; {fix}")
    return cur


def check_env(env: dict, where: str, prefix: str = "env.") -> None:
    """The config's env section holds every period and normalization value the metadata needs."""
    root = {prefix.rstrip("."): env} if prefix else env
    _field(root, f"{prefix}window", int, where, FIX_CONFIG)
    for key in ("roc_period", "atr_period", "ema_period", "range_period", "volume_ma_period"):
        _field(root, f"{prefix}rl_config.{key}", int, where, FIX_CONFIG)
    for key in ("n_states", "momentum_period", "consistency_period", "range_period"):
        _field(root, f"{prefix}hmm_config.{key}", int, where, FIX_CONFIG)
    for dotted, n in (("observation.norm.mean", 5), ("observation.norm.std", 5), ("hmm_scaler.mean", 3),
                      ("hmm_scaler.std", 3)):
        arr = _field(root, f"{prefix}{dotted}", list, where, FIX_CONFIG)
        if len(arr) != n or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in arr):
            raise InputError(f"{where}: field '{prefix}{dotted}' must be {n} finite numbers; {FIX_CONFIG}")
    for dotted in ("observation.norm.clip", "observation.unrealized_clip"):
        _field(root, f"{prefix}{dotted}", (int, float), where, FIX_CONFIG)


def check_training_config(costs: dict, where: str) -> None:
    fix = f"give all of {', '.join(COST_KEYS)} (your broker's values)"
    for key in COST_KEYS[:6]:
        _field(costs, key, (int, float), where, fix)
    _field(costs, "digits", int, where, fix)
    lots = _field(costs, "lot_sizes", list, where, fix)
    if len(lots) != 4 or lots[0] != 0 or not all(isinstance(x, (int, float)) and x >= 0 for x in lots):
        raise InputError(f"{where}: field 'lot_sizes' must be 4 numbers >= 0 starting with 0 (WAIT), got {lots!r}")
    for key in ("point", "pip_size", "pip_value"):
        if not costs[key] > 0:
            raise InputError(f"{where}: field '{key}' = {costs[key]!r} must be > 0")


def resolve_training_config(args: argparse.Namespace, config: dict, symbol: str) -> tuple[dict, str]:
    """The costs and a sentence saying where they came from (printed: demo costs are never silent)."""
    if args.training_config:
        costs = read_json(args.training_config, "training_config")
        source = f"from {args.training_config}"
        where = str(args.training_config)
    elif isinstance(config.get("training_config"), dict) and not (args.symbol and args.symbol != config.get("symbol")):
        costs, source, where = config["training_config"], f"from {args.config}", f"{args.config} training_config"
    elif args.demo_costs and symbol in BY_NAME:
        costs = BY_NAME[symbol].training_config()
        source = f"symbols.py's DEMO values for {symbol} (--demo-costs; not your broker's: give --training-config)"
        where = "symbols.py"
    else:
        hint = f", or --demo-costs to use symbols.py's demo values for {symbol}" if symbol in BY_NAME else ""
        raise InputError(f"{args.config}: no training_config for {symbol} (the costs the PnL uses): give your broker's "
                         f"values with --training-config FILE ({', '.join(COST_KEYS)}){hint}")
    check_training_config(costs, where)
    return dict(costs), source


def hmm_members(hmm: GaussianHmm, n_states: int) -> tuple[np.ndarray, bytes]:
    if hmm.n_components != n_states:
        raise InputError(f"{hmm.where}: the HMM has {hmm.n_components} states, the config's hmm_config.n_states is "
                         f"{n_states}: pair it with the config (and policy) it was trained with")
    covars = full_covariances(hmm)
    try:
        prec = precision_cholesky(covars)
    except np.linalg.LinAlgError:
        raise InputError(f"{hmm.where}: a covariance matrix is not positive definite; refit the HMM") from None
    return covars, hmm_onnx_bytes(np.asarray(hmm.means_, dtype=np.float64), prec)


# ---------------------------------------------------------------------------------------------- metadata


def build_metadata(env: dict, hmm: GaussianHmm, covars: np.ndarray, symbol: str, timeframe: str,
                   training_config: dict, generated_at: str, training: dict, ppo_source: dict) -> dict[str, Any]:
    k = env["hmm_config"]["n_states"]
    prefix = f"{symbol}_{timeframe}"
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": generated_at,
        "symbol": {"name": symbol, "clean": symbol, "timeframe": timeframe},
        "training_config": training_config,
        "hmm_config": env["hmm_config"],
        "rl_config": env["rl_config"],
        "actions": {str(i): {"name": n, "direction": d, "intensity": q} for i, (n, d, q) in enumerate(ACTIONS)},
        "env": {"window": env["window"], "decision": "every bar t >= window-1, at the bar's close (ENV.md §3)"},
        "observation": {
            "features": observation_features(k),
            "norm": {"mean": env["observation"]["norm"]["mean"], "std": env["observation"]["norm"]["std"],
                     "clip": env["observation"]["norm"]["clip"]},
            "unrealized_clip": env["observation"]["unrealized_clip"],
        },
        "hmm": {
            "features": list(HMM_FEATURES),
            "scaler": env["hmm_scaler"],
            "startprob": [float(x) for x in hmm.startprob_],
            "transmat": [[float(x) for x in row] for row in hmm.transmat_],
            "covariance_type": hmm.covariance_type,
            "means": [[float(x) for x in row] for row in hmm.means_],
            "covars": [[[float(x) for x in r] for r in m] for m in covars],
            "onnx": {"member": f"{prefix}_hmm.onnx", "input": "x", "output": "log_emission"},
        },
        "ppo": {"onnx": {"member": f"{prefix}_ppo.onnx", "input": "obs", "output": "logits"},
                "obs_dim": 5 + k + 3, "action": "argmax(logits), lowest index on a tie", "source": ppo_source},
        "training": training,
    }


def ppo_source(policy: Sb3Policy, normalizer: ObsNormalizer | None) -> dict[str, Any]:
    src: dict[str, Any] = {"library": "stable-baselines3", "version": policy.sb3_version, "policy": "ActorCriticPolicy",
                           "activation_fn": policy.activation_class, "net_arch_pi": policy.net_arch_pi,
                           "opset": OPSET}
    if normalizer is not None:
        src["vecnormalize"] = {
            "file": Path(normalizer.where).name, "norm_obs": normalizer.norm_obs, "norm_reward": normalizer.norm_reward,
            "epsilon": normalizer.epsilon, "clip_obs": normalizer.clip_obs,
            "mean": [float(x) for x in normalizer.mean], "var": [float(x) for x in normalizer.var],
            "in_graph": ("Cast f64, Sub mean, Mul 1/sqrt(var+epsilon), Clip +-clip_obs, Cast f32"
                         if normalizer.norm_obs else "nothing (norm_obs is false)"),
            "norm_reward_note": "reward normalization acts in training only; it does not change actions",
        }
    return src


def write_zip(out: Path, meta: dict, members: dict[str, bytes]) -> None:
    comment = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    if len(comment) > 65535:
        raise InputError(f"metadata is {len(comment)} bytes; a zip comment holds at most 65535")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        zf.comment = comment


def evaluate(out: Path, bars_path: Path, training: dict, label: str | None = None) -> dict[str, Any]:
    model = OracleModel(out)
    bars = load_bars(bars_path)
    w = model.params.window
    results: dict[str, Any] = {"bars_file": str(bars_path)}
    for name in ("in_sample", "out_of_sample"):
        rng = (training.get(name) or {}).get("bars")
        if not rng:
            continue
        first, last = rng
        if last >= len(bars):
            raise InputError(f"{bars_path}: {len(bars)} bars, but the config's {name} range ends at bar {last}: "
                             "evaluate on the bars file the config was made from")
        start = max(0, first - (w - 1)) if name == "out_of_sample" else first
        decisions, position = run_backtest(model, bars.slice(start, last + 1))
        results[name] = summarize(decisions, position)
        print(f"{label or out.name} {name}: {json.dumps(results[name])}")
    if len(results) == 1:
        raise InputError("--evaluate: the config's training section has no in_sample / out_of_sample bar ranges")
    return results


def write_validated(out: Path, meta: dict, members: dict[str, bytes], evaluate_bars: Path | None) -> None:
    """Write beside `out`, load it back as the reference does (and evaluate), then rename: atomic, and a zip
    that fails validation never reaches `out` (an older good model there is kept)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        write_zip(tmp, meta, members)
        try:
            OracleModel(tmp)
            if evaluate_bars:
                meta["training"]["results"] = evaluate(tmp, evaluate_bars, meta["training"], out.name)
                write_zip(tmp, meta, members)
                OracleModel(tmp)
        except ModelError as err:
            raise InputError(f"{out}: the converted model fails validation, nothing written: "
                             f"{str(err).replace(str(tmp) + ': ', '')}") from None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ppo", type=Path, help="stable-baselines3 PPO .zip (model.save)")
    ap.add_argument("--hmm", type=Path, help="pickled hmmlearn GaussianHMM")
    ap.add_argument("--v1", type=Path, help="the specification's v1 zip (<SYM>_<TF>_ppo.zip + <SYM>_<TF>_hmm.pkl)")
    ap.add_argument("--config", type=Path, help="env_config.json (train.py or scripts/normalization.py)")
    ap.add_argument("--vecnormalize", type=Path, help="the VecNormalize.save() file the policy was trained with")
    ap.add_argument("--training-config", type=Path, help="JSON with the broker's costs (ENV.md §6 training_config)")
    ap.add_argument("--demo-costs", action="store_true", help="use symbols.py's demo costs when none are given")
    ap.add_argument("--pip-size", type=float, help="training_config.pip_size for a v1 zip that has none")
    ap.add_argument("--window", type=int, help="env.window for a v1 zip (default: the config's, else 350)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--symbol", default=None, help="export under this symbol (symbols.py)")
    ap.add_argument("--timeframe", default=None)
    ap.add_argument("--evaluate", type=Path, default=None, help="bars CSV for the in/out-of-sample backtests")
    ap.add_argument("--generated-at", default=None, help="RFC 3339 time to record (default: now)")
    args = ap.parse_args(argv)
    if args.v1 is None and (args.ppo is None or args.hmm is None or args.config is None):
        ap.error("give --ppo, --hmm and --config (or --v1 for a v1 zip)")
    if args.v1 is not None and (args.ppo or args.hmm):
        ap.error("--v1 already holds the policy and the HMM: drop --ppo / --hmm")
    return args


def convert(args: argparse.Namespace) -> None:
    config = read_json(args.config, "env_config.json") if args.config else None
    notes: list[str] = []
    if args.v1:
        from v1_zip import read_v1, v1_inputs

        v1 = read_v1(args.v1)
        training_config = read_json(args.training_config, "training_config") if args.training_config else None
        symbol, timeframe, env, costs, notes = v1_inputs(v1, config, str(args.config), args.pip_size,
                                                         training_config, args.window)
        symbol, timeframe = args.symbol or symbol, args.timeframe or timeframe
        check_env(env, f"{args.v1} + {args.config}", prefix="")
        check_training_config(costs, str(args.training_config or f"{args.v1} training_config"))
        cost_source = f"from {args.training_config or args.v1}"
        policy = read_sb3_policy(v1.ppo, f"{args.v1}:{v1.ppo_name}")
        hmm = read_gaussian_hmm(v1.hmm, f"{args.v1}:{v1.hmm_name}")
        training = {"converted_from": {"file": str(args.v1), "format": "v1 (SB3 zip + hmmlearn pickle)",
                                       "generated_at": v1.meta.get("generated_at")},
                    **(config.get("training") or {})}
    else:
        assert config is not None
        env = _field(config, "env", dict, str(args.config), FIX_CONFIG)
        check_env(env, str(args.config))
        symbol = args.symbol or config.get("symbol")
        timeframe = args.timeframe or config.get("timeframe")
        if not symbol or not timeframe:
            raise InputError(f"{args.config}: no 'symbol' / 'timeframe': give --symbol and --timeframe")
        costs, cost_source = resolve_training_config(args, config, symbol)
        policy = read_sb3_policy(read_file(args.ppo, "stable-baselines3 model zip"), str(args.ppo))
        hmm = read_gaussian_hmm(read_file(args.hmm, "hmmlearn pickle"), str(args.hmm))
        training = dict(config.get("training") or {})
        trained_on = config.get("symbol")
        if trained_on and symbol != trained_on:
            training["shared_from"] = trained_on
            training["note"] = f"policy and HMM trained on {trained_on}; training_config is {symbol}'s own"
    normalizer = None
    if args.vecnormalize:
        normalizer = read_vecnormalize(read_file(args.vecnormalize, "VecNormalize pickle"), str(args.vecnormalize))
    k = env["hmm_config"]["n_states"]
    check_policy_spaces(policy, k)
    checked = check_training_observation(policy, normalizer, k, float(env["observation"]["norm"]["clip"]),
                                         float(env["observation"]["unrealized_clip"]))
    covars, hmm_bytes = hmm_members(hmm, k)
    generated_at = args.generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = f"{symbol}_{timeframe}"
    members = {f"{prefix}_ppo.onnx": policy_onnx_bytes(policy, normalizer), f"{prefix}_hmm.onnx": hmm_bytes}
    meta = build_metadata(env, hmm, covars, symbol, timeframe, costs, generated_at, training,
                          ppo_source(policy, normalizer))
    for note in notes:
        print(f"note: {note}")
    print(f"training_config: {cost_source}")
    print(f"checked: {checked}")
    if normalizer is not None:
        print(f"vecnormalize: norm_obs={normalizer.norm_obs} (in the policy graph), norm_reward={normalizer.norm_reward} "
              f"(training only: no effect on actions), epsilon={normalizer.epsilon}, clip_obs={normalizer.clip_obs}")
    write_validated(args.out, meta, members, args.evaluate)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        convert(args)
    except OracleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {getattr(err, 'filename', None) or args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
