#!/usr/bin/env bash
# The README's Quick start on a machine nobody has set up: builds a pristine Debian 12 userland from apt
# (mmdebstrap --variant=minbase bookworm, plus git and the host's Node 20 as the target machines have them),
# imports it into Podman, clones the current commit (not the working tree) and runs, as root in a privileged
# container with its own Podman storage,
#     bash scripts/start.sh       then checks `git status`, `npx tpod pods` and `npx tpod devnet down`
#     bash scripts/test.sh        (skipped with --start-only)
# It prints what passed with timings, exits non-zero when anything failed, and removes everything it made.
# Run it as root on Debian 12 with Podman: `bash scripts/fresh-machine.sh [--start-only]`. See docs/devnet.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: bash scripts/fresh-machine.sh [options]
  --start-only      run only the first Quick start command (bash scripts/start.sh) and the checks after it
  --commit REF      check this commit (default: HEAD; uncommitted changes are never part of the check)
  --node PATH       the Node >= 20 copied in as the machine's own (default: /usr/bin/node, with its npm)
  --npm-cache       share the host's npm cache (faster, but no longer a cold first install)
  --workdir DIR     where the root file system, the clone and the nested Podman storage go (default: /var/tmp)
  --keep            keep the container, its image and the work directory afterwards (says how to remove them)
