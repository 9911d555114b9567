#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# QEMU must not be able to tell vfio_type1x from vfio_iommu_type1: every
# line about VFIO that QEMU printed on stderr with vfio_type1x serving its
# container (assign_l2.sh edu type1x ...) must also appear with upstream
# serving it (assign_l2.sh edu upstream ..., same ITS), and vice versa.
out=/tmp/vmm
step=0 fail=0
echo "TAP version 13"
for its in builtin vits; do
	a=$out/edu-upstream+$its.err b=$out/edu-type1x+$its.err
	if [ ! -f "$a" ] || [ ! -f "$b" ]; then
		step=$((step + 1)); echo "not ok $step QEMU's VFIO messages, $its ITS: missing runs"
		fail=1; continue
	fi
	grep -i vfio "$a" | sed 's/0x[0-9a-f]*/X/g' | sort -u > $out/a.$its
	grep -i vfio "$b" | sed 's/0x[0-9a-f]*/X/g' | sort -u > $out/b.$its
	step=$((step + 1))
	if cmp -s $out/a.$its $out/b.$its; then
		echo "ok $step QEMU prints the same VFIO messages with both backends ($its ITS): $(wc -l < $out/a.$its) lines"
	else
		echo "not ok $step QEMU prints the same VFIO messages with both backends ($its ITS)"
		diff $out/a.$its $out/b.$its | sed 's/^/#   /'
		fail=1
	fi
done
echo "1..$step"
exit $fail
