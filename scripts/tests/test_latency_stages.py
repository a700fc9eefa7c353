"""scripts/latency_stages.py reads a bench run's logs and puts each bar close's time in its stage."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "latency_stages.py"


def run_dir(tmp_path: Path, closes: int, sig_us: bool = False, scale: float = 1.0) -> Path:
    """A run of `closes` bar closes after the warm-up, two symbols each, with known stage times:
    BAR -> preditor 1 ms, preditor 0.5 ms, back to the executor 2.5 ms, its first order 1 ms later, its
    last ACK 3 ms after the SIGNALs; close number 12 spends 40 ms more in the executor. Every time is
    multiplied by `scale`. signals.log stamps whole milliseconds as it did before 2026-12-01 (its events
    sit on whole milliseconds), or microseconds with `sig_us`."""
    log = tmp_path / "log"
    log.mkdir()
    sig, pred, ex, sim = [], [], [], []
    pred.append("2026-12-01T12:00:00.000000Z  INFO preditor::live: history consumed symbol=EURUSD bars=700")

    def stamp_ms(ms: float) -> str:  # signals.log: milliseconds
        s, m = divmod(int(ms), 1000)
        return f"2026-12-01T12:{s // 60:02d}:{s % 60:02d}.{m:03d}Z"

    def stamp_us(ms: float) -> str:  # the preditor's log: microseconds
        us = round(ms * 1000)
        s, u = divmod(us, 1_000_000)
        return f"2026-12-01T12:{s // 60:02d}:{s % 60:02d}.{u:06d}Z"

    stamp_sig = stamp_us if sig_us else stamp_ms
    for i in range(closes):
        t0 = 1000.0 + i * 500.0
        bar = f"2017-06-01T{i % 24:02d}:00:00Z" if i < 24 else f"2017-06-02T{i - 24:02d}:00:00Z"
        late = (40.0 if i == 12 else 0.0) * scale
        for sym in ("EURUSD", "GBPUSD"):
            sig.append(f"{stamp_sig(t0)} c1 > BAR|{sym}|H1|{bar}|1.1|1.2|1.0|1.15|5")
            pred.append(f"{stamp_us(t0 + 1.0 * scale)}  INFO wire: < BAR|{sym}|H1|{bar}|1.1|1.2|1.0|1.15|5")
            pred.append(f"{stamp_us(t0 + 1.5 * scale)}  INFO wire: > SIGNAL|{sym}|LONG_WEAK|3|0.00|B:{bar}|N:1")
            sig.append(f"{stamp_sig(t0 + 4.0 * scale)} c1 < SIGNAL|{sym}|LONG_WEAK|3|0.00|B:{bar}|N:1")
            ex.append(f"{stamp_us(t0 + 5.0 * scale + late)} DEBUG ctrader::client::session: ctrader send request=\"ProtoOANewOrderReq\" id=x")
            # The simulator published the bar 2 ms before the executor's BAR; the order reaches it
            # 0.1 ms after the executor sent it.
            at = 5.1 * scale + late
            us = round((at + 2.0 * scale) * 1000)
            sim.append(f"{stamp_us(t0 + at)} DEBUG ctrader_sim::core::trading: bar close -> order symbol={sym} latency_us={us}")
            sig.append(f"{stamp_sig(t0 + 7.0 * scale + late)} c1 > ACK|{sym}|LONG_WEAK|OK|T:1|P:1.15|B:{bar}")
    (log / "signals.log").write_text("\n".join(sig) + "\n")
    (log / "preditor.log").write_text("\n".join(pred) + "\n")
    (log / "executor.log").write_text("\n".join(ex) + "\n")
    if sig_us:
        (log / "ctrader-sim.log").write_text("\n".join(sim) + "\n")
    return tmp_path


def stages(out: str) -> dict[str, list[float]]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if "p50" in parts and "p99" in parts:
            i = parts.index("p50")
            rows[" ".join(parts[:i])] = [float(parts[i + 1]), float(parts[i + 3]), float(parts[i + 5])]
    return rows


def test_each_stage_gets_its_own_time_and_the_slow_close_is_named(tmp_path):
    d = run_dir(tmp_path, 40)
    out = subprocess.run([sys.executable, str(SCRIPT), str(d)], capture_output=True, text=True, check=True).stdout
    assert "30 bar closes" in out, out  # the first 10 (the warm-up's backlog) are left out
    s = stages(out)
    assert s["BAR->preditor"] == [1.0, 1.0, 1.0], out
    assert s["preditor"] == [0.5, 0.5, 0.5], out
    assert s["preditor->exec"] == [2.5, 2.5, 2.5], out
    assert s["exec->1st order"] == [1.0, 41.0, 41.0], out
    assert s["exec->last ACK"] == [3.0, 43.0, 43.0], out
    slowest = out.split("slowest closes")[1].splitlines()[1]
    assert slowest.split()[0] == "2017-06-01T12:00:00Z", out


def test_a_run_without_a_warm_twin_says_so(tmp_path):
    d = run_dir(tmp_path, 5)
    (d / "log/preditor.log").write_text("")
    r = subprocess.run([sys.executable, str(SCRIPT), str(d)], capture_output=True, text=True)
    assert r.returncode != 0 and "no bar close after the warm-up" in r.stderr, r.stderr


def test_microsecond_stamps_give_stages_to_the_microsecond(tmp_path):
    """signals.log in microseconds: stages of a few hundred microseconds are told apart, and the first
    order is the one after the SIGNALs, with no millisecond of slack."""
    d = run_dir(tmp_path, 40, sig_us=True, scale=0.25)
    out = subprocess.run([sys.executable, str(SCRIPT), str(d)], capture_output=True, text=True, check=True).stdout
    s = stages(out)
    assert s["BAR->preditor"] == [0.25, 0.25, 0.25], out
    assert s["preditor"] == [0.125, 0.125, 0.125], out
    assert s["preditor->exec"] == [0.625, 0.625, 0.625], out
    assert s["exec->1st order"] == [0.25, 10.25, 10.25], out
    assert s["exec->last ACK"] == [0.75, 10.75, 10.75], out
    # The simulator's stamps: its publication to the executor's BAR, and its own figure.
    assert s["spots->BAR"] == [0.5, 0.5, 0.5], out
    assert s["at the sim"] == [1.775, 11.775, 11.775], out
    slowest = out.split("slowest closes")[1].splitlines()[1]
    assert slowest.split()[0] == "2017-06-01T12:00:00Z", out
