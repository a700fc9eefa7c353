#!/usr/bin/env python3
"""Where New Bar -> Order Sent goes, per bar close, from the logs a scripts/bench.sh run keeps.

  scripts/latency_stages.py [RUN_DIR]        (default run/bench)

Stages of one bar close (all 20 symbols), from the logs' stamps on one machine's clock:
  spots->BAR      the simulator publishing the new bar (before its spots are written) to the
                  executor's first `> BAR` of the close (TLS, the spots, the bar builder): needs the
                  simulator's debug line "bar close -> order" (its stamp less its latency_us), so run
                  bench.sh with RUST_LOG=info,ctrader::client::session=debug,ctrader_sim=debug;
  BAR->preditor   executor's first `> BAR` of the close (signals.log) to the preditor's first `< BAR`;
  preditor        the preditor's first `< BAR` to its last `> SIGNAL` for that bar;
  preditor->exec  its last `> SIGNAL` to the executor's last `< SIGNAL` for that bar;
  exec->1st order the executor's last `< SIGNAL` to its first ProtoOANewOrderReq/ProtoOAClosePositionReq
                  sent after it (journal fsync, risk, lots): needs the executor's debug line
                  "ctrader send" (run bench.sh with RUST_LOG=info,ctrader::client::session=debug);
  exec->last ACK  the executor's last `< SIGNAL` to its last `> ACK` for that bar (orders, the
                  simulator's fills, the ACKs);
  at the sim      New Bar -> Order Sent of the close's first order, as the simulator timed it (the
                  same debug line).
Both logs stamp microseconds (signals.log before 2026-12-01 stamped milliseconds, truncated: such a
run's stages between the two logs can read up to 1 ms low, even negative). The first 10 closes after the
warm-up (the bars held back during it, sent as a backlog) are left out. Prints each stage's p50/p99/max
(milliseconds, to the microsecond) and the slowest closes.
"""
import re
import sys
from bisect import bisect_left
from datetime import datetime, timezone
from pathlib import Path

run = Path(sys.argv[1] if len(sys.argv) > 1 else "run/bench")


def ms(stamp: str) -> float:
    """An RFC 3339 UTC stamp of the logs -> Unix milliseconds."""
    s = stamp.rstrip("Z")
    if "." in s:
        head, frac = s.split(".")
        s = head + "." + (frac + "000000")[:6]
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).timestamp() * 1000.0


BAR = re.compile(r"BAR\|[^|]+\|[^|]+\|([^|]+)\|")
B = re.compile(r"\|B:([^|\s]+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

ex_bar, ex_sig, ex_ack, pr_bar, pr_sig, sends = {}, {}, {}, {}, {}, []
# How far signals.log's stamps can lag the instant they stand for: 1 ms for millisecond stamps.
ex_slack = 0.0
for line in open(run / "log/signals.log", errors="replace"):
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4:
        continue
    t, way, msg = parts[0], parts[2], parts[3]
    if len(t.rstrip("Z").partition(".")[2]) < 6:
        ex_slack = 1.0
    if way == ">" and msg.startswith("BAR|"):
        ex_bar.setdefault(BAR.search(msg).group(1), ms(t))
    elif way == "<" and msg.startswith("SIGNAL|") and B.search(msg):
        k = B.search(msg).group(1)
        ex_sig[k] = max(ex_sig.get(k, 0.0), ms(t))
    elif way == ">" and msg.startswith("ACK|") and B.search(msg):
        k = B.search(msg).group(1)
        ex_ack[k] = max(ex_ack.get(k, 0.0), ms(t))
warm = None
for line in open(run / "log/preditor.log", errors="replace"):
    line = ANSI.sub("", line.rstrip("\n"))
    if "history consumed" in line:
        warm = ms(line.split()[0])
    elif "wire: < BAR|" in line:
        pr_bar.setdefault(BAR.search(line).group(1), ms(line.split()[0]))
    elif "wire: > SIGNAL|" in line and B.search(line):
        k = B.search(line).group(1)
        pr_sig[k] = max(pr_sig.get(k, 0.0), ms(line.split()[0]))
exlog = run / "log/executor.log"
if exlog.exists():
    for line in open(exlog, errors="replace"):
        line = ANSI.sub("", line)
        if "ctrader send" in line and ("NewOrderReq" in line or "ClosePositionReq" in line):
            sends.append(ms(line.split()[0]))
sends.sort()
# The simulator's first order per symbol after a new bar: (the instant it published the bar, the
# order's latency), from its debug line; one bar close's publications share an instant.
published = []
simlog = run / "log/ctrader-sim.log"
if simlog.exists():
    LAT = re.compile(r"latency_us=(\d+)")
    for line in open(simlog, errors="replace"):
        line = ANSI.sub("", line)
        if "bar close -> order" in line and LAT.search(line):
            us = int(LAT.search(line).group(1))
            published.append((ms(line.split()[0]) - us / 1000.0, us / 1000.0))
published.sort()
pub_t = [t for t, _ in published]


def at_sim(bar_out: float):
    """The close the executor's first BAR at `bar_out` belongs to: (spots->BAR, its first order's
    latency at the simulator), from the latest publication at most 50 ms before it."""
    i = bisect_left(pub_t, bar_out) - 1
    if i < 0 or bar_out - pub_t[i] > 50.0:
        return None, None
    t0 = pub_t[i]
    j = i
    while j > 0 and t0 - pub_t[j - 1] < 0.05:  # the same publication (rounding of the stamps)
        j -= 1
    first = min(lat for t, lat in published[j : i + 1])
    return bar_out - pub_t[j], first


rows = []
for k, t0 in ex_bar.items():
    if warm is None or t0 <= warm or not all(k in d for d in (pr_bar, pr_sig, ex_sig, ex_ack)):
        continue
    i = bisect_left(sends, ex_sig[k] - ex_slack)
    first = sends[i] - ex_sig[k] if i < len(sends) and sends[i] <= ex_ack[k] else None
    spots, sim = at_sim(t0)
    rows.append((k, spots, pr_bar[k] - t0, pr_sig[k] - pr_bar[k], ex_sig[k] - pr_sig[k], first,
                 ex_ack[k] - ex_sig[k], ex_ack[k] - t0, sim))
rows.sort()
rows = rows[10:]
if not rows:
    sys.exit(f"{run}: no bar close after the warm-up with every stage logged")
names = ["spots->BAR", "BAR->preditor", "preditor", "preditor->exec", "exec->1st order", "exec->last ACK",
         "BAR->last ACK", "at the sim"]


def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, -(-len(v) * p // 100) - 1))]  # nearest rank


print(f"{len(rows)} bar closes after the warm-up ({run}); ms")
for i, n in enumerate(names):
    v = [r[i + 1] for r in rows if r[i + 1] is not None]
    if v:
        print(f"  {n:16s} p50 {q(v, 50):9.3f}  p99 {q(v, 99):9.3f}  max {max(v):9.3f}  (n={len(v)})")
    else:
        print(f"  {n:16s} not logged")
print("slowest closes: bar | " + " | ".join(names))
for r in sorted(rows, key=lambda r: -(r[8] if r[8] is not None else r[7]))[:8]:
    print("  " + r[0] + "  " + "  ".join("        -" if x is None else f"{x:9.3f}" for x in r[1:]))
