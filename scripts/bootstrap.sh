#!/usr/bin/env bash
# Set-up on a fresh Debian 12 machine; the only prerequisites are root or sudo, make and python3.
#   scripts/bootstrap.sh             everything `make rehearsal` / `make test` need: the Debian
#                                    packages of the sandbox services and of the Rails app (blue),
#                                    the virtualenv, the Rails app's bundle (system gems only), and
#                                    with the project's own Node: the npm packages of unleash-server
#                                    and the TypeScript app (green), compiled by tsc.
#   scripts/bootstrap.sh --venv-only only python3-venv and the virtualenv (`make test-unit`).
# Idempotent and fast when done: each step is skipped when its stamp or packages are there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's python3, whatever else is first on PATH (pyenv, conda...): the lock is resolved for
# it, and a venv from another interpreter is rebuilt.
PYTHON=/usr/bin/python3
VENV=.venv
LOCK=requirements.lock
VENV_APT_PACKAGES=(python3-venv)
SANDBOX_APT_PACKAGES=(haproxy prometheus prometheus-alertmanager postgresql redis-server)
# Blue's gems: only Debian-packaged ones (rubygems.org is not reachable from the sandbox's machine).
RAILS_APT_PACKAGES=(ruby-rails ruby-pg puma ruby-prometheus-client-mmap ruby-redis ruby-sidekiq
                    ruby-sentry-rails ruby-lograge bundler)
# Stage 7's active scanners (Debian 12 packages; run against loopback with bounded time).
SECURITY_APT_PACKAGES=(wapiti sqlmap)
UNLEASH_DIR=sandbox/unleash
RAILS_DIR=sandbox/apps/rails
TYPESCRIPT_DIR=sandbox/apps/typescript

venv_only=false
case "${1:-}" in
  "") ;;
  --venv-only) venv_only=true ;;
  *) echo "usage: $0 [--venv-only]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  SUDO=(__needs_root_or_sudo__)
fi

apt_install() {  # installs the Debian packages among "$@" that are not installed yet
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${SUDO[0]:-}" = __needs_root_or_sudo__ ]; then
    echo "bootstrap: error: Debian packages ${missing[*]} are missing; run as root or install sudo" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # policy-rc.d 101: we run these servers ourselves on private ports; do not start the system ones.
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
}

if [ ! -x "$PYTHON" ]; then
  echo "bootstrap: error: $PYTHON not found: install Debian's python3 (apt-get install python3)" >&2
  exit 1
fi
if $venv_only; then
  apt_install "${VENV_APT_PACKAGES[@]}"
else
  apt_install "${VENV_APT_PACKAGES[@]}" "${SANDBOX_APT_PACKAGES[@]}" "${RAILS_APT_PACKAGES[@]}" "${SECURITY_APT_PACKAGES[@]}"
fi

# The stamp records what the venv was built from: the interpreter (path and version) and the lock.
# Any difference, or no stamp (an interrupted build, a venv from an older bootstrap), rebuilds it.
STAMP="$VENV/.bootstrap-stamp"
want_stamp="python=$(readlink -f "$PYTHON") version=$("$PYTHON" -c 'import platform; print(platform.python_version())') lock=$(sha256sum "$LOCK" | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want_stamp" ]; then
  if [ -e "$VENV" ] || [ -L "$VENV" ]; then
    echo "bootstrap: rebuilding $VENV (built from: $(cat "$STAMP" 2>/dev/null || echo 'unknown'); wanted: $want_stamp)"
    rm -rf "$VENV"
  fi
  echo "bootstrap: creating $VENV with $PYTHON from $LOCK (a few minutes the first time)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-deps -r "$LOCK"
  "$VENV/bin/pip" check
  echo "$want_stamp" > "$STAMP"
fi

$venv_only && exit 0

# unleash-server 6.x (sandbox/unleash) for SANDBOX_FLAG_BACKEND=unleash: the npm packages pinned
# by package-lock.json, installed by the project's npm (Node from the lock; sandbox/node.py).
"$VENV/bin/python" -m sandbox.node npm-ci "$UNLEASH_DIR"

# Blue: resolve its Gemfile.lock from the system gems only (`--local`: never rubygems.org). The
# stamp (Gemfile, lock and Ruby version) skips even `bundle check` (~2 s) when nothing changed.
RAILS_STAMP="$RAILS_DIR/tmp/.bundle-stamp"
want_rails="ruby=$(ruby -e 'print RUBY_VERSION') gems=$(cat "$RAILS_DIR/Gemfile" "$RAILS_DIR/Gemfile.lock" | sha256sum | cut -c1-16)"
if [ "$(cat "$RAILS_STAMP" 2>/dev/null)" != "$want_rails" ]; then
  (cd "$RAILS_DIR" && { bundle check >/dev/null 2>&1 || bundle install --local --quiet; })
  echo "$want_rails" > "$RAILS_STAMP"
fi

# Green: `npm ci` from its package-lock.json and the tsc build, with the project's Node (skipped
# when dist/ was built from the same lock, tsconfig and sources).
"$VENV/bin/python" -m sandbox.node npm-build "$TYPESCRIPT_DIR"
