#!/usr/bin/env bash
# Takes a consistent, encrypted snapshot of what cannot be rebuilt — each executor's state directory
# (journal, desks with the risk baselines, settings overlay, operator commands, kill switch), its
# config and the secrets it names (IPC token, cTrader secret and tokens), and the preditor's twin
# states — into one age-encrypted archive in DEST, then deletes all but the newest KEEP archives.
# The systemd timer oracle-trader-backup.timer runs it daily. docs/OPERATIONS.md, "Backups".
#
# Consistent while the daemons run: the preditor's files are copied first, each one whole (it
# replaces them by rename); then each executor copies its own state between two batches on
# `executor snapshot` (or, stopped, is copied under its lock). So the executor's copy is never older
# than the twins': every signal a restored twin repeats was seen by the restored executor.
#
# Usage: scripts/backup.sh [options]
#   --executor-config FILE  an executor config to back up (repeatable;
#                           default: every /etc/oracle-trader/executor-*.json)
#   --preditor-state DIR    a preditor's state directory (repeatable;
#                           default: every /var/lib/oracle-trader/preditor*/)
#   --no-preditor           no preditor on this host
#   --recipients FILE       age recipients, one public key (age1…) a line
#                           (default /etc/oracle-trader/backup-recipients.txt)
#   --dest DIR              where the archives go (default /var/backups/oracle-trader)
#   --keep N                archives to keep, newest first (default 14)
#   --executor BIN          the executor binary (default: beside this script, else on PATH)
#   -h, --help              this text
set -euo pipefail

die() { echo "backup.sh: $*" >&2; exit 1; }
here="$(cd "$(dirname "$0")" && pwd)"

configs=()
pstates=()
no_preditor=0
recipients="/etc/oracle-trader/backup-recipients.txt"
dest="/var/backups/oracle-trader"
keep=14
executor=""
while [ $# -gt 0 ]; do
    case "$1" in
        --executor-config) configs+=("${2:?--executor-config needs a file}"); shift 2 ;;
        --preditor-state) pstates+=("${2:?--preditor-state needs a directory}"); shift 2 ;;
        --no-preditor) no_preditor=1; shift ;;
        --recipients) recipients="${2:?--recipients needs a file}"; shift 2 ;;
        --dest) dest="${2:?--dest needs a directory}"; shift 2 ;;
        --keep) keep="${2:?--keep needs a number}"; shift 2 ;;
        --executor) executor="${2:?--executor needs a path}"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

case "$keep" in ''|*[!0-9]*) die "--keep must be a whole number of archives, got '$keep'" ;; esac
[ "$keep" -ge 1 ] || die "--keep must be at least 1 (the archive just written is always kept)"
if ! command -v age >/dev/null; then
    "$here/ops_deps.sh" 2>/dev/null || die "age is not installed: apt-get install age (as root), or scripts/ops_deps.sh"
fi
if [ -z "$executor" ]; then
    if [ -x "$here/executor" ]; then executor="$here/executor"; else executor="$(command -v executor || true)"; fi
