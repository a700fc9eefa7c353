"""The demo's live digest (scripts/lib/digest.awk) says what the live book did, truthfully.

Issue 19: `EURJPY WAIT ... -> OK position 6655 at 120.210` read as holding a position, when the
WAIT had closed 6655 at that price; a reversal did not say what it closed; an executor ERROR was cut
at its first space.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DIGEST = Path(__file__).resolve().parent.parent / "lib" / "digest.awk"
AWK = os.environ.get("OT_AWK", "awk")

LOG = """\
2026-12-01T12:00:00.001Z c1 < SIGNAL|EURJPY|LONG_WEAK|3|0.00|B:2017-05-30T12:00:00Z|N:1
2026-12-01T12:00:00.004Z c1 > ACK|EURJPY|LONG_WEAK|OK|T:6650|P:120.100|B:2017-05-30T12:00:00Z
2026-12-01T12:00:00.251Z c1 < SIGNAL|EURJPY|LONG_WEAK|3|0.00|B:2017-05-30T13:00:00Z|N:2
2026-12-01T12:00:00.254Z c1 > ACK|EURJPY|LONG_WEAK|OK|T:6650|P:120.100|B:2017-05-30T13:00:00Z
2026-12-01T12:00:00.501Z c1 < SIGNAL|EURJPY|SHORT_WEAK|1|0.00|B:2017-05-30T14:00:00Z|N:1
2026-12-01T12:00:00.505Z c1 > ACK|EURJPY|SHORT_WEAK|OK|T:6655|P:120.210|B:2017-05-30T14:00:00Z
2026-12-01T12:00:00.751Z c1 < SIGNAL|EURJPY|WAIT|2|11.00|B:2017-05-30T15:00:00Z|N:1
2026-12-01T12:00:00.755Z c1 > ACK|EURJPY|WAIT|OK|T:6655|P:120.300|B:2017-05-30T15:00:00Z
2026-12-01T12:00:01.001Z c1 < SIGNAL|EURJPY|WAIT|2|11.00|B:2017-05-30T16:00:00Z|N:2
2026-12-01T12:00:01.003Z c1 > ACK|EURJPY|WAIT|OK|B:2017-05-30T16:00:00Z
2026-12-01T12:00:01.010Z c1 < SIGNAL|AAPL|LONG_MODERATE|0|5.00|B:2017-09-27T00:00:00Z|N:1
2026-12-01T12:00:01.260Z c1 < SIGNAL|AAPL|SHORT_WEAK|4|5.00|B:2017-09-27T01:00:00Z|N:1
2026-12-01T12:00:01.262Z c1 > ACK|AAPL|SHORT_WEAK|OK|T:21084|P:161.25|B:2017-09-27T01:00:00Z
2026-12-01T12:00:01.263Z c1 > ACK|AAPL|LONG_MODERATE|FAIL|STALE|B:2017-09-27T00:00:00Z
2026-12-01T12:00:01.270Z c1 < SIGNAL|MSFT|LONG_WEAK|1|0.00|B:2017-09-27T01:00:00Z|N:1
2026-12-01T12:00:01.272Z c1 > ACK|MSFT|LONG_WEAK|OK|T:300|P:74.10|B:2017-09-27T01:00:00Z
2026-12-01T12:00:01.510Z c1 < SIGNAL|MSFT|SHORT_STRONG|1|0.00|B:2017-09-27T02:00:00Z|N:3
2026-12-01T12:00:01.512Z c1 > ACK|MSFT|SHORT_STRONG|WAIT_SYNC|MISSED_ENTRY|B:2017-09-27T02:00:00Z
2026-12-01T12:00:01.600Z c1 > ERROR|HISTORY_UNAVAILABLE|TSLA H1: the broker's history request failed (timeout); send WARMUP again
"""


def digest(tmp_path, log=LOG, quiet=0):
    if shutil.which(AWK) is None:
        pytest.fail(f"{AWK} not found: the demo needs awk")
    path = tmp_path / "signals.log"
    path.write_text(log)
    out = subprocess.run(
        [AWK, "-v", f"quiet={quiet}", "-f", str(DIGEST), str(path)],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.splitlines()


def answer(lines, symbol, bar):
    """What the digest says the live book did for the signal of `symbol` at `bar`."""
    hits = [l for l in lines if f" {symbol} " in l and f" {bar} " in l]
    assert len(hits) == 1, (symbol, bar, lines)
    return hits[0].split("→", 1)[1].strip()


def test_every_column_is_labelled(tmp_path):
    head = digest(tmp_path)[0]
    for label in ("time", "symbol", "model action", "regime", "virtual PnL", "bar (open, UTC)",
                  "live book: ACK, what it did"):
        assert label in head


def test_a_wait_says_what_it_closed(tmp_path):
    lines = digest(tmp_path)
    assert answer(lines, "EURJPY", "2017-05-30T15:00:00Z") == (
        "OK, closed #6655 (SHORT_WEAK) at 120.300")


def test_an_open_and_a_reversal_name_what_was_closed_and_opened(tmp_path):
    lines = digest(tmp_path)
    assert answer(lines, "EURJPY", "2017-05-30T12:00:00Z") == (
        "OK, opened #6650 (LONG_WEAK) at 120.100")
    assert answer(lines, "EURJPY", "2017-05-30T14:00:00Z") == (
        "OK, closed #6650 (LONG_WEAK), opened #6655 (SHORT_WEAK) at 120.210")
    # An unchanged action is not shown again.
    assert not [l for l in lines if "2017-05-30T13:00:00Z" in l or "2017-05-30T16:00:00Z" in l]


def test_each_ack_is_paired_with_its_own_signal(tmp_path):
    lines = digest(tmp_path)
    assert answer(lines, "AAPL", "2017-09-27T00:00:00Z") == "FAIL STALE: not followed"
    assert answer(lines, "AAPL", "2017-09-27T01:00:00Z") == "OK, opened #21084 (SHORT_WEAK) at 161.25"


def test_a_missed_entry_after_a_close_says_both(tmp_path):
    lines = digest(tmp_path)
    assert answer(lines, "MSFT", "2017-09-27T02:00:00Z") == (
        "WAIT_SYNC MISSED_ENTRY: not entered late, closed #300 (LONG_WEAK)")


def test_an_executor_error_is_shown_whole(tmp_path):
    lines = digest(tmp_path)
    assert ("  executor: ERROR|HISTORY_UNAVAILABLE|TSLA H1: the broker's history request failed "
            "(timeout); send WARMUP again") in lines


def test_quiet_shows_only_the_tallies(tmp_path):
    sig = "2026-12-01T12:00:00.000Z c1 < SIGNAL|EURUSD|WAIT|0|0.00|B:2017-01-01T{:02d}:00:00Z|N:1\n"
    ack = "2026-12-01T12:00:00.000Z c1 > ACK|EURUSD|WAIT|OK|B:2017-01-01T{:02d}:00:00Z\n"
    log = "".join((sig + ack).format(h % 24, h % 24) for h in range(102))
    lines = digest(tmp_path, log=log, quiet=1)
    assert lines == ["  -- bars 1-100 (to 2017-01-01T03:00:00Z): 100 signals, live ACK OK=100"]


def test_the_start_up_missed_entries_are_explained_once_before_the_first(tmp_path):
    # The demo's first screen: most symbols' first signals are answered MISSED_ENTRY, which a trader
    # reads as the executor not following the model unless the digest says why, first.
    log = LOG + (
        "2026-12-01T12:00:02.010Z c1 < SIGNAL|TSLA|LONG_WEAK|1|0.00|B:2017-09-27T03:00:00Z|N:9\n"
        "2026-12-01T12:00:02.012Z c1 > ACK|TSLA|LONG_WEAK|WAIT_SYNC|MISSED_ENTRY|B:2017-09-27T03:00:00Z\n"
    )
    lines = digest(tmp_path, log)
    notes = [i for i, l in enumerate(lines) if "note:" in l]
    first_missed = next(i for i, l in enumerate(lines) if "→" in l and "MISSED_ENTRY" in l)
    assert len(notes) == 1, lines
    assert notes[0] < first_missed, lines
    text = " ".join(lines[notes[0]:first_missed])
    assert "comes from history" in text and "never enters late" in text and "next entry" in text
    assert "start-up" in text
    assert sum("→" in l and "MISSED_ENTRY" in l for l in lines) == 2  # MSFT's and TSLA's
    assert not any("note:" in l for l in digest(tmp_path, log, quiet=1))
