#!/usr/bin/env bash
# Headless-Chromium checks of the HTML drift report and the hub's dashboard
# (scripts/browser/*.test.mjs, node's test runner).
# Installs what they need through the ordinary clients when it is missing: Debian's `chromium`
# (apt-get, as root) and `playwright-core` (npm ci, pinned in scripts/browser/package-lock.json).
# Needs the executor binary: EXECUTOR_BIN, else target/debug/executor, the hub's: HUB_BIN and
# FLEET_SIM_BIN, else target/debug/{hub,fleet-sim}, and for the dashboard with real instances
# (hub_fleet.test.mjs) PREDITOR_BIN and CTRADER_SIM_BIN, else target/debug/{preditor,ctrader-sim}
# (scripts/test.sh builds them all); Mosquitto (scripts/hub_test_deps.sh installs it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

die() { echo "test_browser: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm ||
    die "node and npm are needed: apt-get install nodejs npm"
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >&2 ||
    die "Chromium is needed: apt-get install chromium (as root)"
fi
if [ ! -d scripts/browser/node_modules/playwright-core ]; then
  (cd scripts/browser && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in scripts/browser failed"
fi
export EXECUTOR_BIN="${EXECUTOR_BIN:-$root/target/debug/executor}"
[ -x "$EXECUTOR_BIN" ] || die "$EXECUTOR_BIN is missing: cargo build -p executor"
export HUB_BIN="${HUB_BIN:-$root/target/debug/hub}" FLEET_SIM_BIN="${FLEET_SIM_BIN:-$root/target/debug/fleet-sim}"
[ -x "$HUB_BIN" ] && [ -x "$FLEET_SIM_BIN" ] || die "$HUB_BIN or $FLEET_SIM_BIN is missing: cargo build -p hub"
export PREDITOR_BIN="${PREDITOR_BIN:-$root/target/debug/preditor}" CTRADER_SIM_BIN="${CTRADER_SIM_BIN:-$root/target/debug/ctrader-sim}"
[ -x "$PREDITOR_BIN" ] && [ -x "$CTRADER_SIM_BIN" ] ||
  die "$PREDITOR_BIN or $CTRADER_SIM_BIN is missing: cargo build -p preditor -p ctrader-sim"
scripts/hub_test_deps.sh
node --test scripts/browser/
