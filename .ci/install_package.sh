#!/usr/bin/env bash
# Installs what tests/system/package_test.ts drives: dpkg-deb and dpkg-shlibdeps' kin (dpkg-dev), lintian
# (checks the .deb), man-db (`man` renders the man page), deb-systemd-helper/deb-systemd-invoke
# (init-system-helpers, used by the maintainer scripts), binutils (readelf: the binary's shared
# library dependencies), and fail2ban with pyinotify and iptables (the ban action Debian's
# fail2ban uses by default): the install test boots this machine's own image in a container
# without network, where apt can install only the local .deb, so fail2ban must already be on the
# host. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_package dpkg-dev lintian man-db init-system-helpers binutils fail2ban \
  python3-pyinotify iptables
