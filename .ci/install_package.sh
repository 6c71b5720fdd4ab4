#!/usr/bin/env bash
# Installs what tests/package_test.ts drives: dpkg-deb and dpkg-shlibdeps' kin (dpkg-dev), lintian
# (checks the .deb), man-db (`man` renders the man page), deb-systemd-helper/deb-systemd-invoke
# (init-system-helpers, used by the maintainer scripts), binutils (readelf: the binary's shared
# library dependencies), and fail2ban with pyinotify and iptables (the ban action Debian's
# fail2ban uses by default): the install test boots this machine's own image in a container
# without network, where apt can install only the local .deb, so fail2ban must already be on the
# host. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(dpkg-dev lintian man-db init-system-helpers binutils fail2ban python3-pyinotify iptables)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_package: all present (${PACKAGES[*]})"
  exit 0
fi

echo "install_package: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# No service may start during the install (fail2ban's postinst would start a system
# fail2ban-server here): policy-rc.d exit 101 = "not allowed", only when the machine has none of
# its own; it is removed again afterwards.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
