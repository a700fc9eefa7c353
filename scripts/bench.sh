#!/usr/bin/env bash
# The docs/ARCHITECTURE.md §7 figures, measured end to end: 20 symbols, ctrader-sim + executor + preditor.
#
#   scripts/bench.sh [--bars N] [--speed BARS_PER_SEC] [--state disk|tmpfs] [--skip-preditor-bench]
#                    [--hub off|on|broker-down]
#
# Prints one table:
#   - RSS of each daemon from /proc/PID/status (VmRSS at start / middle / end of the replay, max
#     VmRSS sampled once a second, VmHWM at the end);
#   - New Bar → Order Sent p50/p99/max as recorded by the simulator (--stats-out);
#   - ACK outcomes (how many signals were answered STALE: the pipeline not keeping up);
#   - warmup of 20 models, end to end (first WARMUP sent → last "history consumed") and
#     `preditor bench`'s in-process figure;
#   - backtest speed: `preditor backtest` vs `scripts/reference.py backtest` (same model, same bars),
#     if scripts/.venv exists (scripts/setup_venv.sh creates it).
# Release binaries (fat LTO) from the repo's target/ unless OT_BIN_DIR names a directory holding
# ctrader-sim, executor and preditor. Everything it writes is under run/bench/ (logs kept).
# Defaults: 400 bars at 2 bars/s (about 4 minutes with the other figures). --state disk (default)
# keeps both daemons' fsynced state on disk as in production; tmpfs puts it in /dev/shm to show what
# the fsyncs cost (e.g. --state tmpfs --speed 10 --bars 1000 --skip-preditor-bench).
# --hub (BENCHMARKS.md, "Hub link"): off (default, no hub section); on (a private Mosquitto from
# hub/mosquitto/ on a free port, TLS, the executor's `hub` section with telemetry every second);
# broker-down (the same section, nothing listening on its port: every record waits in the outbox).
# It needs the `hub` binary next to the others and /usr/sbin/mosquitto.
set -euo pipefail
export OT_TAG=bench
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
cd "$OT_ROOT"

bars=400
speed=2
state=disk
preditor_bench=1
hub_mode=off
sim_port=5235
ipc_port=8865
bench_symbol=EURUSD
while [ $# -gt 0 ]; do
  case "$1" in
  --bars) bars="${2:?}"; shift 2 ;;
  --speed) speed="${2:?}"; shift 2 ;;
  --state) state="${2:?}"; shift 2 ;;
  --skip-preditor-bench) preditor_bench=0; shift ;;
  --hub) hub_mode="${2:?}"; shift 2 ;;
  -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) ot_die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$bars" =~ ^[0-9]+$ ]] || ot_die "--bars wants an integer"
case "$state" in disk | tmpfs) ;; *) ot_die "--state is disk or tmpfs" ;; esac
case "$hub_mode" in off | on | broker-down) ;; *) ot_die "--hub is off, on or broker-down" ;; esac

if [ -n "${OT_BIN_DIR:-}" ]; then bin="$OT_BIN_DIR"; else bin="$(ot_build release)"; fi
for b in ctrader-sim executor preditor; do [ -x "$bin/$b" ] || ot_die "$bin/$b is missing"; done
sim_addr="127.0.0.1:$sim_port"
control_addr="127.0.0.1:$((sim_port + 1))"
ipc_addr="127.0.0.1:$ipc_port"
for a in "$sim_addr" "$control_addr" "$ipc_addr"; do
  ot_port_free "$a" || ot_die "$a is in use; stop whatever holds it"
done

dir=run/bench
rm -rf "$dir"
mkdir -p "$dir/log" "$dir/sim"
shm=""
if [ "$state" = tmpfs ]; then
  shm="$(mktemp -d /dev/shm/oracle-bench.XXXXXX)"
  mkdir -p "$shm/state" "$shm/preditor"
  ln -s "$shm/state" "$dir/state"
  ln -s "$shm/preditor" "$dir/preditor"
else
  mkdir -p "$dir/state" "$dir/preditor"
