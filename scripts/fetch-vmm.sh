#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The VMM the nested tests run inside the test guest: Debian's own arm64
# qemu-system-aarch64 (package qemu-system-arm, trixie main), unmodified.
#
# Nothing is installed on the host: a private apt state (its own
# sources.list, lists, cache and an empty dpkg status, architecture arm64)
# resolves the package's whole dependency closure, which is downloaded and
# unpacked with dpkg-deb, then pruned to the binary, the libraries in its
# NEEDED closure, the dynamic loader and usr/share/qemu. The result is
# cached in $CACHE/vmm-<key>, the key a hash of the closure's package
# versions (a Debian update of any of them fetches again), as
#   root/            the pruned tree, laid out as in the guest's /vmm
#   vmm.cpio.gz      the same as an initramfs archive (vm.py --vmm appends it)
# and build/vmm points at it.
#
#   scripts/fetch-vmm.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"

step() { echo "[vmm] $*" >&2; }
die() { echo "[vmm] error: $*" >&2; exit 1; }

W="$CACHE/vmm-apt"
mkdir -p "$W/lists/partial" "$W/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
	> "$W/sources.list"
: > "$W/status"
vapt() {
	apt-get -q -o Dir::Etc::SourceList="$W/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$W/lists" -o Dir::Cache="$W/cache" \
		-o Dir::State::status="$W/status" -o APT::Sandbox::User=root \
		-o APT::Architecture=arm64 -o APT::Architectures=arm64 \
		-o APT::Install-Recommends=false "$@"
}

# The package lists, refreshed once a day.
# (apt dates the list files by the archive's clock: a stamp of our own.)
if [ -z "$(find "$W/updated" -mtime -1 2>/dev/null)" ]; then
	step "apt-get update of the private trixie (arm64) list"
	vapt update >/dev/null || die "apt-get update of the private trixie list failed (network? $W/sources.list)"
	touch "$W/updated"
fi

# The closure, as the .deb file names apt would fetch (name_version_arch);
# apt lists only what its cache lacks, so the cache starts empty (the
# pruned result below is what is kept).
vapt clean
uris=$(vapt install --download-only --print-uris -y -qq qemu-system-arm 2>"$W/resolve.err") \
	|| die "apt cannot resolve qemu-system-arm for arm64: $(tail -n 3 "$W/resolve.err")"
debs=$(echo "$uris" | awk '{print $2}' | sort)
[ -n "$debs" ] || die "apt resolved no packages for qemu-system-arm"
echo "$debs" | grep -q '^qemu-system-arm_' || die "qemu-system-arm is missing from trixie main"
# Bump when the layout below changes, so that caches are rebuilt.
layout=2
key=$(printf '%s\nlayout %s\n' "$debs" $layout | sha256sum | cut -c1-16)
out="$CACHE/vmm-$key"

if [ ! -f "$out/.done" ]; then
	start=$(date +%s)
	qver=$(echo "$debs" | sed -n 's/^qemu-system-arm_\([^_]*\)_.*/\1/p' | sed 's/%3a/:/')
	step "fetching Debian's qemu-system-arm $qver for arm64 and its closure ($(echo "$debs" | wc -l) packages)"
	vapt install --download-only -y qemu-system-arm >"$W/download.log" 2>&1 \
		|| die "download failed: $(tail -n 3 "$W/download.log")"
	rm -rf "$out"; mkdir -p "$out/full" "$out/root"
	for d in $debs; do
		f="$W/cache/archives/$d"
		[ -f "$f" ] || die "apt did not download $d"
		dpkg-deb -x "$f" "$out/full"
	done
	F="$out/full" R="$out/root"
	L=usr/lib/aarch64-linux-gnu
	[ -x "$F/usr/bin/qemu-system-aarch64" ] || die "no usr/bin/qemu-system-aarch64 in the packages"
	mkdir -p "$R/usr/bin" "$R/$L" "$R/usr/share"
	cp -a "$F/usr/bin/qemu-system-aarch64" "$R/usr/bin/"
	cp -a "$F/usr/share/qemu" "$R/usr/share/"
	# The NEEDED closure, breadth first; libraries keep their SONAME path.
	todo="$R/usr/bin/qemu-system-aarch64" seen=" "
	while [ -n "$todo" ]; do
		next=
		for elf in $todo; do
			for lib in $(aarch64-linux-gnu-readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
				case "$seen" in *" $lib "*) continue ;; esac
				seen="$seen$lib "
				src="$F/$L/$lib"
				[ -e "$src" ] || die "library $lib (needed by $(basename "$elf")) is in no package"
				cp -aL "$src" "$R/$L/$lib"
				next="$next $R/$L/$lib"
			done
		done
		todo=$next
	done
	cp -aL "$F/$L/ld-linux-aarch64.so.1" "$R/$L/"
	echo "$qver" > "$R/version"
	# An archive whose paths start with vmm/: stage through a symlink-free dir.
	mkdir -p "$out/stage" && mv "$R" "$out/stage/vmm"
	(cd "$out/stage" && find vmm | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
		| gzip -1 > "$out/vmm.cpio.gz"
	mv "$out/stage/vmm" "$R" && rmdir "$out/stage"
	rm -rf "$out/full"
	vapt clean
	touch "$out/.done"
	step "qemu-system-aarch64 $qver: $(du -sh "$R" | cut -f1) pruned, archive $(du -h "$out/vmm.cpio.gz" | cut -f1), in $(( $(date +%s) - start )) s"
fi
mkdir -p "$top/build"
ln -sfn "$out" "$top/build/vmm"
