#!/usr/bin/env bash
# Benchmark of the hub (BENCHMARKS.md, "Hub"): a private Mosquitto (hub/mosquitto/ config, TLS, on a
# free port), `hub serve` on SQLite or a private PostgreSQL cluster, and `fleet-sim` as the load:
# N instances x M symbols at one closed bar per symbol per second, telemetry every second per
# instance, a signal (+2 ACKs + drift) every 15th bar. After a warm-up it measures, over a window:
#   - ingest: records stored per second (the hub's own counter, /api/stats);
#   - publish -> stored: the instance's ts_ms to the hub's commit, p50/p99 (/api/stats?since_ms=);
#   - publish -> on the page: ts_ms to the fleet row in the DOM of a headless Chromium, p50/p99
#     (scripts/browser/hub_latency.mjs);
#   - the hub's RSS (VmRSS, VmHWM) and CPU time over the window.
# Everything runs on this machine (loopback), stops by pid, and cleans up its temp dir.
#
# Usage: scripts/bench_hub.sh [--backend sqlite|postgres] [--instances 50] [--symbols 20]
#                             [--warmup 20] [--secs 60] [--bar-ms 1000] [--bin-dir DIR]
#   --bar-ms: one bar per symbol every this many ms (below 1000: beyond the issue's load, to find
#             where ingest stops keeping up)
#   --bin-dir: hub and fleet-sim binaries (default: cargo build --profile demo, target/demo)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
backend=sqlite instances=50 symbols=20 warmup=20 secs=60 bin_dir="" bar_ms=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="$2"; shift 2 ;;
    --instances) instances="$2"; shift 2 ;;
    --symbols) symbols="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --bar-ms) bar_ms="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_hub: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$backend" in sqlite|postgres) ;; *) echo "bench_hub: --backend sqlite|postgres" >&2; exit 2 ;; esac
die() { echo "bench_hub: $*" >&2; exit 1; }
say() { echo "bench_hub: $*" >&2; }

"$root/scripts/hub_test_deps.sh"
if [ -z "$bin_dir" ]; then
  (cd "$root" && cargo build --locked --profile demo -p hub --bins) >&2 || die "cargo build failed"
  bin_dir="$root/target/demo"
fi
hub="$bin_dir/hub" sim="$bin_dir/fleet-sim"
[ -x "$hub" ] && [ -x "$sim" ] || die "$hub or $sim missing"
[ -d "$root/scripts/browser/node_modules/playwright-core" ] ||
  (cd "$root/scripts/browser" && npm ci --no-audit --no-fund --loglevel=error) >&2

work="$(mktemp -d)"
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "nothing listens on $1"; }

"$hub" dev-certs --dir "$work" 2>/dev/null
mport="$(free_port)"
sed -e "s#/etc/mosquitto/oracle/#$work/#g" -e "s#/etc/mosquitto/certs/#$work/#g" \
    -e "s#^listener 8883#listener $mport 127.0.0.1#" "$root/hub/mosquitto/oracle-fleet.conf" >"$work/mosquitto.conf"
printf 'log_dest file %s/mosquitto.log\npersistence false\n' "$work" >>"$work/mosquitto.conf"
cp "$root/hub/mosquitto/acl" "$work/acl"
bargs=(--passwd-file "$work/passwd" --token-dir "$work/instances")
"$hub" set-hub-user "${bargs[@]}" --password-file "$work/broker_password" 2>/dev/null
pub="$("$hub" gen-key --key-file "$work/hub_key" 2>/dev/null)"
say "adding $instances instance credentials"
for n in $(seq "$instances"); do
  "$hub" add-instance "bench-$n" "${bargs[@]}" --key-file "$work/hub_key" >/dev/null 2>&1 || die "add-instance bench-$n"
done
password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
hash="$(printf '%s\n' "$password" | "$hub" hash-password)"
if [ "$(id -u)" = 0 ]; then chown -R mosquitto: "$work" 2>/dev/null || true; fi
# Run as root, Mosquitto drops to its own user (mosquitto.conf(5), `user`).
/usr/sbin/mosquitto -c "$work/mosquitto.conf" & pids+=($!)
wait_port "$mport"

