#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs an upstream VFIO selftest (tools/testing/selftests/vfio, in /peer/vfio)
# on QEMU's igb (8086:10c9) in the type1 modes, against one backend:
#
#   vfio_peer.sh upstream|type1x <test> [harness options]
#
# "type1x" loads vfio_type1x with serve_type1=1 (so it is asked before
# vfio_iommu_type1) and fails unless it really served the test's containers.
backend=$1; test=$2; shift 2

bdf=
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10c9 ]; then
		bdf=$(basename "$d"); break
	fi
done
if [ -z "$bdf" ]; then echo "no igb device"; exit 4; fi
if [ ! -e "/sys/bus/pci/devices/$bdf/driver" ] || \
   [ "$(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")")" != vfio-pci ]; then
	[ -e "/sys/bus/pci/devices/$bdf/driver" ] && echo "$bdf" > "/sys/bus/pci/devices/$bdf/driver/unbind"
	echo vfio-pci > "/sys/bus/pci/devices/$bdf/driver_override"
	echo "$bdf" > /sys/bus/pci/drivers_probe
fi
# The hugetlb variants want 2 MiB pages.
[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 64 ] || echo 64 > /proc/sys/vm/nr_hugepages

rmmod vfio_type1x 2>/dev/null
served=/sys/kernel/debug/vfio_type1x/served
if [ "$backend" = type1x ]; then
	# vfio_type1x links against msi_isolation (modprobe would load it first).
	[ -d /sys/module/msi_isolation ] || insmod /armsi/modules/msi_isolation.ko || exit 1
	insmod /armsi/modules/vfio_type1x.ko serve_type1=1 || exit 1
	before=$(cat $served)
fi
/peer/vfio/"$test" "$@" "$bdf"
rc=$?
if [ "$backend" = type1x ]; then
	after=$(cat $served)
	rmmod vfio_type1x
	if [ "$after" = "$before" ]; then
		echo "not ok 999 $test did not reach vfio_type1x (served $before -> $after)"
		exit 1
	fi
	echo "# vfio_type1x served $((after - before)) containers"
fi
exit $rc
