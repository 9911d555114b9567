#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The ITS state through a real VMM's migration, across ITS backends:
#
#   migrate_l2.sh builtin|vits builtin|vits [irqs]
#
# Debian's QEMU (/vmm) runs L2 with an emulated virtio-rng-pci (QEMU's own
# model, no VFIO: the VM is migratable; QEMU's edu has no migration state).
# L2's virtio drivers map its MSI-X vectors through L2's ITS; L2 reads n x
# 16 bytes from /dev/hwrng (each request completed by an interrupt), prints
# PAUSE and sleeps with the LPIs mapped. Meanwhile QEMU migrates the VM to
# a file (HMP migrate "exec:cat > f") with the first ITS backend, kvm_vits
# is loaded or unloaded, and a second QEMU restores it (-incoming "exec:cat
# f") with the second backend; L2 wakes and reads n x 16 bytes more,
# completed through the same, restored, translations. Prints TAP.
from=$1; to=$2; n=${3:-50}
out=/tmp/vmm/mig-$from-$to; rm -rf $out; mkdir -p $out
. "$(dirname "$0")/lib.sh"
vmm_start_tap

# L2 with an emulated virtio-rng: <tag> [more QEMU arguments].
qemu() {
	tag=$1; shift
	l2_qemu $out/$tag "l2.test=rng-mig l2.reads=$n l2.pause=40" -device virtio-rng-pci "$@"
}

# Waits up to $2 s for $3 in file $1.
wait_for() {
	i=0
	while [ $i -lt $2 ]; do
		grep -aq "$3" $1 2>/dev/null && return 0
		sleep 1; i=$((i + 1))
	done
	return 1
}

# --- the source, with the first backend -------------------------------------
its_backend $from || { notok "load the $from ITS backend"; exit 1; }
c0=$(vits_created)
mkfifo $out/mon.in $out/mon.out
qemu src -monitor pipe:$out/mon &
src=$!
cat $out/mon.out > $out/mon.log &
exec 3<>$out/mon.in
if wait_for $out/src.console 240 'l2_rng: PAUSE'; then
	ok "L2 on the source ($from ITS) took virtio-rng's interrupts: $(grep -a 'l2_rng: PAUSE' $out/src.console | sed 's/.*PAUSE //')"
else
	notok "L2 on the source ($from ITS) reached the pause (console tail below)"
	tail -n 20 $out/src.console | sed 's/^/#   /'
	kill $src; wait $src; exit 1
fi
if [ "$from" = vits ]; then
	[ "$(vits_created)" -gt "$c0" ] && ok "kvm_vits emulated the source's ITS" \
		|| notok "kvm_vits emulated the source's ITS (created $c0 -> $(vits_created))"
fi
t0=$(date +%s)
# HMP wants the URI quoted (it has spaces).
echo "migrate \"exec:cat > $out/state\"" >&3
i=0
while [ $i -lt 60 ]; do
	sleep 1; i=$((i + 1))
	echo "info migrate" >&3
	grep -q "Migration status: completed" $out/mon.log && break
	grep -q "Migration status: failed" $out/mon.log && break
done
if grep -q "Migration status: completed" $out/mon.log; then
	ok "QEMU migrated L2 to a file ($(du -k $out/state | cut -f1) KiB) in $(( $(date +%s) - t0 )) s"
else
	notok "QEMU migrated L2 to a file"
	grep -a -i "status\|error" $out/mon.log | tail -n 5 | sed 's/^/#   /'
fi
echo quit >&3
exec 3>&-
wait_bounded $src 60
sed 's/^/# source qemu: /' $out/src.err | head -n 5

# --- the destination, with the second backend --------------------------------
its_backend $to || { notok "load the $to ITS backend"; exit 1; }
c1=$(vits_created)
t0=$(date +%s)
qemu dst -monitor none -incoming "exec:cat $out/state" &
wait_bounded $! 300
sed 's/^/# destination qemu: /' $out/dst.err | head -n 5
result=$(grep -a 'l2_rng: RESULT' $out/dst.console | tail -n 1 | sed 's/.*l2_rng: RESULT //')
if [ -n "$result" ]; then
	ok "L2 restored on the destination ($to ITS) and finished in $(( $(date +%s) - t0 )) s: $result"
else
	notok "L2 restored on the destination ($to ITS) and finished (console tail below)"
	tail -n 20 $out/dst.console | sed 's/^/#   /'
fi
# The request vector took interrupts in each round ("virtio0-input=<n>").
before=$(echo "$result" | sed -n 's/.*before: reads=ok irqs=\([^ ]*\) after:.*/\1/p')
after=$(echo "$result" | sed -n 's/.*after: reads=ok irqs=\([^ ]*\).*/\1/p')
took() { echo "$1" | tr ',' '\n' | grep -v config | awk -F= '$2 > 0' | grep -q .; }
if took "$before" && took "$after"; then
	ok "reads completed by MSI-X before the migration ($before) and after it, through the restored ITS ($after)"
else
	notok "reads completed by MSI-X before the migration and after it, through the restored ITS (before: ${before:-none}; after: ${after:-none})"
fi
if [ "$to" = vits ]; then
	[ "$(vits_created)" -gt "$c1" ] && ok "kvm_vits emulated the destination's ITS" \
		|| notok "kvm_vits emulated the destination's ITS (created $c1 -> $(vits_created))"
fi
its_backend builtin
echo "1..$step"
exit $fail