if [ "$backend" = postgres ]; then
  pgbin="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
  pgport="$(free_port)"
  mkdir -p "$work/pg"
  chmod 0711 "$work" # postgres must traverse it; the secrets inside stay 0600
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres: "$work/pg"; as_pg=(runuser -u postgres --); fi
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg/data" -U hub --auth=trust -E UTF8 --no-locale >/dev/null
  "${as_pg[@]}" "$pgbin/postgres" -D "$work/pg/data" -p "$pgport" -c listen_addresses=127.0.0.1 \
    -c "unix_socket_directories=$work/pg" >"$work/pg/log" 2>&1 & pids+=($!)
  wait_port "$pgport"
  "${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U hub hub
  database="postgres://hub@127.0.0.1:$pgport/hub"
else
  database="sqlite://$work/hub.db"
fi
cat >"$work/hub.json" <<JSON
{"listen": "127.0.0.1:0", "database": "$database",
 "broker": {"url": "mqtts://localhost:$mport", "ca_file": "fleet-ca.pem", "username": "hub",
            "password_file": "broker_password", "client_id": "oracle-hub-bench"},
 "operator": {"username": "operator", "password_hash": "$hash"}, "key_file": "hub_key"}
JSON
"$hub" serve --config "$work/hub.json" >"$work/hub.out" 2>"$work/hub.log" & hubpid=$!; pids+=($hubpid)
for _ in $(seq 400); do grep -q "dashboard on" "$work/hub.out" && break; sleep 0.05; done
url="$(sed -n 's#^hub: dashboard on \(http://[0-9.:]*\)/#\1#p' "$work/hub.out")"
[ -n "$url" ] || die "the hub did not start: $(tail -5 "$work/hub.log")"
for _ in $(seq 200); do grep -q "hub connected to the broker" "$work/hub.log" && break; sleep 0.05; done

say "load: $instances instances x $symbols symbols, a bar every ${bar_ms} ms each; backend $backend; warm-up ${warmup}s, window ${secs}s"
"$sim" --broker "mqtts://localhost:$mport" --ca-file "$work/fleet-ca.pem" --tokens "$work/instances" \
  --hub-public-key "$pub" --instances "$instances" --prefix bench --symbols "$symbols" \
  --bar-ms "$bar_ms" --telemetry-ms 1000 --signal-every 15 --keepalive-secs 20 2>"$work/sim.log" & pids+=($!)
sleep "$warmup"

cookie="$(curl -s -o /dev/null -D - --data-urlencode username=operator --data-urlencode "password=$password" "$url/login" |
  sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')"
[ -n "$cookie" ] || die "login failed"
stats() { curl -s -H "Cookie: $cookie" "$url/api/stats?since_ms=${1:-0}"; }
cpu() { awk '{print $14 + $15}' "/proc/$hubpid/stat"; }
t0="$(date +%s%3N)"; s0="$(stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["ingest"]["stored"])')"; c0="$(cpu)"
page="$(cd "$root" && node scripts/browser/hub_latency.mjs "$url" "$password" "$secs")"
t1="$(date +%s%3N)"; c1="$(cpu)"
final="$(stats "$t0")"
rss="$(awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{printf "%d %d", r/1024, h/1024}' "/proc/$hubpid/status")"
python3 - "$final" "$s0" "$t0" "$t1" "$c0" "$c1" "$rss" "$page" "$backend" "$instances" "$symbols" "$(getconf CLK_TCK)" "$bar_ms" <<'PY'
import json, sys
final, s0, t0, t1, c0, c1, rss, page, backend, n, m, hz, bar_ms = sys.argv[1:]
f = json.loads(final)["ingest"]; p = json.loads(page)
secs = (int(t1) - int(t0)) / 1000
rate = (f["stored"] - int(s0)) / secs
cpu = (int(c1) - int(c0)) / int(hz) / secs * 100
r, h = rss.split()
print(json.dumps({"backend": backend, "instances": int(n), "symbols": int(m), "bar_ms": int(bar_ms), "window_s": round(secs, 1),
  "ingest_records_per_s": round(rate), "stored_p50_ms": f["stored_latency_ms_p50"], "stored_p99_ms": f["stored_latency_ms_p99"],
  "stored_samples": f["latency_samples"], "page_p50_ms": p["p50_ms"], "page_p99_ms": p["p99_ms"], "page_samples": p["samples"],
  "fleet_rows": p["rows"], "rss_mb": int(r), "peak_rss_mb": int(h), "hub_cpu_pct": round(cpu), "refused": f["refused"], "duplicates": f["duplicates"]}))
PY
