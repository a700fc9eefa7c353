"""Models trained elsewhere (fixtures/foreign, made by real SB3 + hmmlearn: scripts/make_fixtures.py) convert
exactly, in the light venv (no torch): the converted zip's reference backtest equals the decisions SB3's
`predict` + hmmlearn's forward pass took natively; the graphs equal SB3's actions/logits and hmmlearn's
log-likelihoods on recorded inputs; bad inputs are one line naming the file, exit code 2.
"""

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import export
import reference
from artifacts import read_gaussian_hmm, read_sb3_policy, read_vecnormalize
from oracle_core import ACTIONS, OracleError, read_model_zip
from policy_export import normalizer_onnx_bytes, policy_onnx_bytes

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "scripts" / "tests" / "fixtures" / "foreign"
MANIFEST = json.loads((FIX / "cases.json").read_text())
CASES = {c["name"]: c for c in MANIFEST["cases"]}
SB3 = np.load(FIX / "sb3.npz")
HMMLEARN = np.load(FIX / "hmmlearn.npz")
# The specification's v1 metadata (its §3), n_states set to the fixture HMM's 3.
V1_META = {
    "format_version": "2.0",
    "symbol": {"name": "EURUSD", "clean": "EURUSD", "timeframe": "M15"},
    "training_config": {"point": 0.00001, "pip_value": 10.0, "spread_points": 7, "slippage_points": 2,
                        "commission_per_lot": 7.0, "digits": 5, "lot_sizes": [0, 0.01, 0.03, 0.05]},
    "hmm_config": {"n_states": 3, "momentum_period": 12, "consistency_period": 12, "range_period": 20},
    "rl_config": {"roc_period": 10, "atr_period": 14, "ema_period": 200, "range_period": 20, "volume_ma_period": 20},
    "actions": {str(i): {"name": n, "direction": d, "intensity": q} for i, (n, d, q) in enumerate(ACTIONS)},
}


def session(blob: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])


def export_args(case: dict, out: Path) -> list[str]:
    args = ["--ppo", str(FIX / case["ppo"]), "--hmm", str(FIX / case["hmm"]), "--config", str(FIX / case["config"]),
            "--out", str(out), "--generated-at", "2026-01-01T00:00:00Z"]
    if case["vecnormalize"]:
        args += ["--vecnormalize", str(FIX / case["vecnormalize"])]
    return args


