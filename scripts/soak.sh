#!/usr/bin/env bash
# Soak: both daemons over a long paper replay, each one's RSS sampled from /proc once a second.
#
#   scripts/soak.sh [--bars N] [--speed BARS_PER_SEC] [--state tmpfs|disk]
#
# The executor runs `executor_config.json`'s 20 symbols in paper mode (no cTrader, no simulator) on a
# CSV replay of N bars per symbol after 1,350 bars of WARMUP history (scripts/soak_data.py extends
# data/demo), at --speed bars/s; the preditor trades the 20 models/*.zip. The IPC socket is bound on
# port the kernel picks as free (no fixed port: a running demo or bench is not disturbed). Risk limits are lifted so the
# books keep trading through the whole replay.
# Prints each daemon's VmRSS once warm (after 5 % of the replay), at the end, its maximum, and whether
# the end is within 10 % of the warm figure; exit status 1 if not. Samples: run/soak/rss.tsv.
# Release binaries (fat LTO) from the repo's target/ unless OT_BIN_DIR names a directory holding
# executor and preditor. Defaults: 20,000 bars at 100 bars/s (about 4 minutes), state on tmpfs.
set -euo pipefail
export OT_TAG=soak
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
cd "$OT_ROOT"

bars=20000
speed=100
state=tmpfs
history=1350
while [ $# -gt 0 ]; do
  case "$1" in
  --bars) bars="${2:?}"; shift 2 ;;
  --speed) speed="${2:?}"; shift 2 ;;
  --state) state="${2:?}"; shift 2 ;;
  -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) ot_die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$bars" =~ ^[0-9]+$ ]] && [ "$bars" -ge 100 ] || ot_die "--bars wants an integer >= 100"
[[ "$speed" =~ ^[0-9]+$ ]] && [ "$speed" -ge 1 ] || ot_die "--speed wants an integer >= 1"
case "$state" in disk | tmpfs) ;; *) ot_die "--state is disk or tmpfs" ;; esac
command -v python3 >/dev/null || ot_die "python3 not found (the data generator needs only its standard library)"

if [ -n "${OT_BIN_DIR:-}" ]; then bin="$OT_BIN_DIR"; else bin="$(ot_build release)"; fi
for b in executor preditor; do [ -x "$bin/$b" ] || ot_die "$bin/$b is missing"; done

dir=run/soak
rm -rf "$dir"
mkdir -p "$dir/log"
shm=""
if [ "$state" = tmpfs ]; then
  shm="$(mktemp -d /dev/shm/oracle-soak.XXXXXX)"
  mkdir -p "$shm/state" "$shm/preditor" "$shm/log"
  ln -s "$shm/state" "$dir/state"
  ln -s "$shm/preditor" "$dir/preditor"
  ln -s "$shm/log" "$dir/exlog"
else
  mkdir -p "$dir/state" "$dir/preditor" "$dir/exlog"
fi
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ot_stop_all
  [ -n "$shm" ] && rm -rf "$shm"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ot_say "generating $((history + bars)) bars for each of the 20 symbols"
python3 scripts/soak_data.py --bars "$((history + bars))" --out "$dir/bars"
ot_make_secrets "$dir/secrets"
# executor_config.json's symbols, in paper mode on the generated bars; risk limits lifted.
# A port the kernel has just handed out as free (the executor logs its configured bind, not the port
# it got for 0).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bind="127.0.0.1:$port"
python3 - "$dir" "$speed" "$history" "$bind" <<'EOF'
import json, sys
d, speed, history, bind = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = json.load(open("executor_config.json"))
cfg.pop("_comment", None)
cfg["models_dir"] = "../../models"
cfg["log_dir"] = "exlog"
cfg["state_dir"] = "state"
cfg["ipc"] = {"bind": bind, "token_file": "secrets/ipc.token", "hello_timeout_secs": 10}
cfg["broker"] = {"mode": "paper", "paper": {"initial_balance": 1e9, "leverage": 30, "bars_dir": "bars",
                 "replay_bars_per_second": speed, "start_bar": history}}
