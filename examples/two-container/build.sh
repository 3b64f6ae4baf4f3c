#!/usr/bin/env bash
# Builds the image examples/two-container/pod.yaml runs: the same busybox-only scratch image as examples/hello
# (both containers use it, each with its own command).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../hello/build.sh" "${1:-localhost/tpod-busybox:latest}"
