#!/usr/bin/env bash
# Sets up the machine and the project (idempotent), then runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
npm run --silent lint
exec npx vitest run "$@"