fi
[ -n "$executor" ] && [ -x "$executor" ] || die "no executor binary (install it, or pass --executor BIN)"
[ -s "$recipients" ] || die "recipients file $recipients is missing or empty: generate a key with \`age-keygen -o backup-key.txt\` somewhere safe OFF this machine, and put its public key (the age1… line) in $recipients"
[ -d "$dest" ] || die "destination $dest does not exist (create it: install -d -m 0700 -o oracle -g oracle $dest)"
[ -w "$dest" ] || die "destination $dest is not writable by $(id -un)"
all_configs=0
if [ ${#configs[@]} -eq 0 ]; then
    all_configs=1
    for c in /etc/oracle-trader/executor-*.json; do [ -f "$c" ] && configs+=("$c"); done
    [ ${#configs[@]} -gt 0 ] || die "no executor config: none matches /etc/oracle-trader/executor-*.json (pass --executor-config FILE)"
fi
for c in "${configs[@]}"; do [ -f "$c" ] || die "executor config $c does not exist"; done
if [ "$no_preditor" = 1 ]; then
    pstates=()
elif [ ${#pstates[@]} -eq 0 ]; then
    for d in /var/lib/oracle-trader/preditor*/; do [ -d "$d" ] && pstates+=("${d%/}"); done
    [ ${#pstates[@]} -gt 0 ] || die "no preditor state directory matches /var/lib/oracle-trader/preditor*/ (--preditor-state DIR, or --no-preditor)"
fi
for d in "${pstates[@]}"; do
    [ -d "$d" ] || die "preditor state directory $d does not exist (--preditor-state DIR, or --no-preditor)"
done

umask 077
stage="$(mktemp -d "$dest/.staging.XXXXXX")"
part=""
cleanup() { rm -rf "$stage"; [ -z "$part" ] || rm -f "$part"; }
trap cleanup EXIT

# line KIND REL ORIGINAL: one MANIFEST line (scripts/restore.sh reads it).
line() {
    local abs
    abs="$(realpath -m "$3")"
    case "$abs" in *$'\t'*|*$'\n'*) die "$abs: a tab or newline in the path cannot go in the manifest" ;; esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$abs" "$(stat -c '%04a' "$abs")" "$(stat -c '%U:%G' "$abs")"
}

summary=()
# 1. The preditor: each twin's file is replaced whole by a rename, so each copy is one whole state.
for pstate in "${pstates[@]}"; do
    base="$(basename "$pstate")"
    base="${base#preditor}"
    name="preditor$base"
    i=2
    while [ -e "$stage/$name" ]; do name="preditor$base-$i"; i=$((i + 1)); done
    mkdir -p "$stage/$name/state"
    n=0
    for f in "$pstate"/* "$pstate"/.[!.]*; do
        [ -f "$f" ] || continue
        case "$f" in *.tmp) continue ;; esac
        cp --preserve=mode,timestamps "$f" "$stage/$name/state/"
        n=$((n + 1))
    done
    { echo "# oracle-trader snapshot v1: kind	path	original	mode	owner"; line dir state "$pstate"; } \
        >"$stage/$name/MANIFEST"
    summary+=("$name ($pstate): $n files")
done

# 2. Each executor, after the preditor.
for c in "${configs[@]}"; do
    base="$(basename "$c" .json)"
    base="${base#executor-}"
    name="executor-$base"
    i=2
    while [ -e "$stage/$name" ]; do name="executor-$base-$i"; i=$((i + 1)); done
    rc=0
    out="$("$executor" snapshot --config "$c" --out "$stage/$name")" || rc=$?
    if [ "$rc" = 4 ] && [ "$all_configs" = 1 ]; then
        summary+=("$name: skipped, its state directory does not exist (never ran)")
        continue
    fi
    [ "$rc" = 0 ] || die "$c: the executor's snapshot failed (above); nothing was written to $dest"
    summary+=("$name: ${out#snapshot "$stage/$name": }")
done

(cd "$stage" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum --) >"$stage/SHA256SUMS"

# Names sort by time (the rotation relies on it), to the millisecond.
final="$dest/oracle-trader-$(date -u +%Y%m%dT%H%M%S.%3NZ).tar.age"
while [ -e "$final" ]; do sleep 0.01; final="$dest/oracle-trader-$(date -u +%Y%m%dT%H%M%S.%3NZ).tar.age"; done
part="$dest/.$(basename "$final").part"
# pipefail: a failing tar or age (a full disk) fails the script; the old archives stay.
tar -C "$stage" --numeric-owner -cf - . | age -R "$recipients" -o "$part" ||
    die "writing $part failed (disk full? see above); the previous archives are kept"
sync "$part"
mv -f "$part" "$final"
part=""
sync "$dest"

# Rotation, only after the new archive is complete: the newest KEEP stay.
mapfile -t all < <(find "$dest" -maxdepth 1 -name 'oracle-trader-*.tar.age' -printf '%f\n' | sort)
removed=0
if [ "${#all[@]}" -gt "$keep" ]; then
    for old in "${all[@]:0:${#all[@]}-keep}"; do
        [ "$dest/$old" = "$final" ] && continue
        rm -f -- "$dest/$old"
        removed=$((removed + 1))
    done
fi

echo "backup.sh: wrote $final ($(stat -c %s "$final") bytes; kept $((${#all[@]} - removed)), removed $removed)"
for s in "${summary[@]}"; do echo "  $s"; done
