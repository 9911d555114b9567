#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make run`: load the modules and show what they do on this machine.

# Keep the kernel's own error lines (e.g. the refusals the tests provoke)
# out of the report; they stay in the kernel log.
dmesg -n 1
echo "== machine =="
echo "kernel: $(uname -r) $(uname -m)"
grep -o 'GICv3\|ITS@[0-9a-fx]*\|GICv2m' /proc/interrupts 2>/dev/null | sort -u | tr '\n' ' '; echo
dmesg | grep -E 'ITS@|GICv2m:|arm-smmu-v3.*(ias|stage)' | sed 's/^\[[^]]*\] /  /' | head -n 6

echo
echo "== loading our modules =="
for m in msi_isolation vfio_type1x kvm_vits; do
	params=
	[ $m = vfio_type1x ] && params=serve_type1=1
	if insmod /armsi/modules/$m.ko $params; then
		echo "loaded $m: $(dmesg | grep "^\[[^]]*\] $m: " | tail -n 1 | sed 's/^\[[^]]*\] //')"
	else
		echo "FAILED to load $m"
	fi
done
echo
grep -E '^(msi_isolation|vfio_type1x|kvm_vits) ' /proc/modules | awk '{print "  " $1 " size=" $2 " " $5}'

# The story first: a real VMM, with a device assigned through all three.
if [ -x /vmm/usr/bin/qemu-system-aarch64 ] && [ -e /dev/kvm ]; then
	echo
	echo "== A real VMM: Debian's QEMU $(cat /vmm/version 2>/dev/null) runs a KVM guest (L2) with edu assigned =="
	echo "  edu is bound to vfio-pci; QEMU's VFIO container is served by vfio_type1x, which"
	echo "  maps L2's RAM for edu's DMA and the ITS doorbell into its MSI aperture; L2's"
	echo "  ITS is emulated by kvm_vits. In L2, edu_l2 raises 100 MSIs and does a DMA round trip."
	# L2 keeps edu's MSI mapped for 5 s after its tests, for the live view.
	L2_APPEND=edu_l2.hold_ms=5000 /armsi/vmm/assign_l2.sh edu type1x vits 100 \
		> /tmp/vmm-run.tap 2>&1 &
	pid=$!
	shown=0 t=0
	while kill -0 $pid 2>/dev/null; do
		sleep 1; t=$((t + 1))
		last=$(grep -a -v '^\s*$' /tmp/vmm/edu-type1x+vits.console 2>/dev/null | tail -n 1 \
			| sed 's/^\[ *\([0-9]*\)\.[0-9]*\] /L2 at \1 s: /' | cut -c1-72)
		[ $((t % 6)) = 0 ] && echo "  [${t}s] ${last:-QEMU starting (loading its libraries under TCG)}"
		if [ $shown = 0 ] && grep -q translation /sys/kernel/debug/kvm_vits/state 2>/dev/null; then
			shown=1
			echo "  -- live, while L2 runs: vfio_type1x/apertures (QEMU's container) --"
			sed 's/^/     /' /sys/kernel/debug/vfio_type1x/apertures
			echo "  -- live: kvm_vits/state (L2's ITS: edu's MSI as DeviceID/EventID -> LPI) --"
			grep -E 'translation|collection|its0 (base|devices)' /sys/kernel/debug/kvm_vits/state \
				| sed 's/^/     /' | head -n 12
		fi
	done
	wait $pid; rc=$?
	sed -n 's/^\(not ok\|ok\) [0-9]* /  \1: /p; s/^# QEMU exited/  QEMU exited/p' /tmp/vmm-run.tap
	[ $rc = 0 ] && echo "  => edu's MSIs and DMA reached the nested guest through our three modules" \
		|| echo "  => FAILED (rc=$rc); see the lines above"
	# assign_l2.sh unloads what it loaded: back to the state above.
	insmod /armsi/modules/vfio_type1x.ko serve_type1=1 2>/dev/null
	insmod /armsi/modules/kvm_vits.ko 2>/dev/null
fi

# Then the collision the aperture exists for (tests/kvm/collide_test.c).
if [ -x /armsi/tests/collide_test ] && [ -e /dev/kvm ]; then
	echo
	echo "== The collision: a VMM whose guest RAM covers upstream's MSI window (0x8000000) =="
	echo "  A small KVM VMM (the selftests' library) maps all guest RAM for DMA at IOVA == GPA,"
	echo "  as QEMU does, and assigns edu; its guest DMAs through GPA 0x8080000 and counts MSIs."
	/armsi/tests/collide_test > /tmp/collide.tap 2>&1; rc=$?
	sed -n 's/^# \(guest RAM\)/  \1/p; s/^#   /      /p; s/^# \(.*\):$/  \1:/p' /tmp/collide.tap
	sed -n 's/^\(not ok\|ok\) [0-9]* /  \1: /p' /tmp/collide.tap
	[ $rc = 0 ] && echo "  => upstream cannot assign the device to this guest; vfio_type1x can, once its aperture moves" \
		|| echo "  => FAILED (rc=$rc); see the lines above"
	insmod /armsi/modules/vfio_type1x.ko serve_type1=1 2>/dev/null
	insmod /armsi/modules/kvm_vits.ko 2>/dev/null
