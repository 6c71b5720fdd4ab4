# shellcheck shell=bash
# Sourced by .ci/install_*.sh: installs Debian packages that are missing, and only those.
#
#   install_missing NAME PACKAGE...
#
# Prints "NAME: all present (...)" when nothing is missing; else runs apt-get update, then
# installs the missing packages without their recommends. No service may start during the
# install (fail2ban's or prometheus' postinst would start one that lingers; the tests run their
# own): a policy-rc.d that answers 101 ("not allowed") is in place meanwhile, only when the
# machine has none of its own, and is removed again afterwards.
install_missing() {
  local name=$1 package
  shift
  local missing=()
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then
    echo "$name: all present ($*)"
    return 0
  fi
  echo "$name: installing ${missing[*]}"
  local sudo="" policy=/usr/sbin/policy-rc.d own_policy=false
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    own_policy=true
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" </dev/null || status=$?
  if $own_policy; then $sudo rm -f "$policy"; fi
  return "$status"
}
