#!/usr/bin/env bash
# The one-command demo: ctrader-sim (20 demo symbols) + executor (shadow mode: a live book on the
# simulator and a paper book beside it) + preditor (the 20 shipped models) — the shadow instance —
# and a fleet around it (docs/HUB.md): a private Mosquitto, the Oracle Hub (dashboard, SQLite) and
# a second, paper instance (an executor in paper mode on the demo's CSV bars, with its preditor).
#
#   scripts/demo.sh [options]
#
#   --bars N         replay N bars once the twins are warm (default 2000)
#   --speed S        replay S bars per second (default 4: the pipeline answers every bar well within
#                    one step and the live book stays under the simulator's 50 requests/s). A signal
#                    is STALE more than half a bar after its bar closed (executor_config.json:
#                    stale_signal_max_age_secs 1800, market time), i.e. half a step of wall time:
#                    125 ms at 4 bars/s, 5 ms at 100; a high --speed (e.g. 100) shows STALE whenever
#                    the pipeline or the simulator's request limit holds a signal up that long
#   --no-wait        start the replay at once instead of holding it until the twins are warm: the
#                    bars that close during the warm-up are answered STALE, and the model positions
#                    that follow are answered WAIT_SYNC|MISSED_ENTRY (the sure way to see both)
#   --profile P      cargo profile to build (default demo: no LTO, the first build is quick;
#                    release is the small fast deployment build and takes much longer cold)
#   --fresh          delete run/ first (the books and twin states always restart anyway)
#   --durable        keep the daemons' state on disk instead of tmpfs (per-bar fsyncs; use a lower
#                    --speed, e.g. 2)
#   --quiet          no live digest of the conversation, only the 100-bar tallies
#   --no-hub         the shadow instance alone: no Mosquitto, no hub, no paper instance
#   -h, --help       this text
#
# It builds the three binaries (and the hub's, unless --no-hub), writes the secrets the shipped executor_config.json expects under run/
# (all 0600), starts the simulator with its clock held, the executor and the preditor, lets the twins
# warm up on the simulator's history, then starts the replay and shows the SIGNAL/ACK conversation.
# After N bars (or Ctrl-C) it stops everything it started and prints a summary: bars replayed,
# signals (warm-up, start-up and steady state apart), in sync, refusals by reason, realised PnL and
# each book's PnL against the model's (missed entries, value of a point, costs; both books pay the
# models' training costs), New Bar -> Order Sent p50/p99, and the paths of the drift
# report (run/log/drift-report.txt) and its HTML pictures (run/log/drift-report.html). Logs stay in
# run/log/. Exits non-zero if a daemon died on its own (its last log lines are printed).
#
# The fleet (unless --no-hub): Mosquitto from hub/mosquitto/ (TLS, ACL, no anonymous client) on
# 127.0.0.1:18883 with its files in a private temporary directory, `hub serve` on
# http://127.0.0.1:8090 with its database in run/hub/hub.db, and the instances `demo-shadow` and
# `demo-paper` (IPC 127.0.0.1:8766, logs run/paper/log/), each added with `hub add-instance`: its
# broker credential, its 0600 token file in run/hub/instances/ and the executor's `hub` section,
# merged into run/executor-{shadow,paper}.json. It prints the dashboard's address and the operator
# password it generated (also in run/hub/operator_password, 0600). An executor whose `executor check`
# refuses the `hub` section (one built before the hub link) runs without it, and the demo says so.
#
# OT_BIN_DIR=<dir with ctrader-sim, executor, preditor, hub> skips the build (development only).
set -euo pipefail
export OT_TAG=demo
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
cd "$OT_ROOT"

bars=2000
speed=4
fresh=0
profile=demo
quiet=0
durable=0
wait_warm=1
fleet=1
usage() { sed -n '2,/^# OT_BIN_DIR/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
  --bars) bars="${2:?--bars needs a number}"; shift 2 ;;
  --speed) speed="${2:?--speed needs bars per second}"; shift 2 ;;
  --no-wait) wait_warm=0; shift ;;
  --fresh) fresh=1; shift ;;
  --profile) profile="${2:?--profile needs a cargo profile}"; shift 2 ;;
  --quiet) quiet=1; shift ;;
  --durable) durable=1; shift ;;
  --no-hub) fleet=0; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; ot_die "unknown argument: $1" ;;
  esac
