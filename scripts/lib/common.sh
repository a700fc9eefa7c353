# shellcheck shell=bash
# Shell helpers shared by scripts/demo.sh and scripts/bench.sh (sourced, not executed).
#
# Daemons are started in their own session (setsid) so a Ctrl-C in the terminal reaches only the
# script, whose EXIT trap then stops them in order (preditor → executor → simulator) and waits for
# them: no orphans, and the simulator still writes its latency statistics on SIGTERM.

OT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# name → pid / log file of every daemon this script started, in start order.
OT_NAMES=()
declare -A OT_PID=()
declare -A OT_LOG=()
OT_STOPPING=0

ot_say() { printf '\033[1m[%s]\033[0m %s\n' "${OT_TAG:-oracle}" "$*" >&2; }
ot_die() {
  ot_say "ERROR: $*"
  exit 1
}

# A random secret (hex), from the kernel: no Python, no openssl needed.
ot_random_hex() { head -c "${1:-24}" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Write a secret file with mode 0600 from the start (umask in a subshell: never world-readable).
ot_write_secret() {
  local path="$1" content="$2"
  (umask 077 && printf '%s' "$content" >"$path.tmp" && mv "$path.tmp" "$path")
  chmod 600 "$path"
}

# ot_build PROFILE [PACKAGE...] — build the three binaries (and those of the extra packages, e.g.
# hub) with a cargo profile; echo the directory that holds them.
ot_build() {
  local profile="$1" dir pkg
  shift
  local pkgs=(ctrader-sim executor preditor "$@") args=()
  for pkg in "${pkgs[@]}"; do args+=(-p "$pkg"); done
  command -v cargo >/dev/null || ot_die "cargo not found: install the Rust toolchain (https://rustup.rs)"
  ot_say "building ${pkgs[*]} (cargo --profile $profile; the first build takes minutes)"
  (cd "$OT_ROOT" && cargo build --profile "$profile" "${args[@]}" --bins) >&2 ||
    ot_die "cargo build failed"
  case "$profile" in
  dev) dir=debug ;;
  *) dir="$profile" ;;
  esac
  echo "${CARGO_TARGET_DIR:-$OT_ROOT/target}/$dir"
}

# ot_start NAME LOG CMD... — start a daemon in its own session, stdout+stderr to LOG.
ot_start() {
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  OT_PID[$name]=$!
  OT_LOG[$name]=$log
  OT_NAMES+=("$name")
}

ot_alive() { kill -0 "${OT_PID[$1]}" 2>/dev/null; }

# Non-zero (and the daemon's last log lines on stderr) if any started daemon is gone.
ot_check_alive() {
  local name dead=0
  for name in "${OT_NAMES[@]}"; do
    if ! ot_alive "$name"; then
      local rc=0
      wait "${OT_PID[$name]}" 2>/dev/null || rc=$?
      ot_say "ERROR: $name (pid ${OT_PID[$name]}) died unexpectedly (exit $rc); last lines of ${OT_LOG[$name]}:"
      tail -n 25 "${OT_LOG[$name]}" >&2
      dead=1
    fi
  done
  return "$dead"
}

# Stop every started daemon, newest first: SIGTERM, up to 10 s, then SIGKILL. Idempotent.
ot_stop_all() {
  local i name pid t
  [ "$OT_STOPPING" = 1 ] && return 0
  OT_STOPPING=1
  for ((i = ${#OT_NAMES[@]} - 1; i >= 0; i--)); do
    name="${OT_NAMES[$i]}"
    pid="${OT_PID[$name]}"
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for ((t = 0; t < 100; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      ot_say "$name (pid $pid) ignored SIGTERM for 10 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# ot_wait_line FILE REGEX SECONDS [NAME] — wait until FILE has a line matching REGEX.
ot_wait_line() {
  local file="$1" re="$2" secs="$3" name="${4:-}" t
  for ((t = 0; t < secs * 10; t++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    if [ -n "$name" ] && ! ot_alive "$name"; then return 1; fi
    sleep 0.1
  done
  return 1
}

# ot_port_free HOST:PORT — true when nothing listens there (bash's /dev/tcp, no nc needed).
ot_port_free() {
  local host="${1%:*}" port="${1##*:}"
  ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# ot_control HOST:PORT COMMAND — one line to the simulator's control socket, its one-line answer.
ot_control() {
  local host="${1%:*}" port="${1##*:}" reply
  exec 7<>"/dev/tcp/$host/$port" || return 1
  printf '%s\n' "$2" >&7
  IFS= read -r -t 5 reply <&7 || true
  exec 7>&- 7<&-
  printf '%s\n' "$reply"
}

# VmRSS and VmHWM of a pid in KiB: "rss hwm".
ot_mem_kib() {
  awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{if (r=="") exit 1; print r, h}' "/proc/$1/status" 2>/dev/null
}

# Write the IPC token, the cTrader client secret and the access/refresh tokens (the TokenStore's
# JSON) into DIR, all 0600; sets OT_CLIENT_SECRET, OT_ACCESS_TOKEN, OT_REFRESH_TOKEN for the simulator.
ot_make_secrets() {
  local dir="$1"
  mkdir -p "$dir"
  chmod 700 "$dir"
  OT_CLIENT_SECRET="$(ot_random_hex 24)"
  OT_ACCESS_TOKEN="$(ot_random_hex 24)"
  OT_REFRESH_TOKEN="$(ot_random_hex 24)"
  ot_write_secret "$dir/ipc.token" "$(ot_random_hex 32)"
  ot_write_secret "$dir/ctrader_client_secret" "$OT_CLIENT_SECRET"
  ot_write_secret "$dir/ctrader_access_token" \
    "{\"access_token\":\"$OT_ACCESS_TOKEN\",\"refresh_token\":\"$OT_REFRESH_TOKEN\"}"
}

# Read a scalar from executor_config.json without Python/jq: the first `"key": value` in the file.
ot_config_value() {
  sed -nE "s/^[[:space:]]*\"$2\":[[:space:]]*\"?([^\",]*)\"?,?[[:space:]]*$/\1/p" "$1" | head -n 1
}
