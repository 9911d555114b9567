#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make run`: load the modules and show what they do on this machine.

echo "== machine =="
echo "kernel: $(uname -r) $(uname -m)"
grep -o 'GICv3\|ITS@[0-9a-fx]*\|GICv2m' /proc/interrupts 2>/dev/null | sort -u | tr '\n' ' '; echo
dmesg | grep -E 'ITS@|GICv2m:|arm-smmu-v3.*(ias|stage)' | sed 's/^\[[^]]*\] /  /' | head -n 6

echo
echo "== loading our modules =="
for m in msi_isolation vfio_type1x kvm_vits; do
	if insmod /armsi/modules/$m.ko; then
		echo "loaded $m: $(dmesg | grep "^\[[^]]*\] $m: " | tail -n 1 | sed 's/^\[[^]]*\] //')"
	else
		echo "FAILED to load $m"
	fi
done
echo
grep -E '^(msi_isolation|vfio_type1x|kvm_vits) ' /proc/modules | awk '{print "  " $1 " size=" $2 " " $5}'

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
