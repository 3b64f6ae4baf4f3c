#!/usr/bin/env bash
# Checks that the container runtime the provider uses works on this machine, by doing once what a pod does:
#   1. build a busybox image from scratch with buildah (no registry needed),
#   2. start a container with --init (Podman's init is catatonit),
#   3. reach one container from another by name on one Podman network (pod-network DNS),
#   4. `nginx -t` a minimal config of the kind the provider's gateway writes.
# Each failure names the missing piece and the package that brings it. Takes a few seconds; scripts/setup.sh
# runs it after installing and caches a pass in .tools/selfcheck.ok, keyed on the installed package versions,
# the Podman network backend, containers.conf and this script. Run it by hand with `bash scripts/selfcheck.sh`
# (--force ignores the cache). TPOD_SKIP_SELFCHECK=1 (or TPOD_SKIP_SYSTEM=1) makes setup skip it.
set -euo pipefail

TPOD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
STAMP="$TPOD_ROOT/.tools/selfcheck.ok"
# The packages whose versions decide whether a cached pass still holds.
KEY_PACKAGES=(podman buildah runc conmon catatonit containernetworking-plugins
  golang-github-containernetworking-plugin-dnsname netavark aardvark-dns nginx busybox-static)

say() { printf '\033[1;34m[selfcheck]\033[0m %s\n' "$*" >&2; }
fail() {
  printf '\033[1;31m[selfcheck] FAILED:\033[0m %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '    %s\n' "$line" >&2; done
  exit 1
}

force=0
[ "${1:-}" = "--force" ] && force=1

network_backend() { podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null || echo unknown; }

cache_key() {
  {
    dpkg-query -W -f='${Package}=${Version}\n' "${KEY_PACKAGES[@]}" 2>/dev/null || true
    # Podman keeps the backend it chose on first use here (asking `podman info` costs a second).
    cat /var/lib/containers/storage/defaultNetworkBackend 2>/dev/null || true
    cat /etc/containers/containers.conf 2>/dev/null || true
    cat "${BASH_SOURCE[0]}"
  } | sha256sum | cut -d' ' -f1
}

key="$(cache_key)"
if [ "$force" -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ]; then
  say "passed before with these package versions (cached in .tools/selfcheck.ok; --force to run again)"
  exit 0
fi

for tool in podman buildah nginx; do
  command -v "$tool" >/dev/null || fail "$tool is not installed" "apt-get install $tool (scripts/setup.sh installs it)"
done
[ -x /bin/busybox ] || fail "/bin/busybox is missing: the check image (and examples/hello) is built from it" \
  "apt-get install busybox-static"

# Names unique to this run: other checks and test suites may use Podman at the same time.
id="tpod-selfcheck-$$-$RANDOM"
image="localhost/$id:latest"
work="$(mktemp -d)"
cleanup() {
  podman rm -f -t 0 "$id-server" >/dev/null 2>&1 || true
  podman network rm -f "$id" >/dev/null 2>&1 || true
  podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. An image from scratch + /bin/busybox, as examples/hello/build.sh makes one.
ctr=""
if ! ctr="$(buildah from scratch 2>&1)" ||
  ! err="$(buildah copy -q "$ctr" /bin/busybox /bin/busybox 2>&1 >/dev/null)" ||
  ! err="$(buildah commit -q --rm "$ctr" "$image" 2>&1 >/dev/null)"; then
  [ -n "${err:-}" ] || err="$ctr"
  buildah rm "$ctr" >/dev/null 2>&1 || true
  fail "buildah could not build an image from scratch + /bin/busybox" "$err"
fi
say "ok: buildah builds a busybox image from scratch"

# 2. --init: without catatonit every --init container fails with "container-init binary not found".
if ! err="$(podman run --rm --init "$image" /bin/busybox true 2>&1)"; then
  hint="Podman's --init runs catatonit: apt-get install catatonit (a Recommends of podman, which --no-install-recommends skips)"
  case "$err" in *container-init*) ;; *) hint="$hint; see Podman's message above" ;; esac
  fail "a container with --init does not start" "podman: $err" "$hint"
fi
say "ok: a container with --init starts (catatonit)"

# 3. Pod-network DNS: a client reaches a server by its container name on one network. busybox nc, not wget:
# busybox-static's wget resolves through glibc's NSS, which a scratch image lacks.
backend="$(network_backend)"
case "$backend" in
  cni) dns_hint="the CNI backend resolves names with the dnsname plugin: apt-get install golang-github-containernetworking-plugin-dnsname (networks created before it was installed have no DNS: recreate them)" ;;
  netavark) dns_hint="the netavark backend resolves names with aardvark-dns: apt-get install aardvark-dns" ;;
  *) dns_hint="Podman reports network backend '$backend'" ;;
esac
if ! err="$(podman network create "$id" 2>&1 >/dev/null)"; then
  fail "podman cannot create a network" "podman: $err"
fi
if ! err="$(podman run -d --init --name "$id-server" --network "$id" "$image" \
  /bin/busybox httpd -f -p 8080 -h / 2>&1 >/dev/null)"; then
  fail "a container does not start on a Podman network" "podman: $err"
fi
answer=""
for _ in 1 2 3 4 5; do
  answer="$(podman run --rm --network "$id" "$image" /bin/busybox sh -c \
    "printf 'GET /none HTTP/1.0\r\n\r\n' | /bin/busybox nc -w 2 $id-server 8080" 2>&1 || true)"
  case "$answer" in HTTP/1.*) break ;; esac
  sleep 0.5
done
case "$answer" in
  HTTP/1.*) ;;
  *)
    fail "two containers on one Podman network cannot reach each other by name (network backend: $backend)" \
      "answer: ${answer:-none}" "$dns_hint"
    ;;
esac
say "ok: containers on one network reach each other by name ($backend backend)"

# 4. nginx: the directives the provider's gateway config relies on (map, keepalive upstream over a unix
# socket, proxy, reuseport), checked without binding anything.
mkdir -p "$work/tmp"
cat >"$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  map \$host \$tpod_target { default node; }
  upstream node { server unix:$work/node.sock; keepalive 8; }
  server {
    listen 127.0.0.1:1 reuseport;
    location / { proxy_pass http://\$tpod_target; proxy_http_version 1.1; proxy_buffering off; }
  }
}
CONF
if ! err="$(nginx -t -q -p "$work" -c "$work/nginx.conf" -e stderr 2>&1)"; then
  fail "nginx -t refuses a minimal gateway config" "nginx: $err" "apt-get install nginx (Debian 12's nginx 1.22 passes)"
fi
say "ok: nginx -t accepts a gateway config"

mkdir -p "$(dirname "$STAMP")"
echo "$key" >"$STAMP"
say "passed"
