#!/usr/bin/env bash
# mmdebstrap customize hook: adds the kernel (bookworm-backports' cloud kernel, unpacked without initramfs-tools:
# the image brings its own initrd), the daemon and Node, the boot scripts and Podman's config, and removes what
# would differ between two builds (caches, logs, machine id). Writes /installed.lock (moved out by build.sh).
#
#   customize.sh ROOTFS APP_DIR IMAGE_DIR      (KERNEL_PIN=name=version in the environment, or empty)
set -euo pipefail
export LC_ALL=C
root="$1"
app="$2"
image="$3"
top=(podman runc conmon catatonit netavark aardvark-dns iptables nginx kmod iproute2 procps e2fsprogs
	busybox-static dmsetup util-linux)

# The kernel is bookworm-backports' cloud flavour (6.12): Debian 12's own 6.1 has no configfs-tsm (CONFIG_TSM_REPORTS,
# Linux >= 6.7) and its cloud flavour no sev-guest driver, so an SNP or TDX guest on it could not fetch a report.
# The backports one has TSM_REPORTS, SEV_GUEST and TDX_GUEST_DRIVER (modules, loaded by /usr/lib/tpod/init).
kernel="${KERNEL_PIN:-}"
if [ -z "$kernel" ]; then
	bp=(-o APT::Default-Release=bookworm-backports)
	name="$(chroot "$root" apt-cache "${bp[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
	version="$(chroot "$root" apt-cache "${bp[@]}" policy "$name" | awk '/Candidate:/ {print $2}')"
	kernel="$name=$version"
fi
case "$kernel" in
*bpo12*) ;;
*) echo "[image] kernel $kernel is not from bookworm-backports (its 6.1 kernel cannot give TEE reports)" >&2; exit 1 ;;
esac
echo "[image] kernel $kernel" >&2
mkdir -p "$root/tmp/kernel"
chroot "$root" sh -c "cd /tmp/kernel && apt-get download -q '$kernel'" >&2
# Keep merged /usr: tar must not replace the /lib symlink with a directory.
dpkg-deb --fsys-tarfile "$root"/tmp/kernel/*.deb | tar -x --keep-directory-symlink -C "$root"
rm -rf "$root/tmp/kernel"
kver="$(ls "$root/lib/modules")"
chroot "$root" /sbin/depmod -a "$kver"

install -D -m 0755 "$app/node" "$root/usr/bin/node"
install -D -m 0644 "$app/tpod.mjs" "$root/usr/lib/tpod/tpod.mjs"
install -D -m 0644 "$app/image-id" "$root/usr/lib/tpod/image-id"
for f in init run-daemon udhcpc.script; do install -D -m 0755 "$image/$f" "$root/usr/lib/tpod/$f"; done
install -D -m 0644 "$image/containers.conf" "$root/etc/containers/containers.conf"
echo tpod-provider >"$root/etc/hostname"
ln -sfn ../run/resolv.conf "$root/etc/resolv.conf"

{
	for p in "${top[@]}"; do
		printf 'top %s %s\n' "$p" "$(chroot "$root" dpkg-query -W -f='${Version}' "$p")"
	done
	printf 'kernel %s %s\n' "${kernel%%=*}" "${kernel#*=}"
	chroot "$root" dpkg-query -W -f='deb ${Package} ${Version}\n' | sort
} >"$root/installed.lock"

# Nothing that records when or where the image was built.
rm -f "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
	"$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/* "$root"/tmp/* \
	"$root"/etc/*- "$root"/etc/ssh/ssh_host_* "$root"/var/lib/systemd/random-seed
: >"$root/etc/machine-id"
