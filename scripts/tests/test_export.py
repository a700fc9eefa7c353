"""export.py: the HMM graph is the Gaussian log-density; the exported policy gives SB3's actions.

The tests here that need the training venv (torch, stable-baselines3, hmmlearn) skip without it: they
check the torch-free exporter against live SB3 / hmmlearn / torch.onnx. CI runs the same checks on
recorded SB3 + hmmlearn fixtures in test_foreign.py, without torch.
"""

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export import full_covariances, hmm_onnx_bytes, write_zip
from oracle_core import InputError, ModelError, log_emission_numpy, precision_cholesky, read_model_zip

ROOT = Path(__file__).resolve().parents[2]


def run_hmm_graph(blob: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(["log_emission"], {"x": x})[0]


def test_hmm_graph_is_the_gaussian_log_density():
    rng = np.random.default_rng(5)
    k = 4
    means = rng.normal(size=(k, 3))
    a = rng.normal(size=(k, 3, 3))
    covars = a @ np.transpose(a, (0, 2, 1)) + 0.3 * np.eye(3)
    x = rng.normal(size=(50, 3))
    out = run_hmm_graph(hmm_onnx_bytes(means, precision_cholesky(covars)), x)
    assert out.shape == (50, k) and out.dtype == np.float64
    for t in (0, 17, 49):
        for j in range(k):
            d = x[t] - means[j]
            expected = -0.5 * (3 * math.log(2 * math.pi) + math.log(np.linalg.det(covars[j])) + d @ np.linalg.inv(covars[j]) @ d)
            assert out[t, j] == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(out, log_emission_numpy(x, means, precision_cholesky(covars)), rtol=1e-12)


def test_hmm_graph_uses_only_simple_ops():
    import onnx

    blob = hmm_onnx_bytes(np.zeros((2, 3)), np.stack([np.eye(3)] * 2))
    ops = {n.op_type for n in onnx.load_from_string(blob).graph.node}
    assert ops <= {"Sub", "MatMul", "Mul", "ReduceSum", "Add", "Transpose", "Unsqueeze"}


def test_oversized_metadata_is_refused(tmp_path: Path):
    with pytest.raises(InputError, match="65535"):
        write_zip(tmp_path / "m.zip", {"pad": "x" * 70000}, {})


def test_written_zip_round_trips_metadata(tmp_path: Path):
    meta, members = read_model_zip(ROOT / "models" / "EURUSD_H1.zip")
    out = tmp_path / "EURUSD_H1.zip"
    write_zip(out, meta, members)
    again, members_again = read_model_zip(out)
    assert again == meta and members_again == members
    meta["ppo"]["obs_dim"] = 12
    write_zip(out, meta, members)
    with pytest.raises(ModelError, match="ppo.obs_dim"):
        read_model_zip(out)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_hmm_graph_matches_hmmlearn(covariance_type: str):
    hmm_mod = pytest.importorskip("hmmlearn.hmm", reason="hmmlearn is in the training venv only")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(loc=m, size=(200, 3)) for m in (-2.0, 0.0, 2.5)])
    model = hmm_mod.GaussianHMM(n_components=3, covariance_type=covariance_type, n_iter=20, random_state=0).fit(x)
    blob = hmm_onnx_bytes(np.asarray(model.means_), precision_cholesky(full_covariances(model)))
    np.testing.assert_allclose(run_hmm_graph(blob, x), model._compute_log_likelihood(x), rtol=1e-9, atol=1e-9)


