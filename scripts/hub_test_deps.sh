#!/usr/bin/env bash
# What the hub's tests start for themselves (hub/tests, scripts/browser/hub_{dashboard,fleet}.test.mjs):
# Debian's mosquitto (the broker, and mosquitto_pub for one browser check) and PostgreSQL (initdb
# and postgres for a private cluster; the service is never started). Installs them with apt-get
# when missing (as root, or through sudo); safe to run again.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "hub_test_deps: installing ${missing[*]} (apt-get)" >&2
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }; } >&2 ||
    { echo "hub_test_deps: cannot install ${missing[*]}: apt-get install ${missing[*]} (as root)" >&2; exit 1; }
fi
# Debian's package starts a system broker on 1883; the tests never use it (each starts its own on
# a free port), so it is left as the package set it up.
