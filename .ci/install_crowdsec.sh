#!/usr/bin/env bash
# Installs CrowdSec (Debian 12 package, 1.4.x) for tests/system/crowdsec_test.ts. Idempotent and offline
# apart from the Debian mirror.
#
# - The package's postinst registers with the online Central API unless
#   /etc/crowdsec/online_api_credentials.yaml exists (README.Debian): a comment line keeps it
#   offline, so it must be in place BEFORE the install.
# - No systemd as PID 1 in CI: a policy-rc.d that answers 101 keeps the maintainer scripts from
#   starting the service (which would fail, or take ports 8080 and 6060). The tests run crowdsec
#   from a config of their own and do not need the packaged service.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ONLINE_CREDENTIALS=/etc/crowdsec/online_api_credentials.yaml
POLICY_RC=/usr/sbin/policy-rc.d

if [ ! -e "$ONLINE_CREDENTIALS" ]; then
  mkdir -p /etc/crowdsec
  echo "# Offline: no Central API registration (see /usr/share/doc/crowdsec/README.Debian)" \
    >"$ONLINE_CREDENTIALS"
fi

# tzdata: the replay tests run crowdsec (Go, which reads /usr/share/zoneinfo) in Asia/Tokyo.
missing=()
command -v crowdsec >/dev/null && command -v cscli >/dev/null || missing+=(crowdsec)
[ -e /usr/share/zoneinfo/Asia/Tokyo ] || missing+=(tzdata)

if [ "${#missing[@]}" -gt 0 ]; then
  # Forbid service starts during the install; restore a pre-existing policy-rc.d afterwards.
  backup=""
  if [ -e "$POLICY_RC" ]; then
    backup="$(mktemp)"
    cp -p "$POLICY_RC" "$backup"
  fi
  restore_policy() {
    if [ -n "$backup" ]; then
      mv -f "$backup" "$POLICY_RC"
    else
      rm -f "$POLICY_RC"
    fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
  chmod 755 "$POLICY_RC"

  # apt-get update only when the package lists do not know the packages yet.
  for package in "${missing[@]}"; do
    if ! apt-cache show "$package" >/dev/null 2>&1; then
      apt-get update -qq
      break
    fi
  done
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  restore_policy
  trap - EXIT
fi

# If the packaged service did get started (a machine with systemd), stop and disable it: the tests
# bring their own crowdsec and must not share ports or the packaged database with it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl disable --now crowdsec.service >/dev/null 2>&1 || true
fi

# The first line only, without a pipe into head (SIGPIPE would fail the script under pipefail).
version="$(crowdsec -version 2>&1)"
echo "${version%%$'\n'*}"
