#!/usr/bin/env bash
# The project's test command (README, CI): Rust tests, then the light Python checks.
# Installs what the tests need through the project's own scripts; nothing by hand.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/setup_venv.sh
# The hub's tests start a real Mosquitto and a private PostgreSQL cluster.
scripts/hub_test_deps.sh
# The ops tests: age (backups), a real Prometheus and promtool (metrics), setpriv (ctl as another uid).
scripts/ops_deps.sh --tests
# Rust tests that talk to the reference implementations (onnxruntime, Spotware's message classes)
# find the interpreter here.
export ORACLE_PYTHON="$root/scripts/.venv/bin/python"

# --locked: a Cargo.lock that no longer matches the manifests is an error here (and in CI), not
# something cargo rewrites on the side.
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc

# The HTML drift report and the hub's dashboard in headless Chromium (installs Chromium and
# playwright-core if missing).
EXECUTOR_BIN="$root/target/debug/executor" HUB_BIN="$root/target/debug/hub" \
  FLEET_SIM_BIN="$root/target/debug/fleet-sim" scripts/test_browser.sh

py_tests=()
for d in scripts/tests ctrader-sim/tests/python; do
  [ -d "$d" ] && py_tests+=("$d")
done
if [ ${#py_tests[@]} -gt 0 ]; then
  "$ORACLE_PYTHON" -m pytest -q "${py_tests[@]}"
fi
