#!/usr/bin/env bash
# The main job: sets up (idempotent), checks the machine, then validates and summarizes the example manifests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
tpod() { packages/cli/bin/tpod "$@"; }
tpod doctor
echo
tpod manifest validate examples/*/pod.yaml
for manifest in examples/*/pod.yaml; do
  echo
  tpod manifest show "$manifest" --pricing examples/pricing.yaml
done
