# SPDX-License-Identifier: GPL-2.0
#
# Shared by the nested-VMM scripts (sourced, not run): TAP steps, the
# checks that the run can happen, and Debian's QEMU (/vmm) started through
# its loader with L2's kernel and initramfs (/l2).
R=/vmm
L=$R/usr/lib/aarch64-linux-gnu
vits=/sys/kernel/debug/kvm_vits
step=0 fail=0
ok() { step=$((step + 1)); echo "ok $step $*"; }
notok() { step=$((step + 1)); echo "not ok $step $*"; fail=1; }

# TAP header; skips the script without /dev/kvm, fails it without /vmm.
vmm_start_tap() {
	echo "TAP version 13"
	[ -e /dev/kvm ] || { echo "1..0 # SKIP no /dev/kvm (nested virtualization)"; exit 4; }
	[ -x $R/usr/bin/qemu-system-aarch64 ] || { echo "not ok 1 no VMM in /vmm (vm.py --vmm)"; exit 1; }
}

# KVM's ITS for the VMs created from now on: builtin|vits.
its_backend() {
	rmmod kvm_vits 2>/dev/null
	[ "$1" != vits ] || { insmod /armsi/modules/kvm_vits.ko && [ -d $vits ]; }
}
vits_created() { cat $vits/created 2>/dev/null || echo 0; }

# l2_qemu <out/tag> <L2 command line> [QEMU arguments]: runs L2 (one vCPU,
# 384 MiB at 1 GiB, the same kernel) with its console in <out/tag>.console
# and QEMU's output in <out/tag>.{out,err}.
l2_qemu() {
	base=$1 cmdline=$2; shift 2
	$L/ld-linux-aarch64.so.1 --library-path $L $R/usr/bin/qemu-system-aarch64 \
		-L $R/usr/share/qemu -M virt,gic-version=3,its=on -accel kvm -cpu host -smp 1 -m 384 \
		-display none -serial file:$base.console -no-reboot -nic none \
		-kernel /l2/Image -initrd /l2/l2.cpio.gz \
		-append "console=ttyAMA0 panic=-1 rdinit=/init $cmdline" \
		"$@" > $base.out 2> $base.err
}

# wait_bounded <pid> <seconds>: waits for a background QEMU, killing it
# after that long; returns its exit status.
wait_bounded() {
	i=0
	while kill -0 $1 2>/dev/null && [ $i -lt $2 ]; do sleep 1; i=$((i + 1)); done
	kill $1 2>/dev/null
	wait $1
}
