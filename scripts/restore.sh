#!/usr/bin/env bash
# Puts an archive written by scripts/backup.sh back: decrypts it with the age identity, checks every
# file against the archive's checksums, then restores each state directory and file to where its
# MANIFEST says it came from (mode, and owner when run as root). Nothing is changed until every
# check passed; what a restore replaces is kept beside it as <path>.pre-restore-<time>.
# Stop the daemons first (systemctl stop oracle-trader.target). docs/OPERATIONS.md, "Backups".
#
# Usage: scripts/restore.sh --identity FILE [--force] [--dry-run] ARCHIVE
#   --identity FILE  the age identity (AGE-SECRET-KEY-1… line) the archive was encrypted to
#   --force          also replace state directories that are not empty and files that differ
#                    (they are kept as <path>.pre-restore-<time>)
#   --dry-run        check the archive and say what would be restored; change nothing
#   -h, --help       this text
set -euo pipefail

die() { echo "restore.sh: $*" >&2; exit 1; }
here="$(cd "$(dirname "$0")" && pwd)"

identity=""
force=0
dry_run=0
archive=""
while [ $# -gt 0 ]; do
    case "$1" in
        --identity) identity="${2:?--identity needs a file}"; shift 2 ;;
        --force) force=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [ -z "$archive" ] || die "one archive at a time (got '$archive' and '$1')"; archive="$1"; shift ;;
    esac
done
[ -n "$archive" ] || die "which archive? scripts/restore.sh --identity FILE ARCHIVE (see --help)"
[ -n "$identity" ] || die "--identity FILE is required: the age secret key the backups are encrypted to"
[ -f "$archive" ] || die "archive $archive does not exist"
[ -r "$identity" ] || die "identity file $identity does not exist or is not readable"
if ! command -v age >/dev/null; then
    "$here/ops_deps.sh" 2>/dev/null || die "age is not installed: apt-get install age (as root), or scripts/ops_deps.sh"
fi

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Decrypt. age authenticates every chunk and marks the last one, so a wrong key, a flipped
# byte and a cut-off file are all refused here (https://age-encryption.org/v1, "Payload").
if ! age -d -i "$identity" -o "$work/archive.tar" "$archive" 2>"$work/age.err"; then
    why="$(grep -m1 'error:' "$work/age.err" | sed 's/^age: error: //')"
    case "$why" in
        *"no identity matched"*)
            die "wrong key: $archive was not encrypted to any key in $identity (age: $why)" ;;
        *"failed to decrypt and authenticate"*|*"unexpected EOF"*|*"header"*|*"premature"*|*"truncated"*)
            die "$archive is damaged or incomplete (age: $why); nothing was restored: use an older archive" ;;
        *) die "cannot decrypt $archive (age: ${why:-$(cat "$work/age.err")}); nothing was restored" ;;
    esac
fi
mkdir "$work/x"
tar -C "$work/x" --no-same-owner -xf "$work/archive.tar" 2>"$work/tar.err" ||
    die "$archive decrypts but is not a backup archive (tar: $(head -c 300 "$work/tar.err")); nothing was restored"
rm -f "$work/archive.tar"
[ -f "$work/x/SHA256SUMS" ] || die "$archive has no SHA256SUMS: not written by backup.sh; nothing was restored"
(cd "$work/x" && sha256sum --strict --quiet -c SHA256SUMS >"$work/sum.err" 2>&1) ||
    die "$archive: files do not match their checksums ($(head -c 300 "$work/sum.err")); nothing was restored"

# 2. Plan: every item of every component's MANIFEST, all checked before anything changes.
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
kinds=() srcs=() dests=() modes=() owners=()
refusals=()
for m in "$work"/x/*/MANIFEST; do
    [ -f "$m" ] || continue
    comp="$(dirname "$m")"
    head -n1 "$m" | grep -q '^# oracle-trader snapshot v1' ||
        die "$m: not a v1 manifest (written by a newer backup.sh?); nothing was restored"
    while IFS=$'\t' read -r kind rel orig mode owner; do
        case "$kind" in '#'*|'') continue ;; dir|file) ;; *) die "$(basename "$comp")/MANIFEST: unknown kind '$kind'" ;; esac
        case "$orig" in /*) ;; *) die "$(basename "$comp")/MANIFEST: '$orig' is not an absolute path" ;; esac
        case "$rel" in /*|*..*) die "$(basename "$comp")/MANIFEST: '$rel' leaves the archive" ;; esac
        [ -e "$comp/$rel" ] || die "$(basename "$comp")/MANIFEST names $rel, which the archive lacks"
        if [ "$kind" = dir ]; then
            if [ -e "$orig/executor.lock" ] && ! flock -n "$orig/executor.lock" true 2>/dev/null; then
                refusals+=("an executor is running on $orig: stop it first (systemctl stop oracle-trader.target)")
            elif [ -d "$orig" ] && [ -n "$(ls -A "$orig")" ] && [ "$force" = 0 ]; then
                refusals+=("$orig is not empty (--force replaces it, keeping it as $orig.pre-restore-$stamp)")
            fi
        elif [ -e "$orig" ] && ! cmp -s "$orig" "$comp/$rel" && [ "$force" = 0 ]; then
            refusals+=("$orig exists and differs from the archive's (--force replaces it, keeping it as $orig.pre-restore-$stamp)")
        fi
        kinds+=("$kind") srcs+=("$comp/$rel") dests+=("$orig") modes+=("$mode") owners+=("$owner")
    done <"$m"
done
[ ${#kinds[@]} -gt 0 ] || die "$archive holds no component with a MANIFEST; nothing was restored"
if [ ${#refusals[@]} -gt 0 ]; then
    printf 'restore.sh: %s\n' "${refusals[@]}" >&2
    die "nothing was restored"
fi

# 3. Apply: each item is assembled beside its destination, then renamed into place.
as_root=0
[ "$(id -u)" = 0 ] && as_root=1
for i in "${!kinds[@]}"; do
    kind="${kinds[$i]}" src="${srcs[$i]}" d="${dests[$i]}" mode="${modes[$i]}" owner="${owners[$i]}"
    if [ "$dry_run" = 1 ]; then
        echo "would restore $kind $d (mode $mode, owner $owner)"
        continue
    fi
    mkdir -p "$(dirname "$d")"
    tmp="$d.restore-tmp"
    rm -rf "$tmp"
    if [ "$kind" = dir ]; then
        cp -R "$src" "$tmp"
    else
        cp "$src" "$tmp"
    fi
    chmod "$mode" "$tmp"
    if [ "$as_root" = 1 ]; then
        chown -R "$owner" "$tmp" 2>/dev/null || echo "restore.sh: WARNING: cannot give $d to $owner (no such user/group here?): fix it by hand" >&2
    fi
    sync -f "$tmp" 2>/dev/null || true
    if [ -e "$d" ]; then
        if [ "$kind" = file ] && cmp -s "$d" "$tmp"; then
            rm -f "$tmp"
            echo "restore.sh: unchanged $d"
            continue
        fi
        mv -T "$d" "$d.pre-restore-$stamp"
        echo "restore.sh: kept the previous $d as $d.pre-restore-$stamp"
    fi
    mv -T "$tmp" "$d"
    echo "restore.sh: restored $kind $d"
done
[ "$dry_run" = 1 ] && { echo "restore.sh: dry run: nothing changed"; exit 0; }
echo "restore.sh: done. Start the daemons (systemctl start oracle-trader.target): the executor reconciles with the broker before it serves, and the preditor's twins resume from their restored states."
