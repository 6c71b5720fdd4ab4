#!/usr/bin/env bash
# Installs a net-bouncer binary and the files from contrib/ (systemd units, fail2ban filter and
# jail, logrotate config) in their places. Run as root on the target machine, or with --prefix to
# stage the files under a root directory (packaging, tests).
#
#   scripts/install.sh --binary ./net-bouncer-x86_64-unknown-linux-gnu
#   scripts/install.sh --binary dist/net-bouncer --prefix /tmp/pkgroot --dry-run
#
# Program files (binary, units, filter) are replaced on every run: that is how an upgrade works.
# Files an admin edits (the jail, the logrotate config) are kept when present unless --force.
# Tested by tests/system/install_test.ts.
set -euo pipefail

PROG="install.sh"
# contrib/ sits beside scripts/ (in the repository and in the release's contrib tarball).
CONTRIB="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/contrib"
BINARY_MODE=0755
CONFIG_MODE=0644

usage() {
  cat <<EOF
Usage: $PROG --binary PATH [--prefix DIR] [--dry-run] [--force]

Installs net-bouncer and its service files:
  PATH                                        -> /usr/local/bin/net-bouncer (mode $BINARY_MODE)
  contrib/systemd/*.service, *.socket         -> /etc/systemd/system/
  contrib/fail2ban/filter.d/net-bouncer.conf  -> /etc/fail2ban/filter.d/
  contrib/fail2ban/jail.d/net-bouncer.conf    -> /etc/fail2ban/jail.d/  (kept if present)
  contrib/logrotate/net-bouncer               -> /etc/logrotate.d/      (kept if present)
Config files get mode $CONFIG_MODE.

Options:
  --binary PATH  the net-bouncer binary to install (a release download or dist/net-bouncer)
  --prefix DIR   install under DIR instead of / (for packaging); systemctl is not run
  --dry-run      print what would be done, change nothing
  --force        also replace an existing jail and logrotate config
  -h, --help     show this help
EOF
}

die_usage() {
  echo "$PROG: error: $1" >&2
  echo "Try '$PROG --help'." >&2
  exit 2
}

binary=""
prefix=""
dry_run=false
force=false
while (($# > 0)); do
  case "$1" in
    --binary | --prefix)
      if (($# < 2)) || [[ -z "$2" ]]; then die_usage "$1 needs a value"; fi
      if [[ "$1" == --binary ]]; then binary="$2"; else prefix="$2"; fi
      shift 2
      ;;
    --binary=* | --prefix=*)
      value="${1#*=}"
      [[ -n "$value" ]] || die_usage "${1%%=*} needs a value"
      if [[ "$1" == --binary=* ]]; then binary="$value"; else prefix="$value"; fi
      shift
      ;;
    --dry-run) dry_run=true && shift ;;
    --force) force=true && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die_usage "unknown option: $1" ;;
  esac
done

[[ -n "$binary" ]] || die_usage "--binary PATH is required"
[[ -f "$binary" ]] || die_usage "binary not found: $binary"
if [[ -n "$prefix" ]]; then
  [[ -d "$prefix" ]] || die_usage "prefix is not a directory: $prefix"
  prefix="$(cd "$prefix" && pwd)"
  # "/" as prefix would give "//etc/..."; it means the real system anyway.
  [[ "$prefix" != / ]] || prefix=""
fi
# Every unit in contrib/systemd (net-bouncer.service, its variants, the socket-activated pair).
UNITS=() SERVICES=()
for source in "$CONTRIB"/systemd/*.service "$CONTRIB"/systemd/*.socket; do
  [[ -f "$source" ]] || continue
  UNITS+=("$(basename "$source")")
  [[ "$source" == *.service ]] && SERVICES+=("$(basename "$source")")
done
for source in "$CONTRIB/systemd/net-bouncer.service" "$CONTRIB/fail2ban/filter.d/net-bouncer.conf" \
  "$CONTRIB/fail2ban/jail.d/net-bouncer.conf" "$CONTRIB/logrotate/net-bouncer"; do
  [[ -f "$source" ]] || {
    echo "$PROG: error: missing $source (run from a checkout or the contrib tarball)" >&2
    exit 1
  }
done

# Prints a command (shell-quoted), and runs it unless --dry-run.
run() {
  local quoted
  quoted="$(printf '%q ' "$@")"
  echo "${quoted% }"
  if ! $dry_run; then "$@"; fi
}

# Installs SOURCE as DEST (a full path under the prefix) with MODE.
put() {
  local mode="$1" source="$2" dest="$3"
  run install -D -m "$mode" "$source" "$dest"
}

# Like put, but keeps an existing DEST (an admin's edited config) unless --force.
put_config() {
  local source="$1" dest="$2"
  if [[ -e "$dest" ]] && ! $force; then
    echo "# kept existing $dest (--force replaces it; the new version is $source)"
    return
  fi
  put "$CONFIG_MODE" "$source" "$dest"
}

bin_dest="$prefix/usr/local/bin/net-bouncer"
put "$BINARY_MODE" "$binary" "$bin_dest"
for unit in "${UNITS[@]}"; do
  put "$CONFIG_MODE" "$CONTRIB/systemd/$unit" "$prefix/etc/systemd/system/$unit"
done
put "$CONFIG_MODE" "$CONTRIB/fail2ban/filter.d/net-bouncer.conf" \
  "$prefix/etc/fail2ban/filter.d/net-bouncer.conf"
put_config "$CONTRIB/fail2ban/jail.d/net-bouncer.conf" "$prefix/etc/fail2ban/jail.d/net-bouncer.conf"
put_config "$CONTRIB/logrotate/net-bouncer" "$prefix/etc/logrotate.d/net-bouncer"

if [[ -z "$prefix" ]]; then
  # Fails here, not at service start, when the download is for another platform.
  $dry_run || "$bin_dest" --version
  if command -v systemctl >/dev/null 2>&1; then
    run systemctl daemon-reload
    # An upgrade: restart the services that are running now (try-restart leaves stopped ones;
    # a socket unit keeps its listening sockets, so connections wait during the restart).
    run systemctl try-restart "${SERVICES[@]}"
  fi
  cat <<EOF
# Next (recommended): the socket-activated pair, port 22 (a drop-in adds ports: see README)
#   systemctl enable --now net-bouncer-activated.socket
# or the standalone service: ports in /etc/default/net-bouncer (NET_BOUNCER_ARGS=-p 22 -p 2323)
#   systemctl enable --now net-bouncer.service
# then
#   systemctl reload fail2ban
EOF
fi