done
[[ "$bars" =~ ^[0-9]+$ ]] && [ "$bars" -gt 0 ] || ot_die "--bars wants a positive integer, got '$bars'"
[[ "$speed" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [ "$speed" != 0 ] ||
  ot_die "--speed wants a positive number of bars per second, got '$speed'"

config=executor_config.json
sim_addr="$(ot_config_value "$config" host):$(ot_config_value "$config" port)"
ipc_addr="$(ot_config_value "$config" bind)"
control_addr="${sim_addr%:*}:$((${sim_addr##*:} + 1))"
client_id="$(ot_config_value "$config" client_id)"
account_id="$(ot_config_value "$config" account_id)"
start_bar=700 # the simulator's default; bars before it are the WARMUP history
# The fleet's fixed ports: below the kernel's ephemeral range (32768-60999), from which the tests
# take theirs (they bind port 0), and apart from the executor's and the simulator's.
broker_addr=127.0.0.1:18883
hub_addr=127.0.0.1:8090
paper_ipc_addr=127.0.0.1:8766
bins=(ctrader-sim executor preditor)
ports=("$sim_addr" "$control_addr" "$ipc_addr")
if [ "$fleet" = 1 ]; then
  # shellcheck source=lib/fleet.sh
  source "$(dirname "$0")/lib/fleet.sh"
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] ||
    ot_die "the fleet needs Mosquitto: apt-get install mosquitto (or run scripts/demo.sh --no-hub)"
  command -v mosquitto_passwd >/dev/null ||
    ot_die "the fleet needs mosquitto_passwd (Debian's mosquitto package), or run scripts/demo.sh --no-hub"
  bins+=(hub)
  ports+=("$broker_addr" "$hub_addr" "$paper_ipc_addr")
fi

if [ -n "${OT_BIN_DIR:-}" ]; then
  bin="$OT_BIN_DIR"
elif [ "$fleet" = 1 ]; then
  bin="$(ot_build "$profile" hub)"
else
  bin="$(ot_build "$profile")"
fi
for b in "${bins[@]}"; do
  [ -x "$bin/$b" ] || ot_die "$bin/$b is missing (build failed?)"
done

for a in "${ports[@]}"; do
  ot_port_free "$a" || ot_die "$a is already in use (another demo running?); stop it first"
done

# run/: books, twin states and logs always restart, because the
# simulator always restarts its replay at bar $start_bar with a fresh account (old books would not
# match it, and the executor would re-answer replayed bars from its ACK journal).
if [ "$fresh" = 1 ]; then
  ot_say "--fresh: removing run/"
  rm -rf run
fi
rm -rf run/state run/preditor run/sim run/log.prev run/paper run/hub.prev run/executor-shadow.json run/executor-paper.json
[ -d run/log ] && mv run/log run/log.prev
# The hub's records are numbered per instance from 1 each run (the instances' state restarts), so
# its database restarts too; the previous one stays in run/hub.prev.
[ -d run/hub ] && mv run/hub run/hub.prev
mkdir -p run/log run/sim
[ "$fleet" = 1 ] && mkdir -p run/paper/log
# Both daemons fsync their state before answering (the preditor its twin per bar, the executor its
# journal and books per order): a few ms each on an ordinary disk, which an accelerated replay turns
# into STALE signals. Unless --durable, the two state directories live on tmpfs during the run and
# are copied back into run/ at the end.
shm=""
state_dirs=(state preditor)
[ "$fleet" = 1 ] && state_dirs+=(paper/state paper/preditor)
if [ "$durable" = 0 ] && [ -d /dev/shm ] && shm="$(mktemp -d /dev/shm/oracle-demo.XXXXXX 2>/dev/null)"; then
  for d in "${state_dirs[@]}"; do
    mkdir -p "$shm/$d"
    ln -s "$shm/$d" "run/$d"
  done
else
  shm=""
  for d in "${state_dirs[@]}"; do mkdir -p "run/$d"; done
fi
unshm() {
  [ -n "$shm" ] || return 0
  local d ok=1
  for d in "${state_dirs[@]}"; do
    rm -f "run/$d"
    cp -a "$shm/$d" "run/$d" || ok=0
  done
  # A failed copy keeps the tmpfs original (its path is printed) rather than losing the state.
  if [ "$ok" = 1 ]; then rm -rf "$shm"; else ot_say "WARNING: could not copy the state back from $shm; it stays there"; fi
  shm=""
}
# Fresh secrets every run: the simulator is started with the matching credentials.
ot_make_secrets run/secrets

link=0
brokerdir=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${display_pid:-}" ] && kill -TERM -- "-$display_pid" 2>/dev/null
  ot_stop_all
  unshm
  [ -n "$brokerdir" ] && rm -rf "$brokerdir"
  exit "$rc"
}
trap cleanup EXIT
stop_requested=0
trap 'stop_requested=1' INT TERM

