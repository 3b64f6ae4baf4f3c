#!/usr/bin/env bash
# Builds the image examples/hello/pod.yaml runs, into the local Podman store (no registry needed):
# a scratch image holding only busybox-static's /bin/busybox and a default /www/index.html.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${1:-localhost/tpod-busybox:latest}"
[ -x /bin/busybox ] || { echo "build.sh: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }
ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy -q "$ctr" /bin/busybox /bin/busybox >/dev/null
buildah copy -q "$ctr" "$here/index.html" /www/index.html >/dev/null
buildah config --entrypoint '[]' --cmd '["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]' "$ctr"
buildah commit -q "$ctr" "$tag" >/dev/null
echo "$tag"