fi

echo
echo "== IOMMU groups =="
for g in /sys/kernel/iommu_groups/*; do
	[ -d "$g" ] || continue
	for d in "$g"/devices/*; do
		dev=$(basename "$d")
		ids="$(cat "$d/vendor" 2>/dev/null | sed 's/0x//'):$(cat "$d/device" 2>/dev/null | sed 's/0x//')"
		drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
		echo "  group $(basename "$g"): $dev [$ids] driver=${drv:-none}"
	done
done

echo
echo "== MSI isolation verdicts per device (msi_isolation/devices) =="
sed 's/^/  /' /sys/kernel/debug/msi_isolation/devices
echo
echo "== MSI isolation verdicts per IOMMU group (msi_isolation/groups) =="
sed 's/^/  /' /sys/kernel/debug/msi_isolation/groups

echo
echo "== vfio_type1x: edu assigned through our backend (serve_type1=1) =="
if /armsi/tests/vfio_type1x_test -t msi_doorbell_is_mapped_and_edu_msi_arrives > /tmp/msi.out 2>&1; then
	if grep -q "# SKIP" /tmp/msi.out; then
		echo "  skipped: $(sed -n 's/.*# SKIP //p' /tmp/msi.out | head -n 1)"
	else
		echo "  container served by vfio-type1x; vfio-pci enabled edu's MSI, the ITS doorbell"
		echo "  was mapped into the domain's MSI window, and the MSI edu raised arrived"
		echo "  on the eventfd"
	fi
else
	echo "  FAILED:"; grep -v '^#  \|^ok\|^1\.\.' /tmp/msi.out | sed 's/^/    /' | head -n 10
fi
if /armsi/tests/vfio_type1x_test -t edu_dma_through_our_domain_and_locked_vm > /tmp/dma.out 2>&1 \
	&& ! grep -q "# SKIP" /tmp/dma.out; then
	echo "  MAP_DMA of an 8 KiB buffer at IOVA 0x100000 (pinned, locked_vm +8 kB); edu's"
	echo "  DMA engine copied 4 KiB RAM -> device -> RAM through the SMMU and the data"
	echo "  checked out; UNMAP_DMA returned 0x2000 and locked_vm went back"
else
	echo "  DMA round trip FAILED or skipped:"; grep -v '^#  \|^ok\|^1\.\.' /tmp/dma.out | sed 's/^/    /' | head -n 10
fi
for t in default_aperture_reports_the_doorbell_until_teardown \
	 user_aperture_moves_the_doorbell_and_msi_still_lands; do
	if /armsi/tests/vfio_type1x_test -t $t > /tmp/ap.out 2>&1 && ! grep -q "# SKIP" /tmp/ap.out; then
		case $t in
		default*) echo "  default aperture (the SMMU's software-MSI window), after edu's MSI:" ;;
		user*) echo "  user-chosen aperture (VFIO_TYPE1X_SET_MSI_APERTURE at 0x9000000), edu's MSI landed:" ;;
		esac
		sed -n 's/.*:\(MSI aperture .*\)/    \1/p' /tmp/ap.out
	else
		echo "  $t FAILED or skipped:"; grep -v '^#  \|^ok\|^1\.\.' /tmp/ap.out | sed 's/^/    /' | head -n 10
	fi
done

echo
echo "== kvm_vits: a nested KVM guest's ITS, emulated by kvm_vits =="
dbg=/sys/kernel/debug/kvm_vits
if [ ! -e /dev/kvm ] || [ ! -x /peer/kvm/vgic_lpi_stress ] || [ ! -d $dbg ]; then
	echo "  skipped: needs /dev/kvm, the peer selftests and kvm_vits loaded"
else
	# The upstream selftest: its guest maps 2 devices x 4 events through the
	# ITS command queue, the host injects with KVM_SIGNAL_MSI.
	/peer/kvm/vgic_lpi_stress -v 2 -d 2 -e 4 -i 3000 > /tmp/lpi.out 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 200 ] && ! grep -q translation $dbg/state 2>/dev/null; do
		sleep 0.1; i=$((i + 1))
	done
	echo "  vgic_lpi_stress (2 vCPUs, 2 devices x 4 events) running; $dbg/state:"
	sed 's/^/    /' $dbg/state
	if wait $pid; then
		echo "  vgic_lpi_stress: $(grep Rate: /tmp/lpi.out) with kvm_vits"
	else
		echo "  vgic_lpi_stress FAILED:"; sed 's/^/    /' /tmp/lpi.out | tail -n 5
	fi
	echo "  ITS devices served since load: $(cat $dbg/created), alive now: $(cat $dbg/its)"
	echo "  translation cache of the finished VMs: $(cat $dbg/cache)"
fi
