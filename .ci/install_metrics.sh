#!/usr/bin/env bash
# Installs what tests/metrics_test.ts drives: Debian's prometheus package, which brings the
# Prometheus server and promtool. The tests run their own server (own config, data directory and
# port); no system service may be left running. Idempotent: installs only what is missing, runs
# apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "install_metrics: all present (prometheus, promtool)"
  exit 0
fi
echo "install_metrics: installing prometheus"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
# The package's postinst would start prometheus.service (listening on port 9090 for good):
# policy-rc.d exit 101 = "not allowed", only when the machine has none of its own; it is removed
# again afterwards.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
# --no-install-recommends: the node exporter and the web assets are not needed.
$SUDO apt-get install -y -qq --no-install-recommends prometheus </dev/null
# Not enabled either: a system booted from this image (the systemd container tests) would start
# it on port 9090. A service started anyway (a policy-rc.d of the machine's own allowed it) stops.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable prometheus.service >/dev/null 2>&1 || true
  if systemctl is-active --quiet prometheus.service 2>/dev/null; then
    $SUDO systemctl stop prometheus.service
  fi
fi
