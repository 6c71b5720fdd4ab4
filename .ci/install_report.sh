#!/usr/bin/env bash
# Installs what tests/report_html_test.ts drives: Debian's chromium (headless, opens the HTML
# report) and a font for its text (fonts-dejavu-core; chromium only recommends fonts, and
# recommends are not installed). Idempotent: installs only what is missing, runs apt-get update
# only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(chromium fonts-dejavu-core)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_report: all present (${PACKAGES[*]})"
  exit 0
fi

echo "install_report: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
