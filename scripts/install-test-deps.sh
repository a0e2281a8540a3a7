#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: headless
# Chromium for the UI tests, a C toolchain for the race detector (cgo),
# iproute2 for the partition test (network namespaces).
# Idempotent: does nothing when already there.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v ip >/dev/null 2>&1 || need+=(iproute2) # network namespaces for the partition test (R2)
[ -e /usr/include/stdlib.h ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
