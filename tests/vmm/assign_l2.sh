#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# A real VMM end to end, in the test guest (L1): Debian's own QEMU (/vmm)
# runs a KVM guest (L2) with a device of the outer machine assigned through
# vfio-pci:
#
#   assign_l2.sh edu|rng upstream|type1x builtin|vits [n]
#
# "edu": L2's edu_l2 driver (tests/vmm/l2) raises n MSIs and does a DMA
# round trip. "rng": a virtio-rng-pci, driven by L2's own virtio drivers
# (MSI-X, a config and a request vector): L2 reads n x 16 bytes from
# /dev/hwrng, each request DMA'd into L2's memory by the device and
# completed by an MSI-X interrupt, counted per vector.
# "upstream": the kernel's vfio_iommu_type1 serves QEMU's container;
# "type1x": vfio_type1x (serve_type1=1) does, and must really have served it.
# "builtin": KVM's own ITS emulates L2's ITS; "vits": kvm_vits does, and must
# really have created it. $L2_APPEND, if set, is added to L2's command line.
# Prints TAP; QEMU's stderr is kept in
# /tmp/vmm/<dev>-<backend>+<its>.err for compare_logs.sh.
dev=$1; backend=$2; its=$3; n=${4:-100}
tag=$dev-$backend+$its
out=/tmp/vmm; mkdir -p $out
t1x=/sys/kernel/debug/vfio_type1x
. "$(dirname "$0")/lib.sh"

case "$dev" in
edu) ids="0x1234:0x11e8"; append="l2.test=edu edu_l2.irqs=$n"; marker="edu_l2: RESULT" ;;
rng) ids="0x1af4:0x1005 0x1af4:0x1044"; append="l2.test=rng l2.reads=$n"; marker="l2_rng: RESULT" ;;
*) echo "usage: $0 edu|rng upstream|type1x builtin|vits [n]"; exit 2 ;;
esac
bdf=
for d in /sys/bus/pci/devices/*; do
	case " $ids " in *" $(cat "$d/vendor"):$(cat "$d/device") "*) bdf=$(basename "$d"); break ;; esac
done
vmm_start_tap
[ -n "$bdf" ] || { echo "1..0 # SKIP no $dev device"; exit 4; }

# The backends under test, and nothing else of ours.
rmmod vfio_type1x 2>/dev/null
its_backend $its || exit 1
created0=$(vits_created)
if [ "$backend" = type1x ]; then
	[ -d /sys/module/msi_isolation ] || insmod /armsi/modules/msi_isolation.ko || exit 1
	insmod /armsi/modules/vfio_type1x.ko serve_type1=1 || exit 1
	served0=$(cat $t1x/served)
fi

# The device to vfio-pci.
if [ "$(basename "$(readlink /sys/bus/pci/devices/$bdf/driver 2>/dev/null)")" != vfio-pci ]; then
	[ -e /sys/bus/pci/devices/$bdf/driver ] && echo $bdf > /sys/bus/pci/devices/$bdf/driver/unbind
	echo vfio-pci > /sys/bus/pci/devices/$bdf/driver_override
	echo $bdf > /sys/bus/pci/drivers_probe
fi

# L2: the same kernel, a busybox initramfs with edu_l2.ko; 384 MiB at 1 GiB.
start=$(date +%s)
l2_qemu $out/$tag "$append $L2_APPEND" -monitor none -device vfio-pci,host=$bdf &
wait_bounded $! 600
rc=$?
took=$(( $(date +%s) - start ))
echo "# QEMU exited with $rc after $took s"
sed 's/^/# qemu: /' $out/$tag.err | head -n 20

result=$(grep -a "$marker" $out/$tag.console | tail -n 1 | sed "s/.*$marker //")
if [ -n "$result" ]; then
	ok "L2 booted and reported: $result"
else
	notok "L2 booted and reported (no RESULT line; console tail below)"
	tail -n 30 $out/$tag.console | sed 's/^/#   /'
fi
if [ $dev = edu ]; then
	got=$(echo "$result" | sed -n 's/.*irqs=\([0-9]*\)\/\([0-9]*\).*/\1 \2/p')
	set -- $got
	if [ -n "$got" ] && [ "$1" = "$2" ] && [ "$2" = "$n" ]; then
		ok "$n/$n MSIs of the assigned edu reached L2"
	else
		notok "$n/$n MSIs of the assigned edu reached L2 (got ${1:-none}/${2:-none})"
	fi
	case "$result" in
	*"dma=ok"*) ok "edu's DMA round trip through L2's memory" ;;
	*) notok "edu's DMA round trip through L2's memory" ;;
	esac
else
	case "$result" in
	*"reads=ok"*) ok "L2 read $n x 16 bytes the assigned virtio-rng DMA'd into its memory" ;;
	*) notok "L2 read $n x 16 bytes the assigned virtio-rng DMA'd into its memory" ;;
	esac
	# Per vector: "virtio0-config=0,virtio0-input=37".
	vecs=$(echo "$result" | sed -n 's/.*irqs=\([^ ]*\).*/\1/p' | tr ',' ' ')
	nv=0 busy=0
	for v in $vecs; do
		nv=$((nv + 1))
		case "$v" in *config=*) ;; *) [ "${v##*=}" -gt 0 ] && busy=$((busy + 1)) ;; esac
	done
	[ $nv -ge 2 ] && [ $busy -ge 1 ] \
		&& ok "MSI-X: $nv vectors, the request vector took the completions ($vecs)" \
		|| notok "MSI-X: 2 or more vectors, the request vector took the completions (${vecs:-none})"
fi
if [ "$backend" = type1x ]; then
	served=$(cat $t1x/served)
	[ "$served" -gt "$served0" ] && ok "vfio_type1x served QEMU's container" \
		|| notok "vfio_type1x served QEMU's container (served $served0 -> $served)"
	rmmod vfio_type1x || notok "vfio_type1x unloads after QEMU exits"
fi
if [ "$its" = vits ]; then
	created=$(vits_created)
	[ "$created" -gt "$created0" ] && ok "kvm_vits emulated L2's ITS" \
		|| notok "kvm_vits emulated L2's ITS (created $created0 -> $created)"
	rmmod kvm_vits || notok "kvm_vits unloads after QEMU exits"
fi
echo "1..$step"
exit $fail
