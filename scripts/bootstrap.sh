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

# unleash-server 6.x (sandbox/unleash) for SANDBOX_FLAG_BACKEND=unleash: Node 20 and the npm
# packages pinned by package-lock.json (`npm ci` installs exactly those; no install scripts run).
UNLEASH_DIR=sandbox/unleash
if ! command -v node >/dev/null 2>&1; then
  echo "bootstrap: error: Node.js 20 is required for the Unleash flag backend (unleash-server 6.x); 'node' is not on PATH" >&2
  exit 1
fi
node_version="$(node --version)"
if [[ "$node_version" != v20.* ]]; then
  echo "bootstrap: error: unleash-server 6.x needs Node.js 20; found $node_version" >&2
  exit 1
fi
node_stamp="$UNLEASH_DIR/node_modules/.installed-$(cat "$UNLEASH_DIR/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -f "$node_stamp" ]; then
  echo "bootstrap: installing unleash-server into $UNLEASH_DIR/node_modules (npm ci, ~40 s)"
  (cd "$UNLEASH_DIR" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  rm -f "$UNLEASH_DIR"/node_modules/.installed-*
  touch "$node_stamp"
fi
