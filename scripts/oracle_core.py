"""Reference implementation of scripts/ENV.md: bars, features, HMM filter, virtual position, model zip.

Map:
- bars:      `load_bars`, `Bars`, `parse_time`, `format_time`            (ENV.md §1)
- params:    `EnvParams`, `Costs`                                          (§2, §6)
- features:  `policy_features`, `hmm_feature_at`, `window_hmm_features`  (§4, §5)
- regime:    `log_emission_numpy`, `scaled_emission_row`, `forward_filter` (§5)
- position:  `VirtualPosition` (the seed's execute_action)                 (§6)
- decision:  `build_observation`, `OracleModel` (zip + onnxruntime), `ReferenceTwin`, `run_backtest` (§7, §8)

Only numpy and onnxruntime are needed (the light venv CI uses): no torch, no gymnasium here.
Scalar arithmetic is written as plain Python float loops on purpose: the order of every sum is the
one ENV.md prescribes (numpy's pairwise sums and SIMD transcendental functions would not match a
straightforward second implementation bit for bit).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FORMAT_VERSION = "2.0"

# (name, direction, intensity) by action index — the seed's metadata table.
ACTIONS: tuple[tuple[str, int, int], ...] = (
    ("WAIT", 0, 0),
    ("LONG_WEAK", 1, 1),
    ("LONG_MODERATE", 1, 2),
    ("LONG_STRONG", 1, 3),
    ("SHORT_WEAK", -1, 1),
    ("SHORT_MODERATE", -1, 2),
    ("SHORT_STRONG", -1, 3),
)
ACTION_NAMES = tuple(a[0] for a in ACTIONS)
POLICY_FEATURES = ("roc", "atr_pct", "ema_dist", "range_pos", "vol_ratio")
HMM_FEATURES = ("momentum", "consistency", "range")
BARS_HEADER = ("time", "open", "high", "low", "close", "volume")


class OracleError(Exception):
    """Base of every error this toolchain raises on bad input."""


class BarsError(OracleError):
    """A bars file breaks ENV.md §1; the message names the file, the row and the fix."""


class ModelError(OracleError):
    """A model zip is unusable; the message names the file and the field."""


class InputError(OracleError):
    """An input of export.py / normalization.py (policy, HMM, normalizer, config) is unusable; the message
    names the file, the problem and the fix."""


# ---------------------------------------------------------------------------------------------- bars

UTC = dt.timezone.utc


def parse_time(text: str) -> int:
    """RFC 3339 / ISO 8601 time (naive = UTC), or integer Unix seconds, to whole epoch seconds."""
    s = text.strip()
    if s.isascii() and s.isdigit():
        return int(s)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    stamp = dt.datetime.fromisoformat(s)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if stamp.microsecond:
        raise ValueError(f"time {text!r} has fractional seconds; bar times are whole seconds")
    return int(stamp.timestamp())


def format_time(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Bars:
    """Validated OHLCV bars, oldest first; prices as Python floats for exact scalar loops."""

    time: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]

    def __len__(self) -> int:
        return len(self.time)

    def slice(self, start: int, stop: int) -> "Bars":
        return Bars(
            self.time[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )


def _check_header(path: Path, header: list[str]) -> None:
    names = [h.strip().lower() for h in header]
    if names == list(BARS_HEADER):
        return
    if len(names) == 6 and names[0] in ("", "time", "date", "datetime") and names[1:] == list(BARS_HEADER[1:]):
        return
    raise BarsError(
        f"{path}: header {header!r} is not a bars layout; expected "
        f"'time,open,high,low,close,volume' or the backtesting layout ',Open,High,Low,Close,Volume'"
    )


def load_bars(path: str | Path) -> Bars:
    """Read a bars CSV in either layout of ENV.md §1 and validate every row."""
    path = Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as err:
        raise BarsError(f"{path}: cannot open bars file: {err}") from err
    times: list[int] = []
    cols: tuple[list[float], ...] = ([], [], [], [], [])
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise BarsError(f"{path}: empty file; expected a header 'time,open,high,low,close,volume'") from None
        _check_header(path, header)
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 6:
                raise BarsError(f"{path}: line {line}: {len(row)} fields, expected 6 (time,open,high,low,close,volume)")
            try:
                t = parse_time(row[0])
            except ValueError as err:
                raise BarsError(f"{path}: line {line}: field 'time' = {row[0]!r} is not an RFC 3339 time: {err}") from None
            values = []
            for name, cell in zip(BARS_HEADER[1:], row[1:]):
                try:
                    x = float(cell)
                except ValueError:
                    raise BarsError(f"{path}: line {line}: field '{name}' = {cell!r} is not a number") from None
                if not math.isfinite(x):
                    raise BarsError(f"{path}: line {line}: field '{name}' = {cell!r} is not finite")
                values.append(x)
            o, h, lo, c, v = values
            if h < max(o, c):
                raise BarsError(f"{path}: line {line}: field 'high' = {h!r} is below max(open, close); fix the bar")
            if lo > min(o, c):
                raise BarsError(f"{path}: line {line}: field 'low' = {lo!r} is above min(open, close); fix the bar")
            if v < 0:
                raise BarsError(f"{path}: line {line}: field 'volume' = {v!r} is negative")
            if v != int(v):
                raise BarsError(
                    f"{path}: line {line}: field 'volume' = {row[5]!r} is not a whole number of ticks (tick volume)"
                )
            if not 0 <= t <= 253_402_300_799:
                raise BarsError(f"{path}: line {line}: field 'time' = {row[0]!r} is outside 1970..=9999")
            if times and t <= times[-1]:
                raise BarsError(
                    f"{path}: line {line}: time {row[0]!r} is not after the previous bar's; bars must be strictly increasing"
                )
            times.append(t)
            for col, x in zip(cols, values):
                col.append(x)
    return Bars(times, *cols)


def write_bars(path: str | Path, bars: Bars, digits: int | None = None) -> None:
    """Write bars in our header; `digits` rounds prices for display (None = full repr)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(BARS_HEADER)
        for i in range(len(bars)):
            prices = [bars.open[i], bars.high[i], bars.low[i], bars.close[i]]
            if digits is None:
                cells = [repr(p) for p in prices]
            else:
                cells = [f"{p:.{digits}f}" for p in prices]
            vol = bars.volume[i]
            w.writerow([format_time(bars.time[i]), *cells, repr(int(vol)) if vol == int(vol) else repr(vol)])


