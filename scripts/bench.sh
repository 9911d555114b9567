#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: our modules against the upstream C code, in one boot of the
# non-debug (perf) kernel, so that KASAN and lockdep do not decide the ratio.
#
#   vfio_bench              vfio_type1x vs vfio_iommu_type1, alternating over
#                           9 rounds: MAP_DMA and UNMAP_DMA throughput of
#                           64 MiB, 256 MiB and 1 GiB of 4 KiB pages, of THP
#                           and of 2 MiB hugetlb pages, in one call per page
#                           and in one call for the whole size (36 figures);
#                           the latency of enabling 1, 4 and all of igb's
#                           MSI-X vectors (10 on QEMU's igb)
#   vfio_pci_driver_test    the upstream VFIO selftest (memcpy through igb's
#                           DMA, MSI) in type1v2 mode, against both backends
#   vgic_lpi_stress         the upstream KVM selftest, LPIs/s with KVM's
#                           built-in ITS and with kvm_vits, alternating, at
#                           -v 2 -d 2 -e 8, -v 2 -d 16 -e 16, -v 1 -d 1 -e 17
#                           (9 rounds) and the single stream -v 1 -d 1 -e 1
#                           (21 rounds); the one-vCPU runs pinned to CPU 0
#   busy-queue              KVM_SIGNAL_MSI latency (translation cache misses)
#                           while the guest runs INVALLs, built-in vs kvm_vits
#   msi-rtt                 an assigned edu's MSI round trip seen from a KVM
#                           guest (raise to LPI handler): vfio_iommu_type1 +
#                           KVM's ITS against vfio_type1x + kvm_vits, median
#                           ratio with a 95% bootstrap interval; the vCPU
#                           thread and edu's MSI pinned to CPU 0 on both sides
#
# Prints each figure and the median of the per-round ratios ours/upstream
# (speed: above 1 is faster) with its 95% bootstrap interval; an interval
# that spans 1.0 is parity. Figures, not assertions:
# under TCG the same benchmark varies up to 4x from boot to boot, which is
# why A and B alternate within one boot and medians are reported.
#
# BENCH_ONLY="vfio busy" (make bench BENCH_ONLY=...) runs only the parts
# whose names contain one of the words: vfio_bench, vfio_pci_driver_test,
# vits_lpi_bench, msi_rtt, vits_busy_queue.
#
# BENCH_VFIO_AA=1 makes both sides of vfio_bench's DMA figures upstream (an
# A/A run): what the method makes of two equal sides.
#
# vfio_bench loads both backends again every round, each above a set of
# spacer modules drawn at random, so that their code lies elsewhere in each
# round (under TCG, placement moves a figure by a few percent: QEMU's jump
# cache). BENCH_VFIO_SEED=<n> repeats the draws of a run whose
# "# vfio_bench:" line printed "placement seed <n>" (the same spacers; the
# addresses can still differ a little, as freed module memory is reused
# lazily).
#
# BENCH_ICOUNT=1 runs the guest under QEMU's -icount (shift=0, sleep=off):
# its clock then counts guest instructions (1 ns each), on one host thread,
# so a figure no longer depends on what else the host does. It weighs every
# instruction alike (no cache misses, no cost for an atomic or a barrier),
# so it is a second view, not a replacement for the default wall clock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"
cd "$top"

perf_modules

bench="$top/build/bench"
rm -rf "$bench"; mkdir -p "$bench"
aarch64-linux-gnu-gcc -static -O2 -Wall -Werror -Wno-format-truncation -D_GNU_SOURCE \
	-DVFIO_BENCH_AA="${BENCH_VFIO_AA:-0}" -DVFIO_BENCH_SEED="${BENCH_VFIO_SEED:-0}ull" -I"$top/include/uapi" -isystem "$KOUT/usr/include" \
	-o "$bench/a_vfio_bench" tests/bench/vfio_bench.c
# Its spacer modules (tests/bench/spacer.h): armsi_spacer<i>.ko of 2^i
# pages, packed with our modules into /armsi/modules.
spacer="$top/build/bench-spacer"
rm -rf "$spacer"; mkdir -p "$spacer"
cp tests/bench/spacer.h "$spacer/"
for i in 0 1 2 3 4 5; do
	printf '#define SPACER_PAGES %d\n#include "spacer.h"\n' $((1 << i)) > "$spacer/armsi_spacer$i.c"
	echo "obj-m += armsi_spacer$i.o" >> "$spacer/Kbuild"
done
make -s -C "$KOUT" M="$spacer" $KMAKE_VARS modules >&2
cp "$spacer"/armsi_spacer*.ko "$perf_src/"
for b in upstream type1x; do
	printf '#!/bin/sh\nexec /armsi/vfio_peer.sh %s vfio_pci_driver_test -v vfio_type1v2_iommu\n' "$b" \
		> "$bench/b_vfio_pci_driver_test@$b"
	chmod +x "$bench/b_vfio_pci_driver_test@$b"
done

cp tests/bench/vits_lpi_bench.sh "$bench/c_vits_lpi_bench"
# Its ratio helper goes with the guest tests (/armsi/tests), not run as one.
aarch64-linux-gnu-gcc -static -O2 -Wall -Werror -o "$top/build/guest/tests/bench_ratio" \
	tests/bench/ratio.c
# The assigned edu's MSI round trip in a KVM guest (tests/kvm/collide_test.c
# in its bench mode): 15 alternating pairs of VMs, 300 MSIs each.
printf '#!/bin/sh\nexec /armsi/tests/collide_test bench 15 300\n' > "$bench/d_msi_rtt"
chmod +x "$bench/d_msi_rtt"
# MSI injection (cache misses) while the guest keeps the ITS command queue
# busy with INVALLs (tests/kvm/vits_cmds_test.c, bench-busy).
printf '#!/bin/sh\nexec /armsi/tests/vits_cmds_test bench-busy 9\n' > "$bench/e_vits_busy_queue"
chmod +x "$bench/e_vits_busy_queue"

if [ -n "${BENCH_ONLY:-}" ]; then
	for f in "$bench"/*; do
		keep=0
		for w in $BENCH_ONLY; do
			case "$(basename "$f")" in *"$w"*) keep=1 ;; esac
		done
		[ "$keep" = 1 ] || rm -f "$f"
	done
	[ -n "$(ls -A "$bench")" ] || { echo "BENCH_ONLY=$BENCH_ONLY matches no part" >&2; exit 2; }
fi

# 5 GiB: vfio_bench keeps three 1 GiB buffers (4 KiB pages, THP, hugetlb)
# populated for its whole run.
mkdir -p build/logs
qemu_extra=
timeout=1800
if [ "${BENCH_ICOUNT:-0}" = 1 ]; then
	qemu_extra="-icount shift=0,sleep=off"
	timeout=5400
fi
scripts/vm.py check --variant perf --modules-dir "$perf_src" --only-extra \
	--extra-tests "$bench" --tag bench --mem 5120 --timeout "$timeout" \
	--test-timeout "$timeout" --qemu-extra "$qemu_extra" | tee build/logs/bench.out
grep -h '^# \(vfio_bench: \|buffers \|map\|unmap\|msix\|note: \|lpi \|msi-rtt (\|busy-queue MSI\)' build/logs/bench.log | sed 's/^/  /' || true
# The raw per-round samples, for another look at the intervals.
grep -h '^# \(lpi-round\|msi-rtt round\|busy-queue round\|round\)' build/logs/bench.log > build/bench-samples.txt || true
echo "raw samples: build/bench-samples.txt"
