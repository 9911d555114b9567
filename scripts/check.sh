#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: every test, host and guest, with one closing line
# "N passed, N failed" (skips are reported, never counted as passes).
#
#   host/cargo        the modules' pure logic, `cargo test` in tests/host
#   host/rustfmt      the module sources are rustfmt-clean (kernel config)
#   host/tbprof-selftest  make profile's QEMU plugin counts a bare-metal
#                     program's phases, and its accesses and misses, exactly
#   guest/...         the in-guest suite (tests/guest/suite.list) in one boot,
#                     our tests on two more machine shapes, and the nested-VMM
#                     suite (tests/vmm/suite.list: Debian's QEMU running L2)
#   harness/...       the harness itself: a failing guest test and a kernel
#                     WARNING must each fail a run
#
# Options, each with a value, for scripts/vm.py: --variant (every boot),
# --machine (the main suite and the harness), --devices and --mem (every
# boot but the nested-VMM one, which needs its own), --extra-tests DIR (the
# main suite; empty: none).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
. "$here/common.sh"
cd "$top"

variant=debug machine='' devices='' mem='' extra=''
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "check.sh: $1 needs a value" >&2; exit 2; }
	case "$1" in
	--variant) variant=$2 ;;
	--machine) machine=$2 ;;
	--devices) devices=$2 ;;
	--mem) mem=$2 ;;
	--extra-tests) [ -z "$2" ] || extra=$(readlink -f "$2") ;;
	*) echo "check.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done
# The vm.py arguments of each kind of boot.
vm_variant=(--variant "$variant")
vm_shape=("${vm_variant[@]}")
[ -z "$devices" ] || vm_shape+=(--devices "$devices")
[ -z "$mem" ] || vm_shape+=(--mem "$mem")
vm_machine=("${vm_shape[@]}")
[ -z "$machine" ] || vm_machine+=(--machine "$machine")
vm_main=("${vm_machine[@]}")
[ -z "$extra" ] || vm_main+=(--extra-tests "$extra")

passed=0 failed=0 skipped=0
n=0
ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n $*"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $*"; }
t0=$(date +%s)
mkdir -p build/logs
echo "TAP version 13"

# --- host: unit tests of the pure logic --------------------------------------
echo "# host: cargo test (tests/host)"
(cd tests/host && cargo test 2>&1) > build/logs/cargo-test.log
crc=$?
# The result first: doctest names contain spaces.
while read -r res name; do
	case "$res" in
	ok) ok "host/$name" ;;
	ignored) n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n host/$name # SKIP ignored" ;;
	*) notok "host/$name" ;;
	esac
done < <(sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored\)$/\2 \1/p' build/logs/cargo-test.log)
if [ $crc != 0 ] && ! grep -q '^test .* FAILED$' build/logs/cargo-test.log; then
	notok "host/cargo-test (exit $crc, see build/logs/cargo-test.log)"
	tail -n 20 build/logs/cargo-test.log | sed 's/^/#   /'
fi

# --- host: formatting -----------------------------------------------------------
ksrc=$(readlink -f "$CACHE/kernel-$variant")/src
if out=$(rustfmt --check --edition 2021 --config-path "$ksrc/.rustfmt.toml" \
		$(find rust tests/vmm -name '*.rs') 2>&1) && (cd tests/host && cargo fmt --check >/dev/null 2>&1); then
	ok "host/rustfmt"
else
	notok "host/rustfmt"; echo "$out" | head -n 20 | sed 's/^/#   /'
fi

# --- host: the profiler (make profile) counts what it should --------------------
if out=$(scripts/profile.sh selftest 2>&1); then
	ok "host/tbprof-selftest"
else
	notok "host/tbprof-selftest"; echo "$out" | tail -n 20 | sed 's/^/#   /'
fi

# --- guest: the suite ---------------------------------------------------------------
# A run that exited non-zero with no failed test and no run error to show
# for it: <exit code> <failed> <run errors>.
unexplained_exit() { [ "$1" != 0 ] && [ "$2" = 0 ] && [ "$3" = 0 ]; }
summary() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['passed'], d['failed'], d['skipped'], len(d['problems']))" "$1"; }
scripts/vm.py check "${vm_main[@]}" --tag check --summary build/logs/check.json > build/logs/check.tap
rc=$?
tap_in() { # <vm.py output>: renumber its TAP into ours, pass comments through
	while IFS= read -r l; do
		case "$l" in
		"ok "*"# SKIP"*) n=$((n + 1)); skipped=$((skipped + 1)); echo "ok $n guest/${l#ok }" ;;
		"ok "*) ok "guest/${l#ok }" ;;
		"not ok "*) notok "guest/${l#not ok }" ;;
		"#"*) echo "$l" ;;
		esac
	done < "$1"
}
tap_in build/logs/check.tap
if [ -f build/logs/check.json ]; then
	read -r gp gf gs gprob < <(summary build/logs/check.json)
	[ "$gprob" = 0 ] || notok "guest/run: $gprob run errors (see above and build/logs/check.log)"
	if unexplained_exit $rc "$gf" "$gprob"; then notok "guest/run: exit $rc"; fi
