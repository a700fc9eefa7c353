"""Model zip metadata (ENV.md §8) and bars parsing (§1): valid files load, bad ones are refused by name."""

import json
import zipfile
from pathlib import Path

import pytest

from oracle_core import ACTIONS, BarsError, ModelError, OracleModel, load_bars, read_model_zip

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "models").glob("*.zip"))
SEED_KEYS = ("format_version", "generated_at", "symbol", "training_config", "hmm_config", "rl_config", "actions")


def test_models_are_shipped():
    assert any(m.name == "EURUSD_H1.zip" for m in MODELS)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_model_metadata_validates(path: Path):
    with zipfile.ZipFile(path) as zf:
        assert len(zf.comment) <= 65535
        names = sorted(zf.namelist())
    meta, _ = read_model_zip(path)
    for key in SEED_KEYS:
        assert key in meta
    assert meta["format_version"] == "2.0"
    sym, tf = meta["symbol"]["name"], meta["symbol"]["timeframe"]
    assert path.stem == f"{sym}_{tf}"
    assert names == sorted([f"{sym}_{tf}_hmm.onnx", f"{sym}_{tf}_ppo.onnx"])
    assert [meta["actions"][str(i)]["name"] for i in range(7)] == [a[0] for a in ACTIONS]
    for key in ("data_file", "data_sha256", "in_sample", "out_of_sample", "seeds", "ppo", "results"):
        assert key in meta["training"], key
    model = OracleModel(path)
    k = model.params.n_states
    ins = {i.name: i.shape for i in model.hmm_session.get_inputs()}
    outs = {o.name: o.shape for o in model.hmm_session.get_outputs()}
    assert ins["x"][1] == 3 and outs["log_emission"][1] == k
    assert model.ppo_session.get_inputs()[0].name == "obs" and model.ppo_session.get_inputs()[0].shape[1] == 5 + k + 3
    assert model.ppo_session.get_outputs()[0].name == "logits" and model.ppo_session.get_outputs()[0].shape[1] == 7


def rewrite(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zf:
        meta = json.loads(zf.comment)
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(meta, members)
    with zipfile.ZipFile(dst, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
        zf.comment = json.dumps(meta).encode()
    return dst


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda m, z: m.__setitem__("format_version", "1.0"), "format_version"),
        (lambda m, z: m["observation"]["norm"].pop("std"), "observation.norm.std"),
        (lambda m, z: m["observation"]["norm"].__setitem__("std", [1, 1, 0, 1, 1]), "observation.norm.std"),
        (lambda m, z: m["actions"]["3"].__setitem__("intensity", 2), "actions"),
        (lambda m, z: m["hmm_config"].__setitem__("n_states", 4), "observation.features"),
        (lambda m, z: m["env"].__setitem__("window", 100), "rl_config.ema_period"),
        (lambda m, z: m["training_config"].__setitem__("lot_sizes", [0, 1]), "training_config.lot_sizes"),
        (lambda m, z: m["training_config"].__setitem__("pip_size", True), "training_config.pip_size"),
        (lambda m, z: z.pop(next(n for n in z if n.endswith("_ppo.onnx"))), "ppo.onnx.member"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(tmp_path: Path, edit, field):
    bad = rewrite(ROOT / "models" / "EURUSD_H1.zip", tmp_path / "bad.zip", edit)
    with pytest.raises(ModelError) as err:
        read_model_zip(bad)
    assert field in str(err.value) and "bad.zip" in str(err.value)


def test_not_a_zip_is_refused(tmp_path: Path):
    p = tmp_path / "x.zip"
    p.write_text("hello")
    with pytest.raises(ModelError, match="x.zip"):
        read_model_zip(p)


def test_both_bars_layouts_load_the_same(tmp_path: Path):
    ours = tmp_path / "ours.csv"
    ours.write_text("time,open,high,low,close,volume\n2017-04-19T09:00:00Z,1.0716,1.0722,1.07083,1.07219,1413\n"
                    "2017-04-19T10:00:00+00:00,1.07214,1.07296,1.07214,1.0726,1241\n")
    theirs = tmp_path / "theirs.csv"
    theirs.write_text(",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n"
                      "2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n")
    a, b = load_bars(ours), load_bars(theirs)
    assert a == b
    assert a.time == [1492592400, 1492596000]


@pytest.mark.parametrize(
    "body, needle",
    [
        ("2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0\n", "line 2: 5 fields"),
        ("2017-04-19T09:00:00Z,1.0,0.95,0.9,1.0,1\n", "line 2: field 'high'"),
        ("2017-04-19T09:00:00Z,1.0,1.1,1.01,1.0,1\n", "line 2: field 'low'"),
        ("2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0,-1\n", "line 2: field 'volume'"),
        ("2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0,80.5\n", "line 2: field 'volume' = '80.5' is not a whole"),
        ("1969-12-31T23:00:00Z,1.0,1.1,0.9,1.0,1\n", "line 2: field 'time'"),
        ("2017-04-19T09:00:00Z,abc,1.1,0.9,1.0,1\n", "line 2: field 'open'"),
        ("2017-04-19T09:00:00Z,nan,1.1,0.9,1.0,1\n", "line 2: field 'open'"),
        ("yesterday,1.0,1.1,0.9,1.0,1\n", "line 2: field 'time'"),
        ("2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0,1\n2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0,1\n", "line 3: time"),
    ],
)
def test_bad_bars_are_refused_naming_row_and_field(tmp_path: Path, body: str, needle: str):
    p = tmp_path / "bars.csv"
    p.write_text("time,open,high,low,close,volume\n" + body)
    with pytest.raises(BarsError) as err:
        load_bars(p)
    assert needle in str(err.value) and "bars.csv" in str(err.value)


def test_unknown_header_is_refused(tmp_path: Path):
    p = tmp_path / "bars.csv"
    p.write_text("date,o,h,l,c,v\n")
    with pytest.raises(BarsError, match="header"):
        load_bars(p)


def test_unix_seconds_and_whole_decimal_volumes_read_like_the_rust_reader(tmp_path: Path):
    # ENV.md §1: integer Unix seconds are a time; "10.0" is the volume 10 (protocol::bars_file agrees).
    a = tmp_path / "a.csv"
    a.write_text("time,open,high,low,close,volume\n2017-04-19T09:00:00Z,1.0,1.1,0.9,1.0,10\n")
    b = tmp_path / "b.csv"
    b.write_text("time,open,high,low,close,volume\n1492592400,1.0,1.1,0.9,1.0,10.0\n")
    assert load_bars(a) == load_bars(b)
