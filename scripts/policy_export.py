"""The policy ONNX graph from an SB3 MlpPolicy's weights (no torch), optionally behind its VecNormalize, and
the checks that the policy was trained on ENV.md §7's observation.

The graph is the one torch.onnx.export writes for the policy's deterministic head (what export.py used to
call; scripts/tests/test_export.py compares the two where torch is installed): Cast to float32 (SB3's
`preprocess_obs`: `obs.float()`), Flatten(axis=1) (the FlattenExtractor), then per policy_net layer
`Gemm(x, W, b, transB=1)` and the activation, then `Gemm` for `action_net` → `logits`. SB3's
`predict(obs, deterministic=True)` for a Discrete space is the argmax of these logits
(`CategoricalDistribution.mode`).

VecNormalize (stable_baselines3/common/vec_env/vec_normalize.py `_normalize_obs` / `normalize_obs`):
`np.clip((obs - mean) / np.sqrt(var + epsilon), -clip_obs, clip_obs).astype(np.float32)`, in float64 since
`obs_rms` holds float64. The graph prefix does the same in float64 — Cast(obs → f64), Sub mean, Mul by
`1 / sqrt(var + epsilon)`, Clip ±clip_obs, Cast → f32 — with one deliberate difference: a multiplication by
the reciprocal instead of the division, because tract (the twin's runtime) rewrites every float Div into
Mul(Recip) anyway (tract-core 0.22 `ops/math/mod.rs` `declutter_div`), and onnxruntime would not: with Mul
both runtimes compute the same bits. The quotient and the product differ by at most an ulp of float64,
which changes the float32 observation only when it falls on a float32 rounding boundary (ENV.md §8 gives
the measured rate). `norm_reward` scales rewards in training only; it never reaches `predict`, so it is
recorded but changes nothing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from artifacts import ObsNormalizer, Sb3Policy
from oracle_core import ACTIONS, POLICY_FEATURES, InputError

OPSET = 17


def observation_features(n_states: int) -> list[str]:
    return [f"z_{f}" for f in POLICY_FEATURES] + [f"regime_{k}" for k in range(n_states)] + [
        "position_direction",
        "position_intensity",
        "unrealized",
    ]


def vecnormalize_nodes(normalizer: ObsNormalizer | None, x: str) -> tuple[list, list, str]:
    """Initializers, nodes and output name of the VecNormalize prefix on `x` (nothing without norm_obs)."""
    from onnx import TensorProto, helper, numpy_helper

    if normalizer is None or not normalizer.norm_obs:
        return [], [], x
    inv_std = 1.0 / np.sqrt(normalizer.var + normalizer.epsilon)
    inits = [
        numpy_helper.from_array(normalizer.mean.astype(np.float64), "vecnormalize.mean"),
        numpy_helper.from_array(inv_std.astype(np.float64), "vecnormalize.inv_std"),
        numpy_helper.from_array(np.array(-normalizer.clip_obs, dtype=np.float64), "vecnormalize.clip_low"),
        numpy_helper.from_array(np.array(normalizer.clip_obs, dtype=np.float64), "vecnormalize.clip_high"),
    ]
    nodes = [
        helper.make_node("Cast", [x], ["vecnormalize/obs_f64"], to=TensorProto.DOUBLE),
        helper.make_node("Sub", ["vecnormalize/obs_f64", "vecnormalize.mean"], ["vecnormalize/centered"]),
        helper.make_node("Mul", ["vecnormalize/centered", "vecnormalize.inv_std"], ["vecnormalize/scaled"]),
        helper.make_node("Clip", ["vecnormalize/scaled", "vecnormalize.clip_low", "vecnormalize.clip_high"],
                         ["vecnormalize/clipped"]),
        helper.make_node("Cast", ["vecnormalize/clipped"], ["vecnormalize/obs"], to=TensorProto.FLOAT),
    ]
    return inits, nodes, "vecnormalize/obs"


def normalizer_onnx_bytes(normalizer: ObsNormalizer, d: int) -> bytes:
    """The VecNormalize prefix alone, `obs` -> `normalized` (tests compare it with SB3's normalize_obs)."""
    from onnx import TensorProto, helper

    inits, nodes, out = vecnormalize_nodes(normalizer, "obs")
    nodes.append(helper.make_node("Identity", [out], ["normalized"]))
    graph = helper.make_graph(nodes, "vecnormalize", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", d])],
                              [helper.make_tensor_value_info("normalized", TensorProto.FLOAT, ["batch", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oracle-export")
    model.ir_version = 8
    return model.SerializeToString()


def policy_onnx_bytes(policy: Sb3Policy, normalizer: ObsNormalizer | None = None) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = policy.obs_shape[0]
    inits, nodes, x = vecnormalize_nodes(normalizer, "obs")
    nodes.append(helper.make_node("Cast", [x], ["/Cast_output_0"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Flatten", ["/Cast_output_0"], ["/features_extractor/flatten/Flatten_output_0"], axis=1))
    prev = "/features_extractor/flatten/Flatten_output_0"
    for i, (w, b) in enumerate(policy.layers):
        wn, bn = f"policy.mlp_extractor.policy_net.{2 * i}.weight", f"policy.mlp_extractor.policy_net.{2 * i}.bias"
        inits += [numpy_helper.from_array(w, wn), numpy_helper.from_array(b, bn)]
        gemm = f"/policy_net/policy_net.{2 * i}/Gemm_output_0"
        act = f"/policy_net/policy_net.{2 * i + 1}/{policy.activation}_output_0"
        nodes.append(helper.make_node("Gemm", [prev, wn, bn], [gemm], alpha=1.0, beta=1.0, transB=1))
        nodes.append(helper.make_node(policy.activation, [gemm], [act]))
        prev = act
    w, b = policy.action
    inits += [numpy_helper.from_array(w, "policy.action_net.weight"), numpy_helper.from_array(b, "policy.action_net.bias")]
    nodes.append(helper.make_node("Gemm", [prev, "policy.action_net.weight", "policy.action_net.bias"], ["logits"],
                                  alpha=1.0, beta=1.0, transB=1))
    graph = helper.make_graph(
        nodes,
        "ppo_policy_head",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", d])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(ACTIONS)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="oracle-export")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def check_policy_spaces(policy: Sb3Policy, n_states: int) -> None:
    d = 5 + n_states + 3
    if policy.n_actions != len(ACTIONS):
        got = f"Discrete({policy.n_actions})" if policy.n_actions is not None else "a non-Discrete action space"
        raise InputError(f"{policy.where}: the policy has {got}; the twin needs Discrete(7) in the seed's order "
                         f"({', '.join(a[0] for a in ACTIONS)}): retrain it with those 7 actions")
    if policy.obs_shape != (d,):
        raise InputError(f"{policy.where}: the policy observes {list(policy.obs_shape)} values; with the HMM's "
                         f"{n_states} states ENV.md §7's observation has 5 + {n_states} + 3 = {d}: "
                         "pair it with the HMM it was trained with")
    if int(policy.action[0].shape[0]) != len(ACTIONS):
        raise InputError(f"{policy.where}: action_net has {policy.action[0].shape[0]} outputs, the action space 7")


def observation_problem(obs: np.ndarray, n_states: int, clip: float, uclip: float, tol: float,
                        known: np.ndarray | None = None) -> str | None:
    """The first value of `obs` ([rows, 5+K+3]) that ENV.md §7's observation can never hold, or None.
    `known` masks values that cannot be checked (clipped by a normalizer)."""
    names = observation_features(n_states)
    k = n_states
    for r, row in enumerate(np.asarray(obs, dtype=np.float64)):
        for j, v in enumerate(row):
            if known is not None and not known[r, j]:
                continue
            if j < 5:
                ok = abs(v) <= clip + tol
            elif j < 5 + k:
                ok = min(abs(v), abs(v - 1.0)) <= tol
            elif j == 5 + k:
                ok = min(abs(v - a) for a in (-1.0, 0.0, 1.0)) <= tol
            elif j == 6 + k:
                ok = min(abs(v - q / 3) for q in range(4)) <= tol
            else:
                ok = abs(v) <= uclip + tol
            if not ok:
                return f"{names[j]} = {v:.6g}"
        if known is None or known[r].all():
            if abs(sum(row[5 : 5 + k]) - 1.0) > tol:
                return f"regime one-hot summing to {sum(row[5 : 5 + k]):.6g}"
            if (abs(row[5 + k]) <= tol) != (abs(row[6 + k]) <= tol):
                return f"position_direction {row[5 + k]:.6g} with position_intensity {row[6 + k]:.6g}"
    return None


def check_training_observation(policy: Sb3Policy, normalizer: ObsNormalizer | None, n_states: int, clip: float,
                               uclip: float) -> str:
    """Refuse a policy whose recorded training observation shows it saw other inputs than the twin will feed
    it (the VecNormalize trap); returns what was checked, for the log."""
    d = 5 + n_states + 3
    if policy.trained_with_vecnormalize and normalizer is None:
        raise InputError(
            f"{policy.where}: this policy was trained inside VecNormalize (its zip records _last_original_obs, "
            "which stable-baselines3 sets only for a VecNormalize env), so it expects normalized observations; "
            "exported without the normalizer it would decide differently: give the vecnormalize.pkl saved "
            "with it (--vecnormalize FILE)")
    if normalizer is not None and normalizer.norm_obs and normalizer.mean.shape != (d,):
        raise InputError(f"{normalizer.where}: VecNormalize statistics for {normalizer.mean.shape[0]} values; the "
                         f"policy observes {d}: pass the vecnormalize.pkl saved with {policy.where}")
    if normalizer is not None and not policy.trained_with_vecnormalize:
        raise InputError(f"{policy.where}: the zip has no trace of VecNormalize (_last_original_obs is null), yet "
                         f"--vecnormalize {normalizer.where} was given: drop the flag, or pass the policy that was "
                         "trained with that normalizer")
    if normalizer is not None and normalizer.old_obs is not None:
        problem = observation_problem(normalizer.old_obs, n_states, clip, uclip, 1e-6)
        if problem:
            raise InputError(f"{normalizer.where}: the last raw observation this VecNormalize saw has {problem}, "
                             "which ENV.md §7's observation never holds: it did not wrap this environment")
    if policy.last_obs is None:
        return "the policy zip records no training observation (_last_obs): its layout could not be checked"
    if policy.last_obs.shape[-1] != d:
        raise InputError(f"{policy.where}: its last training observation has {policy.last_obs.shape[-1]} values, expected {d}")
    if normalizer is None or not normalizer.norm_obs:
        problem = observation_problem(policy.last_obs, n_states, clip, uclip, 1e-6)
        if problem:
            raise InputError(
                f"{policy.where}: the last observation this policy was trained on has {problem}, which ENV.md §7's "
                "observation never holds: it was trained on other or transformed inputs (VecNormalize? then give "
                "--vecnormalize FILE), and exported as is it would decide differently")
        return "the policy's last training observation is in ENV.md §7's layout"
    raw = policy.last_obs.astype(np.float64) * np.sqrt(normalizer.var + normalizer.epsilon) + normalizer.mean
    known = np.abs(policy.last_obs) < normalizer.clip_obs
    problem = observation_problem(raw, n_states, clip, uclip, 1e-4, known)
    if problem:
        raise InputError(
            f"{normalizer.where}: un-normalizing the last observation {policy.where} was trained on gives {problem}: "
            "this is not the normalizer that policy was trained with; pass the vecnormalize.pkl saved with it")
    return "the policy's last training observation, un-normalized by this VecNormalize, is in ENV.md §7's layout"


def numpy_logits(policy: Sb3Policy, obs: Sequence[Sequence[float]]) -> np.ndarray:
    """The head in numpy float32 (for tests: same maths, other summation order)."""
    x = np.asarray(obs, dtype=np.float32)
    act = np.tanh if policy.activation == "Tanh" else (lambda v: np.maximum(v, np.float32(0)))
    for w, b in policy.layers:
        x = act(x @ w.T + b)
    w, b = policy.action
    return x @ w.T + b
