#!/usr/bin/env bash
# Builds the firmware a provider launches the image with under SEV-SNP: edk2's OvmfPkg/AmdSev build, whose
# kernel hashes table makes the launch measurement cover the kernel, initrd and command line (Debian's `ovmf`
# package is an OvmfPkgX64 build without that table). From Debian's own edk2 source package, so the source is
# the one Debian signs and ships, and with Debian's compiler, so a rebuild on Debian 12 can give the same bytes.
#
#   build-amdsev-ovmf.sh OUT_DIR [--fetch-only]
#
# Environment: EDK2_SUITE (the Debian release whose edk2 source is used, default trixie: bookworm's 2022.11
# lacks the SNP kernel hashes metadata, see below), EDK2_VERSION (the source version, pinned below),
# DEBIAN_MIRROR (default deb.debian.org; a snapshot.debian.org URL rebuilds an old version), JOBS (default 2).
# Writes to OUT_DIR: OVMF.amdsev.fd and OVMF.amdsev.fd.sha256; prints the SHA-256. Then
#   tpod measure snp --ovmf OUT_DIR/OVMF.amdsev.fd --ovmf-hash-only   (the firmware pages' digest)
#   tpod provider image measure --image IMG --ovmf OUT_DIR/OVMF.amdsev.fd --write-notes
#
# The system's apt configuration is not changed: the deb-src list lives in a private apt state directory.
# Needs root for apt-get install of the build dependencies (nothing else runs as root if they are there).
#
# STATUS: written, not yet run to completion on the shared development machine (a loaded 2-core VM, where an
# edk2 build does not fit the time box); `--fetch-only` was run (docs/provider-image.md, Firmware). Whether two
# builds give identical bytes is not verified yet.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

out="${1:?usage: build-amdsev-ovmf.sh OUT_DIR [--fetch-only]}"
fetch_only="${2:-}"
# Debian 12's edk2 (2022.11-6+deb12u2) builds an AmdSev firmware whose SEV metadata has no SNP_KERNEL_HASHES
# section (type 0x10, added upstream in 2023): QEMU cannot put the kernel hashes into an SNP launch with it and
# `tpod provider image measure` refuses it (OVMF_NO_KERNEL_HASHES). Debian 13's has it.
suite="${EDK2_SUITE:-trixie}"
version="${EDK2_VERSION:-2025.02-8+deb13u1}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
jobs="${JOBS:-2}"
log() { printf '[ovmf] %s\n' "$*" >&2; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$out/work"
apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$work/src"

# A private apt with only the suite's deb-src: `apt-get source` from Debian's archive, signatures checked
# against the system's Debian keyring as for any apt download.
cat >"$apt_dir/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/debian}/debian-security $suite-security main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite-updates main
EOF
apt_opts=(
	-o "Dir::Etc::SourceList=$apt_dir/sources.list"
	-o "Dir::Etc::SourceParts=-"
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir/cache"
	-o "APT::Get::List-Cleanup=0"
)
log "fetching the source lists of $suite (deb-src, private apt state in $apt_dir)"
apt-get "${apt_opts[@]}" update -qq
log "apt-get source edk2=$version"
# apt checks every file it downloads against the hashes in the suite's signed Sources index. Some mirrors
# (this machine's) serve the tarballs but answer 404 for the .dsc of a point-release version: then the
# tarballs, already verified by apt, are unpacked by hand below instead of by dpkg-source.
have_dsc=1
if ! (cd "$work/src" && apt-get "${apt_opts[@]}" source --only-source --download-only "edk2=$version"); then
	ls "$work/src"/edk2_*.orig.tar.* "$work/src"/edk2_*.debian.tar.* >/dev/null 2>&1 || {
		log "apt-get source edk2=$version failed"
		exit 1
	}
	log "the mirror has no .dsc for edk2=$version; its tarballs arrived (hash-checked by apt): continuing without it"
	have_dsc=0
fi
(cd "$work/src" && sha256sum ./*.tar.* $([ "$have_dsc" = 1 ] && echo ./*.dsc) | tee "$out/edk2-source.sha256" >&2)
if [ "$fetch_only" = "--fetch-only" ]; then
	log "fetched (--fetch-only): $(ls "$work/src" | tr '\n' ' ')"
	exit 0
fi

# dpkg-source checks the .dsc's hashes of every tarball and applies Debian's patches; without a .dsc the same
# by hand: the upstream tarball, Debian's directory over it, the patches of debian/patches/series in order.
rm -rf "$work/src/edk2"
src="$work/src/edk2"
if [ "$have_dsc" = 1 ]; then
	(cd "$work/src" && dpkg-source -x ./edk2_*.dsc edk2)
else
	mkdir -p "$src"
	tar -xf "$work/src"/edk2_*.orig.tar.* -C "$src" --strip-components=1
	tar -xf "$work/src"/edk2_*.debian.tar.* -C "$src"
	if [ -f "$src/debian/patches/series" ]; then
		grep -v '^\s*#' "$src/debian/patches/series" | while read -r patch _; do
			[ -n "$patch" ] && patch -s -p1 -d "$src" <"$src/debian/patches/$patch"
		done
	fi
fi

# Debian 12's toolchain (the versions become part of what a rebuild must match; record them).
deps=(build-essential uuid-dev nasm acpica-tools python3 dpkg-dev)
missing=()
for p in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
dpkg-query -W -f='${Package} ${Version}\n' gcc-12 binutils nasm acpica-tools uuid-dev python3 >"$out/toolchain.lock"

# Every time in the build is the source package's (Debian's changelog date).
SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -l "$src/debian/changelog" -S Timestamp)"
export SOURCE_DATE_EPOCH

cd "$src"
log "building BaseTools"
make -C BaseTools -j"$jobs" >"$work/basetools.log" 2>&1
# edksetup.sh reads unset variables.
set +u
# shellcheck disable=SC1091
. ./edksetup.sh >/dev/null
set -u
# The AmdSev platform embeds a GRUB for its (optional) encrypted-disk boot; measured direct boot does not use
# it. An empty grub.efi leaves it out (the usual way to build AmdSev for direct boot; it also removes GRUB's
# own non-reproducible build from the firmware).
: >OvmfPkg/AmdSev/Grub/grub.efi
log "building OvmfPkg/AmdSev/AmdSevX64.dsc (RELEASE, GCC5, $jobs jobs)"
build -q -a X64 -b RELEASE -t GCC5 -n "$jobs" -p OvmfPkg/AmdSev/AmdSevX64.dsc >"$work/build.log" 2>&1

fd="$src/Build/AmdSev/RELEASE_GCC5/FV/OVMF.fd"
install -m 0644 "$fd" "$out/OVMF.amdsev.fd"
(cd "$out" && sha256sum OVMF.amdsev.fd | tee OVMF.amdsev.fd.sha256)
log "wrote $out/OVMF.amdsev.fd"
