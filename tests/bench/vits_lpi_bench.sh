#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# vgic_lpi_stress (upstream KVM selftest) LPIs/s with KVM's built-in ITS and
# with kvm_vits, alternating within one boot, for each configuration; prints
# every round, then the medians and the ratio kvm_vits / built-in:
#
#   # lpi <config> builtin=<median> vits=<median> ratio=<r>
#
#   vits_lpi_bench.sh [rounds]
rounds=${1:-5}
peer=/armsi/kvm_peer.sh
fail=0

rate() { # backend config...
	b=$1; shift
	out=$($peer "$b" vgic_lpi_stress "$@" 2>&1)
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

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for cfg in "-v 2 -d 2 -e 8 -i 4000" "-v 2 -d 16 -e 16 -i 250" "-v 1 -d 1 -e 17 -i 4000"; do
	name=$(echo "$cfg" | sed 's/ -i [0-9]*//; s/ //g')
	bl=; vl=
	i=1
	while [ $i -le "$rounds" ]; do
		# Alternate which backend goes first.
		if [ $((i % 2)) = 1 ]; then
			b=$(rate builtin $cfg); v=$(rate vits $cfg)
		else
			v=$(rate vits $cfg); b=$(rate builtin $cfg)
		fi
		echo "# lpi-round $name round=$i builtin=$b vits=$v"
		bl="$bl $b"; vl="$vl $v"
		i=$((i + 1))
	done
	mb=$(echo "$bl" | median); mv=$(echo "$vl" | median)
	ratio=$(awk -v a="$mv" -v b="$mb" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	echo "# lpi $name builtin=$mb vits=$mv ratio=$ratio"
done
exit $fail
