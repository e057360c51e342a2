#!/usr/bin/env bash
# `make rehearsal` on a plain Debian 12, as a new user would run it: a container from a minbase
# bookworm (debootstrap) with only python3, make and ca-certificates added, the repository copied
# in (git archive of FRESH_DEBIAN_REF, default HEAD: uncommitted changes are not tested).
# It passes when the rehearsal exits 0. The machines we develop on hide what a fresh Debian lacks
# (pyenv's Python first on PATH, Node preinstalled, pip indexes and constraints configured); the
# container has none of that.
#
# Needs root (it runs its own dockerd). Uses Debian's docker.io and debootstrap (installed when
# missing), an engine on a private socket with no bridge and no iptables changes (containers use
# the host's loopback: --network host), and no image registry: the image is imported from the
# debootstrap tree, which is kept in FRESH_DEBIAN_DIR for the next run. The engine is stopped and
# the container removed at the end, whatever happened.
#   FRESH_DEBIAN_DIR          work directory (default /tmp/cutover-fresh-debian)
#   FRESH_DEBIAN_PORT_OFFSET  added to every sandbox port (default 3000), beside other sandboxes
#   FRESH_DEBIAN_REF          git ref to test (default HEAD)
#   FRESH_DEBIAN_CA_BUNDLE    CA bundle the container's pip and npm trust for downloads (default
#                             the host's /etc/ssl/certs/ca-certificates.crt; given to pip and npm
#                             through the container's environment only)
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${FRESH_DEBIAN_DIR:-/tmp/cutover-fresh-debian}
PORT_OFFSET=${FRESH_DEBIAN_PORT_OFFSET:-3000}
REF=${FRESH_DEBIAN_REF:-HEAD}
CA_BUNDLE=${FRESH_DEBIAN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
IMAGE=debian:bookworm-slim
ROOTFS="$DIR/rootfs-bookworm"
SOCKET="unix://$DIR/docker.sock"
CONTAINER="cutover-fresh-debian-$$"
BOOTSTRAP_TIMEOUT_SECONDS=3600  # the whole container run: apt, pip, npm and one rehearsal

if [ "$(id -u)" -ne 0 ]; then echo "test-fresh-debian: needs root (it runs its own dockerd)" >&2; exit 1; fi
[[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] || { echo "test-fresh-debian: FRESH_DEBIAN_PORT_OFFSET must be a number" >&2; exit 2; }
[ -r "$CA_BUNDLE" ] || { echo "test-fresh-debian: CA bundle $CA_BUNDLE not readable" >&2; exit 2; }
commit=$(git rev-parse --verify "$REF^{commit}")
if [ "$REF" = HEAD ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "test-fresh-debian: note: testing commit $commit; uncommitted changes are not included"
fi

started=$(date +%s)
log() { echo "test-fresh-debian: [$(( $(date +%s) - started )) s] $*"; }

missing=()
for package in docker.io debootstrap; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  # policy-rc.d 101: the system docker service must not start; this script runs its own engine.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

mkdir -p "$DIR"
if [ ! -f "$ROOTFS/.debootstrap-done" ]; then
  log "debootstrap --variant=minbase bookworm (about 2 minutes; kept in $ROOTFS)"
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase bookworm "$ROOTFS" >"$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  touch "$ROOTFS/.debootstrap-done"
fi

dockerd_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$dockerd_pid" ]; then
    docker -H "$SOCKET" rm -f "$CONTAINER" >/dev/null 2>&1 || true
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
    log "engine stopped, container removed"
  fi
  exit "$rc"
}
trap cleanup EXIT INT TERM

log "starting dockerd on $SOCKET"
dockerd --host "$SOCKET" --data-root "$DIR/docker" --exec-root "$DIR/exec" --pidfile "$DIR/docker.pid" \
  --bridge=none --iptables=false --ip-forward=false --ip-masq=false >"$DIR/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 60); do docker -H "$SOCKET" info >/dev/null 2>&1 && break; sleep 1; done
docker -H "$SOCKET" info >/dev/null 2>&1 || { tail -20 "$DIR/dockerd.log" >&2; exit 1; }
# The image is the debootstrap tree, imported again each run (2-3 s): no stale layer survives.
docker -H "$SOCKET" rmi -f "$IMAGE" >/dev/null 2>&1 || true
tar -C "$ROOTFS" --exclude=./.debootstrap-done -c . | docker -H "$SOCKET" import - "$IMAGE" >/dev/null

# Inside: unpack the repo, add python3 make ca-certificates, move the sandbox ports by the
# offset (PORT_SETTINGS is the list of them), then the README's command.
inside='set -euo pipefail
t0=$(date +%s)
mkdir /repo && tar -C /repo -x
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends python3 make ca-certificates >/dev/null
echo "container: python3 make ca-certificates installed in $(( $(date +%s) - t0 )) s; $(python3 --version); no node: $(command -v node || echo absent)"
cd /repo
eval "$(python3 - <<"PYTHON"
import os
from sandbox.config import PORT_SETTINGS
offset = int(os.environ["PORT_OFFSET"])
for name, default in PORT_SETTINGS.values():
    print(f"export {name}={default + offset}")
PYTHON
)"
t1=$(date +%s)
rc=0; make rehearsal || rc=$?
echo "container: make rehearsal exited $rc after $(( $(date +%s) - t1 )) s (bootstrap included)"
if [ -f rehearsal-result.json ]; then
  python3 - <<"PYTHON"
import json
result = json.load(open("rehearsal-result.json"))
print("container: rehearsal-result.json: outcome", result["outcome"], "behaved_as_expected", result["behaved_as_expected"])
PYTHON
fi
exit $rc'

log "make rehearsal in a plain Debian 12 container (commit ${commit:0:12}, ports +$PORT_OFFSET)"
rc=0
git archive --format=tar "$commit" | timeout "$BOOTSTRAP_TIMEOUT_SECONDS" docker -H "$SOCKET" run -i --name "$CONTAINER" \
  --network host --shm-size 1g \
  -v "$CA_BUNDLE:/run/host-ca.crt:ro" -e PIP_CERT=/run/host-ca.crt -e NODE_EXTRA_CA_CERTS=/run/host-ca.crt \
  -e PORT_OFFSET="$PORT_OFFSET" \
  "$IMAGE" bash -c "$inside" || rc=$?
if [ "$rc" -eq 0 ]; then
  log "PASS: make rehearsal works on a plain Debian 12"
else
  log "FAIL: exit $rc"
fi
exit "$rc"
