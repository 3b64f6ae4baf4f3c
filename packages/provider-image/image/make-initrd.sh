#!/usr/bin/env bash
# Builds the initrd from files of the finished root file system: busybox, dmsetup with its libraries, the
# modules dm-verity, squashfs and overlay need (with their dependencies from modules.dep), and the init script.
# A newc cpio with sorted names, owner root and every time SOURCE_DATE_EPOCH, gzip without a name or time.
#
#   make-initrd.sh ROOTFS WORK_DIR OUT_FILE KERNEL_VERSION
set -euo pipefail
export LC_ALL=C
root="$1"
dir="$2"
outfile="$3"
kver="$4"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rm -rf "$dir" && mkdir -p "$dir"/{bin,sbin,proc,sys,dev,modules,lower,rw,newroot}

cp "$root/bin/busybox" "$dir/bin/busybox"
cp "$root/sbin/dmsetup" "$dir/bin/dmsetup"
# dmsetup's shared libraries and the dynamic loader, at their paths.
for lib in $(chroot "$root" /usr/bin/ldd /sbin/dmsetup | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u); do
	mkdir -p "$dir$(dirname "$lib")"
	cp -L "$root$lib" "$dir$lib"
done
mkdir -p "$dir/lib64"
[ -e "$dir/lib64/ld-linux-x86-64.so.2" ] || cp -L "$root/lib64/ld-linux-x86-64.so.2" "$dir/lib64/"
install -m 0755 "$here/initrd-init" "$dir/init"

# Modules in load order: each one after its dependencies (modules.dep lists the direct and indirect ones).
moddir="$root/lib/modules/$kver"
declare -A seen=()
order=()
add() {
	local m="$1" dep
	[ -n "${seen[$m]:-}" ] && return
	seen[$m]=1
	for dep in $(awk -F':' -v m="$m" '$1 == m {print $2}' "$moddir/modules.dep"); do add "$dep"; done
	order+=("$m")
}
for name in virtio_pci virtio_blk dm-verity squashfs overlay; do
	# Debian's 6.x kernels ship modules xz-compressed (NAME.ko.xz); modules.dep names them so.
	rel="$(awk -F':' -v n="/$name.ko" '{ f = $1; sub(/\.(xz|zst|gz)$/, "", f) } index(f, n) && index(f, n) == length(f) - length(n) + 1 {print $1; exit}' "$moddir/modules.dep")"
	if [ -z "$rel" ]; then
		grep -q "/$name.ko" "$moddir/modules.builtin" || { echo "module $name not found" >&2; exit 1; }
		continue
	fi
	add "$rel"
done
# Stored decompressed: busybox's insmod loads plain .ko files (decompression gives back the exact bytes Debian
# built, so the initrd stays reproducible).
plain=()
for m in "${order[@]}"; do
	p="${m%.xz}" && p="${p%.zst}" && p="${p%.gz}"
	mkdir -p "$dir/modules/$(dirname "$p")"
	case "$m" in
	*.xz) xz -dc "$moddir/$m" >"$dir/modules/$p" ;;
	*.zst) zstd -qdc "$moddir/$m" >"$dir/modules/$p" ;;
	*.gz) gzip -dc "$moddir/$m" >"$dir/modules/$p" ;;
	*) cp "$moddir/$m" "$dir/modules/$p" ;;
	esac
	plain+=("$p")
done
printf '%s\n' "${plain[@]}" >"$dir/modules/load.order"

find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$dir" && find . -mindepth 1 -print0 | sort -z | cpio --null --reproducible -R 0:0 -H newc -o --quiet) |
	gzip -9 -n >"$outfile"
