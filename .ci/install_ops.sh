#!/usr/bin/env bash
# Installs the real tools that tests/system/systemd_units_test.ts, tests/system/fail2ban_test.ts and
# tests/system/logrotate_test.ts run: systemd-analyze (package systemd), fail2ban with pyinotify (the
# backend its `auto` picks on Debian) and python3-systemd (backend = systemd), logrotate, gzip
# and strace. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_ops systemd fail2ban python3-pyinotify python3-systemd logrotate gzip strace
