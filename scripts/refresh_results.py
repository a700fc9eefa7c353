"""Recompute `training.results` of shipped model zips with the current reference backtest and rewrite only
their zip comment (the metadata): the ONNX members stay byte-identical. Needs the light venv only (no torch).

    scripts/.venv/bin/python scripts/refresh_results.py [MODEL.zip ...]      # default: models/*.zip

Use it after a change to the reference environment (scripts/ENV.md) that changes decisions but not the
models, then run scripts/models_readme.py. Each zip's results are recomputed over the bars file it already
records (`training.results.bars_file`), with the same in/out-of-sample split as export.py --evaluate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path

from export import evaluate
from oracle_core import read_model_zip

ROOT = Path(__file__).resolve().parent.parent


def rewrite_comment(path: Path, meta: dict) -> None:
    """Replace the zip comment in place on a copy, then swap atomically. Append mode rewrites only the
    central directory and the end record: member headers and compressed data are not touched."""
    comment = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    if len(comment) > 65535:
        raise SystemExit(f"{path}: metadata is {len(comment)} bytes; a zip comment holds at most 65535")
    tmp = path.with_suffix(".zip.tmp")
    shutil.copyfile(path, tmp)
    with zipfile.ZipFile(tmp, "a") as zf:
        zf.comment = comment
    tmp.replace(path)


def refresh(path: Path) -> None:
    meta, members = read_model_zip(path)
    training = meta["training"]
    old = training.get("results")
    if not old or "bars_file" not in old:
        raise SystemExit(f"{path}: no training.results.bars_file to recompute (export it with --evaluate)")
    bars = Path(old["bars_file"])
    if not bars.is_absolute():
        bars = ROOT / bars
    new = evaluate(path, bars, training)
    new["bars_file"] = old["bars_file"]  # keep the recorded (repo-relative) name
    training["results"] = new
    rewrite_comment(path, meta)
    meta2, members2 = read_model_zip(path)
    if members2 != members or meta2 != meta:
        raise SystemExit(f"{path}: rewritten zip does not read back identically")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    args = ap.parse_args()
    for path in [m.resolve() for m in args.models] or sorted((ROOT / "models").glob("*.zip")):
        refresh(path)


if __name__ == "__main__":
    main()