fi
ot_make_secrets "$dir/secrets"
# The shipped config, moved under run/bench/ (its paths are relative to the file) and onto the
# bench's ports, so a running demo is not disturbed.
# The live staleness (60 s) rather than the demo's half bar: BENCHMARKS.md's STALE counts are
# measured against it.
sed -e 's#"models_dir": "models"#"models_dir": "../../models"#' \
  -e 's#"stale_signal_max_age_secs": 1800#"stale_signal_max_age_secs": 60#' \
  -e 's#"run/#"#g' -e "s#\"port\": 5035#\"port\": $sim_port#" \
  -e "s#127.0.0.1:8765#$ipc_addr#" executor_config.json >"$dir/executor_config.json"
client_id="$(ot_config_value executor_config.json client_id)"

# --- the hub link (--hub on|broker-down) ---------------------------------------------------------
if [ "$hub_mode" != off ]; then
  hubbin="$bin/hub"
  [ -x "$hubbin" ] || ot_die "$hubbin is missing (cargo build -p hub, same profile)"
  hd="$dir/hub"
  mkdir -p "$hd"
  hd="$(cd "$hd" && pwd)"
  mport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  "$hubbin" dev-certs --dir "$hd" 2>/dev/null
  bargs=(--passwd-file "$hd/passwd" --token-dir "$hd/instances")
  "$hubbin" set-hub-user "${bargs[@]}" --password-file "$hd/broker_password" 2>/dev/null
  hub_pub="$("$hubbin" gen-key --key-file "$hd/hub_key" 2>/dev/null)"
  "$hubbin" add-instance bench "${bargs[@]}" --key-file "$hd/hub_key" >/dev/null 2>&1 || ot_die "hub add-instance failed"
  python3 - "$dir/executor_config.json" "$mport" "$hd" "$hub_pub" <<'PY'
import json, sys
path, port, hd, pub = sys.argv[1:5]
c = json.load(open(path))
c["hub"] = {"broker": f"mqtts://localhost:{port}", "ca_file": f"{hd}/fleet-ca.pem", "instance_id": "bench",
            "token_file": f"{hd}/instances/bench.token", "hub_public_key": pub.strip().split()[-1],
            "telemetry_secs": 1}
json.dump(c, open(path, "w"), indent=2)
PY
  if [ "$hub_mode" = on ]; then
    sed -e "s#/etc/mosquitto/oracle/#$hd/#g" -e "s#/etc/mosquitto/certs/#$hd/#g" \
      -e "s#^listener 8883#listener $mport 127.0.0.1#" hub/mosquitto/oracle-fleet.conf >"$hd/mosquitto.conf"
    printf 'log_dest file %s/mosquitto.log\npersistence false\n' "$hd" >>"$hd/mosquitto.conf"
    cp hub/mosquitto/acl "$hd/acl"
    if [ "$(id -u)" = 0 ]; then chown -R mosquitto: "$hd" 2>/dev/null || true; fi
    ot_start mosquitto "$dir/log/mosquitto.log" /usr/sbin/mosquitto -c "$hd/mosquitto.conf"
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$mport") 2>/dev/null && break; sleep 0.1; done
  fi
fi
account_id="$(ot_config_value executor_config.json account_id)"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ot_stop_all
  if [ -n "$shm" ]; then
    rm -f "$dir/state" "$dir/preditor"
    cp -a "$shm/state" "$dir/state" && cp -a "$shm/preditor" "$dir/preditor" && rm -rf "$shm"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
ms_of_log_time() { date -d "$1" +%s%3N; } # an RFC 3339 timestamp from a log line → epoch ms

# --- the accelerated run ----------------------------------------------------------------------
ot_say "replay: $bars bars at $speed bars/s, 20 symbols, state on $state (about $((bars / speed + 20)) s)"
# The simulator keeps the server's rate limits (50 requests/s, 5 historical/s), as in production.
ot_start ctrader-sim "$dir/log/ctrader-sim.log" "$bin/ctrader-sim" \
  --listen "$sim_addr" --control "$control_addr" --data data/demo --speed "$speed" --start-bar 700 \
  --client-id "$client_id" --client-secret "$OT_CLIENT_SECRET" --access-token "$OT_ACCESS_TOKEN" \
  --refresh-token "$OT_REFRESH_TOKEN" --account-id "$account_id" \
  --cert-out "$dir/sim/ca.pem" --stats-out "$dir/sim/stats.json"
