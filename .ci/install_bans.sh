#!/usr/bin/env bash
# Installs what the ban tests drive (tests/system/fail2ban_bans_test.ts, fail2ban_reports_test.ts,
# crowdsec_bans_test.ts; CrowdSec itself comes from .ci/install_crowdsec.sh): fail2ban with
# pyinotify, the firewalls its actions run (nftables, iptables/ip6tables), curl (the AbuseIPDB and
# webhook actions, and the tests' client), openssl (the test CA) and ca-certificates (the bundle
# curl reads, extended inside the test's sandbox), unshare/nsenter (util-linux) and ip (iproute2)
# for the sandbox's network namespace. Idempotent: installs only what is missing, runs apt-get
# update only then.
set -euo pipefail
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
install_missing install_bans fail2ban python3-pyinotify nftables iptables curl openssl \
  ca-certificates util-linux iproute2
