#!/usr/bin/env bash
# Installs Oracle Trader on a systemd host (the 1 GB VM): binaries, the `oracle` system user, the
# directories with their permissions, the units, example configs and the IPC token.
# Safe to run again (upgrades binaries and units; never overwrites a config, a model or a secret).
# It does not enable or start anything: docs/OPERATIONS.md says what to do next.
#
# Usage: scripts/install.sh [options]
#   --bin-dir DIR   copy prebuilt preditor, executor (and ctrader-sim if present) from DIR
#                   (default: cargo build --release, then copy from the target dir)
#   --models DIR    also copy the model zips from DIR (existing zips of the same name are kept)
#   --root DIR      install under DIR instead of / (tests, image building): no user is created,
#                   no chown, no systemctl; modes are still applied
#   --prefix DIR    where bin/ and share/doc/ go (default /usr/local; units are rewritten to match)
#   --dry-run       print what would be done, change nothing
#   -h, --help      this text
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
root=""
prefix="/usr/local"
bin_dir=""
models_src=""
dry_run=0

die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
        --models) models_src="${2:?--models needs a directory}"; shift 2 ;;
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$prefix" in /*) ;; *) die "--prefix must be absolute, got '$prefix'" ;; esac
if [ -n "$root" ]; then
    [ "$dry_run" = 1 ] || mkdir -p "$root"
    root="$(cd "$root" 2>/dev/null && pwd || echo "$root")"
    [ "$root" != "/" ] || root=""