ot_wait_line "$dir/log/ctrader-sim.log" '^ctrader-sim listening=' 30 ctrader-sim || ot_die "ctrader-sim did not start"
ot_start executor "$dir/log/executor.log" "$bin/executor" run --config "$dir/executor_config.json"
ot_wait_line "$dir/log/executor.log" 'serving the preditor' 60 executor || { ot_check_alive || true; ot_die "executor did not start"; }
if [ "$hub_mode" = on ]; then
  ot_wait_line "$dir/log/executor.log" 'hub link: connected' 30 executor || ot_die "the executor's hub link did not connect"
fi
ot_start preditor "$dir/log/preditor.log" "$bin/preditor" run --executor "ws://$ipc_addr" \
  --token-file "$dir/secrets/ipc.token" --models models --state-dir "$dir/preditor"

samples="$dir/rss.tsv" # elapsed_s  name  rss_kib  hwm_kib
printf 'elapsed_s\tdaemon\tvmrss_kib\tvmhwm_kib\n' >"$samples"
t0=$(now_ms)
first=""
while :; do
  sleep 1
  ot_check_alive || ot_die "a daemon died during the benchmark (logs in $dir/log/)"
  status="$(ot_control "$control_addr" status 2>/dev/null || true)"
  closed="$(sed -nE 's/.*closed_bars=([0-9]+).*/\1/p' <<<"$status")"
  [ -n "$closed" ] || continue
  if [ -z "$first" ] && grep -q 'history consumed' "$dir/log/preditor.log" &&
    [ "$(grep -c 'history consumed' "$dir/log/preditor.log")" -ge 20 ]; then
    first="$closed" # the steady state starts once every twin is warm
  elif [ -z "$first" ] && [ $(($(now_ms) - t0)) -gt 90000 ]; then
    ot_say "WARNING: not all 20 twins reported \"history consumed\" after 90 s; measuring anyway"
    first="$closed"
  fi
  if [ -n "$first" ]; then
    el=$((($(now_ms) - t0) / 1000))
    for n in executor preditor ctrader-sim; do
      read -r rss hwm < <(ot_mem_kib "${OT_PID[$n]}") && printf '%s\t%s\t%s\t%s\n' "$el" "$n" "$rss" "$hwm" >>"$samples"
    done
    [ $((closed - first)) -ge "$bars" ] && break
  fi
  [[ "$status" == *"finished=true"* ]] && { ot_say "demo data exhausted at bar $closed"; break; }
done
ot_stop_all

# --- figures --------------------------------------------------------------------------------
# RSS: start = first sample after warmup, middle, end = last sample; max over the samples.
rss_row() {
  awk -F'\t' -v n="$1" '$2 == n { r[++k] = $3; h = $4; if ($3 > m) m = $3 }
    END { if (!k) { print "-"; exit }
          printf "%.1f / %.1f / %.1f / max %.1f MiB (VmHWM %.1f)", r[1]/1024, r[int((k+1)/2)]/1024, r[k]/1024, m/1024, h/1024 }' "$samples"
}
combined_max() {
  awk -F'\t' '$2 == "executor" || $2 == "preditor" { s[$1] += $3 } END { for (t in s) if (s[t] > m) m = s[t]; printf "%.1f", m/1024 }' "$samples"
}
lat="$(tr -d ' \n' <"$dir/sim/stats.json" | sed -nE 's/.*"overall":\{"count":([0-9]+),"p50_us":([0-9]+),"p99_us":([0-9]+),"max_us":([0-9]+)\}.*/\1 \2 \3 \4/p')"
read -r lat_n lat_p50 lat_p99 lat_max <<<"${lat:-- - - -}"
# Closes no new bar announced (before a weekend or a session's end): counted, not timed (ctrader-sim/SIM.md).
untimed="$(tr -d ' \n' <"$dir/sim/stats.json" | sed -nE 's/.*"untimed_closes":([0-9]+).*/\1/p')"
fmt_ms() { [ "$1" = - ] && echo - || awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }
warm_start="$(grep -m1 'wire: > WARMUP' "$dir/log/preditor.log" | awk '{print $1}')"
warm_end="$(grep 'history consumed' "$dir/log/preditor.log" | tail -n 1 | awk '{print $1}')"
warm_e2e="-"
if [ -n "$warm_start" ] && [ -n "$warm_end" ] && [ -n "$warm_end" ]; then
  warm_e2e="$(($(ms_of_log_time "$warm_end") - $(ms_of_log_time "$warm_start"))) ms"
