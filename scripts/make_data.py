"""Build data/: the real EURUSD H1 bars and the 20 derived demo series.

    scripts/.venv/bin/python scripts/make_data.py [--source PATH]

- `data/EURUSD_H1.csv`: the `backtesting` package's `backtesting/test/EURUSD.csv` (real EURUSD H1 bars,
  2017-2018) rewritten in our header; times are taken as UTC (the original is naive); values unchanged.
- `data/demo/<SYM>.csv`: for each symbol of symbols.py, a series DERIVED from the real one: the bar-by-bar
  ratios to the previous close (open/high/low/close), rotated by the symbol's `offset` bars, chained from
  the symbol's `level` and rounded to its digits; the volume of the same source bar; the real timestamps,
  identical for all symbols so their bars close together. EURUSD (offset 0, level = the real first close,
  5 digits) reproduces the real series exactly. The policy features are scale-invariant, so the shared
  policy stays in distribution on every symbol.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from oracle_core import Bars, load_bars, write_bars
from symbols import SYMBOLS, SymbolSpec

ROOT = Path(__file__).resolve().parent.parent


def find_source() -> Path:
    try:
        import backtesting  # noqa: PLC0415
    except ImportError:
        sys.exit("make_data.py: the `backtesting` package is not installed; run scripts/setup_venv.sh --train")
    return Path(backtesting.__file__).parent / "test" / "EURUSD.csv"


def derive(real: Bars, spec: SymbolSpec) -> Bars:
    n = len(real)
    order = [(spec.offset + i) % n for i in range(n)]
    o, h, lo, c = [], [], [], []
    first = order[0]
    first_base = real.close[first - 1] if first > 0 else real.open[first]
    prev = spec.level * first_base / real.close[first]  # so the first close is `level`
    scale = 10.0**spec.digits
    for src in order:
        # The source bar's own previous close; the first source bar has none, so use its open.
        base = real.close[src - 1] if src > 0 else real.open[src]
        vals = [prev * x / base for x in (real.open[src], real.high[src], real.low[src], real.close[src])]
        vals = [round(x * scale) / scale for x in vals]
        o.append(vals[0])
        h.append(max(vals))
        lo.append(min(vals))
        c.append(vals[3])
        prev = vals[3]
    volume = [real.volume[src] for src in order]
    return Bars(list(real.time), o, h, lo, c, volume)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=None, help="backtesting/test/EURUSD.csv (found automatically)")
    args = ap.parse_args()
    src = args.source or find_source()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    real = load_bars(src)
    data = ROOT / "data"
    (data / "demo").mkdir(parents=True, exist_ok=True)
    write_bars(data / "EURUSD_H1.csv", real, digits=5)
    print(f"source {src} sha256 {digest} bars {len(real)}")
    for spec in SYMBOLS:
        bars = derive(real, spec)
        write_bars(data / "demo" / f"{spec.name}.csv", bars, digits=spec.digits)
    again = load_bars(data / "demo" / "EURUSD.csv")
    same = again.close == real.close and again.high == real.high and again.low == real.low and again.open == real.open
    print(f"wrote data/EURUSD_H1.csv and {len(SYMBOLS)} demo series; demo EURUSD equals the real series: {same}")
    print(f"data/EURUSD_H1.csv sha256 {hashlib.sha256((data / 'EURUSD_H1.csv').read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
