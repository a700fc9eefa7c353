"""Regenerate the golden files of scripts/tests/golden/ (see its README.md) from the shipped models.

    scripts/.venv/bin/python scripts/make_golden.py [--decisions 1000] [MODEL.zip ...]

For every model zip (default: all of models/*.zip) the case `<SYM>_<TF>` holds the last `--decisions`
decided bars of its bars file (EURUSD: the real data/EURUSD_H1.csv; others: data/demo/<SYM>.csv), all
out of sample. The case `DEGENERATE_EURUSD_H1` runs models/EURUSD_H1.zip over synthetic degenerate bars
(flat prices, zero volume, prices crossing zero). Floats are written with Python repr (round-trip exact);
f32 values (obs, logits) are widened to f64 first, so parsing as f64 and casting to f32 is exact.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from oracle_core import Bars, OracleModel, format_time, load_bars, run_backtest, write_bars
from reference import write_reference

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "scripts" / "tests" / "golden"


def steps_header(obs_dim: int) -> list[str]:
    return (
        ["time", "roc", "atr_pct", "ema_dist", "range_pos", "vol_ratio"]
        + [f"z{i}" for i in range(5)]
        + ["hmm_momentum", "hmm_consistency", "hmm_range", "regime"]
        + [f"obs{i}" for i in range(obs_dim)]
        + [f"logit{i}" for i in range(7)]
        + ["action", "position", "intensity", "virtual_pnl", "held", "atr"]
    )


def write_steps(path: Path, decisions, obs_dim: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(steps_header(obs_dim))
        for d in decisions:
            w.writerow(
                [format_time(d.time)]
                + [repr(x) for x in d.features.raw]
                + [repr(x) for x in d.z]
                + [repr(x) for x in d.hmm_last]
                + [d.regime]
                + [repr(float(x)) for x in d.obs]
                + [repr(float(x)) for x in d.logits]
                + [d.action, d.direction, d.intensity, repr(d.virtual_pnl), d.held, repr(d.features.atr)]
            )


def degenerate_bars() -> Bars:
    """Flat prices and zero volume (the first decision sees a fully flat window), a ramp, flat again,
    then prices falling through zero to negative values (ENV.md §9's guarded branches)."""
    t0 = 1_577_836_800  # 2020-01-01T00:00:00Z
    o, h, lo, c, v = [], [], [], [], []

    def bar(open_: float, close: float, wick: float, vol: float) -> None:
        o.append(open_)
        c.append(close)
        h.append(max(open_, close) + wick)
        lo.append(min(open_, close) - wick)
        v.append(vol)

    price = 1.2345
    for _ in range(400):
        bar(price, price, 0.0, 0.0)
    for i in range(50):
        nxt = price + 0.0007 * (1 if i % 5 else -1)
        bar(price, nxt, 0.0002, 100.0 + i)
        price = nxt
    for _ in range(70):
        bar(price, price, 0.0, 0.0)
    for i in range(80):
        nxt = price - 0.02
        bar(price, nxt, 0.001, 0.0 if i % 3 == 0 else 50.0)
        price = nxt
    n = len(c)
    return Bars([t0 + 3600 * i for i in range(n)], o, h, lo, c, v)


def write_case(name: str, model_path: Path, bars: Bars, source: str) -> None:
    model = OracleModel(model_path)
    decisions, position = run_backtest(model, bars)
    case = GOLDEN / name
    if case.exists():
        shutil.rmtree(case)
    case.mkdir(parents=True)
    write_bars(case / "bars.csv", bars)
    write_steps(case / "steps.csv", decisions, model.params.obs_dim)
    write_reference(case / "reference.csv", decisions)
    info = {
        "model": str(model_path.relative_to(ROOT)),
        "bars_source": source,
        "bars": len(bars),
        "decisions": len(decisions),
        "first_decision": format_time(decisions[0].time),
        "last_decision": format_time(decisions[-1].time),
        "final_virtual_pnl": position.realized,
        "closed_trades": len(position.closed_trades),
    }
    (case / "case.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{name}: {len(decisions)} decisions, final pnl {position.realized:.2f}, {len(position.closed_trades)} trades")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--decisions", type=int, default=1000)
    args = ap.parse_args()
    models = [m.resolve() for m in args.models] or sorted((ROOT / "models").glob("*.zip"))
    for model_path in models:
        model = OracleModel(model_path)
        sym, tf = model.meta["symbol"]["name"], model.meta["symbol"]["timeframe"]
        src = ROOT / "data" / f"{sym}_{tf}.csv"
        if not src.exists():
            src = ROOT / "data" / "demo" / f"{sym}.csv"
        bars = load_bars(src)
        keep = model.params.window - 1 + args.decisions
        write_case(f"{sym}_{tf}", model_path, bars.slice(max(0, len(bars) - keep), len(bars)),
                   f"{src.relative_to(ROOT)} (last {keep} bars)")
        if sym == "EURUSD":
            write_case(f"DEGENERATE_{sym}_{tf}", model_path, degenerate_bars(), "synthetic (make_golden.degenerate_bars)")


if __name__ == "__main__":
    main()
