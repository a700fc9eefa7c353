"""The specification's v1 model zip (`EURUSD_M15.zip` = `EURUSD_M15_hmm.pkl` + `EURUSD_M15_ppo.zip`, the
metadata JSON in the zip comment: format_version, generated_at, symbol, training_config, hmm_config,
rl_config, actions) → the inputs export.py needs, naming everything the v1 file does not carry.

What v1 lacks, against ENV.md §8: the feature normalization (observation.norm mean/std/clip,
observation.unrealized_clip, hmm.scaler mean/std) — only the training bars give it (normalization.py);
training_config.pip_size — the seed's training_config has none; env.window — the specification's FIFO
is 350 bars (used unless --config or --window says otherwise).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts import MAX_MEMBER_BYTES, open_zip, read_file, zip_member
from normalization import V1_WINDOW
from oracle_core import ACTIONS, InputError, v1_members

COST_KEYS = ("point", "pip_size", "pip_value", "spread_points", "slippage_points", "commission_per_lot", "digits",
             "lot_sizes")


@dataclass(frozen=True)
class V1Zip:
    where: str
    meta: dict[str, Any]
    ppo_name: str
    ppo: bytes
    hmm_name: str
    hmm: bytes


def read_v1(path: Path) -> V1Zip:
    where = str(path)
    zf = open_zip(read_file(path, "v1 model zip"), where, "v1 model zip", "pass the v1 zip as the notebook saved it")
    found = v1_members(zf.namelist())
    if found is None:
        raise InputError(f"{where}: not a v1 model zip: expected members <SYM>_<TF>_ppo.zip and <SYM>_<TF>_hmm.pkl, "
                         f"found {sorted(zf.namelist())}")
    try:
        meta = json.loads(zf.comment.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{where}: the zip comment is not the v1 metadata JSON: {err}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: the zip comment is not a JSON object")
    ppo, hmm = found
    fix = "the v1 zip is damaged; save it again"
    for name in found:
        if zf.getinfo(name).file_size > MAX_MEMBER_BYTES:
            raise InputError(f"{where}: member {name} is too large for a model")
    return V1Zip(where, meta, ppo, zip_member(zf, ppo, where, fix), hmm, zip_member(zf, hmm, where, fix))


def _section(meta: dict, key: str) -> dict | None:
    value = meta.get(key)
    return value if isinstance(value, dict) else None


def v1_inputs(v1: V1Zip, config: dict | None, config_where: str | None, pip_size: float | None,
              training_config: dict | None, window: int | None) -> tuple[str, str, dict, dict, list[str]]:
    """(symbol, timeframe, env, training_config, notes) for export.py; one InputError naming every missing item."""
    meta, where = v1.meta, v1.where
    missing: list[str] = []
    notes: list[str] = []
    stem = v1.ppo_name[: -len("_ppo.zip")]
    sym = _section(meta, "symbol") or {}
    symbol = sym.get("name") or stem.rsplit("_", 1)[0]
    timeframe = sym.get("timeframe") or (stem.rsplit("_", 1)[1] if "_" in stem else "")
    if not timeframe:
        missing.append("symbol.timeframe (not in the metadata nor in the member names)")
    if f"{symbol}_{timeframe}" != stem:
        notes.append(f"members are named {stem}_*, the metadata says {symbol} {timeframe}: the converted zip is "
                     f"{symbol}_{timeframe}")
    expected = {str(i): {"name": n, "direction": d, "intensity": q} for i, (n, d, q) in enumerate(ACTIONS)}
    if meta.get("actions") != expected:
        raise InputError(f"{where}: metadata 'actions' is {meta.get('actions')!r}; the twin runs exactly the seed's "
                         f"7 actions {expected}")
    rl, hc = _section(meta, "rl_config"), _section(meta, "hmm_config")
    if rl is None:
        missing.append("rl_config (the policy feature periods)")
    if hc is None:
        missing.append("hmm_config (n_states and the HMM feature periods)")

    env_cfg = (config or {}).get("env") if isinstance((config or {}).get("env"), dict) else None
    if config is not None and env_cfg is None:
        raise InputError(f"{config_where}: no 'env' section; write it with scripts/normalization.py")
    norm_keys = ("observation", "hmm_scaler")
    if env_cfg is None or any(k not in env_cfg for k in norm_keys):
        missing.append("the feature normalization observation.norm.mean/std/clip, observation.unrealized_clip and "
                       "hmm.scaler.mean/std: give --config FILE, written by `scripts/normalization.py --bars "
                       f"YOUR_TRAINING_BARS.csv --periods-from {where} --out FILE` (the bars and in-sample split the "
                       "model was trained on)")
    if env_cfg is not None and rl is not None and hc is not None:
        for key, mine in (("rl_config", rl), ("hmm_config", hc)):
            theirs = env_cfg.get(key)
            if theirs is not None and theirs != mine:
                raise InputError(f"{config_where}: env.{key} {theirs} differs from the v1 zip's {mine}: the "
                                 f"normalization was computed with other periods; rerun normalization.py with "
                                 f"--periods-from {where}")

    if training_config is not None:
        costs = dict(training_config)
    else:
        costs = dict(_section(meta, "training_config") or {})
        if "pip_size" not in costs and pip_size is not None:
            costs["pip_size"] = pip_size
            notes.append(f"training_config.pip_size = {pip_size} from --pip-size")
        absent = [k for k in COST_KEYS if k not in costs]
        if absent == ["pip_size"]:
            missing.append("training_config.pip_size (the seed's training_config has no pip size; the PnL uses "
                           "pip_value / pip_size): give --pip-size, e.g. 0.0001 for EURUSD")
        elif absent:
            missing.append(f"training_config.{', training_config.'.join(absent)}: give --training-config FILE with "
                           f"all of {', '.join(COST_KEYS)}")

    if missing:
        raise InputError(f"{where} (a v1 model zip) lacks what the conversion needs: "
                         + "; ".join(f"({i}) {m}" for i, m in enumerate(missing, 1)))

    w = window or env_cfg.get("window")
    if not w:
        w = V1_WINDOW
        notes.append(f"env.window = {V1_WINDOW}: the specification's FIFO (v1 metadata has no window; --window changes it)")
    elif window and env_cfg.get("window") not in (None, window):
        raise InputError(f"--window {window} differs from {config_where}'s env.window {env_cfg['window']}")
    env = {"window": int(w), "rl_config": rl, "hmm_config": hc,
           "observation": env_cfg["observation"], "hmm_scaler": env_cfg["hmm_scaler"]}
    return symbol, timeframe, env, costs, notes