fi
# ACKs after every twin was warm (before that, bars that closed during WARMUP are answered late and
# are STALE by design). Both logs use the same clock; ISO timestamps compare as strings.
acks="$(grep -E ' > ACK\|' "$dir/log/signals.log" | awk -v since="${warm_end:0:23}" 'substr($1, 1, 23) > since' |
  awk -F'|' '{ s = $4; if (s != "OK") s = s "|" $5; c[s]++; n++ }
  END { for (k in c) printf "%s=%d ", k, c[k]; printf "(of %d)", n }')"

# --- preditor bench (in-process figures) -------------------------------------------------------
pb_warm="-" pb_bar="-" pb_bt="-" pb_rss="-"
if [ "$preditor_bench" = 1 ]; then
  ot_say "preditor bench --models models --bars data/demo/$bench_symbol.csv"
  RUST_LOG=warn "$bin/preditor" bench --models models --bars "data/demo/$bench_symbol.csv" >"$dir/preditor-bench.txt" 2>&1 ||
    ot_say "preditor bench failed: see $dir/preditor-bench.txt"
  cat "$dir/preditor-bench.txt"
  pb_warm="$(sed -nE 's/^warmup 20 models, ([^(]*) \(.*\): ([0-9.]+ ms).*/\2 (\1)/p' "$dir/preditor-bench.txt" | paste -sd ';' - | sed 's/;/; /g')"
  # The decision (the signals' critical path), not the preparation of the next bar after it.
  pb_bar="$(sed -nE 's/^one bar across 20 symbols.*decided: (p50 [^;]*);.*/\1/p' "$dir/preditor-bench.txt")"
  pb_bt="$(sed -nE 's/^backtest[^:]*: (.*)/\1/p' "$dir/preditor-bench.txt")"
  pb_rss="$(sed -nE 's/^rss: (.*)/\1/p' "$dir/preditor-bench.txt")"
fi

# --- backtest speed vs the Python reference ------------------------------------------------------
# Both tools run the same model over the same bars, the whole of data/demo/$bench_symbol.csv (5,000
# H1 bars, the same file as data/EURUSD_H1.csv). Wall time and CPU time (user+sys of the child, from
# wait4 to the microsecond; less sensitive to other load on the machine) of the whole command: load,
# run, write. The preditor's figures are the median of $bt_runs runs (one run is ~15 ms, so a single
# scheduling delay on a shared machine would be the figure); the reference's one run takes seconds.
model="models/${bench_symbol}_H1.zip"
bars_csv="data/demo/$bench_symbol.csv"
bt_runs=11
timed() { # timed RUNS OUT_PREFIX CMD... → "$OUT_PREFIX.time" holds "wall_ms cpu_ms" (medians)
  local runs="$1" out="$2"
  shift 2
  python3 - "$runs" "$out" "$@" <<'PY'
import os, statistics, subprocess, sys, time
runs, out, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
walls, cpus = [], []
with open(out + ".log", "wb") as log:
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((ru.ru_utime + ru.ru_stime) * 1000)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd[0]} failed: see {out}.log")
with open(out + ".time", "w") as f:
    f.write(f"{statistics.median(walls):.1f} {statistics.median(cpus):.1f}\n")
PY
}
ot_say "backtest: preditor ($bt_runs runs) vs scripts/reference.py on $model, the $(($(wc -l <"$bars_csv") - 1)) bars of $bars_csv"
timed "$bt_runs" "$dir/backtest-rust" "$bin/preditor" backtest --model "$model" --bars "$bars_csv" --out "$dir/backtest-rust.csv"
read -r rust_wall rust_cpu <"$dir/backtest-rust.time"
rust_rows=$(($(wc -l <"$dir/backtest-rust.csv") - 1))
py="scripts/.venv/bin/python"
py_wall="-" py_cpu="-" py_rows="-" ratio="-" same="-" py_bench="no venv: run scripts/setup_venv.sh"
if [ -x "$py" ]; then
  timed 1 "$dir/backtest-python" "$py" scripts/reference.py backtest --model "$model" --bars "$bars_csv" --out "$dir/backtest-python.csv"
  read -r py_wall py_cpu <"$dir/backtest-python.time"
  py_rows=$(($(wc -l <"$dir/backtest-python.csv") - 1))
  ratio="$(awk -v pw="$py_wall" -v rw="$rust_wall" -v pc="$py_cpu" -v rc="$rust_cpu" \
    'BEGIN { printf "%.0f× wall, %.0f× CPU", pw / (rw > 0 ? rw : 1), pc / (rc > 0 ? rc : 1) }')"
  if cmp -s "$dir/backtest-rust.csv" "$dir/backtest-python.csv"; then same="identical"; else same="DIFFERENT"; fi
  py_bench="$("$py" scripts/reference.py bench --model "$model" --bars "$bars_csv" 2>&1 | tail -n 1)"