else
	notok "guest/run: no summary (see build/logs/check.log)"
fi

# --- guest: our tests on the other machine shapes -----------------------------------
# GICv2m (not isolated) and identity default domains (DMA not translated).
for shape in gicv2m gicv3-passthrough; do
	scripts/vm.py check "${vm_shape[@]}" --machine $shape --filter armsi/ --tag "check-$shape" \
		--summary "build/logs/check-$shape.json" > "build/logs/check-$shape.tap"
	rc=$?
	sed -i "s|^ok |ok $shape: |; s|^not ok |not ok $shape: |" "build/logs/check-$shape.tap"
	tap_in "build/logs/check-$shape.tap"
	if [ -f "build/logs/check-$shape.json" ]; then
		read -r gp gf gs gprob < <(summary "build/logs/check-$shape.json")
		[ "$gprob" = 0 ] || notok "guest/$shape: $gprob run errors (see build/logs/check-$shape.log)"
	else
		notok "guest/$shape: no summary (see build/logs/check-$shape.log)"
	fi
done

# --- guest: a real VMM end to end (tests/vmm) ------------------------------------------
# Debian's QEMU in the guest runs L2 with edu assigned, through each pair of
# {vfio_iommu_type1, vfio_type1x} x {KVM's ITS, kvm_vits}, with a virtio-rng
# (MSI-X) assigned, and migrates L2 across ITS backends. edu's DMA mask is
# raised so that L2's addresses (RAM at 1 GiB) fit; the virtio-rng must
# translate its DMA through the SMMU (iommu_platform=on, modern only), as a
# real device does, or it writes L1's memory at L2's addresses. The suite
# took 1289 s on a slow day of a 2-core machine: the whole-run limit is
# raised from vm.py's 1800 s so that such a day does not fail CI.
scripts/vm.py check "${vm_variant[@]}" --machine gicv3 --vmm --mem 3072 \
	--devices "edu,dma_mask=0xffffffffff virtio-rng-pci,iommu_platform=on,disable-legacy=on" \
	--timeout 3000 --tag check-vmm \
	--summary build/logs/check-vmm.json > build/logs/check-vmm.tap
rc=$?
tap_in build/logs/check-vmm.tap
if [ -f build/logs/check-vmm.json ]; then
	read -r gp gf gs gprob < <(summary build/logs/check-vmm.json)
	[ "$gprob" = 0 ] || notok "guest/vmm: $gprob run errors (see build/logs/check-vmm.log)"
	if unexplained_exit $rc "$gf" "$gprob"; then notok "guest/vmm: exit $rc"; fi
else
	notok "guest/vmm: no summary (see build/logs/check-vmm.log)"
fi

# --- the harness tests itself ---------------------------------------------------------
# No summary counts as a run error in both.
scripts/vm.py check "${vm_machine[@]}" --only-extra --extra-tests build/harness/fail \
	--tag harness-fail --summary build/logs/harness-fail.json --quiet > build/logs/harness-fail.out
rc=$?
read -r hp hf hs hprob < <(summary build/logs/harness-fail.json 2>/dev/null || echo "0 0 0 1")
if [ $rc != 0 ] && [ "$hp" = 1 ] && [ "$hf" = 1 ] && [ "$hprob" = 0 ] \
	&& grep -q deliberate_failure build/logs/harness-fail.json; then
	ok "harness/failing-guest-test-fails-the-run"
else
	notok "harness/failing-guest-test-fails-the-run (rc=$rc pass=$hp fail=$hf problems=$hprob)"
fi
scripts/vm.py check "${vm_machine[@]}" --only-extra --extra-tests build/harness/splat \
	--tag harness-splat --summary build/logs/harness-splat.json --quiet > build/logs/harness-splat.out
rc=$?
read -r hp hf hs hprob < <(summary build/logs/harness-splat.json 2>/dev/null || echo "0 0 0 1")
if [ $rc != 0 ] && [ "$hp" = 1 ] && [ "$hf" = 0 ] && grep -q 'WARNING:' build/logs/harness-splat.json; then
	ok "harness/kernel-warning-fails-the-run"
else
	notok "harness/kernel-warning-fails-the-run (rc=$rc pass=$hp fail=$hf problems=$hprob)"
fi

echo "1..$n"
echo "# $(( $(date +%s) - t0 )) s; logs in build/logs/; $skipped skipped (not counted as passed)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
