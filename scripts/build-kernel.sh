#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the arm64 test kernel from Debian's linux-source-7.3 with clang 19 and
# Rust: allnoconfig + scripts/config/base.config + scripts/config/<variant>.config,
# after applying patches/*.patch in order.
#
#   scripts/build-kernel.sh [debug|perf]
#
# The build lives outside the repository under $CACHE/kernel-<variant>-<key>,
# where <key> hashes the kernel version, the fragments, the patches and the
# toolchain; an unchanged key reuses the build. The last line printed is the
# build directory (the KDIR modules are built against).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"

variant=${1:-debug}
frag="$here/config/$variant.config"
[ -f "$frag" ] || { echo "build-kernel: unknown variant '$variant' (no $frag)" >&2; exit 1; }
[ -f "$KSRC_TARBALL" ] || { echo "build-kernel: $KSRC_TARBALL missing: run scripts/setup-toolchain.sh" >&2; exit 1; }
[ -d "$RUST_LIB_SRC" ] || { echo "build-kernel: $RUST_LIB_SRC missing: run scripts/setup-toolchain.sh" >&2; exit 1; }

kver=$(basename "$(ls "$CACHE"/trixie-backports/debs/linux-source-"$KVER_MAJOR"_*.deb | head -n1)")
key=$( { echo "$kver"; cat "$here/config/base.config" "$frag"; \
	 for p in "$top"/patches/*.patch; do [ -f "$p" ] && cat "$p"; done; rustc --version; clang-19 --version | head -n1; } \
	| sha256sum | cut -c1-16)
dir="$CACHE/kernel-$variant-$key"
src="$dir/src"
out="$dir/build"

km() { make -C "$src" O="$out" $KMAKE_VARS "$@"; }

# The kernel's own modules (vfio, vfio-pci, the upstream vfio_iommu_type1...),
# staged for the guest's initramfs.
stage_modules() {
	if [ ! -f "$out/modroot/.done" ]; then
		rm -rf "$out/modroot"
		km -s modules_install INSTALL_MOD_PATH="$out/modroot" >&2
		touch "$out/modroot/.done"
	fi
}

if [ -f "$dir/.done" ]; then
	stage_modules
	ln -sfn "$dir" "$CACHE/kernel-$variant"
	echo "[kernel] $variant kernel up to date (key $key)" >&2
	echo "$out"
	exit 0
fi

start=$(date +%s)
echo "[kernel] building the $variant kernel in $dir (key $key); about 8 min on 2 cores" >&2
rm -rf "$dir"
mkdir -p "$src" "$out"
tar -xf "$KSRC_TARBALL" -C "$src" --strip-components=1
for p in "$top"/patches/*.patch; do
	[ -f "$p" ] || continue
	echo "[kernel] applying $(basename "$p")" >&2
	patch -d "$src" -p1 --quiet --forward < "$p" || { echo "build-kernel: $p does not apply" >&2; exit 1; }
done

km -s allnoconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" \
	"$here/config/base.config" "$frag" >/dev/null
km -s olddefconfig >&2
# Every option we asked for must have survived olddefconfig: a silently
# dropped dependency would give a kernel that cannot run the tests.
bad=0
while read -r line; do
	case "$line" in CONFIG_*=*) ;; *) continue ;; esac
	opt=${line%%=*}; val=${line#*=}
	if [ "$val" = n ]; then
		grep -q "^$opt=" "$out/.config" && { echo "build-kernel: $opt should be off" >&2; bad=1; }
	else
		grep -qx "$line" "$out/.config" || { echo "build-kernel: $line did not take ($(grep "^$opt=\|$opt is not set" "$out/.config" || echo absent))" >&2; bad=1; }
	fi
done < <(cat "$here/config/base.config" "$frag")
[ $bad = 0 ] || exit 1

km -s rustavailable >&2
km -s -j"$(nproc)" Image modules >&2
km -s headers_install INSTALL_HDR_PATH="$out/usr" >&2
stage_modules
touch "$dir/.done"
# Older builds of this variant are stale: free their space.
for old in "$CACHE/kernel-$variant"-*; do
	[ "$old" = "$dir" ] || rm -rf "$old"
done
ln -sfn "$dir" "$CACHE/kernel-$variant"
echo "[kernel] $variant kernel built in $(( $(date +%s) - start )) s" >&2
echo "$out"
