#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# `make profile PROFILE=msi_rtt`: the assigned edu's MSI round trip seen from
# a KVM guest (collide_test's bench mode, whose guest marks its MSI loop):
# vfio_iommu_type1 + KVM's ITS in tbprof's phase A, vfio_type1x + kvm_vits in
# phase B, 3 pairs of VMs with 300 MSIs each. TBPROF_SYMS makes collide_test
# log the modules' symbols each time it has loaded them.
echo "TAP version 13"
echo "1..1"
TBPROF_SYMS=1 /armsi/tests/collide_test bench 3 300 || {
	echo "not ok 1 prof_msi_rtt # collide_test failed"; exit 1; }
echo "# profile calls 900"
echo "ok 1 prof_msi_rtt"
