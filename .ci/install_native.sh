#!/usr/bin/env bash
# Installs what tests/daemon/native_listener_test.ts drives: nmap (connect scans), iproute2 (ip) and
# procps (sysctl) for a network namespace with net.ipv6.bindv6only=1, util-linux (unshare,
# nsenter), python3 for tests/integration/socket_activation_test.ts's launcher. Idempotent: installs only what is missing, runs apt-get update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_native nmap iproute2 procps util-linux python3
