#!/usr/bin/env bash
# One-time set-up on a fresh Debian 12 machine, run by `make rehearsal` and `make test`:
# Debian packages for the sandbox services, then a virtualenv with the pinned Python packages.
# Idempotent: each step is skipped when already done. Works as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(haproxy prometheus postgresql redis-server)
VENV=.venv
LOCK=requirements.lock

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # policy-rc.d 101: we run these servers ourselves on private ports; do not start the system ones.
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
fi

stamp="$VENV/.installed-$(sha256sum "$LOCK" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: creating $VENV from $LOCK"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q --no-deps -r "$LOCK"
  "$VENV/bin/pip" check
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
