# shellcheck shell=bash
# The demo's fleet (scripts/demo.sh, sourced after lib/common.sh): a private Mosquitto from
# hub/mosquitto/ (TLS, ACL, password file), the hub (`hub serve`, SQLite) and the executor configs
# of the demo's two instances, each with the `hub` section `hub add-instance` prints (docs/HUB.md).
# Nothing here asks for Python or jq: the configs are written from executor_config.json by awk and
# checked by `executor check` before anything starts.

# ot_fleet_setup BIN HUBDIR BROKERDIR BROKER_ADDR HUB_ADDR — write the broker's files (dev CA and
# certificate, config, ACL, password file with the hub's credential), the hub's signing key, the
# operator's password (0600 in HUBDIR/operator_password) and hub.json. Sets OT_HUB_PUBLIC_KEY and
# OT_OPERATOR_PASSWORD.
ot_fleet_setup() {
  local bin="$1" hubdir="$2" brokerdir="$3" broker_addr="$4" hub_addr="$5" hash
  mkdir -p "$hubdir/instances"
  chmod 700 "$hubdir" "$hubdir/instances"
  "$bin/hub" dev-certs --dir "$brokerdir" 2>/dev/null || ot_die "hub dev-certs failed"
  cp "$brokerdir/fleet-ca.pem" "$hubdir/fleet-ca.pem"
  # The shipped config with the demo's private paths and loopback port (mosquitto.conf(5):
  # `listener port bind-address`); no persistence: every demo run starts a fresh fleet.
  sed -e "s#/etc/mosquitto/oracle/#$brokerdir/#g" -e "s#/etc/mosquitto/certs/#$brokerdir/#g" \
    -e "s#^listener 8883\$#listener ${broker_addr##*:} ${broker_addr%:*}#" \
    "$OT_ROOT/hub/mosquitto/oracle-fleet.conf" >"$brokerdir/mosquitto.conf"
  grep -q "^listener ${broker_addr##*:} " "$brokerdir/mosquitto.conf" ||
    ot_die "hub/mosquitto/oracle-fleet.conf has no 'listener 8883' line to move to $broker_addr"
  printf '\nlog_dest stderr\npersistence false\n' >>"$brokerdir/mosquitto.conf"
  cp "$OT_ROOT/hub/mosquitto/acl" "$brokerdir/acl"
  OT_BROKER_ARGS=(--passwd-file "$brokerdir/passwd" --token-dir "$hubdir/instances")
  "$bin/hub" set-hub-user "${OT_BROKER_ARGS[@]}" --password-file "$hubdir/broker_password" 2>/dev/null ||
    ot_die "hub set-hub-user failed (is mosquitto_passwd installed? apt-get install mosquitto)"
  OT_HUB_PUBLIC_KEY="$("$bin/hub" gen-key --key-file "$hubdir/hub_key" 2>/dev/null)" || ot_die "hub gen-key failed"
  OT_OPERATOR_PASSWORD="$(ot_random_hex 12)"
  ot_write_secret "$hubdir/operator_password" "$OT_OPERATOR_PASSWORD"
  hash="$(printf '%s\n' "$OT_OPERATOR_PASSWORD" | "$bin/hub" hash-password 2>/dev/null)" || ot_die "hub hash-password failed"
  # cookie_secure stays on (the default): the dashboard is plain http on loopback, and browsers keep
  # a Secure cookie from http://127.0.0.1 (a potentially trustworthy origin; the Chromium tests
  # log in that way).
  cat >"$hubdir/hub.json" <<EOF
{"listen": "$hub_addr",
 "database": "sqlite://$hubdir/hub.db",
 "broker": {"url": "mqtts://localhost:${broker_addr##*:}", "ca_file": "fleet-ca.pem", "username": "hub",
            "password_file": "broker_password", "client_id": "oracle-hub-demo"},
 "operator": {"username": "operator", "password_hash": "$hash"},
 "key_file": "hub_key", "command_ttl_secs": 60}
EOF
  chmod 600 "$hubdir/hub.json"
}

