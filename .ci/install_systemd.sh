#!/usr/bin/env bash
# Installs what tests/system/systemd_live_test.ts needs to boot a real systemd (PID 1) in a container of
# this machine's own image and run the shipped units in it as an admin would: systemd-nspawn
# (package systemd-container), nsenter (util-linux), ss (iproute2), and inside the container
# fail2ban with its journal backend (python3-systemd) and logrotate. Idempotent: installs only
# what is missing, runs apt-get update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_systemd systemd systemd-container util-linux iproute2 fail2ban \
  python3-systemd logrotate