# ---------------------------------------------------------------------------------------------- params


@dataclass(frozen=True)
class EnvParams:
    """Periods of ENV.md §2."""

    window: int = 350
    roc_period: int = 10
    atr_period: int = 14
    ema_period: int = 200
    range_period: int = 20
    volume_ma_period: int = 20
    momentum_period: int = 12
    consistency_period: int = 12
    hmm_range_period: int = 20
    n_states: int = 5

    @property
    def hmm_lookback(self) -> int:
        return max(self.momentum_period, self.consistency_period, self.hmm_range_period)

    @property
    def obs_dim(self) -> int:
        return 5 + self.n_states + 3

    def validate(self) -> None:
        periods = {
            "rl_config.roc_period": self.roc_period,
            "rl_config.atr_period": self.atr_period,
            "rl_config.ema_period": self.ema_period,
            "rl_config.range_period": self.range_period,
            "rl_config.volume_ma_period": self.volume_ma_period,
            "hmm_config.momentum_period": self.momentum_period,
            "hmm_config.consistency_period": self.consistency_period,
            "hmm_config.range_period": self.hmm_range_period,
        }
        for name, p in periods.items():
            if not (1 <= p < self.window):
                raise ModelError(f"{name} = {p} must be >= 1 and < env.window = {self.window}")
        if self.n_states < 1:
            raise ModelError(f"hmm_config.n_states = {self.n_states} must be >= 1")