def run_export(args: list[str]) -> subprocess.CompletedProcess:
    """export.py as a user runs it: its own process, so a traceback would show on stderr."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "export.py"), *args], capture_output=True, text=True)


def test_fixtures_cover_the_issue_cases():
    hmms = {c["hmm"] for c in MANIFEST["cases"]}
    assert hmms >= {f"hmm_k{k}_{ct}.pkl" for k in (3, 7) for ct in ("full", "diag", "spherical", "tied")}
    assert {c["ppo"] for c in MANIFEST["cases"]} == {"ppo_mlp_k3.zip", "ppo_relu_k7.zip", "ppo_vecnorm_k3.zip"}
    assert any(c["vecnormalize"] for c in MANIFEST["cases"])
    relu = read_sb3_policy((FIX / "ppo_relu_k7.zip").read_bytes(), "relu")
    assert (relu.activation, relu.net_arch_pi) == ("Relu", [128, 64])
    mlp = read_sb3_policy((FIX / "ppo_mlp_k3.zip").read_bytes(), "mlp")
    assert (mlp.activation, mlp.net_arch_pi) == ("Tanh", [64, 64])


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_model_decides_as_sb3_and_hmmlearn(tmp_path: Path, name: str):
    case = CASES[name]
    out = tmp_path / "EURUSD_H1.zip"
    assert export.main(export_args(case, out)) == 0
    got = tmp_path / "reference.csv"
    assert reference.main(["backtest", "--model", str(out), "--bars", str(FIX / "bars.csv"), "--out", str(got)]) == 0
    expected = (FIX / case["expected"]).read_text().splitlines()
    ours = got.read_text().splitlines()
    assert len(ours) == len(expected) == 601
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(ours, expected)) if a != b]
    assert not diff, f"{len(diff)} rows differ from native SB3 + hmmlearn, first {diff[:3]}"


@pytest.mark.parametrize("name", ["ppo_mlp_k3", "ppo_relu_k7", "ppo_vecnorm_k3"])
def test_policy_graph_gives_sb3_actions_and_logits(name: str):
    policy = read_sb3_policy((FIX / f"{name}.zip").read_bytes(), name)
    vn = read_vecnormalize((FIX / "vecnormalize_k3.pkl").read_bytes(), "vn") if "vecnorm" in name else None
    obs = SB3[f"{name}/obs"]
    logits = session(policy_onnx_bytes(policy, vn)).run(["logits"], {"obs": obs})[0]
    np.testing.assert_array_equal(np.argmax(logits, axis=1), SB3[f"{name}/actions"])
    assert np.abs(logits - SB3[f"{name}/logits"]).max() <= 1e-5
    assert len(set(SB3[f"{name}/actions"].tolist())) >= 3, "the recorded observations exercise several actions"


def test_vecnormalize_prefix_equals_sb3_normalize_obs_bit_for_bit():
    vn = read_vecnormalize((FIX / "vecnormalize_k3.pkl").read_bytes(), "vn")
    obs = SB3["ppo_vecnorm_k3/obs"]
    ours = session(normalizer_onnx_bytes(vn, obs.shape[1])).run(["normalized"], {"obs": obs})[0]
    sb3 = SB3["ppo_vecnorm_k3/normalized"]
    assert ours.dtype == sb3.dtype == np.float32
    np.testing.assert_array_equal(ours.view(np.uint32), sb3.view(np.uint32))
    # SB3's formula (ObsNormalizer.normalize is its code) on values far enough out to hit ±clip_obs.
    np.testing.assert_array_equal(vn.normalize(obs), sb3)
    wide = obs * np.float32(40.0)
    ours = session(normalizer_onnx_bytes(vn, obs.shape[1])).run(["normalized"], {"obs": wide})[0]
    theirs = vn.normalize(wide)
    assert (np.abs(theirs) == vn.clip_obs).sum() > 100
    np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("name", sorted({c["hmm"][:-4] for c in MANIFEST["cases"]}))
def test_hmm_graph_matches_recorded_hmmlearn(name: str):
    hmm = read_gaussian_hmm((FIX / f"{name}.pkl").read_bytes(), name)
    covars, blob = export.hmm_members(hmm, hmm.n_components)
    x = HMMLEARN["x"]
    out = session(blob).run(["log_emission"], {"x": x})[0]
    np.testing.assert_allclose(out, HMMLEARN[f"{name}/loglik"], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------- bad input


def truncated(tmp_path: Path) -> Path:
    data = (FIX / "ppo_mlp_k3.zip").read_bytes()
    p = tmp_path / "truncated.zip"
    p.write_bytes(data[: len(data) // 2])
    return p


def no_data_member(tmp_path: Path) -> Path:
    p = tmp_path / "nodata.zip"
    with zipfile.ZipFile(FIX / "ppo_mlp_k3.zip") as src, zipfile.ZipFile(p, "w") as dst:
        for n in src.namelist():
            if n != "data":
                dst.writestr(n, src.read(n))
    return p


def config_without(tmp_path: Path, key: str) -> Path:
    cfg = json.loads((FIX / "env_config_k3.json").read_text())
    del cfg["env"][key]
    p = tmp_path / "env_config.json"
    p.write_text(json.dumps(cfg))
    return p


def evil_pickle(tmp_path: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (__import__("os").system, ("echo pwned",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(Evil()))
    return p


BAD = {
    "missing policy file": (lambda t: {"--ppo": str(t / "nope.zip")}, "nope.zip", "no such file"),
    "truncated SB3 zip": (lambda t: {"--ppo": str(truncated(t))}, "truncated.zip", "truncated"),
    "SB3 zip without data": (lambda t: {"--ppo": str(no_data_member(t))}, "nodata.zip", "No data found"),
    "policy with 5 actions": (lambda t: {"--ppo": str(FIX / "ppo_5actions.zip")}, "ppo_5actions.zip", "Discrete(5)"),
    "HMM with 4 features": (lambda t: {"--hmm": str(FIX / "hmm_4features.pkl")}, "hmm_4features.pkl", "4 features"),
    "HMM with other states": (lambda t: {"--hmm": str(FIX / "hmm_k7_full.pkl")}, "hmm_k7_full.pkl", "7 states"),
    "config missing a field": (lambda t: {"--config": str(config_without(t, "hmm_scaler"))}, "env_config.json",
                               "'env.hmm_scaler.mean' is missing"),
    "VecNormalize policy without it": (lambda t: {"--ppo": str(FIX / "ppo_vecnorm_k3.zip")}, "ppo_vecnorm_k3.zip",
                                       "--vecnormalize"),
    "normalizer for a policy trained without": (lambda t: {"--vecnormalize": str(FIX / "vecnormalize_k3.pkl")},
                                                "ppo_mlp_k3.zip", "no trace of VecNormalize"),
    "code in a pickle": (lambda t: {"--hmm": str(evil_pickle(t))}, "evil.pkl", "posix.system"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, case: str):
    edit, file_name, phrase = BAD[case]
    args = dict(zip(export_args(CASES["mlp_k3_full"], tmp_path / "m.zip")[0::2],
                    export_args(CASES["mlp_k3_full"], tmp_path / "m.zip")[1::2]))
    args.update(edit(tmp_path))
    r = run_export([x for kv in args.items() for x in kv])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: ") and file_name in r.stderr and phrase in r.stderr, r.stderr
    assert not (tmp_path / "m.zip").exists()


def test_vecnormalize_from_another_run_is_refused():
    """Statistics that do not belong to the policy: un-normalizing its last training observation breaks §7."""
    from dataclasses import replace

    from policy_export import check_training_observation

    normalizer = read_vecnormalize((FIX / "vecnormalize_k3.pkl").read_bytes(), "other_vecnormalize.pkl")
    policy = read_sb3_policy((FIX / "ppo_vecnorm_k3.zip").read_bytes(), "ppo_vecnorm_k3.zip")
    assert "un-normalized" in check_training_observation(policy, normalizer, 3, 5.0, 5.0)
    other = replace(normalizer, mean=normalizer.mean + 0.3, old_obs=None)
    with pytest.raises(OracleError, match="not the normalizer that policy was trained with"):
        check_training_observation(policy, other, 3, 5.0, 5.0)


def test_failed_validation_leaves_nothing_at_out(tmp_path: Path):
    cfg = json.loads((FIX / "env_config_k3.json").read_text())
    cfg["env"]["observation"]["norm"]["std"][2] = 0.0
    bad = tmp_path / "env_config.json"
    bad.write_text(json.dumps(cfg))
    out = tmp_path / "EURUSD_H1.zip"
    out.write_bytes(b"the previous good model")
    args = export_args(CASES["mlp_k3_full"], out)
    args[args.index("--config") + 1] = str(bad)
    r = run_export(args)
    assert r.returncode == 2 and "observation.norm.std" in r.stderr and "nothing written" in r.stderr, r.stderr
    assert out.read_bytes() == b"the previous good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EURUSD_H1.zip", "env_config.json"]


def test_demo_costs_are_never_silent(tmp_path: Path):
    cfg = json.loads((FIX / "env_config_k3.json").read_text())
    del cfg["training_config"]
    p = tmp_path / "env_config.json"
    p.write_text(json.dumps(cfg))
    args = export_args(CASES["mlp_k3_full"], tmp_path / "m.zip")
    args[args.index("--config") + 1] = str(p)
    r = run_export(args)
    assert r.returncode == 2 and "--training-config" in r.stderr and "--demo-costs" in r.stderr, r.stderr
    r = run_export(args + ["--demo-costs"])
    assert r.returncode == 0, r.stderr
    assert "training_config: symbols.py's DEMO values for EURUSD" in r.stdout


# ---------------------------------------------------------------------------------------------- v1


def v1_zip(tmp_path: Path, meta: dict | None = None) -> Path:
    p = tmp_path / "EURUSD_M15.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("EURUSD_M15_hmm.pkl", (FIX / "hmm_k3_full.pkl").read_bytes())
        zf.writestr("EURUSD_M15_ppo.zip", (FIX / "ppo_mlp_k3.zip").read_bytes())
        zf.comment = json.dumps(meta or V1_META).encode()
    return p


def test_v1_zip_names_everything_it_lacks(tmp_path: Path):
    r = run_export(["--v1", str(v1_zip(tmp_path)), "--out", str(tmp_path / "out.zip")])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "(1) the feature normalization" in r.stderr and "normalization.py" in r.stderr
    assert "(2) training_config.pip_size" in r.stderr and "--pip-size" in r.stderr


def test_v1_zip_converts_in_one_command(tmp_path: Path):
    src = v1_zip(tmp_path)
    out = tmp_path / "models" / "EURUSD_M15.zip"
    r = run_export(["--v1", str(src), "--config", str(FIX / "env_config_k3.json"), "--pip-size", "0.0001",
                    "--out", str(out)])
    assert r.returncode == 0, r.stderr
    assert "training_config.pip_size = 0.0001 from --pip-size" in r.stdout
    meta, members = read_model_zip(out)
    assert sorted(members) == ["EURUSD_M15_hmm.onnx", "EURUSD_M15_ppo.onnx"]
    assert meta["env"]["window"] == 350 and meta["symbol"] == V1_META["symbol"]
    assert meta["training_config"]["pip_size"] == 0.0001 and meta["training"]["converted_from"]["file"] == str(src)
    got = tmp_path / "ref.csv"
    assert reference.main(["backtest", "--model", str(out), "--bars", str(FIX / "bars.csv"), "--out", str(got)]) == 0
    # The spec's EURUSD costs are symbols.py's, so the decisions (and PnL) are the mlp_k3_full case's.
    assert got.read_text() == (FIX / "expected" / "mlp_k3_full.csv").read_text()


def test_reference_names_a_v1_zip_and_its_command(tmp_path: Path, capsys):
    src = v1_zip(tmp_path)
    assert reference.main(["backtest", "--model", str(src), "--bars", str(FIX / "bars.csv"), "--out",
                           str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "a v1 model zip" in err and f"scripts/export.py --v1 {src}" in err


def test_normalization_reads_the_v1_periods(tmp_path: Path):
    import normalization

    out = tmp_path / "norm.json"
    assert normalization.main(["--bars", str(ROOT / "data" / "EURUSD_H1.csv"), "--periods-from", str(v1_zip(tmp_path)),
                               "--out", str(out)]) == 0
    env = json.loads(out.read_text())["env"]
    fixture = json.loads((FIX / "env_config_k3.json").read_text())["env"]
    assert env["window"] == 350 and env["hmm_config"] == V1_META["hmm_config"]
    assert env["observation"] == fixture["observation"] and env["hmm_scaler"] == fixture["hmm_scaler"]


def test_normalization_reproduces_train_py_bit_for_bit(tmp_path: Path):
    """The shipped EURUSD model's normalization was computed by train.py; the user command gives the same bits."""
    import normalization

    out = tmp_path / "norm.json"
    assert normalization.main(["--bars", str(ROOT / "data" / "EURUSD_H1.csv"), "--periods-from",
                               str(ROOT / "models" / "EURUSD_H1.zip"), "--out", str(out)]) == 0
    env = json.loads(out.read_text())["env"]
    meta, _ = read_model_zip(ROOT / "models" / "EURUSD_H1.zip")
    assert env["observation"]["norm"]["mean"] == meta["observation"]["norm"]["mean"]
    assert env["observation"]["norm"]["std"] == meta["observation"]["norm"]["std"]
    assert env["hmm_scaler"] == meta["hmm"]["scaler"]
