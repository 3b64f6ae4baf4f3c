#!/usr/bin/env bash
# Builds the firmware a provider launches the image with under SEV-SNP: edk2's OvmfPkg/AmdSev build, whose
# kernel hashes table makes the launch measurement cover the kernel, initrd and command line (Debian's `ovmf`
# package is an OvmfPkgX64 build without that table). From Debian's own edk2 source package, so the source is
# the one Debian signs and ships, built with Debian 12's compiler; amdsev-ovmf.lock (next to this script) pins
# the source tarballs' hashes, the toolchain package versions, and the firmware's SHA-256 they gave.
#
#   build-amdsev-ovmf.sh OUT_DIR [--fetch-only]
#
# Environment: EDK2_SUITE (the Debian release whose edk2 source is used, default trixie: bookworm's 2022.11
# lacks the SNP kernel hashes metadata, see below), EDK2_VERSION (the source version, default the lock's),
# DEBIAN_MIRROR (default deb.debian.org; a snapshot.debian.org URL rebuilds an old version), JOBS (default 2).
# Writes to OUT_DIR: OVMF.amdsev.fd, OVMF.amdsev.fd.sha256, edk2-source.sha256 and toolchain.lock (the
# versions this build used); prints the SHA-256 and whether it equals the lock's. Then
#   tpod measure snp --ovmf OUT_DIR/OVMF.amdsev.fd --ovmf-hash-only   (the firmware pages' digest)
#   tpod provider image measure --image IMG --ovmf OUT_DIR/OVMF.amdsev.fd --write-notes
#
# The system's apt configuration is not changed: the deb-src list lives in a private apt state directory.
# Runs as root: apt-get install of missing build dependencies, and the build's private mount namespace
# (unshare -m, see below). Took 45 to 50 minutes on a loaded 2-core VM (`nice -n 10` it on a shared machine);
# two builds in different directories gave identical bytes (docs/provider-image.md, "The firmware").
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="$here/amdsev-ovmf.lock"
out="${1:?usage: build-amdsev-ovmf.sh OUT_DIR [--fetch-only]}"
mode="${2:-}"
lock_value() { awk -v k="$1" '$1 == k { print $2; exit }' "$lock"; }
# Debian 12's edk2 (2022.11-6+deb12u2) builds an AmdSev firmware whose SEV metadata has no SNP_KERNEL_HASHES
# section (type 0x10, added upstream in 2023): QEMU cannot put the kernel hashes into an SNP launch with it and
# `tpod provider image measure` refuses it (OVMF_NO_KERNEL_HASHES). Debian 13's has it.
suite="${EDK2_SUITE:-$(lock_value suite)}"
version="${EDK2_VERSION:-$(lock_value version)}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
jobs="${JOBS:-2}"
log() { printf '[ovmf] %s\n' "$*" >&2; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$out/work"

fetch_source() {
	local apt_dir="$work/apt"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$work/src"
	# A private apt with only the suite's deb-src: `apt-get source` from Debian's archive, signatures checked
	# against the system's Debian keyring as for any apt download.
	cat >"$apt_dir/sources.list" <<-EOF
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/debian}/debian-security $suite-security main
		deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite-updates main
	EOF
	local apt_opts=(
		-o "Dir::Etc::SourceList=$apt_dir/sources.list"
		-o "Dir::Etc::SourceParts=-"
		-o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir/cache"
		-o "APT::Get::List-Cleanup=0"
	)
	log "fetching the source lists of $suite (deb-src, private apt state in $apt_dir)"
	apt-get "${apt_opts[@]}" update -qq
	log "apt-get source edk2=$version"
	rm -f "$work/src"/edk2_*
	# apt checks every file it downloads against the hashes in the suite's signed Sources index. Some mirrors
	# (this machine's) serve the tarballs but answer 404 for the .dsc of a point-release version: the tarballs,
	# already verified by apt (and against the lock below), are then unpacked by hand instead of by dpkg-source.
	if ! (cd "$work/src" && apt-get "${apt_opts[@]}" source --only-source --download-only "edk2=$version"); then
		ls "$work/src"/edk2_*.orig.tar.* "$work/src"/edk2_*.debian.tar.* >/dev/null 2>&1 || {
			log "apt-get source edk2=$version failed"
			exit 1
		}
		log "the mirror has no .dsc for edk2=$version; its tarballs arrived (hash-checked by apt): continuing without it"
	fi
	(cd "$work/src" && sha256sum ./*.tar.* | sed 's| \./| |' | tee "$out/edk2-source.sha256" >&2)
}

# The lock pins the tarballs of its version; another EDK2_VERSION is a deliberate change and is not checked.
check_source_against_lock() {
	[ "$version" = "$(lock_value version)" ] || {
		log "EDK2_VERSION=$version differs from the lock's: tarball hashes not checked against it"
		return 0
	}
	local sum name
	while read -r sum name; do
		awk -v s="$sum" -v n="$name" '$1 == "source-sha256" && $2 == s && $3 == n { found = 1 } END { exit !found }' "$lock" || {
			log "$name has SHA-256 $sum, not the one amdsev-ovmf.lock pins"
			exit 1
		}
	done <"$out/edk2-source.sha256"
}

# dpkg-source checks the .dsc's hashes of every tarball and applies Debian's patches; without a .dsc the same
# by hand: the upstream tarball, Debian's directory over it, the patches of debian/patches/series in order.
unpack_source() {
	local src="$1"
	rm -rf "$src"
	if ls "$work/src"/edk2_*.dsc >/dev/null 2>&1; then
		(cd "$work/src" && dpkg-source -x ./edk2_*.dsc "$src")
		return
	fi
	mkdir -p "$src"
	tar -xf "$work/src"/edk2_*.orig.tar.* -C "$src" --strip-components=1
	tar -xf "$work/src"/edk2_*.debian.tar.* -C "$src"
	local patch
	grep -v '^\s*#' "$src/debian/patches/series" | while read -r patch _; do
		[ -z "$patch" ] || patch -s -p1 -d "$src" <"$src/debian/patches/$patch"
	done
}

# Debian 12's toolchain. Its versions are part of what a rebuild must match: the versions used are written
# to OUT_DIR/toolchain.lock and compared with the lock's (a difference is reported, not refused: the build
# then likely gives other bytes, which the final comparison shows).
toolchain_packages=(gcc-12 cpp-12 binutils libc6-dev make nasm acpica-tools uuid-dev python3.11 patch xz-utils dpkg-dev)
install_build_deps() {
	local deps=(build-essential uuid-dev nasm acpica-tools python3 dpkg-dev patch xz-utils util-linux)
	local missing=() p
	for p in "${deps[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
	dpkg-query -W -f='toolchain ${Package} ${Version}\n' "${toolchain_packages[@]}" >"$out/toolchain.lock"
	if ! diff <(grep '^toolchain ' "$lock") "$out/toolchain.lock" >&2; then
		log "the toolchain differs from amdsev-ovmf.lock's (diff above): expect other firmware bytes"
	fi
}

build_firmware() {
	local src="$1"
	cd "$src"
	# Every time in the build is the source package's (Debian's changelog date). edksetup.sh pins
	# PYTHONHASHSEED itself (BaseTools iterates over sets and dicts of strings).
	SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -l debian/changelog -S Timestamp)"
	export SOURCE_DATE_EPOCH
	log "building BaseTools (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
	make -C BaseTools -j"$jobs" >"$work/basetools.log" 2>&1 || {
		tail -30 "$work/basetools.log" >&2
		exit 1
	}
	# edksetup.sh reads unset variables, and parses the positional parameters (this function's) as its options.
	set --
	set +u
	# shellcheck disable=SC1091
	. ./edksetup.sh >/dev/null
	set -u
	# The AmdSev platform embeds a GRUB (Grub.inf is a binary-only module: grub.efi, built beforehand by
	# grub.sh from a GRUB source tree) for its encrypted-disk boot; measured direct boot never runs it. An empty
	# grub.efi leaves GRUB's code out (the FFS file stays, empty): no second source package whose own build would
	# have to be reproducible, and less code in the measured firmware. Kata Containers builds its SEV firmware so.
	: >OvmfPkg/AmdSev/Grub/grub.efi
	log "building OvmfPkg/AmdSev/AmdSevX64.dsc (RELEASE, GCC5, $jobs jobs) in $src; log: $work/build.log"
	build -a X64 -b RELEASE -t GCC5 -n "$jobs" -p OvmfPkg/AmdSev/AmdSevX64.dsc >"$work/build.log" 2>&1 || {
		tail -40 "$work/build.log" >&2
		exit 1
	}
	install -m 0644 Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd "$out/OVMF.amdsev.fd"
}

report() {
	local sum expected
	sum="$(cd "$out" && sha256sum OVMF.amdsev.fd | tee OVMF.amdsev.fd.sha256 | cut -d' ' -f1)"
	expected="$(awk '$1 == "firmware-sha256" { print $2; exit }' "$lock")"
	log "wrote $out/OVMF.amdsev.fd"
	if [ "$sum" = "$expected" ]; then
		log "its SHA-256 equals amdsev-ovmf.lock's firmware-sha256"
	else
		log "its SHA-256 differs from amdsev-ovmf.lock's firmware-sha256 ($expected)"
	fi
	echo "$sum  OVMF.amdsev.fd"
}

# Builds run in a private mount namespace where the unpacked source is bind-mounted on a fixed path: GenFw
# writes each module's .dll path into the module's CodeView debug entry (and its length into the image
# layout), so the build directory is part of the firmware's bytes. With the fixed path, builds in any OUT_DIR
# give the same bytes, and two can run at once.
fixed_src=/mnt/tpod-edk2
if [ "$mode" = "--in-namespace" ]; then
	mount -t tmpfs -o size=1m,mode=0755 tmpfs /mnt
	mkdir "$fixed_src"
	mount --bind "$work/edk2" "$fixed_src"
	build_firmware "$fixed_src"
	exit 0
fi

fetch_source
check_source_against_lock
[ "$mode" != "--fetch-only" ] || {
	log "fetched (--fetch-only): $(ls "$work/src" | tr '\n' ' ')"
	exit 0
}
unpack_source "$work/edk2"
install_build_deps
unshare --mount --propagation private bash "$here/build-amdsev-ovmf.sh" "$out" --in-namespace
report