@dataclass(frozen=True)
class Costs:
    """training_config of ENV.md §6."""

    point: float
    pip_size: float
    pip_value: float
    spread_points: float
    slippage_points: float
    commission_per_lot: float
    digits: int
    lot_sizes: tuple[float, float, float, float]

    @property
    def value_per_price(self) -> float:
        return self.pip_value / self.pip_size

    @property
    def half_cost(self) -> float:
        return (self.spread_points / 2 + self.slippage_points) * self.point

    @staticmethod
    def from_json(obj: dict[str, Any]) -> "Costs":
        return Costs(
            point=float(obj["point"]),
            pip_size=float(obj["pip_size"]),
            pip_value=float(obj["pip_value"]),
            spread_points=float(obj["spread_points"]),
            slippage_points=float(obj["slippage_points"]),
            commission_per_lot=float(obj["commission_per_lot"]),
            digits=int(obj["digits"]),
            lot_sizes=tuple(float(x) for x in obj["lot_sizes"]),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "point": self.point,
            "pip_size": self.pip_size,
            "pip_value": self.pip_value,
            "spread_points": self.spread_points,
            "slippage_points": self.slippage_points,
            "commission_per_lot": self.commission_per_lot,
            "digits": self.digits,
            "lot_sizes": list(self.lot_sizes),
        }


# ---------------------------------------------------------------------------------------------- features


@dataclass(frozen=True)
class PolicyFeatures:
    roc: float
    atr_pct: float
    ema_dist: float
    range_pos: float
    vol_ratio: float
    atr: float

    @property
    def raw(self) -> tuple[float, float, float, float, float]:
        return (self.roc, self.atr_pct, self.ema_dist, self.range_pos, self.vol_ratio)


def _true_range(h: Sequence[float], lo: Sequence[float], c: Sequence[float], j: int) -> float:
    if j == 0:
        return h[0] - lo[0]
    prev = c[j - 1]
    return max(h[j] - lo[j], abs(h[j] - prev), abs(lo[j] - prev))


def policy_features(
    c: Sequence[float], h: Sequence[float], lo: Sequence[float], v: Sequence[float], p: EnvParams
) -> PolicyFeatures:
    """ENV.md §4 over one window (sequences of exactly `p.window` values, oldest first)."""
    w = len(c)
    last = c[w - 1]

    base = c[w - 1 - p.roc_period]
    roc = last / base - 1.0 if base > 0 else 0.0

    acc = 0.0
    for j in range(p.atr_period):
        acc += _true_range(h, lo, c, j)
    atr = acc / p.atr_period
    for j in range(p.atr_period, w):
        atr = atr + (_true_range(h, lo, c, j) - atr) / p.atr_period
    atr_pct = atr / last if last > 0 else 0.0

    alpha = 2.0 / (p.ema_period + 1)
    ema = c[0]
    for j in range(1, w):
        ema = ema + alpha * (c[j] - ema)
    ema_dist = (last - ema) / atr if atr > 0 else 0.0

    hh = max(h[w - p.range_period : w])
    ll = min(lo[w - p.range_period : w])
    range_pos = (last - ll) / (hh - ll) if hh > ll else 0.5

    acc = 0.0
    for j in range(w - p.volume_ma_period, w):
        acc += v[j]
    mean_vol = acc / p.volume_ma_period
    vol_ratio = v[w - 1] / mean_vol if mean_vol > 0 else 1.0

    return PolicyFeatures(roc, atr_pct, ema_dist, range_pos, vol_ratio, atr)