# ot_fleet_add_instance BIN HUBDIR ID BROKER_ADDR OUT — the instance's broker credential and 0600
# token file (HUBDIR/instances/ID.token), and the `hub` section `hub add-instance` prints, in OUT.
ot_fleet_add_instance() {
  local bin="$1" hubdir="$2" id="$3" broker_addr="$4" out="$5"
  "$bin/hub" add-instance "$id" "${OT_BROKER_ARGS[@]}" --key-file "$hubdir/hub_key" \
    --broker-url "mqtts://localhost:${broker_addr##*:}" --instance-ca-file "$hubdir/fleet-ca.pem" \
    --instance-token-file "$hubdir/instances/$id.token" --telemetry-secs 2 >"$out" 2>/dev/null ||
    ot_die "hub add-instance $id failed"
}

# ot_instance_config SRC DEST HUB_SNIPPET [paper IPC_ADDR SPEED DIR] — write DEST from the executor
# config SRC: every relative path made absolute (DEST lives elsewhere, and the executor resolves
# paths against its config's directory), the `hub` section from HUB_SNIPPET (a file holding
# `{ "hub": {...} }`, or "" for none) inserted first. With `paper`: mode paper on the CSV bars of
# data/demo at SPEED bars/s, no cTrader section, its IPC on IPC_ADDR and its logs and state under
# DIR. SRC is the pretty-printed executor_config.json (one key per line); `executor check` then
# validates the result.
ot_instance_config() {
  local src="$1" dest="$2" snippet="$3" paper=0 ipc="" speed="" dir=""
  if [ "${4:-}" = paper ]; then
    paper=1 ipc="$5" speed="$6" dir="$7"
  fi
  awk -v root="$OT_ROOT" -v snippet="$snippet" -v paper="$paper" -v ipc="$ipc" -v speed="$speed" -v dir="$dir" '
    function abs(line,   k, v) {
      if (match(line, /"(models_dir|log_dir|state_dir|token_file|ca_file|secret_file|kill_switch_file|bars_dir)": "[^"\/][^"]*"/)) {
        k = substr(line, RSTART, RLENGTH)
        v = k
        sub(/: "/, ": \"" root "/", v)
        line = substr(line, 1, RSTART - 1) v substr(line, RSTART + RLENGTH)
      }
      return line
    }
    NR == 1 {
      print
      if (snippet != "") {
        # the snippet without its outer braces, then a comma: "hub" becomes the first key
        n = 0
        while ((getline l < snippet) > 0) s[++n] = l
        for (i = 2; i < n; i++) print (i == n - 1 ? s[i] "," : s[i])
      }
      next
    }
    paper && /^ *"ctrader": \{/ { skip = 1; next }
    skip { if ($0 ~ /^ *\},?$/) skip = 0; next }
    paper && /^ *"mode": "shadow"/ { sub(/"shadow"/, "\"paper\"") }
    paper && /^ *"log_dir": / { sub(/"log_dir": "[^"]*"/, "\"log_dir\": \"" dir "/log\"") }
    paper && /^ *"state_dir": / { sub(/"state_dir": "[^"]*"/, "\"state_dir\": \"" dir "/state\"") }
    paper && /^ *"kill_switch_file": / { sub(/"kill_switch_file": "[^"]*"/, "\"kill_switch_file\": \"" dir "/state/KILL\"") }
    paper && /^ *"bind": / { sub(/"bind": "[^"]*"/, "\"bind\": \"" ipc "\"") }
    paper && /^ *"replay_bars_per_second": / { sub(/: [0-9.]+/, ": " speed) }
    paper && /^ *"paper": \{/ { print; print abs("      \"bars_dir\": \"data/demo\","); next }
    { print abs($0) }
  ' "$src" >"$dest.tmp" || ot_die "could not write $dest"
  mv "$dest.tmp" "$dest"
}

# ot_check_config BIN CONFIG — true when `executor check` accepts CONFIG; false otherwise. Its
# output (every problem, named) is in OT_CHECK_OUTPUT either way.
ot_check_config() {
  OT_CHECK_OUTPUT="$("$1/executor" check --config "$2" 2>&1)"
}
