#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# `make profile PROFILE=lpi_single`: vgic_lpi_stress's single stream
# (-v 1 -d 1 -e 1) with KVM's built-in ITS in tbprof's phase A and with
# kvm_vits in phase B, three runs of 40000 LPIs each.
echo "TAP version 13"
echo "1..1"
mark=/armsi/tests/tbprof_mark
cfg="-v 1 -d 1 -e 1 -i 40000"
runs=3
fail() { echo "not ok 1 prof_lpi # $*"; rmmod kvm_vits 2>/dev/null; exit 1; }
rmmod kvm_vits 2>/dev/null
i=0
while [ $i -lt $runs ]; do
	for side in builtin vits; do
		# Module load and unload stay outside the phases; its symbols
		# and the phase's start go to the log for scripts/profsym.py.
		if [ $side = vits ]; then
			insmod /armsi/modules/kvm_vits.ko || fail "insmod kvm_vits"
			sed -n '/\[kvm_vits\]/s/^/# ks /p' /proc/kallsyms
			p=b
		else
			p=a
		fi
		echo "# tbprof $(echo $p | tr ab AB)"
		$mark $p
		out=$(/peer/kvm/vgic_lpi_stress $cfg 2>&1)
		rc=$?
		$mark off
		echo "$out" | grep Rate | sed "s/^/# $side: /"
		[ $rc = 0 ] || { echo "$out" | sed 's/^/#   /'; fail "$side: rc=$rc"; }
		if [ $side = vits ]; then
			[ "$(cat /sys/kernel/debug/kvm_vits/created)" != 0 ] || fail "no ITS from kvm_vits"
			rmmod kvm_vits || fail "rmmod kvm_vits"
		fi
	done
	i=$((i + 1))
done
echo "# profile calls $((runs * 40000))"
echo "ok 1 prof_lpi"