cfg["risk"] = {"max_daily_loss_pct": 100, "max_total_loss_pct": 100, "min_equity": 0,
               "max_open_positions": 1000, "max_total_lots": 1000000, "kill_switch_file": "state/KILL",
               "day_start_hour_utc": 0}
json.dump(cfg, open(f"{d}/executor_config.json", "w"), indent=2)
EOF

ot_start executor "$dir/log/executor.log" "$bin/executor" run --config "$dir/executor_config.json"
ot_wait_line "$dir/log/executor.log" 'serving the preditor' 60 executor || { ot_check_alive || true; ot_die "executor did not start"; }
ot_start preditor "$dir/log/preditor.log" "$bin/preditor" run --executor "ws://$bind" \
  --token-file "$dir/secrets/ipc.token" --models models --state-dir "$dir/preditor"

samples="$dir/rss.tsv"
printf 'elapsed_s\tbars\texecutor_kib\tpreditor_kib\n' >"$samples"
t0=$(date +%s)
ot_say "replay: $bars bars at $speed bars/s, 20 symbols, state on $state (about $((bars / speed + 30)) s)"
while :; do
  sleep 1
  ot_check_alive || ot_die "a daemon died during the soak (logs in $dir/log/)"
  # Each replayed bar adds 20 SIGNAL lines (one per symbol) to signals.log.
  done_bars=$(($(grep -c '< SIGNAL|' "$dir/exlog/signals.log" 2>/dev/null || true) / 20))
  ex="$(ot_mem_kib "${OT_PID[executor]}" | cut -d' ' -f1)"
  pr="$(ot_mem_kib "${OT_PID[preditor]}" | cut -d' ' -f1)"
  printf '%s\t%s\t%s\t%s\n' "$(($(date +%s) - t0))" "$done_bars" "$ex" "$pr" >>"$samples"
  if grep -q 'CSV replay finished' "$dir/log/executor.log" && [ "$done_bars" -ge "$bars" ]; then
    break
  fi
  if [ $(($(date +%s) - t0)) -gt $((bars / speed * 4 + 300)) ]; then
    ot_die "the replay did not finish in time ($done_bars of $bars bars; logs in $dir/log/)"
  fi
done
sleep 2
ex_end="$(ot_mem_kib "${OT_PID[executor]}" | cut -d' ' -f1)"
pr_end="$(ot_mem_kib "${OT_PID[preditor]}" | cut -d' ' -f1)"
printf '%s\t%s\t%s\t%s\n' "$(($(date +%s) - t0))" "$bars" "$ex_end" "$pr_end" >>"$samples"
ot_stop_all

awk -F'\t' -v warm_at="$((bars / 20))" -v bars="$bars" '
  NR == 1 { next }
  { if (we == "" && $2 >= warm_at) { we = $3; wp = $4; wb = $2 }
    if ($3 > me) me = $3; if ($4 > mp) mp = $4; if ($3 + $4 > mc) mc = $3 + $4
    ee = $3; ep = $4 }
  END {
    if (we == "") { print "no sample after the warm point"; exit 1 }
    de = (ee - we) / we * 100; dp = (ep - wp) / wp * 100
    printf "bars replayed: %d (20 symbols); warm = after %d bars\n", bars, wb
    printf "executor: warm %.1f MiB, end %.1f MiB (%+.1f %%), max %.1f MiB\n", we/1024, ee/1024, de, me/1024
    printf "preditor: warm %.1f MiB, end %.1f MiB (%+.1f %%), max %.1f MiB\n", wp/1024, ep/1024, dp, mp/1024
    printf "both daemons: max %.1f MiB combined\n", mc/1024
    ok = (de <= 10 && de >= -10 && dp <= 10 && dp >= -10)
    print (ok ? "flat: each end within 10 % of its warm RSS" : "NOT flat: an end is more than 10 % from its warm RSS")
    exit ok ? 0 : 1
  }' "$samples"
