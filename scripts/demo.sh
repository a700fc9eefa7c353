#!/usr/bin/env bash
# The one-command demo: ctrader-sim (20 demo symbols) + executor (shadow mode) + preditor (20 models).
#
#   scripts/demo.sh [--bars N] [--speed BARS_PER_SEC] [--fresh] [--durable] [--profile PROFILE] [--quiet]
#
# Builds the three binaries, writes the secrets the shipped executor_config.json expects under run/
# (all 0600), starts the simulator, the executor and the preditor, shows the SIGNAL/ACK conversation,
# stops after N replayed bars (or Ctrl-C), prints the simulator's latency figures and
# `executor drift-report`, and stops everything it started. Logs stay in run/log/.
# Exits non-zero if a daemon died on its own (its last log lines are printed).
# The daemons' state lives on tmpfs during the run (copied to run/ after); --durable keeps it on
# disk, where the per-bar fsyncs need a slower replay (e.g. --speed 2) to avoid STALE signals.
#
# OT_BIN_DIR=<dir with ctrader-sim, executor, preditor> skips the build (development only).
set -euo pipefail
export OT_TAG=demo
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
cd "$OT_ROOT"

bars=2000
speed=10
fresh=0
profile=release
quiet=0
durable=0
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --bars) bars="${2:?--bars needs a number}"; shift 2 ;;
  --speed) speed="${2:?--speed needs bars per second}"; shift 2 ;;
  --fresh) fresh=1; shift ;;
  --profile) profile="${2:?--profile needs a cargo profile}"; shift 2 ;;
  --quiet) quiet=1; shift ;;
  --durable) durable=1; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; ot_die "unknown argument: $1" ;;
  esac
done
[[ "$bars" =~ ^[0-9]+$ ]] && [ "$bars" -gt 0 ] || ot_die "--bars wants a positive integer, got '$bars'"

config=executor_config.json
sim_addr="$(ot_config_value "$config" host):$(ot_config_value "$config" port)"
ipc_addr="$(ot_config_value "$config" bind)"
control_addr="${sim_addr%:*}:$((${sim_addr##*:} + 1))"
client_id="$(ot_config_value "$config" client_id)"
account_id="$(ot_config_value "$config" account_id)"
start_bar=700 # the simulator's default; bars before it are the WARMUP history

if [ -n "${OT_BIN_DIR:-}" ]; then
  bin="$OT_BIN_DIR"
else
  bin="$(ot_build "$profile")"
fi
for b in ctrader-sim executor preditor; do
  [ -x "$bin/$b" ] || ot_die "$bin/$b is missing (build failed?)"
done

for a in "$sim_addr" "$control_addr" "$ipc_addr"; do
  ot_port_free "$a" || ot_die "$a is already in use (another demo running?); stop it first"
done

# run/: books, twin states and logs always restart, because the
# simulator always restarts its replay at bar $start_bar with a fresh account (old books would not
# match it, and the executor would re-answer replayed bars from its ACK journal).
if [ "$fresh" = 1 ]; then
  ot_say "--fresh: removing run/"
  rm -rf run
fi
rm -rf run/state run/preditor run/sim run/log.prev
[ -d run/log ] && mv run/log run/log.prev
mkdir -p run/log run/sim
# Both daemons fsync their state before answering (the preditor its twin per bar, the executor its
# journal and books per order): a few ms each on an ordinary disk, which an accelerated replay turns
# into STALE signals. Unless --durable, the two state directories live on tmpfs during the run and
# are copied back into run/ at the end.
shm=""
if [ "$durable" = 0 ] && [ -d /dev/shm ] && shm="$(mktemp -d /dev/shm/oracle-demo.XXXXXX 2>/dev/null)"; then
  mkdir -p "$shm/state" "$shm/preditor"
  ln -s "$shm/state" run/state
  ln -s "$shm/preditor" run/preditor
else
  shm=""
  mkdir -p run/state run/preditor
fi
unshm() {
  [ -n "$shm" ] || return 0
  rm -f run/state run/preditor
  cp -a "$shm/state" run/state && cp -a "$shm/preditor" run/preditor && rm -rf "$shm"
  shm=""
}
# Fresh secrets every run: the simulator is started with the matching credentials.
ot_make_secrets run/secrets

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${display_pid:-}" ] && kill -TERM -- "-$display_pid" 2>/dev/null
  ot_stop_all
  unshm
  exit "$rc"
}
trap cleanup EXIT
stop_requested=0
trap 'stop_requested=1' INT TERM

# --- start ------------------------------------------------------------------------------------
ot_say "starting ctrader-sim on $sim_addr (control $control_addr), data/demo, $speed bars/s"
# The simulator takes its accepted credentials as flags (it is a test server); the clients read
# theirs from the 0600 files. The simulator keeps the server's rate limits (50 requests/s, 5
# historical/s); the executor's cTrader client paces itself under both.
ot_start ctrader-sim run/log/ctrader-sim.log "$bin/ctrader-sim" \
  --listen "$sim_addr" --control "$control_addr" --data data/demo --speed "$speed" \
  --start-bar "$start_bar" --client-id "$client_id" --client-secret "$OT_CLIENT_SECRET" \
  --access-token "$OT_ACCESS_TOKEN" --refresh-token "$OT_REFRESH_TOKEN" --account-id "$account_id" \
  --cert-out run/sim/ca.pem --stats-out run/sim/stats.json
