#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make profile PROFILE=<case>`: where the guest's instructions go, ours
# against upstream, in one boot of the perf kernel under QEMU's TCG with the
# tools/tbprof plugin. The guest marks upstream's side as phase A and ours as
# phase B; scripts/profsym.py names the code and prints, per function, the
# instructions per call of each side (build/profile/<case>.txt).
#
#   unmap_4k     UNMAP_DMA of one 4 KiB mapping (64 MiB, one call per page),
#                vfio_iommu_type1 against vfio_type1x (tests/profile/prof_unmap.c)
#   lpi_single   vgic_lpi_stress -v 1 -d 1 -e 1 (per LPI), KVM's built-in ITS
#                against kvm_vits (tests/profile/prof_lpi.sh)
#   msi_rtt      an assigned edu's MSI round trip in a KVM guest (per MSI),
#                vfio_iommu_type1 + KVM's ITS against vfio_type1x + kvm_vits
#                (collide_test bench; tests/profile/prof_msi_rtt.sh)
#   selftest     the plugin alone on a bare-metal program of known phase
#                lengths (tools/tbprof/selftest.S); also part of make check
#
# Instruction counts, not time: they show where two paths differ in work,
# not what an atomic, a barrier or a cache miss costs (make bench does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"
cd "$top"

case=${1:-}
out="$top/build/profile"
mkdir -p "$out"

# The plugin: plain C against QEMU's plugin ABI, no QEMU headers needed
# (clang-19: make setup installs it; it builds the kernel too).
plugin="$out/tbprof.so"
clang-19 -O2 -Wall -Wextra -Werror -shared -fPIC -o "$plugin" tools/tbprof/tbprof.c

selftest() {
	local elf="$out/selftest.elf" res="$out/selftest.out" got
	aarch64-linux-gnu-gcc -nostdlib -static -Wl,-Ttext=0x40080000 -Wl,--build-id=none \
		-o "$elf" tools/tbprof/selftest.S
	rm -f "$res"
	timeout 60 qemu-system-aarch64 -M virt -cpu max -m 128 -nodefaults -display none \
		-serial none -monitor none -kernel "$elf" -plugin "$plugin,out=$res"
	[ -s "$res" ] || { echo "tbprof selftest: the plugin wrote no profile" >&2; return 1; }
	# Per epoch and phase: "0 A 2003" then "1 B 1005", nothing else.
	got=$(awk '{ n[$1 " " $2] += $5 } END { for (k in n) print k, n[k] }' "$res" | sort | tr '\n' ' ')
	if [ "$got" != "0 A 2003 1 B 1005 " ]; then
		echo "tbprof selftest: epochs, phases and counts: $got(want 0 A 2003 1 B 1005)" >&2
		return 1
	fi
	echo "tbprof selftest: epoch 0 phase A 2003, epoch 1 phase B 1005 instructions, as written"
}

case "$case" in
selftest) selftest; exit ;;
unmap_4k | lpi_single | msi_rtt) ;;
*)
	echo "usage: make profile PROFILE=unmap_4k|lpi_single|msi_rtt|selftest" >&2
	exit 2
	;;
esac
selftest >/dev/null

perf_modules

# The guest programs: the case's and the phase switch for scripts.
dir="$out/guest"
rm -rf "$dir"; mkdir -p "$dir"
cflags=(-static -O2 -Wall -Werror -Wno-format-truncation -D_GNU_SOURCE
	-I"$top/include/uapi" -isystem "$KOUT/usr/include")
aarch64-linux-gnu-gcc "${cflags[@]}" -o "$top/build/guest/tests/tbprof_mark" \
	tests/profile/tbprof_mark.c
case "$case" in
unmap_4k) aarch64-linux-gnu-gcc "${cflags[@]}" -o "$dir/prof_unmap" tests/profile/prof_unmap.c ;;
lpi_single) install -m 0755 tests/profile/prof_lpi.sh "$dir/prof_lpi" ;;
msi_rtt) install -m 0755 tests/profile/prof_msi_rtt.sh "$dir/prof_msi_rtt" ;;
esac

res="$out/$case.out"
rm -f "$res"
# nokaslr: the kernel's text where System.map says.
scripts/vm.py check --variant perf --modules-dir "$perf_src" --only-extra \
	--extra-tests "$dir" --tag "profile-$case" --mem 5120 --timeout 3600 \
	--test-timeout 3600 --append nokaslr --qemu-extra "-plugin $plugin,out=$res" \
	| tail -n 3
"$here/profsym.py" "$KOUT/System.map" "build/logs/profile-$case.log" "$res" \
	| tee "$out/$case.txt"
echo "profile: build/profile/$case.txt (raw: build/profile/$case.out)"
