"""Export a trained model to the atomic zip of DESIGN.md §5 / ENV.md §8.

    scripts/.venv/bin/python scripts/export.py --ppo build/EURUSD_H1/ppo.zip --hmm build/EURUSD_H1/hmm.pkl \
        --config build/EURUSD_H1/env_config.json --out models/EURUSD_H1.zip \
        [--symbol GBPUSD] [--evaluate data/EURUSD_H1.csv]

- `<SYM>_<TF>_ppo.onnx`: torch.onnx.export (legacy exporter, opset 17) of the SB3 policy's deterministic
  head: features extractor -> actor MLP -> action_net; input `obs` [batch, D] f32, output `logits`
  [batch, 7] f32. Argmax of the logits is SB3's `predict(obs, deterministic=True)` for a Discrete space.
- `<SYM>_<TF>_hmm.onnx`: built with onnx.helper, f64, input `x` [T,3] -> `log_emission` [T,K]: Gaussian
  log-densities from per-state means and precision-Cholesky factors (any hmmlearn covariance_type:
  the stored covariances are expanded to full matrices per state, which we factor).
- the zip comment: the JSON metadata (ENV.md §8), at most 65535 bytes.
`--symbol` exports under another symbol's name with that symbol's training_config (symbols.py): the
policy and HMM are unchanged. `--evaluate BARS` runs the reference backtest (reference.py, onnxruntime)
over the in-sample and out-of-sample ranges of env_config.json on BARS and records the figures in
`training.results`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from oracle_core import (
    ACTIONS,
    FORMAT_VERSION,
    HMM_FEATURES,
    POLICY_FEATURES,
    OracleModel,
    load_bars,
    precision_cholesky,
    run_backtest,
    summarize,
)
from symbols import BY_NAME

OPSET = 17
# Fixed member timestamps so the same inputs give byte-identical members.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


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
    raise SystemExit(f"unknown hmmlearn covariance_type {kind!r}")


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


def ppo_onnx_bytes(ppo_path: Path, obs_dim: int) -> bytes:
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO.load(ppo_path, device="cpu")
    if model.observation_space.shape != (obs_dim,) or getattr(model.action_space, "n", None) != len(ACTIONS):
        raise SystemExit(
            f"{ppo_path}: policy spaces {model.observation_space.shape} -> {model.action_space} do not match "
            f"obs_dim {obs_dim} and the 7 actions"
        )

    class PolicyHead(torch.nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, obs):
            features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
            latent = self.policy.mlp_extractor.forward_actor(features)
            return self.policy.action_net(latent)

    head = PolicyHead(model.policy).eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            head,
            (torch.zeros(1, obs_dim, dtype=torch.float32),),
            buf,
            input_names=["obs"],
            output_names=["logits"],
            dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def observation_features(n_states: int) -> list[str]:
    return [f"z_{f}" for f in POLICY_FEATURES] + [f"regime_{k}" for k in range(n_states)] + [
        "position_direction",
        "position_intensity",
        "unrealized",
    ]


def build_metadata(config: dict, hmm, symbol: str, timeframe: str, training_config: dict, generated_at: str,
                   shared_from: str | None) -> dict[str, Any]:
    env = config["env"]
    k = env["hmm_config"]["n_states"]
    covars = full_covariances(hmm)
    prefix = f"{symbol}_{timeframe}"
    training = dict(config["training"])
    if shared_from:
        training["shared_from"] = shared_from
        training["note"] = f"policy and HMM trained on {shared_from}; training_config is {symbol}'s own"
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
                "obs_dim": 5 + k + 3, "action": "argmax(logits), lowest index on a tie"},
        "training": training,
    }


def write_zip(out: Path, meta: dict, members: dict[str, bytes]) -> None:
    comment = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    if len(comment) > 65535:
        raise SystemExit(f"metadata is {len(comment)} bytes; a zip comment holds at most 65535")
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        zf.comment = comment
    tmp.replace(out)  # atomic: readers never see a half-written model


def evaluate(out: Path, bars_path: Path, training: dict) -> dict[str, Any]:
    model = OracleModel(out)
    bars = load_bars(bars_path)
    w = model.params.window
    results = {"bars_file": str(bars_path)}
    ins = training["in_sample"]["bars"]
    oos = training["out_of_sample"]["bars"]
    for name, (first, last) in (("in_sample", ins), ("out_of_sample", oos)):
        start = max(0, first - (w - 1)) if name == "out_of_sample" else first
        decisions, position = run_backtest(model, bars.slice(start, last + 1))
        results[name] = summarize(decisions, position)
        print(f"{out.name} {name}: {json.dumps(results[name])}")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ppo", type=Path, required=True, help="stable-baselines3 PPO .zip")
    ap.add_argument("--hmm", type=Path, required=True, help="pickled hmmlearn GaussianHMM")
    ap.add_argument("--config", type=Path, required=True, help="env_config.json written by train.py")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--symbol", default=None, help="export under this symbol with its own costs (symbols.py)")
    ap.add_argument("--timeframe", default=None)
    ap.add_argument("--evaluate", type=Path, default=None, help="bars CSV for the in/out-of-sample backtests")
    ap.add_argument("--generated-at", default=None, help="RFC 3339 time to record (default: now)")
    args = ap.parse_args()

    config = json.loads(args.config.read_text())
    trained_on = config["symbol"]
    symbol = args.symbol or trained_on
    timeframe = args.timeframe or config["timeframe"]
    with open(args.hmm, "rb") as f:
        hmm = pickle.load(f)
    k = config["env"]["hmm_config"]["n_states"]
    if hmm.n_components != k or hmm.means_.shape[1] != 3:
        raise SystemExit(f"{args.hmm}: HMM has {hmm.n_components} states x {hmm.means_.shape[1]} features, config says {k} x 3")
    training_config = config.get("training_config") or BY_NAME[symbol].training_config()
    if args.symbol:
        training_config = BY_NAME[symbol].training_config()
    generated_at = args.generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = f"{symbol}_{timeframe}"
    members = {
        f"{prefix}_ppo.onnx": ppo_onnx_bytes(args.ppo, 5 + k + 3),
        f"{prefix}_hmm.onnx": hmm_onnx_bytes(np.asarray(hmm.means_, dtype=np.float64),
                                             precision_cholesky(full_covariances(hmm))),
    }
    meta = build_metadata(config, hmm, symbol, timeframe, training_config, generated_at,
                          trained_on if symbol != trained_on else None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_zip(args.out, meta, members)
    if args.evaluate:
        meta["training"]["results"] = evaluate(args.out, args.evaluate, meta["training"])
        write_zip(args.out, meta, members)
    OracleModel(args.out)  # validates what we wrote
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
