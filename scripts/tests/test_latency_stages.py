"""scripts/latency_stages.py reads a bench run's logs and puts each bar close's time in its stage."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "latency_stages.py"


def run_dir(tmp_path: Path, closes: int) -> Path:
    """A run of `closes` bar closes after the warm-up, two symbols each, with known stage times:
    BAR -> preditor 1 ms, preditor 0.5 ms, back to the executor 2.5 ms, its first order 1 ms later, its
    last ACK 3 ms after the SIGNALs; close number 12 spends 40 ms more in the executor. signals.log
    stamps whole milliseconds, so its events sit on whole milliseconds here."""
    log = tmp_path / "log"
    log.mkdir()
    sig, pred, ex = [], [], []
    pred.append("2026-12-01T12:00:00.000000Z  INFO preditor::live: history consumed symbol=EURUSD bars=700")

    def stamp_ms(ms: float) -> str:  # signals.log: milliseconds
        s, m = divmod(int(ms), 1000)
        return f"2026-12-01T12:{s // 60:02d}:{s % 60:02d}.{m:03d}Z"

    def stamp_us(ms: float) -> str:  # the preditor's log: microseconds
        us = round(ms * 1000)
        s, u = divmod(us, 1_000_000)
        return f"2026-12-01T12:{s // 60:02d}:{s % 60:02d}.{u:06d}Z"

    for i in range(closes):
        t0 = 1000.0 + i * 500.0
        bar = f"2017-06-01T{i % 24:02d}:00:00Z" if i < 24 else f"2017-06-02T{i - 24:02d}:00:00Z"
        late = 40.0 if i == 12 else 0.0
        for sym in ("EURUSD", "GBPUSD"):
            sig.append(f"{stamp_ms(t0)} c1 > BAR|{sym}|H1|{bar}|1.1|1.2|1.0|1.15|5")
            pred.append(f"{stamp_us(t0 + 1.0)}  INFO wire: < BAR|{sym}|H1|{bar}|1.1|1.2|1.0|1.15|5")
            pred.append(f"{stamp_us(t0 + 1.5)}  INFO wire: > SIGNAL|{sym}|LONG_WEAK|3|0.00|B:{bar}|N:1")
            sig.append(f"{stamp_ms(t0 + 4.0)} c1 < SIGNAL|{sym}|LONG_WEAK|3|0.00|B:{bar}|N:1")
            ex.append(f"{stamp_us(t0 + 5.0 + late)} DEBUG ctrader::client::session: ctrader send request=\"ProtoOANewOrderReq\" id=x")
            sig.append(f"{stamp_ms(t0 + 7.0 + late)} c1 > ACK|{sym}|LONG_WEAK|OK|T:1|P:1.15|B:{bar}")
    (log / "signals.log").write_text("\n".join(sig) + "\n")
    (log / "preditor.log").write_text("\n".join(pred) + "\n")
    (log / "executor.log").write_text("\n".join(ex) + "\n")
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
