#!/usr/bin/env bash
# Installs what the core tests drive besides Deno: a C compiler for the load generator that the
# repository carries (tests/testdata/knock.c), nmap (connect scans, -sT), util-linux (prlimit,
# setpriv, unshare), iproute2 (ip, ss: network namespaces) and mount. Idempotent: installs only
# what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
declare -A PACKAGE_OF=(
  [cc]=gcc [nmap]=nmap [prlimit]=util-linux [setpriv]=util-linux [unshare]=util-linux
  [ip]=iproute2 [ss]=iproute2 [mount]=mount
)
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
if ((${#missing[@]} == 0)); then
  echo "install_core: all present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install_core: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
