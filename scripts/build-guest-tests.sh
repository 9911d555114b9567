#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build everything that runs inside the guest, as static aarch64 binaries:
#   build/guest/tests/     our kselftest-style tests (tests/guest/*.c)
#   build/harness/{fail,splat}/   the harness's own tests (tests/harness/)
#   $CACHE/peer-<kernel key>/{kvm,vfio}/   the upstream KVM and VFIO selftests
#                          of the same kernel source (built once per kernel)
#
#   scripts/build-guest-tests.sh [debug|perf]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"

variant=${1:-debug}
kdir=$(readlink -f "$CACHE/kernel-$variant")
[ -f "$kdir/.done" ] || { echo "build-guest-tests: no $variant kernel: run make kernel" >&2; exit 1; }
KSRC="$kdir/src"
KOUT="$kdir/build"
CC=aarch64-linux-gnu-gcc
CFLAGS="-static -O2 -g -Wall -Werror -Wno-format-truncation -D_GNU_SOURCE -I$top/include/uapi -I$KSRC/tools/testing/selftests -isystem $KOUT/usr/include"

build_c() { # <out dir> <sources...>
	local out=$1; shift
	mkdir -p "$out"
	for c in "$@"; do
		local bin="$out/$(basename "${c%.c}")"
		if [ ! -x "$bin" ] || [ "$c" -nt "$bin" ] || [ "$0" -nt "$bin" ]; then
			$CC $CFLAGS -o "$bin" "$c" -lpthread
		fi
	done
}

build_c "$top/build/guest/tests" "$top"/tests/guest/*.c
# Test-only kernel modules (tests/kmod), built like ours, copied beside the
# test binaries.
make -s -C "$KOUT" M="$top/tests/kmod" $KMAKE_VARS modules >&2
mkdir -p "$top/build/guest/kmod"
cp "$top"/tests/kmod/*.ko "$top/build/guest/kmod/"

build_c "$top/build/harness/fail" "$top"/tests/harness/deliberate_fail_test.c
mkdir -p "$top/build/harness/splat"
install -m 0755 "$top/tests/harness/splat_test.sh" "$top/build/harness/splat/"

peer="$CACHE/peer-$(basename "$kdir")"
if [ ! -f "$peer/.done" ]; then
	start=$(date +%s)
	echo "[guest-tests] building the upstream KVM and VFIO selftests into $peer" >&2
	rm -rf "$peer"; mkdir -p "$peer/kvm-build" "$peer/vfio-build" "$peer/kvm" "$peer/vfio"
	common=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- "KHDR_INCLUDES=-isystem $KOUT/usr/include")
	make -s -C "$KSRC/tools/testing/selftests/kvm" "${common[@]}" LDFLAGS=-static \
		OUTPUT="$peer/kvm-build" "$peer/kvm-build/arm64/vgic_its_save" \
		"$peer/kvm-build/arm64/vgic_lpi_stress" >&2
	cp "$peer/kvm-build/arm64/vgic_its_save" "$peer/kvm-build/arm64/vgic_lpi_stress" "$peer/kvm/"
	make -s -C "$KSRC/tools/testing/selftests/vfio" "${common[@]}" \
		LDFLAGS="-static -L/usr/lib/aarch64-linux-gnu" OUTPUT="$peer/vfio-build" >&2
	for t in vfio_dma_mapping_test vfio_pci_driver_test vfio_pci_device_test; do
		cp "$peer/vfio-build/$t" "$peer/vfio/"
	done
	rm -rf "$peer/kvm-build" "$peer/vfio-build"
	touch "$peer/.done"
	echo "[guest-tests] peer suites built in $(( $(date +%s) - start )) s" >&2
fi
ln -sfn "$peer" "$top/build/peer"
