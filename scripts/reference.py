"""Reference backtest of a model zip over a bars CSV (ENV.md), with the zip's ONNX graphs via onnxruntime.

    scripts/.venv/bin/python scripts/reference.py backtest --model models/EURUSD_H1.zip --bars data/EURUSD_H1.csv --out out.csv
    scripts/.venv/bin/python scripts/reference.py bench --model models/EURUSD_H1.zip --bars data/EURUSD_H1.csv [--limit 1000]

backtest writes `time,regime,action,position,intensity,virtual_pnl` (one row per decision bar; time RFC 3339
UTC, action by name, position -1/0/1, intensity 0-3, virtual_pnl with Python repr) and prints the summary.
bench prints the reference speed in decided bars per second (the baseline of the Rust backtest).
Every decision is computed from its own window; nothing is precomputed across windows.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from oracle_core import ACTION_NAMES, Decision, OracleError, OracleModel, format_time, load_bars, run_backtest, summarize

REFERENCE_HEADER = ("time", "regime", "action", "position", "intensity", "virtual_pnl")


def write_reference(path: Path, decisions: Sequence[Decision]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(REFERENCE_HEADER)
        for d in decisions:
            w.writerow([format_time(d.time), d.regime, ACTION_NAMES[d.action], d.direction, d.intensity, repr(d.virtual_pnl)])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    bt = sub.add_parser("backtest", help="write the per-bar decisions to --out")
    bt.add_argument("--model", type=Path, required=True)
    bt.add_argument("--bars", type=Path, required=True)
    bt.add_argument("--out", type=Path, required=True)
    be = sub.add_parser("bench", help="print decided bars per second")
    be.add_argument("--model", type=Path, required=True)
    be.add_argument("--bars", type=Path, required=True)
    be.add_argument("--limit", type=int, default=None, help="decide at most this many bars")
    args = ap.parse_args(argv)
    try:
        model = OracleModel(args.model)
        bars = load_bars(args.bars)
        if args.cmd == "bench" and args.limit is not None:
            bars = bars.slice(0, min(len(bars), model.params.window - 1 + args.limit))
        started = time.perf_counter()
        decisions, position = run_backtest(model, bars)
        elapsed = time.perf_counter() - started
    except OracleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.cmd == "backtest":
        write_reference(args.out, decisions)
        print(json.dumps(summarize(decisions, position)))
    else:
        rate = len(decisions) / elapsed if elapsed > 0 else float("inf")
        print(f"reference backtest: {len(decisions)} decided bars in {elapsed:.3f} s = {rate:.1f} bars/s "
              f"(window {model.params.window}, {len(bars)} bars read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