def torch_onnx_bytes(model, obs_dim: int) -> bytes:
    """What export.py did before it read the weights itself: torch.onnx.export of the deterministic head."""
    import io

    import torch

    class PolicyHead(torch.nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, obs):
            features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
            return self.policy.action_net(self.policy.mlp_extractor.forward_actor(features))

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(PolicyHead(model.policy).eval(), (torch.zeros(1, obs_dim, dtype=torch.float32),), buf,
                          input_names=["obs"], output_names=["logits"],
                          dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return buf.getvalue()


@pytest.mark.parametrize("policy_kwargs", [{"net_arch": [64, 64]},
                                           {"net_arch": {"pi": [128, 64], "vf": [64, 64]}, "activation": "ReLU"}],
                         ids=["tanh_64_64", "relu_128_64"])
def test_policy_round_trip(tmp_path: Path, policy_kwargs: dict):
    """Live SB3 (train venv): the torch-free graph is torch.onnx's graph, node for node and weight for weight,
    and gives SB3's predict."""
    torch = pytest.importorskip("torch", reason="torch is in the training venv only (scripts/setup_venv.sh --train)")
    gym = pytest.importorskip("gymnasium")
    import onnx
    from stable_baselines3 import PPO

    from artifacts import read_sb3_policy
    from policy_export import policy_onnx_bytes

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(13,), dtype=np.float32)
        action_space = gym.spaces.Discrete(7)

    kwargs = dict(policy_kwargs)
    if kwargs.pop("activation", None) == "ReLU":
        kwargs["activation_fn"] = torch.nn.ReLU
    # Random weights are enough: the test is about the graph, not the training.
    model = PPO("MlpPolicy", Spaces(), seed=3, device="cpu", policy_kwargs=kwargs)
    with torch.no_grad():  # distinct non-zero biases: torch.onnx would merge equal zero initializers
        for param in model.policy.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    model.save(tmp_path / "ppo.zip")
    ours = policy_onnx_bytes(read_sb3_policy((tmp_path / "ppo.zip").read_bytes(), "ppo.zip"))
    theirs = onnx.load_from_string(torch_onnx_bytes(model, 13))
    mine = onnx.load_from_string(ours)
    assert [(n.op_type, list(n.input), list(n.output), [(a.name, onnx.helper.get_attribute_value(a)) for a in n.attribute])
            for n in mine.graph.node] == \
           [(n.op_type, list(n.input), list(n.output), [(a.name, onnx.helper.get_attribute_value(a)) for a in n.attribute])
            for n in theirs.graph.node]
    assert {i.name: onnx.numpy_helper.to_array(i).tobytes() for i in mine.graph.initializer} == \
           {i.name: onnx.numpy_helper.to_array(i).tobytes() for i in theirs.graph.initializer}
    obs = np.random.default_rng(0).normal(scale=2.0, size=(500, 13)).astype(np.float32)
    logits = ort.InferenceSession(ours, providers=["CPUExecutionProvider"]).run(["logits"], {"obs": obs})[0]
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(np.argmax(logits, axis=1), expected)


def test_shipped_policy_gives_sb3_actions_on_golden_observations():
    pytest.importorskip("torch", reason="torch is in the training venv only (scripts/setup_venv.sh --train)")
    ppo_zip = ROOT / "scripts" / "build" / "EURUSD_H1" / "ppo.zip"
    if not ppo_zip.exists():
        pytest.skip("scripts/build/EURUSD_H1/ppo.zip not built here (scripts/build_models.sh)")
    from stable_baselines3 import PPO
    import csv

    meta, _ = read_model_zip(ROOT / "models" / "EURUSD_H1.zip")
    config = json.loads((ppo_zip.parent / "env_config.json").read_text())
    if config["training"]["data_sha256"] != meta["training"]["data_sha256"] or \
            meta["observation"]["norm"]["mean"] != config["env"]["observation"]["norm"]["mean"]:
        pytest.skip("scripts/build/ holds a different training run than models/EURUSD_H1.zip")
    model = PPO.load(ppo_zip, device="cpu")
    with open(ROOT / "scripts" / "tests" / "golden" / "EURUSD_H1" / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    obs = np.array([[float(r[f"obs{i}"]) for i in range(13)] for r in rows], dtype=np.float32)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(np.array([int(r["action"]) for r in rows]), expected)
