#!/usr/bin/env bash
# Installs what tests/report/html_test.ts drives: Debian's chromium (headless, opens the HTML
# report) and a font for its text (fonts-dejavu-core; chromium only recommends fonts, and
# recommends are not installed). Idempotent: installs only what is missing, runs apt-get update
# only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_report chromium fonts-dejavu-core
