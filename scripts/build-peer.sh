#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the upstream KVM and VFIO selftests of the <variant> kernel's source,
# static for aarch64, once per kernel, into $CACHE/peer-<kernel dir>, and
# point build/peer at them.
#
#   scripts/build-peer.sh [debug|perf]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"

variant=${1:-debug}
kernel_paths "$variant"
mkdir -p "$top/build"

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
