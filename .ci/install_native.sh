#!/usr/bin/env bash
# Installs what tests/native_listener_test.ts drives: nmap (connect scans), iproute2 (ip) and
# procps (sysctl) for a network namespace with net.ipv6.bindv6only=1, util-linux (unshare,
# nsenter), python3 for tests/socket_activation_test.ts's launcher. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
declare -A PACKAGE_OF=([nmap]=nmap [ip]=iproute2 [sysctl]=procps [unshare]=util-linux [nsenter]=util-linux [python3]=python3)
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
if ((${#missing[@]} == 0)); then
  echo "install_native: all present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install_native: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