fi
system_mode=1
[ -z "$root" ] || system_mode=0
if [ "$system_mode" = 1 ] && [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "installing into / needs root (use sudo), or use --root DIR / --dry-run"
fi

user="oracle"
etc="$root/etc/oracle-trader"
secrets="$etc/secrets"
lib="$root/var/lib/oracle-trader"
logs="$root/var/log/oracle-trader"
unit_dir="$root/etc/systemd/system"
bin="$root$prefix/bin"
doc="$root$prefix/share/doc/oracle-trader"

# run CMD...: execute, or print it under --dry-run.
run() {
    if [ "$dry_run" = 1 ]; then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}
say() { echo "install.sh: $*"; }

# dir MODE OWNER:GROUP PATH: create or converge a directory's mode (and owner on a real install).
dir() {
    local mode="$1" owner="$2" path="$3"
    run install -d -m "$mode" "$path"
    # install -d leaves an existing directory's mode alone on some coreutils: converge explicitly.
    run chmod "$mode" "$path"
    if [ "$system_mode" = 1 ]; then run chown "$owner" "$path"; fi
}

# sysdir PATH: a shared system directory (/usr/local/bin, /etc/systemd/system): create if missing,
# never change its mode or owner.
sysdir() {
    [ -d "$1" ] || run install -d -m 0755 "$1"
}

# put_new MODE OWNER:GROUP SRC DEST: copy only if DEST does not exist (configs, models, secrets).
put_new() {
    local mode="$1" owner="$2" src="$3" dest="$4"
    if [ -e "$dest" ]; then
        say "kept existing $dest"
        return
    fi
    run install -m "$mode" "$src" "$dest"
    if [ "$system_mode" = 1 ]; then run chown "$owner" "$dest"; fi
}

# put_replace MODE SRC DEST: replace DEST atomically (binaries may be running; units are ours).
put_replace() {
    local mode="$1" src="$2" dest="$3"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        [ "$dry_run" = 1 ] || chmod "$mode" "$dest"
        say "unchanged $dest"
        return
    fi
    run install -m "$mode" "$src" "$dest.new"
    run mv -f "$dest.new" "$dest"
}

# --- 1. binaries -------------------------------------------------------------------------------
if [ -z "$bin_dir" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) or pass --bin-dir with prebuilt binaries"
    run cargo build --release --locked --manifest-path "$repo/Cargo.toml" -p preditor -p executor -p ctrader-sim --bins
    bin_dir="${CARGO_TARGET_DIR:-$repo/target}/release"
fi
for b in preditor executor; do
    [ "$dry_run" = 1 ] || [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing or not executable (build it, or fix --bin-dir)"
done
binaries=(preditor executor)
if [ -x "$bin_dir/ctrader-sim" ]; then
    binaries+=(ctrader-sim)
else
    say "no ctrader-sim in $bin_dir: skipped (only the demo needs it)"
fi

# --- 2. user -----------------------------------------------------------------------------------
if [ "$system_mode" = 1 ]; then
    if getent passwd "$user" >/dev/null 2>&1; then
        say "user $user exists"
    else
        run useradd --system --user-group --home-dir /var/lib/oracle-trader --no-create-home \
            --shell /usr/sbin/nologin --comment "Oracle Trader daemons" "$user"
    fi
else
    say "--root mode: not creating user $user, not changing owners"
fi

# --- 3. directories ----------------------------------------------------------------------------
# /etc/oracle-trader root:oracle 0750 — configs readable by the daemons, writable by root only.
# secrets oracle:oracle 0700 — the executor rewrites the cTrader tokens on refresh (temp + rename).
# /var/lib/oracle-trader root:oracle 0750 — systemd creates the per-daemon state dirs inside.
sysdir "$unit_dir"
sysdir "$bin"
sysdir "$root$prefix/share/doc"
dir 0755 root:root "$doc"
dir 0750 "root:$user" "$etc"
dir 0700 "$user:$user" "$secrets"
dir 0750 "root:$user" "$lib"
dir 0750 "root:$user" "$lib/models"
dir 0750 "root:$user" "$lib/bars"
dir 0750 "root:$user" "$logs"
# /var/backups/oracle-trader oracle:oracle 0700 — the encrypted archives (backup.sh).
dir 0700 "$user:$user" "$root/var/backups/oracle-trader"

# --- 4. files ----------------------------------------------------------------------------------
for b in "${binaries[@]}"; do
    put_replace 0755 "$bin_dir/$b" "$bin/$b"
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for u in oracle-executor@.service oracle-preditor.service oracle-trader.target swapfile.swap \
    oracle-trader-backup.service oracle-trader-backup.timer; do
    # Units name /usr/local/bin; follow --prefix. Local changes belong in drop-ins (systemctl edit).
    sed -e "s#/usr/local/bin/#$prefix/bin/#g" \
        -e "s#file:///usr/local/share/doc/#file://$prefix/share/doc/#g" \
        "$repo/systemd/$u" >"$tmp/$u"
    put_replace 0644 "$tmp/$u" "$unit_dir/$u"
done
put_replace 0644 "$repo/docs/OPERATIONS.md" "$doc/OPERATIONS.md"
# The backup and restore scripts (docs/OPERATIONS.md, "Backups"); the timer runs the first.
put_replace 0755 "$repo/scripts/backup.sh" "$bin/oracle-trader-backup"
put_replace 0755 "$repo/scripts/restore.sh" "$bin/oracle-trader-restore"

for i in live paper; do
    # The pristine example is refreshed on every run so an operator can diff it with the real config.
    put_replace 0640 "$repo/systemd/executor-$i.example.json" "$etc/executor-$i.json.example"
    if [ "$system_mode" = 1 ]; then run chown "root:$user" "$etc/executor-$i.json.example"; fi
    put_new 0640 "root:$user" "$repo/systemd/executor-$i.example.json" "$etc/executor-$i.json"
done

if [ -n "$models_src" ]; then
    found=0
    for z in "$models_src"/*.zip; do
        [ -e "$z" ] || continue
        found=1
        put_new 0640 "root:$user" "$z" "$lib/models/$(basename "$z")"
    done
    [ "$found" = 1 ] || say "no *.zip in $models_src"
fi

# --- 5. secrets --------------------------------------------------------------------------------
token="$secrets/ipc.token"
if [ -e "$token" ]; then
    say "kept existing $token"
elif [ "$dry_run" = 1 ]; then
    echo "would write: 32 random bytes (hex) to $token, mode 0600, owner $user"
else
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$token.new" && echo >>"$token.new")
    chmod 0600 "$token.new"
    [ "$system_mode" = 0 ] || chown "$user:$user" "$token.new"
    mv -f "$token.new" "$token"
    say "generated $token"
fi
for s in ipc.token ctrader_client_secret ctrader_tokens.json; do
    f="$secrets/$s"
    if [ ! -e "$f" ]; then
        [ "$s" = ipc.token ] || say "missing $f (needed by broker mode live/shadow; see docs/OPERATIONS.md, Secrets)"
        continue
    fi
    m="$(stat -c %a "$f")"
    case "$m" in
        600|400) ;;
        *) say "WARNING: $f has mode $m; the daemons refuse it until: chmod 600 $f" ;;
    esac
done

# --- 6. age (backup.sh encrypts with it) ---------------------------------------------------------
if [ "$system_mode" = 1 ]; then
    run "$repo/scripts/ops_deps.sh"
else
    say "--root mode: not installing packages (scripts/ops_deps.sh installs age)"
fi

# --- 7. systemd --------------------------------------------------------------------------------
if [ "$system_mode" = 1 ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
else
    say "not reloading systemd (--root mode or systemd not running)"
fi

say "done. Next: edit $etc/executor-live.json, add the secrets and models, then"
say "  executor check --config /etc/oracle-trader/executor-live.json"
say "  systemctl enable --now oracle-trader.target   (see docs/OPERATIONS.md)"
say "Backups: put an age public key (age1…, its secret key kept OFF this machine) in $etc/backup-recipients.txt, then"
say "  systemctl enable --now oracle-trader-backup.timer   (docs/OPERATIONS.md, Backups)"
