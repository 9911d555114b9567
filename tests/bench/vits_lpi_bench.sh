#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# vgic_lpi_stress (upstream KVM selftest) LPIs/s with KVM's built-in ITS and
# with kvm_vits, alternating within one boot, for each configuration; prints
# every round, then the medians and the median ratio kvm_vits / built-in
# with its 95% bootstrap interval:
#
#   # lpi <config> upstream=<median> ours=<median> ratio=<r> [95% lo, hi] <verdict>
#
#   vits_lpi_bench.sh [rounds [single-stream rounds]]
#
# The single stream gets more rounds (21): its two sides differ by a few
# percent, about what one disturbed round on the wall clock moves.
#
# With one vCPU (-v 1) the run is pinned to CPU 0 (taskset), the vCPU
# thread with the thread that injects: left to the scheduler, the two
# threads shared a CPU in some rounds and not in others, and the single
# stream's rate varied 2.4-fold within one backend (30k to 74k LPI/s).
rounds=${1:-9}
single_rounds=${2:-21}
# tests/bench/ratio.c, built by scripts/bench.sh.
ratio_bin=/armsi/tests/bench_ratio
peer=/armsi/kvm_peer.sh
fail=0

rate() { # backend config...
	b=$1; shift
	case " $* " in
	*" -v 1 "*) out=$(taskset 1 $peer "$b" vgic_lpi_stress "$@" 2>&1) ;;
	*) out=$($peer "$b" vgic_lpi_stress "$@" 2>&1) ;;
	esac
	rc=$?
	r=$(echo "$out" | sed -n 's/^Rate: \([0-9.]*\) LPIs\/sec/\1/p')
	if [ $rc != 0 ] || [ -z "$r" ]; then
		echo "$out" | sed 's/^/#   /' >&2
		echo "not ok: vgic_lpi_stress $* with $b (rc=$rc)" >&2
		fail=1
		r=0
	fi
	echo "$r"
}

for cfg in "-v 2 -d 2 -e 8 -i 4000" "-v 2 -d 16 -e 16 -i 250" "-v 1 -d 1 -e 17 -i 4000" \
	"-v 1 -d 1 -e 1 -i 40000"; do
	name=$(echo "$cfg" | sed 's/ -i [0-9]*//; s/ //g')
	pairs=
	n=$rounds
	[ "$name" != "-v1-d1-e1" ] || n=$single_rounds
	i=1
	while [ $i -le "$n" ]; do
		# Alternate which backend goes first.
		if [ $((i % 2)) = 1 ]; then
			b=$(rate builtin $cfg); v=$(rate vits $cfg)
		else
			v=$(rate vits $cfg); b=$(rate builtin $cfg)
		fi
		echo "# lpi-round $name round=$i builtin=$b vits=$v"
		pairs="$pairs
$b $v"
		i=$((i + 1))
	done
	# The per-round pairs, upstream first, to the interval helper.
	echo "# lpi $name $(echo "$pairs" | $ratio_bin)"
done
exit $fail
