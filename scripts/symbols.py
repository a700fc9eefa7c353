"""The 20 demo symbols: contract specs for training_config and the price level of their demo bars.

Figures are typical retail-CFD values (account currency USD), chosen for the demonstration only; a user
puts their broker's real values in training_config when they train their own models.
`level` is the first close of the derived demo series; `offset` rotates the EURUSD return path so the
20 demo series do not move in lock-step (see make_data.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle_core import Costs


@dataclass(frozen=True)
class SymbolSpec:
    name: str
    point: float
    pip_size: float
    pip_value: float  # account currency per pip per 1 lot
    digits: int
    spread_points: float
    slippage_points: float
    commission_per_lot: float
    lot_sizes: tuple[float, float, float, float]
    level: float
    offset: int
    kind: str

    def costs(self) -> Costs:
        return Costs(
            point=self.point,
            pip_size=self.pip_size,
            pip_value=self.pip_value,
            spread_points=self.spread_points,
            slippage_points=self.slippage_points,
            commission_per_lot=self.commission_per_lot,
            digits=self.digits,
            lot_sizes=self.lot_sizes,
        )

    def training_config(self) -> dict:
        return self.costs().to_json()


FX_LOTS = (0.0, 0.01, 0.03, 0.05)
INDEX_LOTS = (0.0, 0.1, 0.3, 0.5)  # the seed's US500 row
STOCK_LOTS = (0.0, 1.0, 3.0, 5.0)  # the seed's AAPL row


def _fx(name, level, offset, pip_value, spread, jpy=False):
    if jpy:
        return SymbolSpec(name, 0.001, 0.01, pip_value, 3, spread, 2, 7.0, FX_LOTS, level, offset, "forex")
    return SymbolSpec(name, 0.00001, 0.0001, pip_value, 5, spread, 2, 7.0, FX_LOTS, level, offset, "forex")


SYMBOLS: tuple[SymbolSpec, ...] = (
    # EURUSD offset 0 and its real first close: its demo series is the real series itself.
    _fx("EURUSD", 1.07219, 0, 10.0, 7),
    _fx("GBPUSD", 1.2850, 250, 10.0, 10),
    _fx("USDJPY", 109.50, 500, 9.1, 8, jpy=True),
    _fx("AUDUSD", 0.7530, 750, 10.0, 9),
    _fx("USDCAD", 1.3450, 1000, 7.4, 12),
    _fx("USDCHF", 0.9620, 1250, 10.4, 12),
    _fx("NZDUSD", 0.7120, 1500, 10.0, 14),
    _fx("EURGBP", 0.8380, 1750, 12.8, 12),
    _fx("EURJPY", 119.80, 2000, 9.1, 14, jpy=True),
    _fx("GBPJPY", 141.20, 2250, 9.1, 20, jpy=True),
    SymbolSpec("XAUUSD", 0.01, 0.1, 10.0, 2, 30, 5, 7.0, FX_LOTS, 1285.40, 2500, "metal"),
    SymbolSpec("US500", 0.01, 1.0, 1.0, 2, 50, 10, 0.0, INDEX_LOTS, 2342.50, 2750, "index"),
    SymbolSpec("US30", 0.1, 1.0, 1.0, 1, 25, 5, 0.0, INDEX_LOTS, 20530.0, 3000, "index"),
    SymbolSpec("NAS100", 0.01, 1.0, 1.0, 2, 150, 20, 0.0, INDEX_LOTS, 5420.25, 3250, "index"),
    SymbolSpec("GER40", 0.1, 1.0, 1.18, 1, 12, 3, 0.0, INDEX_LOTS, 12050.0, 3500, "index"),
    SymbolSpec("UK100", 0.1, 1.0, 1.29, 1, 10, 3, 0.0, INDEX_LOTS, 7110.0, 3750, "index"),
    SymbolSpec("AAPL", 0.01, 0.01, 0.01, 2, 4, 1, 0.02, STOCK_LOTS, 141.20, 4000, "stock"),
    SymbolSpec("MSFT", 0.01, 0.01, 0.01, 2, 4, 1, 0.02, STOCK_LOTS, 65.30, 4250, "stock"),
    SymbolSpec("TSLA", 0.01, 0.01, 0.01, 2, 10, 2, 0.02, STOCK_LOTS, 300.80, 4500, "stock"),
    SymbolSpec("BTCUSD", 0.01, 1.0, 1.0, 2, 150, 50, 0.0, FX_LOTS, 1210.00, 4750, "crypto"),
)

BY_NAME = {s.name: s for s in SYMBOLS}
