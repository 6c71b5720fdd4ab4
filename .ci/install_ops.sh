#!/usr/bin/env bash
# Installs the real tools that tests/systemd_test.ts, tests/fail2ban_test.ts and
# tests/logrotate_test.ts run: systemd-analyze (package systemd), fail2ban with pyinotify (the
# backend its `auto` picks on Debian) and python3-systemd (backend = systemd), logrotate, gzip
# and strace. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(systemd fail2ban python3-pyinotify python3-systemd logrotate gzip strace)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_ops: all present (${PACKAGES[*]})"
  exit 0
fi

echo "install_ops: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# No service may start during the install: the tests run their own fail2ban-server, and a
# system one started by the package's postinst would linger. policy-rc.d exit 101 = "not allowed"
# (only when the machine has none of its own; it is removed again afterwards).
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
