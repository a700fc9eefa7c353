"""export.py: the HMM graph is the Gaussian log-density; the exported policy gives SB3's actions.

Only `test_policy_round_trip` and `test_hmm_graph_matches_hmmlearn` need the training venv
(torch, stable-baselines3, hmmlearn) and skip without it; the rest runs in the light venv.
"""

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export import full_covariances, hmm_onnx_bytes, write_zip
from oracle_core import ModelError, log_emission_numpy, precision_cholesky, read_model_zip

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
    with pytest.raises(SystemExit, match="65535"):
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


def test_policy_round_trip(tmp_path: Path):
    pytest.importorskip("torch", reason="torch is in the training venv only (scripts/setup_venv.sh --train)")
    gym = pytest.importorskip("gymnasium")
    from stable_baselines3 import PPO

    from export import ppo_onnx_bytes

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(13,), dtype=np.float32)
        action_space = gym.spaces.Discrete(7)

    # Random weights are enough: the test is about the graph, not the training.
    model = PPO("MlpPolicy", Spaces(), seed=3, device="cpu", policy_kwargs={"net_arch": [64, 64]})
    model.save(tmp_path / "ppo.zip")
    sess = ort.InferenceSession(ppo_onnx_bytes(tmp_path / "ppo.zip", 13), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).normal(scale=2.0, size=(500, 13)).astype(np.float32)
    logits = sess.run(["logits"], {"obs": obs})[0]
    assert logits.shape == (500, 7)
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
