#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs an upstream KVM selftest (tools/testing/selftests/kvm, in /peer/kvm)
# against one ITS implementation:
#
#   kvm_peer.sh builtin|vits <test> [test options]
#
# "vits" loads kvm_vits first and fails unless the test's VMs really got
# their ITS from it; afterwards the module must unload (no VM pins it).
# "builtin" makes sure kvm_vits is not loaded.
backend=$1; test=$2; shift 2
dbg=/sys/kernel/debug/kvm_vits

rmmod kvm_vits 2>/dev/null
if [ "$backend" = vits ]; then
	insmod /armsi/modules/kvm_vits.ko || exit 1
fi
/peer/kvm/"$test" "$@"
rc=$?
if [ "$backend" = vits ]; then
	created=$(cat $dbg/created)
	live=$(cat $dbg/its)
	cache=$(cat $dbg/cache)
	if ! rmmod kvm_vits; then
		echo "not ok 998 kvm_vits does not unload after $test ($live ITS alive)"
		exit 1
	fi
	if [ "$created" = 0 ]; then
		echo "not ok 999 $test did not reach kvm_vits (no ITS created)"
		exit 1
	fi
	echo "# kvm_vits served $created ITS devices; cache: $cache"
fi
exit $rc
