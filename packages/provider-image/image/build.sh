#!/usr/bin/env bash
# Builds the provider VM image from Debian 12 packages and a prepared app directory (the daemon bundle and the
# Node binary, made by packages/provider-image/src/build.ts). Reproducible: every timestamp is
# SOURCE_DATE_EPOCH, archives are sorted, package versions are pinned by the lock file when one is given.
#
#   build.sh WORK_DIR OUT_DIR APP_DIR PINS_FILE
#
# Environment: SOURCE_DATE_EPOCH (required), TPOD_IMAGE_MIRROR (Debian mirror, default deb.debian.org),
# TPOD_IMAGE_SECURITY_MIRROR (default the security archive next to it).
# The kernel comes from bookworm-backports (see customize.sh); backports is NotAutomatic in its Release file, so
# every other package still comes from bookworm itself.
# Writes to OUT_DIR: vmlinuz, initrd.img, root.img (squashfs + dm-verity hash tree), cmdline, installed.lock.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

work="$1"
out="$2"
app="$3"
pins="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
mirror="${TPOD_IMAGE_MIRROR:-http://deb.debian.org/debian}"
security="${TPOD_IMAGE_SECURITY_MIRROR:-${mirror%/debian}/debian-security}"
log() { printf '[image] %s\n' "$*" >&2; }

# Pinned top-level packages (name=version lines of the lock's "deb" and "kernel" entries), or the plain names.
packages=(podman runc conmon catatonit netavark aardvark-dns iptables nginx kmod iproute2 procps e2fsprogs
	busybox-static dmsetup util-linux)
include=()
kernel_pin=""
if [ -s "$pins" ]; then
	while read -r kind name version _; do
		case "$kind" in
		top) include+=("$name=$version") ;;
		kernel) kernel_pin="$name=$version" ;;
		esac
	done <"$pins"
else
	include=("${packages[@]}")
fi
include_csv="$(IFS=,; echo "${include[*]}")"

rootfs="$work/rootfs"
rm -rf "$rootfs" "$work/initrd" && mkdir -p "$work" "$out"

log "mmdebstrap: Debian bookworm minbase with ${#include[@]} packages"
# dpkg leaves out documentation, man pages and translations (copyright files stay). Services never start
# during the build (policy-rc.d), and nothing from the build machine leaks in.
mmdebstrap --variant=minbase --mode=root --format=directory \
	--include="$include_csv" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
	--essential-hook='printf "#!/bin/sh\nexit 101\n" > "$1/usr/sbin/policy-rc.d"; chmod 755 "$1/usr/sbin/policy-rc.d"' \
	--customize-hook="KERNEL_PIN='$kernel_pin' '$here/customize.sh' \"\$1\" '$app' '$here'" \
	bookworm "$rootfs" \
	"deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" \
	"deb $mirror bookworm-backports main" >&2

kver="$(ls "$rootfs/lib/modules")"
cp "$rootfs/boot/vmlinuz-$kver" "$out/vmlinuz"
rm -rf "$rootfs/boot"/*
mv "$rootfs/installed.lock" "$out/installed.lock"

log "initrd: busybox, dmsetup and the modules for virtio, dm-verity, squashfs and overlay"
"$here/make-initrd.sh" "$rootfs" "$work/initrd" "$out/initrd.img" "$kver"

log "root file system: squashfs"
# The whole tree at one time; sorted; xattrs kept (file capabilities).
find "$rootfs" -xdev -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
rm -f "$out/root.img"
env -u SOURCE_DATE_EPOCH mksquashfs "$rootfs" "$out/root.img" -noappend -comp zstd -Xcompression-level 6 -reproducible -mkfs-time "$SOURCE_DATE_EPOCH" \
	-all-time "$SOURCE_DATE_EPOCH" -processors 2 -no-progress -quiet >&2
size="$(stat -c %s "$out/root.img")"
if [ $((size % 4096)) -ne 0 ]; then
	truncate -s $(((size + 4095) / 4096 * 4096)) "$out/root.img"
	size="$(stat -c %s "$out/root.img")"
fi
blocks=$((size / 4096))

log "dm-verity hash tree after the $blocks data blocks"
# Fixed UUID and no salt: the tree depends only on the data.
roothash="$(veritysetup format "$out/root.img" "$out/root.img" --hash-offset="$size" --data-blocks="$blocks" \
	--data-block-size=4096 --hash-block-size=4096 --hash=sha256 --salt=- \
	--uuid=00000000-0000-0000-0000-000000000000 | awk '/^Root hash:/ {print $3}')"
[ -n "$roothash" ] || { log "veritysetup printed no root hash"; exit 1; }
printf 'console=ttyS0 panic=-1 tpod.roothash=%s tpod.datablocks=%s\n' "$roothash" "$blocks" >"$out/cmdline"
log "root hash $roothash"
