#!/usr/bin/env bash
# The main job: set up (idempotent), start the local devnet in the background, build the examples/hello image
# with buildah, deploy it with `tpod deploy`, fetch its URL and show the answer. The devnet keeps running so you
# can go on (tpod pods, tpod logs, ...); `tpod devnet down` stops it (its pods go with it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/setup.sh
tpod() { packages/cli/bin/tpod "$@"; }
say() { printf '\033[1;32m[start]\033[0m %s\n' "$*" >&2; }

home="${TPOD_HOME:-$HOME/.tpod}"
mkdir -p "$home"
log="$home/devnet.log"

# 1. The devnet: reuse a running one, else start one in the background and wait for its ready line.
if tpod devnet status >/dev/null 2>&1; then
  say "a devnet is already running: using it ($(tpod devnet status | head -1))"
else
  say "starting the devnet in the background (log: $log)"
  ready="$(mktemp)"
  nohup packages/cli/bin/tpod devnet up --json >"$ready" 2>"$log" </dev/null &
  devnet_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$ready" ] && break
    if ! kill -0 "$devnet_pid" 2>/dev/null; then
      say "the devnet did not start; its log:"
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$ready" ] || { say "no ready line after 60 s; see $log"; exit 1; }
  say "devnet ready: $(head -c 300 "$ready")..."
  rm -f "$ready"
fi

# 2. The image examples/hello/pod.yaml names, built locally (tpod deploy pushes it from the Podman store to IPFS).
say "building the hello image with buildah"
image="$(examples/hello/build.sh)"
say "built $image"

# 3. Deploy on the devnet (provider, policy, keys and funds come from the devnet: no flags needed).
if ! tpod --help 2>/dev/null | grep -qE "^ +deploy "; then
  say "this build has no \`tpod deploy\` yet: the devnet is running, but examples/hello was not deployed"
  say "stop the devnet with: packages/cli/bin/tpod devnet down"
  exit 1
fi
say "deploying examples/hello/pod.yaml"
deployed="$(tpod deploy examples/hello/pod.yaml --json)"
url="$(node -e 'const d = JSON.parse(process.argv[1]); const u = d.endpoints?.http?.[0]; if (!u) process.exit(1); console.log(u)' "$deployed")" || {
  say "tpod deploy printed no HTTP endpoint: $deployed"
  exit 1
}
say "pod $(node -e 'console.log(JSON.parse(process.argv[1]).podId)' "$deployed") serves $url"

# 4. Fetch it (curl resolves *.localhost to 127.0.0.1 itself).
say "curl $url"
curl -fsS --retry 20 --retry-delay 1 --retry-all-errors --max-time 10 "$url"
echo
say "done. The devnet keeps running: try 'npx tpod pods' or 'npx tpod logs POD'."
say "stop it (and remove its pods) with: npx tpod devnet down"
