#!/usr/bin/env bash
# Installs what tests/systemd_live_test.ts needs to boot a real systemd (PID 1) in a container of
# this machine's own image and run the shipped units in it as an admin would: systemd-nspawn
# (package systemd-container), nsenter (util-linux), ss (iproute2), and inside the container
# fail2ban with its journal backend (python3-systemd) and logrotate. Idempotent: installs only
# what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(systemd systemd-container util-linux iproute2 fail2ban python3-systemd logrotate)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_systemd: all present (${PACKAGES[*]})"
  exit 0
fi

echo "install_systemd: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# No service may start on the host during the install (fail2ban's postinst would start one that
# lingers); the tests start their own inside the container. policy-rc.d exit 101 = "not allowed"
# (only when the machine has none of its own; it is removed again afterwards).
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
