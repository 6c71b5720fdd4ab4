#!/usr/bin/env bash
# Installs what tests/report_html_test.ts drives: Debian's chromium (headless, to open the HTML
# report). Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v chromium >/dev/null 2>&1; then
  echo "install_report: all present (chromium)"
  exit 0
fi
echo "install_report: installing chromium"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium </dev/null
