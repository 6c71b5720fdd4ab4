#!/usr/bin/env bash
# Installs what tests/metrics/metrics_test.ts drives: Debian's prometheus package, which brings the
# Prometheus server and promtool. The tests run their own server (own config, data directory and
# port); no system service may be left running. Idempotent: installs only what is missing, runs
# apt-get update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_metrics prometheus
# Not enabled either: a system booted from this image (the systemd container tests) would start
# it on port 9090. A service started anyway (a policy-rc.d of the machine's own allowed it) stops.
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable prometheus.service >/dev/null 2>&1 || true
  if systemctl is-active --quiet prometheus.service 2>/dev/null; then
    $SUDO systemctl stop prometheus.service
  fi
fi