fi

# --- the table ------------------------------------------------------------------------------------
{
  echo
  echo "machine: $(nproc) cores, $(sed -nE 's/^model name[[:space:]]*: (.*)/\1/p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo) RAM, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "run: $bars bars after warmup at $speed bars/s, 20 symbols, state on $state, binaries $bin"
  echo
  printf '| %-44s | %-62s | %s\n' "figure" "measured" "target (ARCHITECTURE.md §7)"
  printf '|%s|%s|%s\n' "----------------------------------------------" "----------------------------------------------------------------" "---------"
  printf '| %-44s | %-62s | %s\n' "hub link (--hub)" "$hub_mode$( [ "$hub_mode" = off ] || echo "; outbox $(du -sk "$dir/state/hub_outbox" 2>/dev/null | cut -f1) KiB at the end")" ""
  printf '| %-44s | %-62s | %s\n' "executor RSS start/middle/end" "$(rss_row executor)" ""
  printf '| %-44s | %-62s | %s\n' "preditor RSS start/middle/end" "$(rss_row preditor)" ""
  printf '| %-44s | %-62s | %s\n' "both daemons, max combined VmRSS" "$(combined_max) MiB" "≤ 48 MB, flat (seed: < 600 MB)"
  printf '| %-44s | %-62s | %s\n' "(ctrader-sim RSS, for reference)" "$(rss_row ctrader-sim)" ""
  printf '| %-44s | %-62s | %s\n' "New Bar → Order Sent (at the simulator)" "p50 $(fmt_ms "$lat_p50"), p99 $(fmt_ms "$lat_p99"), max $(fmt_ms "$lat_max") (n=$lat_n; ${untimed:--} untimed closes)" "p99 ≤ 2 ms (seed: < 100 ms)"
  printf '| %-44s | %-62s | %s\n' "ACK outcomes once all twins were warm" "$acks" ""
  printf '| %-44s | %-62s | %s\n' "warmup 20 models, end to end" "$warm_e2e (first WARMUP → last history consumed)" "≤ 100 ms"
  printf '| %-44s | %-62s | %s\n' "warmup 20 models, preditor bench" "$pb_warm" "≤ 100 ms"
  printf '| %-44s | %-62s | %s\n' "one bar across 20 symbols, preditor bench" "$pb_bar" ""
  printf '| %-44s | %-62s | %s\n' "preditor bench RSS" "$pb_rss" ""
  printf '| %-44s | %-62s | %s\n' "preditor bench backtest loop" "$pb_bt" ""
  printf '| %-44s | %-62s | %s\n' "backtest $bench_symbol, preditor (wall)" "$rust_wall ms wall, $rust_cpu ms CPU, $rust_rows decisions" ""
  printf '| %-44s | %-62s | %s\n' "backtest $bench_symbol, reference.py (wall)" "$py_wall ms wall, $py_cpu ms CPU, $py_rows decisions ($same CSV)" ""
  printf '| %-44s | %-62s | %s\n' "backtest speed-up (same model & bars)" "$ratio" "≥ 1000×"
  printf '| %-44s | %-62s | %s\n' "reference.py bench" "$py_bench" ""
  loop_ratio="$(awk -v r="$(sed -nE 's/.*= ([0-9.]+) bars\/s.*/\1/p' <<<"$pb_bt")" -v p="$(sed -nE 's/.*= ([0-9.]+) bars\/s.*/\1/p' <<<"$py_bench")" \
    'BEGIN { if (r > 0 && p > 0) printf "%.0f× (%s vs %s bars/s)", r / p, r, p; else print "-" }')"
  printf '| %-44s | %-62s | %s\n' "backtest loop speed-up (the two bench loops)" "$loop_ratio" "≥ 1000×"
  echo
  echo "logs and raw samples: $dir/ (rss.tsv, sim/stats.json, log/)"
} | tee "$dir/table.md"
