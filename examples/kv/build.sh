#!/usr/bin/env bash
# Builds the image examples/kv/pod.yaml runs, into the local Podman store (no registry needed): a scratch image
# holding Debian's redis-server and redis-cli with exactly the libraries `ldd` lists.
# Nothing is installed on this machine: the .debs are fetched with `apt-get download` and unpacked with
# `dpkg -x` into a temporary directory (no redis service is set up or started). Needs apt's package lists
# (fetched with `apt-get update` when they are missing and we are root), buildah, dpkg and ldd.
set -euo pipefail
tag="${1:-localhost/tpod-redis:latest}"
for tool in buildah apt-get apt-cache dpkg ldd; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found" >&2; exit 1; }
done
# A machine whose package lists were cleaned (or never fetched) knows no packages: fetch them once, as root.
if ! apt-cache show redis-tools >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo "build.sh: apt's package lists lack redis-tools: running apt-get update" >&2
  apt-get update -qq >&2 || true
fi
if ! apt-cache show redis-tools >/dev/null 2>&1; then
  echo "build.sh: apt knows no redis-tools package; run apt-get update (as root) first" >&2
  exit 1
fi
work="$(mktemp -d)"
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# redis-tools holds the binaries (redis-server is the same binary as redis-check-rdb); its library
# dependencies come along so that ldd resolves them even where they are not installed.
libs="$(apt-cache depends --no-recommends --no-suggests redis-tools |
  awk '$1 == "Depends:" && $2 ~ /^lib/ && $2 !~ /^libc6$/ { print $2 }' | sort -u)"
mkdir -p "$work/debs" "$work/root"
# apt-get download writes into the current directory; as root it warns that it cannot drop privileges there.
(cd "$work/debs" && apt-get download -q redis-tools $libs 2> >(grep -v '^W: Download is performed unsandboxed' >&2))
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done

bin="$work/root/usr/bin"
[ -x "$bin/redis-check-rdb" ] && [ -x "$bin/redis-cli" ] || { echo "build.sh: redis binaries missing" >&2; exit 1; }
libpath="$work/root/usr/lib/x86_64-linux-gnu:$work/root/lib/x86_64-linux-gnu"

# Every library either binary needs, as ldd resolves it (the unpacked ones first), plus the loader.
deps="$work/deps"
for b in "$bin/redis-check-rdb" "$bin/redis-cli"; do
  out="$(LD_LIBRARY_PATH="$libpath" ldd "$b")"
  if grep -q "not found" <<<"$out"; then
    echo "build.sh: ldd cannot resolve every library of $(basename "$b"):" >&2
    grep "not found" <<<"$out" >&2
    exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
done | sort -u >"$deps"

ctr="$(buildah from scratch)"
buildah copy -q "$ctr" "$bin/redis-check-rdb" /usr/bin/redis-server >/dev/null
buildah copy -q "$ctr" "$bin/redis-cli" /usr/bin/redis-cli >/dev/null
while read -r lib; do
  # In the image each library lives where the loader looks for it: an unpacked one at its path in the package.
  dest="${lib#"$work/root"}"
  buildah copy -q "$ctr" "$(readlink -f "$lib")" "$dest" >/dev/null
done <"$deps"
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --entrypoint '["/usr/bin/redis-server"]' --cmd '[]' --workingdir /data "$ctr"
buildah commit -q "$ctr" "$tag" >/dev/null
echo "$tag"