# The fleet's files (a fraction of a second): the broker's, the hub's, and each instance's
# credential, token and `hub` section (run/hub/demo-*.hub.json).
if [ "$fleet" = 1 ]; then
  # Mosquitto's files in a private directory: when started as root it drops to the `mosquitto`
  # user (mosquitto.conf(5), `user`), which must then read them, and run/ may sit in a home
  # directory that user cannot enter.
  brokerdir="$(mktemp -d "${TMPDIR:-/tmp}/oracle-demo-broker.XXXXXX")"
  ot_fleet_setup "$bin" "$OT_ROOT/run/hub" "$brokerdir" "$broker_addr" "$hub_addr"
  ot_fleet_add_instance "$bin" "$OT_ROOT/run/hub" demo-shadow "$broker_addr" run/hub/demo-shadow.hub.json
  ot_fleet_add_instance "$bin" "$OT_ROOT/run/hub" demo-paper "$broker_addr" run/hub/demo-paper.hub.json
  if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown -R mosquitto: "$brokerdir"; fi
fi

# --- start ------------------------------------------------------------------------------------
models=(models/*.zip)
n_models=${#models[@]}
[ -e "${models[0]}" ] || ot_die "no model zips in models/"
hold=(--paused)
[ "$wait_warm" = 0 ] && hold=()
ot_say "starting ctrader-sim on $sim_addr (control $control_addr), data/demo, $speed bars/s" \
  "$([ "$wait_warm" = 1 ] && echo "(clock held until the twins are warm)")"
# The simulator takes its accepted credentials as flags (it is a test server); the clients read
# theirs from the 0600 files. The simulator keeps the server's rate limits (50 requests/s, 5
# historical/s); the executor's cTrader client paces itself under both. A weekend in the data
# lasts 3 s (--max-gap), long enough for the executor's clock to see Friday's last bar close.
# --model-costs: each symbol's slippage and commission are its model's training costs (the spreads
# already are), so the live book pays what the twin charges itself and live − virtual shows only
# execution (missed entries, fills away from the bar close), not a cheaper simulated broker.
ot_start ctrader-sim run/log/ctrader-sim.log "$bin/ctrader-sim" \
  --listen "$sim_addr" --control "$control_addr" --data data/demo --speed "$speed" \
  --start-bar "$start_bar" --client-id "$client_id" --client-secret "$OT_CLIENT_SECRET" \
  --access-token "$OT_ACCESS_TOKEN" --refresh-token "$OT_REFRESH_TOKEN" --account-id "$account_id" \
  --cert-out run/sim/ca.pem --stats-out run/sim/stats.json --max-gap 3s --model-costs "${hold[@]}"
# The broker and the hub start beside the simulator and nothing waits for them here: an instance
# connects out to the broker and retries, and the hub retries too (docs/HUB.md).
if [ "$fleet" = 1 ]; then
  ot_say "starting Mosquitto on $broker_addr (TLS, ACL) and the hub (SQLite: run/hub/hub.db)"
  ot_start mosquitto run/log/mosquitto.log "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$brokerdir/mosquitto.conf"
  ot_start hub run/log/hub.log env RUST_LOG="${RUST_LOG:-info}" "$bin/hub" serve --config run/hub/hub.json
fi
ot_wait_line run/log/ctrader-sim.log '^ctrader-sim listening=' 30 ctrader-sim ||
  { ot_check_alive || true; ot_die "ctrader-sim did not start"; }

# The instances' configs, checked by `executor check` now that the simulator wrote its certificate.
if [ "$fleet" = 1 ]; then
  ot_instance_config executor_config.json run/executor-shadow.json run/hub/demo-shadow.hub.json
  if ot_check_config "$bin" run/executor-shadow.json; then
    link=1
    ot_instance_config executor_config.json run/executor-paper.json run/hub/demo-paper.hub.json \
      paper "$paper_ipc_addr" "$speed" run/paper
  elif grep -q '^ *- hub: ' <<<"$OT_CHECK_OUTPUT"; then
    ot_say "this executor has no hub link yet (executor check: \"hub\" is not a setting it knows): both instances run" \
      "without their hub section, so the dashboard lists none of them"
    ot_instance_config executor_config.json run/executor-shadow.json ""
    ot_instance_config executor_config.json run/executor-paper.json "" paper "$paper_ipc_addr" "$speed" run/paper
  else
    printf '%s\n' "$OT_CHECK_OUTPUT" >&2
    ot_die "executor check refused run/executor-shadow.json (above)"
  fi
  for c in run/executor-shadow.json run/executor-paper.json; do
    ot_check_config "$bin" "$c" || { printf '%s\n' "$OT_CHECK_OUTPUT" >&2; ot_die "executor check refused $c (above)"; }
  done
  config=run/executor-shadow.json
fi

ot_say "starting executor (shadow mode: live book on the simulator + paper book) on $ipc_addr"
ot_start executor run/log/executor.log "$bin/executor" run --config "$config"
ot_wait_line run/log/executor.log 'serving the preditor' 60 executor ||
  { ot_check_alive || true; ot_die "executor did not start serving (see run/log/executor.log)"; }

ot_say "starting preditor with $n_models models (models/*.zip)"
ot_start preditor run/log/preditor.log "$bin/preditor" run --executor "ws://$ipc_addr" \
  --token-file run/secrets/ipc.token --models models --state-dir run/preditor

if [ "$fleet" = 1 ]; then
  ot_say "starting the paper instance: executor (paper mode, data/demo CSV bars at $speed bars/s) on $paper_ipc_addr and its preditor; logs in run/paper/log/"
  ot_start executor-paper run/paper/log/executor.log "$bin/executor" run --config run/executor-paper.json
  ot_wait_line run/paper/log/executor.log 'serving the preditor' 60 executor-paper ||
    { ot_check_alive || true; ot_die "the paper executor did not start serving (see run/paper/log/executor.log)"; }
  ot_start preditor-paper run/paper/log/preditor.log "$bin/preditor" run --executor "ws://$paper_ipc_addr" \
    --token-file run/secrets/ipc.token --models models --state-dir run/paper/preditor
  ot_wait_line run/log/hub.log 'hub: dashboard on http://' 30 hub ||
    { ot_check_alive || true; ot_die "the hub did not start (see run/log/hub.log)"; }
  ot_say "dashboard: http://$hub_addr/  user operator, password $OT_OPERATOR_PASSWORD (also in run/hub/operator_password)"
  [ "$link" = 1 ] && ot_say "instances: demo-shadow (this conversation) and demo-paper report to the hub over Mosquitto"
fi

# --- the conversation ---------------------------------------------------------------------------
# signals.log holds every line both ways; the digest (scripts/lib/digest.awk) shows each symbol's
# SIGNAL when the model's action changes, next to the live book's ACK for that same symbol and bar
# and what it did (opened, closed, held which position), and a tally every 100 bars.
show_stream() {
  tail -n +1 -F run/log/signals.log 2>/dev/null | awk -v quiet="$quiet" -f scripts/lib/digest.awk
}
setsid bash -c "$(declare -f show_stream); quiet=$quiet; show_stream" &
display_pid=$!

# --- warm-up, then the replay ---------------------------------------------------------------------
# Each twin is warm once it consumed its history and its first SIGNAL (the decision on the last
# history bar) has its ACK. With the clock held that is the start of the steady state; the replay
# starts only then, so no bar closes while a twin is still warming.
started=$SECONDS
warm=0
acks=0
for ((t = 0; t < 1200; t++)); do
  ot_check_alive || break
  warm="$(grep -c 'history consumed' run/log/preditor.log 2>/dev/null || true)"
  acks="$(grep -c ' > ACK|' run/log/signals.log 2>/dev/null || true)"
  [ "${warm:-0}" -ge "$n_models" ] && [ "${acks:-0}" -ge "$n_models" ] && break
  sleep 0.1
done
ot_check_alive || { ot_stop_all; ot_die "a daemon died during the warm-up; everything else was stopped. Logs: run/log/"; }
first_signal="$(sed -n 's/^\([^ ]*\) [^ ]* < SIGNAL|.*/\1/p' run/log/signals.log | head -n 1)"
ot_say "twins warm: ${warm:-0}/$n_models after $((SECONDS - started)) s, ${acks:-0} warm-up signals answered" \
  "(first SIGNAL at ${first_signal:-none}; $SECONDS s since this script started)"
[ "${warm:-0}" -ge "$n_models" ] || ot_say "WARNING: not every twin is warm after 120 s; starting the replay anyway"
status="$(ot_control "$control_addr" status 2>/dev/null || true)"
first="$(sed -nE 's/.*closed_bars=([0-9]+).*/\1/p' <<<"$status")"
if [ "$wait_warm" = 1 ]; then
  ot_control "$control_addr" resume >/dev/null || ot_die "the simulator did not take 'resume'"
fi
ot_say "replaying $bars bars at $speed bars/s from simulator bar ${first:-?} (Ctrl-C stops earlier); full logs in run/log/"
died=0
closed="${first:-0}"
while [ "$stop_requested" = 0 ]; do
  sleep 1 || true
  ot_check_alive || { died=1; break; }
  status="$(ot_control "$control_addr" status 2>/dev/null || true)"
  now_closed="$(sed -nE 's/.*closed_bars=([0-9]+).*/\1/p' <<<"$status")"
  [ -n "$now_closed" ] || continue
  closed="$now_closed"
  if [[ "$status" == *"finished=true"* ]]; then
    ot_say "the demo data is exhausted (bar $closed)"
    break
  fi
  [ $((closed - ${first:-0})) -ge "$bars" ] && break
done
[ "$stop_requested" = 1 ] && ot_say "interrupted"
# Hold the clock before stopping: no bar closes while the daemons shut down, so the last bars'
# signals are answered, not cut off half-way.
ot_control "$control_addr" pause >/dev/null 2>&1 || true
sleep 1

kill -TERM -- "-$display_pid" 2>/dev/null || true
display_pid=""
if [ "$died" = 1 ]; then
  ot_stop_all
  ot_die "a daemon died; everything else was stopped. Logs: run/log/"
fi
if [ "$fleet" = 1 ]; then
  ot_say "stopping the paper instance, preditor, executor, the hub, Mosquitto, ctrader-sim"
else
  ot_say "stopping preditor, executor, ctrader-sim"
fi
ot_stop_all
unshm

# --- the results --------------------------------------------------------------------------------
latency="(no statistics written)"
if [ -s run/sim/stats.json ]; then
  overall="$(tr -d ' \n' <run/sim/stats.json | sed -nE 's/.*"overall":(\{[^}]*\}).*/\1/p')"
  num() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$overall"; }
  if [ -n "$overall" ]; then
    untimed="$(tr -d ' \n' <run/sim/stats.json | sed -nE 's/.*"untimed_closes":([0-9]+).*/\1/p')"
    latency="$(awk -v n="$(num count)" -v a="$(num p50_us)" -v b="$(num p99_us)" -v c="$(num max_us)" -v u="${untimed:-0}" \
      'BEGIN { printf "p50 %.2f ms, p99 %.2f ms, max %.2f ms (n = %d orders, measured at the simulator; %d bar closes before a weekend, which no new bar announces, not timed: ctrader-sim/SIM.md)", a / 1000, b / 1000, c / 1000, n, u }')"
  else
    latency="(no order was sent)"
  fi
fi
report=run/log/drift-report.txt
html=run/log/drift-report.html
"$bin/executor" drift-report --log run/log/drift.csv --config "$config" --html "$html" >"$report" ||
  ot_die "executor drift-report failed (see above)"
echo
ot_say "summary"
printf '  %-24s %s\n' "bars replayed" "$((closed - ${first:-0})) (simulator bars ${first:-?} to $closed, $speed bars/s)"
"$bin/executor" drift-report --log run/log/drift.csv --config "$config" --summary | sed 's/^/  /'
printf '  %-24s %s\n' "New Bar → Order Sent" "$latency"
echo
ot_say "HTML report (opens from the file system, no network): $OT_ROOT/$html"
ot_say "drift report per symbol: $report"
ot_say "logs: run/log/{ctrader-sim,executor,preditor}.log, run/log/signals.log, run/log/drift.csv"
if [ "$fleet" = 1 ]; then
  ot_say "the hub's data: run/hub/hub.db (SQLite: every record, the recorded bars, the commands;" \
    "hub export-bars --config run/hub/hub.json --instance demo-shadow --symbol EURUSD --timeframe H1)," \
    "its log run/log/hub.log, Mosquitto's run/log/mosquitto.log"
  ot_say "the paper instance: run/paper/log/{executor,preditor}.log, run/paper/log/signals.log, run/paper/log/drift.csv"
fi
