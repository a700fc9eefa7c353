#!/usr/bin/env bash
# What operating an instance needs from Debian: `age` (backup.sh encrypts with it, restore.sh
# decrypts) and util-linux's `flock`; with --tests also `prometheus` (its server and promtool: the
# metrics test starts a private one) and `setpriv` (the ctl test calls as another uid). Installs
# what is missing with apt-get (as root, or through sudo); safe to run again.
#
# Usage: scripts/ops_deps.sh [--tests]
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

tests=0
case "${1:-}" in
    --tests) tests=1 ;;
    "") ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ops_deps.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

missing=()
command -v age >/dev/null || missing+=(age)
command -v flock >/dev/null || missing+=(util-linux)
if [ "$tests" = 1 ]; then
    { command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
    command -v setpriv >/dev/null || missing+=(util-linux)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "ops_deps: installing ${missing[*]} (apt-get)" >&2
    { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
      { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2 ||
      { echo "ops_deps: cannot install ${missing[*]}: run apt-get install ${missing[*]} as root" >&2; exit 1; }
fi
# Debian's prometheus package enables a system server on :9090; the tests never use it (each
# starts its own on a free port with its own data directory).
