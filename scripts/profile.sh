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
# PROFILE_MEM=1 adds the plugin's locality model (mem=on): data accesses and
# where they would miss, per function. PROFILE_HOST=1 instead profiles QEMU
# itself: the plugin only marks the phases' wall-clock spans, `perf record`
# samples the host, and scripts/profhost.py tells what host code (translated
# guest code, QEMU's helpers, its device models) each side's phases ran, per
# call. PROFILE_MIB (unmap_4k; default 64)
# and PROFILE_ROUNDS (unmap_4k; default 4, the first not counted) size the
# run; PROFILE_SWAP=1 (unmap_4k) gives upstream igb's group and ours edu's.
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
	local elf="$out/selftest.elf" res="$out/selftest.out" got want
	aarch64-linux-gnu-gcc -nostdlib -static -Wl,-Ttext=0x40080000 -Wl,--build-id=none \
		-o "$elf" tools/tbprof/selftest.S
	run_selftest() {
		rm -f "$res"
		timeout 60 qemu-system-aarch64 -M virt -cpu max -m 128 -nodefaults -display none \
			-serial none -monitor none -kernel "$elf" -plugin "$plugin,out=$res$1"
		[ -s "$res" ] || { echo "tbprof selftest: the plugin wrote no profile" >&2; return 1; }
	}
	run_selftest "" || return 1
	# Per epoch and phase the instructions, MRS/MSR, unchained exits
	# (indirect, to another page, without a branch) and jump cache lookups
	# and misses, nothing else.
	got=$(awk '{ k = $1 " " $2; n[k] += $5; s[k] += $6; i[k] += $7; p[k] += $8; o[k] += $9
			jl[k] += $10; jm[k] += $11 }
		END { for (k in n) print k, n[k], s[k], i[k], p[k], o[k], jl[k], jm[k] }' "$res" |
		sort | tr '\n' ' ')
	want="0 A 2003 0 0 0 0 0 0 1 B 1005 0 0 0 0 0 0 2 A 2421 1 3 1 1 5 5 "
	if [ "$got" != "$want" ]; then
		echo "tbprof selftest: epochs, phases, instructions, MRS/MSR, exits and" \
			"jump cache lookups and misses:" \
			"$got(want $want)" >&2
		return 1
	fi
	# mem=on: the same instructions, and the third phase's accesses,
	# modelled misses and TLBI; the first two access nothing.
	run_selftest ",mem=on" || return 1
	got=$(awk '$3 == "M" { a[$1 " " $2] += $5; t[$1 " " $2] += $6; u[$1 " " $2] += $7
			c[$1 " " $2] += $8; next }
		$3 == "T" { i[$1 " " $2] += $4; seen[$1 " " $2] = 1; next }
		{ n[$1 " " $2] += $5; seen[$1 " " $2] = 1 }
		END { for (k in seen) print k, n[k] + 0, a[k] + 0, t[k] + 0, u[k] + 0, c[k] + 0, i[k] + 0 }' \
		"$res" | sort | tr '\n' ' ')
	want="0 A 2003 0 0 0 0 0 1 B 1005 0 0 0 0 0 2 A 2421 600 400 400 200 1 "
	if [ "$got" != "$want" ]; then
		echo "tbprof selftest (mem=on): epoch, phase, instructions, accesses, tlb256," \
			"tlb4096 and cache misses, TLBIs: $got(want $want)" >&2
		return 1
	fi
	echo "tbprof selftest: epochs 0 A 2003, 1 B 1005, 2 A 2421 instructions, 1 MRS," \
		"exits 3 indirect, 1 to another page, 1 other; 5 jump cache misses in 5" \
		"lookups; mem=on: 600 accesses, 400 + 400 TLB and 200 cache misses, 1 TLBI;" \
		"as written"
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
unmap_4k)
	aarch64-linux-gnu-gcc "${cflags[@]}" -DPROF_MIB="${PROFILE_MIB:-64}" \
		-DPROF_ROUNDS="${PROFILE_ROUNDS:-4}" -DPROF_SWAP="${PROFILE_SWAP:-0}" -o "$dir/prof_unmap" tests/profile/prof_unmap.c
	;;
lpi_single) install -m 0755 tests/profile/prof_lpi.sh "$dir/prof_lpi" ;;
msi_rtt) install -m 0755 tests/profile/prof_msi_rtt.sh "$dir/prof_msi_rtt" ;;
esac

res="$out/$case.out"
rm -f "$res"
popt="$plugin,out=$res"
[ "${PROFILE_MEM:-0}" = 1 ] && popt+=",mem=on"
perf=()
qemu=
if [ "${PROFILE_HOST:-0}" = 1 ]; then
	command -v perf >/dev/null ||
		{ echo "profile: PROFILE_HOST=1 needs perf on the host (apt install linux-perf)" >&2; exit 1; }
	popt+=",count=off,time=on"
	# -perfmap: perf names QEMU's translated code by guest address.
	qemu="-perfmap "
	perf=(perf record -q -e cpu-clock -F 2000 -k CLOCK_MONOTONIC -o "$out/$case.perf" --)
fi
# nokaslr: the kernel's text where System.map says.
"${perf[@]}" scripts/vm.py check --variant perf --modules-dir "$perf_src" --only-extra \
	--extra-tests "$dir" --tag "profile-$case" --mem 5120 --timeout 3600 \
	--test-timeout 3600 --append nokaslr --qemu-extra "$qemu-plugin $popt" \
	| tail -n 3
if [ "${PROFILE_HOST:-0}" = 1 ]; then
	"$here/profhost.py" --system-map "$KOUT/System.map" "build/logs/profile-$case.log" \
		"$res" "$out/$case.perf" | tee "$out/$case.txt"
else
	"$here/profsym.py" "$KOUT/System.map" "build/logs/profile-$case.log" "$res" \
		| tee "$out/$case.txt"
fi
echo "profile: build/profile/$case.txt (raw: build/profile/$case.out)"
