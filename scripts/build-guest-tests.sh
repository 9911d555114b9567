#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build everything that runs inside the guest, as static aarch64 binaries:
#   build/guest/tests/     our kselftest-style tests (tests/guest/*.c)
#   build/harness/{fail,splat}/   the harness's own tests (tests/harness/)
#   build/guest/l2/l2.cpio.gz   the nested guest's initramfs (tests/vmm)
#   build/vmm -> $CACHE/vmm-<key>   Debian's QEMU for L1 (scripts/fetch-vmm.sh)
#   $CACHE/peer-<kernel key>/{kvm,vfio}/   the upstream KVM and VFIO selftests
#                          of the same kernel source (built once per kernel)
#
#   scripts/build-guest-tests.sh [debug|perf]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"

variant=${1:-debug}
kernel_paths "$variant"
CC=aarch64-linux-gnu-gcc
CFLAGS="-static -O2 -g -Wall -Werror -Wno-format-truncation -D_GNU_SOURCE -I$top/include/uapi -I$KSRC/tools/testing/selftests -isystem $KOUT/usr/include"

build_c() { # <out dir> <sources...>
	local out=$1; shift
	mkdir -p "$out"
	for c in "$@"; do
		local bin="$out/$(basename "${c%.c}")"
		if [ ! -x "$bin" ] || [ "$c" -nt "$bin" ] || [ "$0" -nt "$bin" ] ||
		   [ -n "$(find "$top/tests/guest" -name '*.h' -newer "$bin")" ]; then
			$CC $CFLAGS -o "$bin" "$c" -lpthread
		fi
	done
}

build_c "$top/build/guest/tests" "$top"/tests/guest/*.c
# Test-only kernel modules (tests/kmod), built like ours, copied beside the
# test binaries.
# They link against msi_isolation's exports, as vfio_type1x does.
make -s -C "$KOUT" M="$top/tests/kmod" $KMAKE_VARS \
	KBUILD_EXTRA_SYMBOLS="$top/Module.symvers" modules >&2
mkdir -p "$top/build/guest/kmod"
cp "$top"/tests/kmod/*.ko "$top/build/guest/kmod/"

# The nested-VMM suite (tests/vmm): L2's edu driver, built like our modules,
# in a busybox initramfs with tests/vmm/l2_init; and Debian's QEMU for L1.
make -s -C "$KOUT" M="$top/tests/vmm/l2" $KMAKE_VARS modules >&2
l2="$top/build/guest/l2"
rm -rf "$l2/stage"; mkdir -p "$l2/stage/bin" "$l2/stage/proc" "$l2/stage/sys" "$l2/stage/dev"
cp "$BUSYBOX" "$l2/stage/bin/busybox"
cp "$top/tests/vmm/l2_init" "$l2/stage/init"
cp "$top/tests/vmm/l2/edu_l2.ko" "$l2/stage/"
(cd "$l2/stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$l2/l2.cpio.gz"
"$here/fetch-vmm.sh"

build_c "$top/build/harness/fail" "$top"/tests/harness/deliberate_fail_test.c
mkdir -p "$top/build/harness/splat"
install -m 0755 "$top/tests/harness/splat_test.sh" "$top/build/harness/splat/"

"$here/build-peer.sh" "$variant"