ot_wait_line run/log/ctrader-sim.log '^ctrader-sim listening=' 30 ctrader-sim ||
  { ot_check_alive || true; ot_die "ctrader-sim did not start"; }

ot_say "starting executor (shadow mode: live book on the simulator + paper book) on $ipc_addr"
ot_start executor run/log/executor.log "$bin/executor" run --config "$config"
ot_wait_line run/log/executor.log 'serving the preditor' 60 executor ||
  { ot_check_alive || true; ot_die "executor did not start serving (see run/log/executor.log)"; }

ot_say "starting preditor with models/*.zip"
ot_start preditor run/log/preditor.log "$bin/preditor" run --executor "ws://$ipc_addr" \
  --token-file run/secrets/ipc.token --models models --state-dir run/preditor

# --- the conversation ---------------------------------------------------------------------------
# signals.log holds every line both ways (400 a second at 10 bars/s); show a readable digest: each
# symbol's SIGNAL when its action changes, with the ACK it got, and a tally every 100 bars.
show_stream() {
  tail -n +1 -F run/log/signals.log 2>/dev/null | awk -v quiet="$quiet" '
    function flush_tally() {
      printf "  -- 100 bars to %s: %d signals, ACK", bar, nsig
      for (k in tally) printf " %s=%d", k, tally[k]
      printf "\n"; fflush(); delete tally; nsig = 0
    }
    $3 == "<" && $4 ~ /^SIGNAL\|/ {
      split($4, f, "|"); sym = f[2]; act = f[3]; nsig++
      match($4, /B:[^|]*/); b = substr($4, RSTART + 2, RLENGTH - 2)
      if (b != bar) { nbars++; if (nbars % 100 == 0 && bar != "") flush_tally(); bar = b }
      pending[sym] = (act != last[sym]) ? $4 : ""; last[sym] = act; next
    }
    $3 == ">" && $4 ~ /^ACK\|/ {
      split($4, f, "|"); sym = f[2]; st = f[4] (f[4] == "OK" ? "" : "|" f[5]); tally[st]++
      if (!quiet && pending[sym] != "") {
        split(pending[sym], s, "|")
        printf "%s  %-7s %-14s pos=%s pnl=%-9s %s → ACK %s\n", substr($1, 12, 8), sym, s[3], s[4], s[5], s[6], substr($4, length(f[1] f[2] f[3]) + 4)
        fflush()
      }
      pending[sym] = ""
    }
    $3 == ">" && $4 ~ /^ERROR\|/ { print "  executor: " $4; fflush() }'
}
setsid bash -c "$(declare -f show_stream); quiet=$quiet; show_stream" &
display_pid=$!

ot_say "replaying $bars bars after warmup (Ctrl-C stops earlier); full logs in run/log/"
first=""
waited=0
died=0
while [ "$stop_requested" = 0 ]; do
  sleep 1 || true
  ot_check_alive || { died=1; break; }
  status="$(ot_control "$control_addr" status 2>/dev/null || true)"
  closed="$(sed -nE 's/.*closed_bars=([0-9]+).*/\1/p' <<<"$status")"
  [ -n "$closed" ] || continue
  # Count from the bar at which every twin is warm (the clock runs from the simulator's start).
  if [ -z "$first" ]; then
    warm="$(grep -c 'history consumed' run/log/preditor.log 2>/dev/null || true)"
    waited=$((waited + 1))
    if [ "${warm:-0}" -ge 20 ] || [ "$waited" -ge 90 ]; then
      first="$closed"
      ot_say "twins warm: ${warm:-0}/20 at simulator bar $closed; counting $bars bars from here" \
        "(signals for bars that closed during WARMUP arrive late and are answered STALE, by design)"
    fi
  fi
  if [[ "$status" == *"finished=true"* ]]; then
    ot_say "the demo data is exhausted (bar $closed)"
    break
  fi
  [ -n "$first" ] && [ $((closed - first)) -ge "$bars" ] && break
done
[ "$stop_requested" = 1 ] && ot_say "interrupted"

kill -TERM -- "-$display_pid" 2>/dev/null || true
display_pid=""
if [ "$died" = 1 ]; then
  ot_stop_all
  ot_die "a daemon died; everything else was stopped. Logs: run/log/"
fi
ot_say "stopping preditor, executor, ctrader-sim"
ot_stop_all
unshm

# --- the results --------------------------------------------------------------------------------
echo
ot_say "New Bar → Order Sent, measured at the simulator (µs):"
if [ -s run/sim/stats.json ]; then
  tr -d ' \n' <run/sim/stats.json | sed -nE 's/.*"overall":(\{[^}]*\}|null).*/  overall \1/p'
else
  echo "  (no statistics written)"
fi
echo
ot_say "executor drift-report --log run/log/drift.csv"
"$bin/executor" drift-report --log run/log/drift.csv
echo
ot_say "done. Logs: run/log/{ctrader-sim,executor,preditor}.log, run/log/signals.log, run/log/drift.csv"
