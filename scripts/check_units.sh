#!/usr/bin/env bash
# Verifies the systemd units in systemd/ with `systemd-analyze verify` and scores their sandboxing with
# `systemd-analyze security --offline`. Exits non-zero if verify prints anything (warnings included)
# or an exposure score exceeds the threshold.
#
# The units name /usr/local/bin/{executor,preditor,hub}, which need not exist here (CI), so they are
# copied into a temp dir with ExecStart rewritten to dummy executables; nothing else is changed.
#
# Usage: scripts/check_units.sh [--threshold N] [--units DIR]
#   --threshold  highest accepted exposure score (default 2.0; systemd calls < 4.0 "OK")
#   --units      directory of unit files (default: the repository's systemd/)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
units_src="$here/systemd"
threshold="2.0"
while [ $# -gt 0 ]; do
    case "$1" in
        --threshold) threshold="${2:?--threshold needs a value}"; shift 2 ;;
        --units) units_src="$(cd "${2:?--units needs a directory}" && pwd)"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "check_units.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "check_units.sh: systemd-analyze is missing; installing the 'systemd' package with apt-get" >&2
        # A fresh container has empty package lists: update once if the install cannot find it.
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >&2 \
            || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >&2; }
    else
        echo "check_units.sh: systemd-analyze not found; install the 'systemd' package (apt-get install systemd)" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/units"
for b in executor preditor ctrader-sim hub oracle-trader-backup; do
    printf '#!/bin/sh\nexit 0\n' >"$work/bin/$b"
    chmod 0755 "$work/bin/$b"
done

units=()
for f in "$units_src"/*.service "$units_src"/*.target "$units_src"/*.swap "$units_src"/*.timer; do
    [ -e "$f" ] || continue
    name="$(basename "$f")"
    sed "s#/usr/local/bin/#$work/bin/#g" "$f" >"$work/units/$name"
    case "$name" in
        # A template is verified through its instances (verify loads the template from the same dir).
        oracle-executor@.service) units+=("oracle-executor@live.service" "oracle-executor@paper.service") ;;
        *@.service) units+=("${name/@./@test.}") ;;
        *) units+=("$name") ;;
    esac
done
if [ "${#units[@]}" -eq 0 ]; then
    echo "check_units.sh: no unit files in $units_src" >&2
    exit 1
fi

status=0
cd "$work/units"
for u in "${units[@]}"; do
    # --recursive-errors=no: only our units, not the distro's (network-online.target, ...).
    out="$(systemd-analyze verify --man=no --recursive-errors=no "./$u" 2>&1)" || true
    out="${out//$work\/units\//systemd\/}"
    if [ -n "$out" ]; then
        echo "FAIL verify $u"
        printf '%s\n' "$out" | sed 's/^/    /'
        status=1
    else
        echo "ok   verify $u"
    fi
done

if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    for u in "${units[@]}"; do
        case "$u" in *.service) ;; *) continue ;; esac
        out="$(systemd-analyze security --offline=yes --no-pager "./$u" 2>&1)" && rc=0 || rc=$?
        score="$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
        if [ -z "$score" ]; then
            echo "FAIL security $u: no score (rc=$rc)"
            printf '%s\n' "$out" | tail -5 | sed 's/^/    /'
            status=1
        elif awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s > t) }'; then
            echo "FAIL security $u: exposure $score > $threshold"
            printf '%s\n' "$out" | grep '^✗' | sed 's/^/    /'
            status=1
        else
            echo "ok   security $u: exposure $score (threshold $threshold)"
        fi
    done
else
    echo "skip security: this systemd-analyze has no --offline (needs systemd >= 252)"
fi

exit "$status"