def hmm_feature_at(
    c: Sequence[float], h: Sequence[float], lo: Sequence[float], j: int, p: EnvParams
) -> tuple[float, float, float]:
    """ENV.md §5 raw HMM features at index j (needs j >= hmm_lookback); uses only bars j-H … j."""
    a, b = c[j], c[j - p.momentum_period]
    momentum = math.log(a / b) if a > 0 and b > 0 else 0.0
    s = 0
    for i in range(j - p.consistency_period + 1, j + 1):
        d = c[i] - c[i - 1]
        s += (d > 0) - (d < 0)  # sign(d), inlined: a call per term was a tenth of a backtest
    consistency = s / p.consistency_period
    hi = max(h[j - p.hmm_range_period + 1 : j + 1])
    low = min(lo[j - p.hmm_range_period + 1 : j + 1])
    rng = math.log(hi / low) if low > 0 else 0.0
    return (momentum, consistency, rng)


def window_hmm_features(c: Sequence[float], h: Sequence[float], lo: Sequence[float], p: EnvParams) -> list[tuple[float, float, float]]:
    """Raw HMM features at window positions H … W-1 (S = W-H rows)."""
    return [hmm_feature_at(c, h, lo, j, p) for j in range(p.hmm_lookback, len(c))]


def scale_hmm_features(rows: Sequence[Sequence[float]], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    out = np.empty((len(rows), 3), dtype=np.float64)
    for s, row in enumerate(rows):
        for d in range(3):
            out[s, d] = (row[d] - mean[d]) / std[d]
    return out


def precision_cholesky(covars: np.ndarray) -> np.ndarray:
    """Full covariances [K,D,D] -> U with Σ⁻¹ = U Uᵀ (sklearn's _compute_precision_cholesky, 'full')."""
    k, d, _ = covars.shape
    out = np.empty_like(covars, dtype=np.float64)
    for i in range(k):
        chol = np.linalg.cholesky(covars[i])
        out[i] = np.linalg.solve(chol, np.eye(d)).T  # lower-triangular inverse, transposed
    return out


def log_emission_numpy(x: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """Gaussian log-densities [T,K]; the same formula the HMM ONNX graph encodes (for training/tests)."""
    d = x.shape[1]
    const = -0.5 * d * math.log(2 * math.pi) + np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    diff = x[:, None, :] - means[None, :, :]  # [T,K,D]
    y = np.einsum("tkd,kde->tke", diff, prec_chol)
    return const[None, :] - 0.5 * (y * y).sum(axis=2)


def scaled_emission_row(log_b_row: Sequence[float]) -> list[float]:
    """ENV.md §5: `e[k] = exp(log b_k(x) − m)` with `m = max_k log b_k(x)` (so max_k e[k] = 1). Depends
    only on the bar, so callers may cache it per bar."""
    m = max(log_b_row)
    return [math.exp(v - m) for v in log_b_row]


def forward_filter(e_rows: Sequence[Sequence[float]], start: Sequence[float], trans: Sequence[Sequence[float]]) -> tuple[int, list[float]]:
    """ENV.md §5 scaled forward recursion (Rabiner) over the window's scaled emissions `e_rows` ([S][K],
    from `scaled_emission_row`), with `start` = π and `trans` = A in probability space. Returns (regime,
    last normalised filtered posterior). Plain float loops in the normative operation order (bit-exact
    with the Rust twin)."""
    k_states = len(start)
    # Column k of A, so the sum over i below walks a list (the same products, the same order of i).
    columns = [[trans[i][k] for i in range(k_states)] for k in range(k_states)]
    e = e_rows[0]
    alpha = [start[k] * e[k] for k in range(k_states)]
    alpha = _normalise_or_restart(alpha, e)
    for s in range(1, len(e_rows)):
        e = e_rows[s]
        nxt = []
        for column, e_k in zip(columns, e):
            p = 0.0
            for a, t in zip(alpha, column):
                p += a * t
            nxt.append(p * e_k)
        alpha = _normalise_or_restart(nxt, e)
    best = 0
    for k in range(1, k_states):
        if alpha[k] > alpha[best]:
            best = k
    return best, alpha


def _normalise_or_restart(alpha: list[float], e: Sequence[float]) -> list[float]:
    """Divide by the left-to-right sum; if that sum is 0 or not finite (zeros in π / A met underflowed
    emissions), restart from the emission alone."""
    n = 0.0
    for a in alpha:
        n += a
    if n > 0.0 and math.isfinite(n):
        return [a / n for a in alpha]
    z = 0.0
    for x in e:
        z += x
    return [x / z for x in e]


# ---------------------------------------------------------------------------------------------- position


@dataclass
class VirtualPosition:
    """The seed's execute_action: same target keeps, any change closes everything, then opens."""

    costs: Costs
    direction: int = 0
    intensity: int = 0
    entry: float = 0.0
    realized: float = 0.0
    closed_trades: list[float] = field(default_factory=list)

    def execute(self, target_dir: int, target_intensity: int, close: float) -> None:
        if target_dir == self.direction and target_intensity == self.intensity:
            return
        if self.direction != 0:
            self._close(close)
        if target_dir != 0:
            self.entry = close + target_dir * self.costs.half_cost
            self.direction, self.intensity = target_dir, target_intensity

    def _close(self, close: float) -> None:
        pnl = self.trade_pnl(close)
        self.realized = self.realized + pnl
        self.closed_trades.append(pnl)
        self.direction, self.intensity, self.entry = 0, 0, 0.0

    def trade_pnl(self, close: float) -> float:
        """Net PnL of closing the open position at `close` (0 when flat)."""
        if self.direction == 0:
            return 0.0
        d = self.direction
        lot = self.costs.lot_sizes[self.intensity]
        exit_fill = close - d * self.costs.half_cost
        return d * (exit_fill - self.entry) * lot * self.costs.value_per_price - self.costs.commission_per_lot * lot

    def liquidation_equity(self, close: float) -> float:
        """Realised PnL plus what closing now would add: the training reward's mark-to-market."""
        return self.realized + self.trade_pnl(close)

    def unrealized_feature(self, close: float, atr: float, clip: float) -> float:
        if self.direction == 0 or not atr > 0:
            return 0.0
        u = self.direction * (close - self.entry) / atr
        return min(max(u, -clip), clip)


def build_observation(
    z: Sequence[float], regime: int, n_states: int, direction: int, intensity: int, unrealized: float
) -> np.ndarray:
    values = list(z) + [1.0 if k == regime else 0.0 for k in range(n_states)]
    values += [float(direction), intensity / 3, unrealized]
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def normalise(raw: Sequence[float], mean: Sequence[float], std: Sequence[float], clip: float) -> list[float]:
    return [min(max((raw[i] - mean[i]) / std[i], -clip), clip) for i in range(len(raw))]


def argmax_first(values: Sequence[float]) -> int:
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
    return best


# ---------------------------------------------------------------------------------------------- model


def _require(obj: Any, path: str, kind: type | tuple[type, ...], where: str) -> Any:
    cur = obj
    for key in path.split("."):
        if not isinstance(cur, dict) or key not in cur:
            raise ModelError(f"{where}: metadata field '{path}' is missing")
        cur = cur[key]
    # JSON true/false are Python ints too; no numeric field accepts them.
    if not isinstance(cur, kind) or isinstance(cur, bool):
        raise ModelError(f"{where}: metadata field '{path}' has the wrong type ({type(cur).__name__})")
    return cur


def params_from_metadata(meta: dict[str, Any], where: str = "metadata") -> EnvParams:
    p = EnvParams(
        window=_require(meta, "env.window", int, where),
        roc_period=_require(meta, "rl_config.roc_period", int, where),
        atr_period=_require(meta, "rl_config.atr_period", int, where),
        ema_period=_require(meta, "rl_config.ema_period", int, where),
        range_period=_require(meta, "rl_config.range_period", int, where),
        volume_ma_period=_require(meta, "rl_config.volume_ma_period", int, where),
        momentum_period=_require(meta, "hmm_config.momentum_period", int, where),
        consistency_period=_require(meta, "hmm_config.consistency_period", int, where),
        hmm_range_period=_require(meta, "hmm_config.range_period", int, where),
        n_states=_require(meta, "hmm_config.n_states", int, where),
    )
    try:
        p.validate()
    except ModelError as err:
        raise ModelError(f"{where}: {err}") from None
    return p


def validate_metadata(meta: dict[str, Any], members: Sequence[str], where: str) -> None:
    """Everything the twin relies on (ENV.md §8); raises ModelError naming the field."""
    if _require(meta, "format_version", str, where) != FORMAT_VERSION:
        raise ModelError(f"{where}: format_version = {meta['format_version']!r}, expected {FORMAT_VERSION!r}")
    _require(meta, "generated_at", str, where)
    name = _require(meta, "symbol.name", str, where)
    _require(meta, "symbol.clean", str, where)
    tf = _require(meta, "symbol.timeframe", str, where)
    p = params_from_metadata(meta, where)
    tc = _require(meta, "training_config", dict, where)
    for key in ("point", "pip_size", "pip_value", "spread_points", "slippage_points", "commission_per_lot"):
        _require(meta, f"training_config.{key}", (int, float), where)
    for key in ("point", "pip_size", "pip_value"):
        if not tc[key] > 0:
            raise ModelError(f"{where}: training_config.{key} = {tc[key]!r} must be > 0")
    _require(meta, "training_config.digits", int, where)
    lots = _require(meta, "training_config.lot_sizes", list, where)
    if len(lots) != 4 or lots[0] != 0 or not all(isinstance(x, (int, float)) and x >= 0 for x in lots):
        raise ModelError(f"{where}: training_config.lot_sizes must be 4 numbers >= 0 starting with 0, got {lots!r}")
    actions = _require(meta, "actions", dict, where)
    expected = {str(i): {"name": n, "direction": d, "intensity": q} for i, (n, d, q) in enumerate(ACTIONS)}
    if actions != expected:
        raise ModelError(f"{where}: 'actions' must be exactly the seed's 7 actions {expected}")
    feats = _require(meta, "observation.features", list, where)
    if len(feats) != p.obs_dim:
        raise ModelError(f"{where}: observation.features has {len(feats)} names, expected 5 + n_states + 3 = {p.obs_dim}")
    for key, n in (("mean", 5), ("std", 5)):
        arr = _require(meta, f"observation.norm.{key}", list, where)
        if len(arr) != n or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in arr):
            raise ModelError(f"{where}: observation.norm.{key} must be {n} finite numbers")
    if not all(x > 0 for x in meta["observation"]["norm"]["std"]):
        raise ModelError(f"{where}: observation.norm.std values must be > 0")
    _require(meta, "observation.norm.clip", (int, float), where)
    _require(meta, "observation.unrealized_clip", (int, float), where)
    if list(_require(meta, "hmm.features", list, where)) != list(HMM_FEATURES):
        raise ModelError(f"{where}: hmm.features must be {list(HMM_FEATURES)}")
    for key in ("mean", "std"):
        arr = _require(meta, f"hmm.scaler.{key}", list, where)
        if len(arr) != 3:
            raise ModelError(f"{where}: hmm.scaler.{key} must have 3 values")
    if not all(x > 0 for x in meta["hmm"]["scaler"]["std"]):
        raise ModelError(f"{where}: hmm.scaler.std values must be > 0")
    start = _require(meta, "hmm.startprob", list, where)
    trans = _require(meta, "hmm.transmat", list, where)
    if len(start) != p.n_states or len(trans) != p.n_states or any(len(r) != p.n_states for r in trans):
        raise ModelError(f"{where}: hmm.startprob / hmm.transmat must be {p.n_states} / {p.n_states}x{p.n_states}")
    prefix = f"{name}_{tf}"
    for section, member, inp, out in (
        ("hmm", f"{prefix}_hmm.onnx", "x", "log_emission"),
        ("ppo", f"{prefix}_ppo.onnx", "obs", "logits"),
    ):
        got = _require(meta, f"{section}.onnx.member", str, where)
        if got != member:
            raise ModelError(f"{where}: {section}.onnx.member = {got!r}, expected {member!r}")
        if got not in members:
            raise ModelError(f"{where}: member {got!r} named by {section}.onnx.member is not in the zip")
        if _require(meta, f"{section}.onnx.input", str, where) != inp:
            raise ModelError(f"{where}: {section}.onnx.input must be {inp!r}")
        if _require(meta, f"{section}.onnx.output", str, where) != out:
            raise ModelError(f"{where}: {section}.onnx.output must be {out!r}")
    if _require(meta, "ppo.obs_dim", int, where) != p.obs_dim:
        raise ModelError(f"{where}: ppo.obs_dim = {meta['ppo']['obs_dim']} but 5 + n_states + 3 = {p.obs_dim}")


def v1_members(names: Sequence[str]) -> tuple[str, str] | None:
    """(policy, hmm) member names if the zip is the specification's v1 layout: `<SYM>_<TF>_ppo.zip` (an SB3
    model) and `<SYM>_<TF>_hmm.pkl` (a pickled hmmlearn HMM) instead of the two ONNX graphs."""
    ppo = sorted(n for n in names if n.endswith("_ppo.zip"))
    hmm = sorted(n for n in names if n.endswith("_hmm.pkl"))
    if len(ppo) == 1 and len(hmm) == 1 and not any(n.endswith(".onnx") for n in names):
        return ppo[0], hmm[0]
    return None


def v1_zip_description(path: str | Path, names: Sequence[str]) -> str | None:
    """What a v1 zip is and the one command that converts it (the same sentence as `preditor check`)."""
    found = v1_members(names)
    if found is None:
        return None
    stem = found[0][: -len("_ppo.zip")]
    return (
        f"{path}: a v1 model zip ({found[0]}: the stable-baselines3 policy, {found[1]}: the pickled HMM), "
        f"not the ONNX model zip this program runs; convert it with "
        f"`scripts/.venv/bin/python scripts/export.py --v1 {path} --config NORM.json --out models/{stem}.zip` "
        f"(NORM.json from scripts/normalization.py on your training bars; export.py names anything else missing; "
        f"models/README.md, 'Converting a v1 zip')"
    )


def read_model_zip(path: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            comment = zf.comment
            members = {n: zf.read(n) for n in zf.namelist()}
    except (OSError, zipfile.BadZipFile) as err:
        raise ModelError(f"{path}: not a readable zip: {err}") from err
    v1 = v1_zip_description(path, list(members))
    if v1:
        raise ModelError(v1)
    try:
        meta = json.loads(comment.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: zip comment is not JSON metadata: {err}") from err
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: zip comment must be a JSON object")
    validate_metadata(meta, list(members), str(path))
    return meta, members


class OracleModel:
    """A loaded model zip: metadata plus onnxruntime sessions for the HMM and the policy."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.path = Path(path)
        self.meta, members = read_model_zip(self.path)
        m = self.meta
        self.params = params_from_metadata(m, str(self.path))
        self.costs = Costs.from_json(m["training_config"])
        self.norm_mean = [float(x) for x in m["observation"]["norm"]["mean"]]
        self.norm_std = [float(x) for x in m["observation"]["norm"]["std"]]
        self.norm_clip = float(m["observation"]["norm"]["clip"])
        self.unrealized_clip = float(m["observation"]["unrealized_clip"])
        self.hmm_mean = [float(x) for x in m["hmm"]["scaler"]["mean"]]
        self.hmm_std = [float(x) for x in m["hmm"]["scaler"]["std"]]
        self.startprob = [float(x) for x in m["hmm"]["startprob"]]
        self.transmat = [[float(x) for x in row] for row in m["hmm"]["transmat"]]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.hmm_session = ort.InferenceSession(members[m["hmm"]["onnx"]["member"]], opts, providers=["CPUExecutionProvider"])
        self.ppo_session = ort.InferenceSession(members[m["ppo"]["onnx"]["member"]], opts, providers=["CPUExecutionProvider"])

    def log_emission(self, x: np.ndarray) -> np.ndarray:
        return self.hmm_session.run(["log_emission"], {"x": np.ascontiguousarray(x, dtype=np.float64)})[0]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        return self.ppo_session.run(["logits"], {"obs": obs.reshape(1, -1)})[0][0]


@dataclass(frozen=True)
class Decision:
    """Everything computed for one decision bar (the golden steps.csv row)."""

    time: int
    features: PolicyFeatures
    z: list[float]
    hmm_last: tuple[float, float, float]
    regime: int
    obs: np.ndarray
    logits: np.ndarray
    action: int
    direction: int
    intensity: int
    virtual_pnl: float
    held: int


class ReferenceTwin:
    """Steps one model over windows exactly as ENV.md §3-§7 says (no precomputation across windows)."""

    def __init__(self, model: OracleModel):
        self.model = model
        self.position = VirtualPosition(model.costs)
        self.last_action: int | None = None
        self.held = 0

    def decide(self, bars: Bars, t: int) -> Decision:
        m, p = self.model, self.model.params
        start = t - p.window + 1
        if start < 0:
            raise OracleError(f"bar {t}: fewer than {p.window} bars, no decision (warming up)")
        c = bars.close[start : t + 1]
        h = bars.high[start : t + 1]
        lo = bars.low[start : t + 1]
        v = bars.volume[start : t + 1]
        feats = policy_features(c, h, lo, v, p)
        z = normalise(feats.raw, m.norm_mean, m.norm_std, m.norm_clip)
        rows = window_hmm_features(c, h, lo, p)
        log_b = m.log_emission(scale_hmm_features(rows, m.hmm_mean, m.hmm_std)).tolist()
        regime, _ = forward_filter([scaled_emission_row(r) for r in log_b], m.startprob, m.transmat)
        close = c[-1]
        pos = self.position
        u = pos.unrealized_feature(close, feats.atr, m.unrealized_clip)
        obs = build_observation(z, regime, p.n_states, pos.direction, pos.intensity, u)
        logits = m.logits(obs)
        action = argmax_first([float(x) for x in logits])
        _, d, q = ACTIONS[action]
        pos.execute(d, q, close)
        self.held = 1 if action != self.last_action else self.held + 1
        self.last_action = action
        return Decision(bars.time[t], feats, z, rows[-1], regime, obs, logits, action, pos.direction, pos.intensity, pos.realized, self.held)


def run_backtest(model: OracleModel, bars: Bars) -> tuple[list[Decision], VirtualPosition]:
    twin = ReferenceTwin(model)
    out = [twin.decide(bars, t) for t in range(model.params.window - 1, len(bars))]
    return out, twin.position


def summarize(decisions: Sequence[Decision], position: VirtualPosition) -> dict[str, Any]:
    """Backtest figures: realised PnL, closed trades, win rate, and the open position at the end."""
    trades = position.closed_trades
    wins = sum(1 for x in trades if x > 0)
    return {
        "decisions": len(decisions),
        "first_bar": format_time(decisions[0].time) if decisions else None,
        "last_bar": format_time(decisions[-1].time) if decisions else None,
        "realized_pnl": round(position.realized, 2),
        "closed_trades": len(trades),
        "win_rate": round(wins / len(trades), 4) if trades else None,
        "open_at_end": {"direction": position.direction, "intensity": position.intensity},
        "actions": {name: sum(1 for d in decisions if d.action == i) for i, name in enumerate(ACTION_NAMES)},
    }
