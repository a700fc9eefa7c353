"""Long bar series for scripts/soak.sh: each data/demo/<SYM>.csv extended to --bars bars.

    python3 scripts/soak_data.py --bars 21400 --out DIR

Bar i takes the open/high/low/close of source bar i mod n as ratios to that bar's previous close and
chains them from the last close written (the way scripts/make_data.py derives the demo series), rounded
to the source file's decimals; the volume is the source bar's; each bar is as far after the previous one
as the source bar is after its own predecessor, so weekends recur. Prices stay in the models' training
distribution (the policy features are scale-invariant ratios). Only the standard library: the soak
needs no venv.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc


def read(path: Path) -> tuple[list[int], list[list[float]], list[str], int]:
    times: list[int] = []
    rows: list[list[float]] = []
    volumes: list[str] = []
    digits = 0
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            if not row:
                continue
            times.append(int(dt.datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp()))
            rows.append([float(x) for x in row[1:5]])
            volumes.append(row[5])
            digits = max(digits, *(len(x.split(".")[1]) if "." in x else 0 for x in row[1:5]))
    return times, rows, volumes, digits


def extend(path: Path, bars: int, out: Path) -> None:
    times, rows, volumes, digits = read(path)
    n = len(rows)
    scale = 10.0**digits
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["time", "open", "high", "low", "close", "volume"])
        t = times[0]
        prev = rows[0][3]
        for i in range(bars):
            src = i % n
            if i < n:
                vals = rows[i]
                t = times[i]
            else:
                base = rows[src - 1][3] if src > 0 else rows[src][0]
                vals = [round(prev * x / base * scale) / scale for x in rows[src]]
                vals[1] = max(vals)
                vals[2] = min(vals)
                t += times[src] - times[src - 1] if src > 0 else 3600
            prev = vals[3]
            stamp = dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            w.writerow([stamp, *(f"{v:.{digits}f}" for v in vals), volumes[src]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--source", type=Path, default=ROOT / "data" / "demo")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.source.glob("*.csv")):
        extend(path, args.bars, args.out / path.name)


if __name__ == "__main__":
    main()
