"""The seed's execute_action (ENV.md §6) on its own examples, with the training_config costs."""

import pytest

from oracle_core import ACTIONS, Costs, VirtualPosition

# The seed's EURUSD training_config (+ pip_size): half cost h = (7/2 + 2) points = 5.5e-5,
# value per price unit per lot V = 10 / 0.0001 = 100000.
EURUSD = Costs(point=0.00001, pip_size=0.0001, pip_value=10.0, spread_points=7, slippage_points=2,
               commission_per_lot=7.0, digits=5, lot_sizes=(0.0, 0.01, 0.03, 0.05))
H = 5.5e-5
V = 100000.0


def act(pos, name, close):
    _, d, q = next(a for a in ACTIONS if a[0] == name)
    pos.execute(d, q, close)


def test_actions_table_is_the_seeds():
    assert ACTIONS == (("WAIT", 0, 0), ("LONG_WEAK", 1, 1), ("LONG_MODERATE", 1, 2), ("LONG_STRONG", 1, 3),
                       ("SHORT_WEAK", -1, 1), ("SHORT_MODERATE", -1, 2), ("SHORT_STRONG", -1, 3))


def test_same_action_keeps_the_position():
    pos = VirtualPosition(EURUSD)
    act(pos, "LONG_WEAK", 1.10000)
    entry = pos.entry
    act(pos, "LONG_WEAK", 1.20000)
    assert (pos.direction, pos.intensity, pos.entry, pos.realized) == (1, 1, entry, 0.0)
    assert pos.closed_trades == []


def test_open_pays_half_the_cost_in_the_fill():
    pos = VirtualPosition(EURUSD)
    act(pos, "SHORT_MODERATE", 1.10000)
    assert pos.entry == pytest.approx(1.10000 - H, abs=1e-15)
    assert (pos.direction, pos.intensity) == (-1, 2)


def test_round_trip_at_the_same_price_costs_spread_slippage_and_commission():
    pos = VirtualPosition(EURUSD)
    act(pos, "LONG_WEAK", 1.10000)
    act(pos, "WAIT", 1.10000)
    # -(2 h) * 0.01 lot * V - 7 * 0.01 = -0.11 - 0.07
    assert pos.realized == pytest.approx(-0.18, rel=1e-9)
    assert (pos.direction, pos.intensity) == (0, 0)


def test_intensity_change_is_a_close_then_an_open():
    pos = VirtualPosition(EURUSD)
    act(pos, "LONG_WEAK", 1.10000)
    act(pos, "LONG_STRONG", 1.10100)
    # the weak lot closed at 1.10100 - h, then a fresh strong entry at 1.10100 + h
    closed = (1.10100 - H - (1.10000 + H)) * 0.01 * V - 7.0 * 0.01
    assert pos.realized == pytest.approx(closed, rel=1e-9)
    assert pos.entry == pytest.approx(1.10100 + H, abs=1e-15)
    assert (pos.direction, pos.intensity) == (1, 3)
    assert len(pos.closed_trades) == 1


def test_no_partial_close_when_reducing():
    pos = VirtualPosition(EURUSD)
    act(pos, "LONG_STRONG", 1.10000)
    act(pos, "LONG_WEAK", 1.09900)
    # the whole 0.05 lot closes (no partial), then 0.01 opens
    closed = (1.09900 - H - (1.10000 + H)) * 0.05 * V - 7.0 * 0.05
    assert pos.realized == pytest.approx(closed, rel=1e-9)
    assert (pos.direction, pos.intensity) == (1, 1)


def test_reversal_closes_then_opens_the_other_side():
    pos = VirtualPosition(EURUSD)
    act(pos, "SHORT_WEAK", 1.10000)
    act(pos, "LONG_WEAK", 1.09000)
    closed = -1 * (1.09000 + H - (1.10000 - H)) * 0.01 * V - 7.0 * 0.01
    assert closed > 0
    assert pos.realized == pytest.approx(closed, rel=1e-9)
    assert (pos.direction, pos.intensity) == (1, 1)
    assert pos.entry == pytest.approx(1.09000 + H, abs=1e-15)


def test_wait_when_flat_does_nothing():
    pos = VirtualPosition(EURUSD)
    act(pos, "WAIT", 1.1)
    assert (pos.direction, pos.intensity, pos.realized, pos.closed_trades) == (0, 0, 0.0, [])


def test_liquidation_equity_and_unrealized_feature():
    pos = VirtualPosition(EURUSD)
    act(pos, "LONG_MODERATE", 1.10000)
    mark = 1.10200
    expected = (mark - H - (1.10000 + H)) * 0.03 * V - 7.0 * 0.03
    assert pos.liquidation_equity(mark) == pytest.approx(expected, rel=1e-9)
    assert pos.unrealized_feature(mark, 0.001, 5.0) == pytest.approx((mark - 1.10000 - H) / 0.001, rel=1e-9)
    assert pos.unrealized_feature(mark, 0.0001, 5.0) == 5.0  # clipped
    assert pos.unrealized_feature(mark, 0.0, 5.0) == 0.0  # atr = 0
