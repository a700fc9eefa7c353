#!/usr/bin/env bash
# Headless-Chromium checks of the HTML drift report (scripts/browser/*.test.mjs, node's test runner).
# Installs what they need through the ordinary clients when it is missing: Debian's `chromium`
# (apt-get, as root) and `playwright-core` (npm ci, pinned in scripts/browser/package-lock.json).
# Needs the executor binary: EXECUTOR_BIN, else target/debug/executor (scripts/test.sh builds it).
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
node --test scripts/browser/
