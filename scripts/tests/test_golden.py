"""The reference reproduces every golden set (scripts/tests/golden/README.md) from its bars and model zip."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from make_golden import steps_header
from oracle_core import ACTION_NAMES, OracleModel, ReferenceTwin, load_bars, run_backtest
from reference import REFERENCE_HEADER, main as reference_main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "case.json").exists())


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_there_are_golden_cases():
    names = [c.name for c in CASES]
    assert "EURUSD_H1" in names and "DEGENERATE_EURUSD_H1" in names


def test_every_shipped_model_has_a_golden_case():
    names = {c.name for c in CASES}
    for zip_path in (ROOT / "models").glob("*.zip"):
        assert zip_path.stem in names, f"{zip_path.name} has no golden case: run scripts/make_golden.py"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_case_reproduces(case: Path):
    info = json.loads((case / "case.json").read_text())
    model = OracleModel(ROOT / info["model"])
    bars = load_bars(case / "bars.csv")
    decisions, _ = run_backtest(model, bars)
    header, rows = read_rows(case / "steps.csv")
    assert header == steps_header(model.params.obs_dim)
    assert len(rows) == len(decisions) == info["decisions"]
    for d, row in zip(decisions, rows):
        where = f"{case.name} {row['time']}"
        assert (d.regime, d.action, d.direction, d.intensity, d.held) == (
            int(row["regime"]), int(row["action"]), int(row["position"]), int(row["intensity"]), int(row["held"])
        ), where
        for name, value in zip(("roc", "atr_pct", "ema_dist", "range_pos", "vol_ratio"), d.features.raw):
            assert close(value, float(row[name])), f"{where} {name}"
        assert close(d.features.atr, float(row["atr"])), where
        for i, value in enumerate(d.z):
            assert close(value, float(row[f"z{i}"])), f"{where} z{i}"
        for name, value in zip(("hmm_momentum", "hmm_consistency", "hmm_range"), d.hmm_last):
            assert close(value, float(row[name])), f"{where} {name}"
        expected_obs = np.array([float(row[f"obs{i}"]) for i in range(len(d.obs))], dtype=np.float32)
        np.testing.assert_array_equal(d.obs, expected_obs, err_msg=where)
        expected_logits = [float(row[f"logit{i}"]) for i in range(7)]
        np.testing.assert_allclose(d.logits, expected_logits, rtol=1e-5, atol=1e-6, err_msg=where)
        assert close(d.virtual_pnl, float(row["virtual_pnl"])), where


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("DEGENERATE")], ids=lambda p: p.name)
def test_reference_cli_writes_the_golden_reference_csv(case: Path, tmp_path: Path):
    info = json.loads((case / "case.json").read_text())
    out = tmp_path / "out.csv"
    assert reference_main(["backtest", "--model", str(ROOT / info["model"]), "--bars", str(case / "bars.csv"),
                           "--out", str(out)]) == 0
    header, got = read_rows(out)
    _, expected = read_rows(case / "reference.csv")
    assert tuple(header) == REFERENCE_HEADER
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g["time"], g["regime"], g["action"], g["position"], g["intensity"]) == (
            e["time"], e["regime"], e["action"], e["position"], e["intensity"])
        assert g["action"] in ACTION_NAMES
        assert close(float(g["virtual_pnl"]), float(e["virtual_pnl"]))


def test_decisions_depend_only_on_their_window():
    case = GOLDEN / "EURUSD_H1"
    model = OracleModel(ROOT / json.loads((case / "case.json").read_text())["model"])
    bars = load_bars(case / "bars.csv")
    t = model.params.window + 40
    first = ReferenceTwin(model).decide(bars, t)
    # Wreck everything after bar t: the decision at t must not move.
    n = len(bars)
    wrecked = type(bars)(bars.time, bars.open[: t + 1] + [9.0] * (n - t - 1), bars.high[: t + 1] + [9.5] * (n - t - 1),
                         bars.low[: t + 1] + [8.5] * (n - t - 1), bars.close[: t + 1] + [9.0] * (n - t - 1),
                         bars.volume[: t + 1] + [1e9] * (n - t - 1))
    second = ReferenceTwin(model).decide(wrecked, t)
    assert (first.regime, first.action, first.features, first.z) == (second.regime, second.action, second.features, second.z)
    # …and a decision does change when its own window changes (the check can fail).
    moved = type(bars)(bars.time, bars.open, bars.high[:t] + [bars.high[t] * 1.05] + bars.high[t + 1:], bars.low,
                       bars.close[:t] + [bars.close[t] * 1.05] + bars.close[t + 1:], bars.volume)
    assert ReferenceTwin(model).decide(moved, t).features != first.features