USAGE
}

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
start_only=0
commit_ref=HEAD
host_node=/usr/bin/node
npm_cache=0
workdir_parent=/var/tmp
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --start-only) start_only=1 ;;
    --commit) commit_ref="${2:?--commit needs a REF}"; shift ;;
    --node) host_node="${2:?--node needs a PATH}"; shift ;;
    --npm-cache) npm_cache=1 ;;
    --workdir) workdir_parent="${2:?--workdir needs a DIR}"; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1;35m[fresh]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[fresh]\033[0m %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

[ "$(id -u)" -eq 0 ] || die "run as root: the check needs rootful Podman's --privileged for Podman inside the machine"
command -v podman >/dev/null || die "podman is not installed (bash scripts/setup.sh installs it)"
command -v git >/dev/null || die "git is not installed"
[ -x "$host_node" ] || die "$host_node not found: --node PATH names the Node the fresh machine comes with"
commit="$(git -C "$repo" rev-parse --verify "$commit_ref^{commit}")" || die "no commit $commit_ref in $repo"
if [ "$commit_ref" = HEAD ] && [ -n "$(git -C "$repo" status --porcelain)" ]; then
  say "note: the working tree has uncommitted changes; they are not part of the check (it clones $commit)"
fi

# Everything lives under one directory and one name, removed on exit unless --keep.
mkdir -p "$workdir_parent"
work="$(mktemp -d "$workdir_parent/tpod-fresh.XXXXXX")"
name="$(basename "$work" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9\n' '-')"
image="localhost/$name:debian12"
cleanup() {
  local rc=$?
  if [ "$keep" -eq 1 ]; then
    say "kept: container $name, image $image, directory $work"
    say "enter it: podman exec -it -w /root/trusted-pods $name bash"
    say "remove it: podman rm -f -t 0 $name; podman rmi $image; rm -rf $work"
  else
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The summary: one line per step with its result and seconds.
results=()
failed=0
record() { # STEP RESULT SECONDS [DETAIL]
  results+=("$(printf '%-4s %5ss  %s%s' "$2" "$3" "$1" "${4:+  ($4)}")")
  [ "$2" = ok ] || failed=1
}
summary() {
  printf '\n\033[1;35m[fresh]\033[0m summary (commit %s)\n' "${commit:0:12}" >&2
  local line
  for line in "${results[@]}"; do printf '  %s\n' "$line" >&2; done
}

# ------------------------------------------------------------------- 1. the machine
# What a target machine has besides Debian: the Node 20 it came with (from the NodeSource repository, which
# is not reachable here; Debian's apt has only Node 18), and the site's network setup that lets it reach the
# npm registry and Debian's mirror: local CA certificates, apt sources and local apt settings, npm config.
node_version="$("$host_node" --version)"
node_prefix="$(cd "$(dirname "$(readlink -f "$host_node")")/.." && pwd -P)"
[ -d "$node_prefix/lib/node_modules/npm" ] || die "no npm next to $host_node (looked in $node_prefix/lib/node_modules/npm)"
node_origin="copied from the host's $host_node"
if owner="$(dpkg -S "$(readlink -f "$host_node")" 2>/dev/null)"; then
  pkg="${owner%%:*}"
  node_origin="$node_origin (package $pkg $(dpkg-query -W -f='${Version}' "$pkg"), not in Debian's apt)"
fi
mkdir -p "$work/node/usr/bin" "$work/node/usr/lib/node_modules"
cp -a "$(readlink -f "$host_node")" "$work/node/usr/bin/node"
cp -a "$node_prefix/lib/node_modules/npm" "$work/node/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/usr/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/usr/bin/npx"
for f in /etc/npmrc /usr/etc/npmrc /root/.npmrc; do
  if [ -f "$f" ]; then mkdir -p "$work/node$(dirname "$f")" && cp -a "$f" "$work/node$f"; fi
done
if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
  mkdir -p "$work/node/usr/local/share"
  cp -a /usr/local/share/ca-certificates "$work/node/usr/local/share/"
fi
tar -C "$work/node" -cf "$work/site.tar" .

sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  if [ -s "$f" ] && grep -qv '^\s*\(#\|$\)' "$f"; then sources+=("$f"); fi
done
[ "${#sources[@]}" -gt 0 ] || sources=(http://deb.debian.org/debian)
aptopts=()
for f in /etc/apt/apt.conf.d/*; do
  # Local settings only (a proxy, a relaxed Valid-Until): files no Debian package installed.
  if [ -f "$f" ] && ! dpkg -S "$f" >/dev/null 2>&1; then aptopts+=("--aptopt=$f"); fi
done

if ! command -v mmdebstrap >/dev/null; then
  say "installing mmdebstrap from apt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >&2; }
fi

say "building a Debian 12 minbase userland with mmdebstrap (+ ca-certificates, git; Node $node_version $node_origin)"
t0="$(now)"
mmdebstrap --quiet --variant=minbase --include=ca-certificates,git "${aptopts[@]}" \
  --customize-hook="tar-in $work/site.tar /" \
  --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
  bookworm "$work/rootfs.tar" "${sources[@]}" >&2 || die "mmdebstrap failed"
podman import -q "$work/rootfs.tar" "$image" >/dev/null || die "podman import failed"
rm -f "$work/rootfs.tar" "$work/site.tar"
rm -rf "$work/node"
record "Debian 12 minbase + git + Node $node_version, imported into Podman" ok "$(secs "$t0" "$(now)")"

# ------------------------------------------------------------------- 2. the clone
t0="$(now)"
git clone -q --no-checkout "$repo" "$work/clone"
git -C "$work/clone" cat-file -e "$commit^{commit}" 2>/dev/null || git -C "$work/clone" fetch -q "$repo" "$commit"
git -C "$work/clone" checkout -q --detach "$commit"
record "git clone of $(git -C "$repo" log -1 --format='%h %s' "$commit" | cut -c1-60)" ok "$(secs "$t0" "$(now)")"

# ------------------------------------------------------------------- 3. the run
# --privileged for Podman inside; its storage on a host directory (overlay on overlay fails); slirp4netns gives
# the machine its own network namespace whose address cannot clash with the Podman networks inside it (and
# the devnet's ports with the host's); a private cgroup namespace, else on cgroup v1 /proc/PID/cgroup names
# host paths that the machine's /sys/fs/cgroup (its own subtree) lacks, and `podman stats` (the provider's
# usage metering) fails with "cgroup deleted".
mkdir -p "$work/storage"
run_args=(--privileged --cgroupns=private --network slirp4netns --hostname fresh-debian12
  -v "$work/storage:/var/lib/containers" -v "$work/clone:/root/trusted-pods" -w /root/trusted-pods)
# The site's network environment, as the target machines have it: CA bundles for a TLS-inspecting egress proxy
# (npm reads NODE_EXTRA_CA_CERTS when its global npmrc is not in play: `npm install --prefix DIR`), proxies.
for var in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO \
  http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!var:-}" ]; then run_args+=(-e "$var"); fi
done
if [ "$npm_cache" -eq 1 ]; then
  run_args+=(-v "$(npm config get cache 2>/dev/null || echo /root/.npm):/root/.npm")
fi
# --init: a machine's PID 1 reaps orphans (the devnet start.sh leaves running, conmon, dnsmasq); `sleep` would
# leave them zombies, and `tpod devnet down` would wait for a pid that never goes away.
podman run -d --init --name "$name" "${run_args[@]}" "$image" sleep infinity >/dev/null ||
  die "podman run failed (--init needs catatonit: bash scripts/setup.sh installs it)"

# in_machine TITLE COMMAND: runs COMMAND in the machine's clone, output shown and kept in $work/last.log.
in_machine() {
  local title="$1" cmd="$2" t rc=0
  say "── $title"
  t="$(now)"
  # pipefail: the pipeline fails with the command's status, not tee's.
  podman exec -w /root/trusted-pods "$name" bash -c "$cmd" </dev/null 2>&1 | tee "$work/last.log" || rc=$?
  elapsed="$(secs "$t" "$(now)")"
  return "$rc"
}
clean_tree() { # AFTER
  local dirt
  dirt="$(podman exec -w /root/trusted-pods "$name" git status --porcelain 2>&1)"
  if [ -z "$dirt" ]; then
    record "git status --porcelain empty after $1" ok 0
  else
    record "git status --porcelain empty after $1" FAIL 0 "$(echo "$dirt" | head -5 | tr '\n' ' ')"
  fi
}

elapsed=0
if in_machine "bash scripts/start.sh" "bash scripts/start.sh"; then
  record "bash scripts/start.sh (setup, devnet, deploy examples/hello, curl)" ok "$elapsed" \
    "$(grep -o 'serves http[^ ]*' "$work/last.log" | head -1)"
  start_ok=1
else
  record "bash scripts/start.sh" FAIL "$elapsed" "$(tail -1 "$work/last.log" | cut -c1-100)"
  start_ok=0
fi
clean_tree "start.sh"

if [ "$start_ok" -eq 1 ]; then
  if in_machine "npx tpod pods (with the machine's Node $node_version first on PATH)" "npx tpod pods" &&
    grep -q 'hello.*running' "$work/last.log"; then
    record "npx tpod pods lists the hello pod running" ok "$elapsed"
  else
    record "npx tpod pods" FAIL "$elapsed" "$(tail -1 "$work/last.log" | cut -c1-100)"
  fi
fi

if [ "$start_ok" -eq 1 ] && [ "$start_only" -eq 0 ]; then
  if in_machine "bash scripts/test.sh (the devnet keeps running, as after the Quick start)" "bash scripts/test.sh"; then
    record "bash scripts/test.sh" ok "$elapsed" "$(grep -E '^tests: ' "$work/last.log" | tail -1)"
  else
    record "bash scripts/test.sh" FAIL "$elapsed" "$(grep -E '^tests: ' "$work/last.log" | tail -1)"
  fi
  clean_tree "test.sh"
fi

if [ "$start_ok" -eq 1 ]; then
  if in_machine "npx tpod devnet down" "npx tpod devnet down"; then
    record "npx tpod devnet down" ok "$elapsed"
  else
    record "npx tpod devnet down" FAIL "$elapsed" "$(tail -1 "$work/last.log" | cut -c1-100)"
  fi
fi

summary
[ "$failed" -eq 0 ] || die "the fresh-machine check failed"
say "passed"
