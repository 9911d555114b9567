#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Predicts, for the code placement of each `make bench` boot, the misses
per UNMAP_DMA call that QEMU's jump cache costs each side of vfio_bench's
4K per-page unmap.

    jcpredict.py System.map profile.log profile.out bench.log

The blocks each side enters through the jump cache, and how often per call,
come from a `make profile PROFILE=unmap_4k` of the same build (its guest
log and the plugin's output, counting on: not PROFILE_HOST). Each one is
moved to where the bench boot put its function: a module's by its
/proc/kallsyms line in the bench log (vfio_bench prints them every round),
the kernel's by vfs_read's offset from System.map. Blocks that then share
a slot (tb_jmp_cache_hash_func(), see tools/tbprof/tbprof.c) evict each
other: per slot, the lookups of its blocks miss except what the most
frequent one makes beyond all the others together. Order is not modelled,
so on the profile's own placement this comes near the plugin's count, not
to it exactly. Blocks in user space are left out: another program.
"""
import argparse
import bisect
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profsym  # noqa: E402

VFS_READ = re.compile(r'# ks ([0-9a-f]+) T vfs_read$')
ENTRIES = ('vfio_iommu_type1_ioctl [vfio_iommu_type1]', 't1x_rust_ioctl [vfio_type1x]')


def slot(pc):
    tmp = pc ^ (pc >> 6)
    return ((tmp >> 6) & 0xfc0) | (tmp & 0x3f)


class Names(profsym.Names):
    def where(self, v):
        i = bisect.bisect_right(self.addrs, v) - 1
        return self.syms[self.addrs[i]], v - self.addrs[i]


def targets(system_map, log, out):
    """{side: Counter((symbol, offset) -> lookups)} and the calls per side."""
    ksyms = profsym.kernel_symbols(system_map)
    marked, calls = profsym.phases(log)
    if not calls:
        sys.exit('jcpredict: no "# profile calls" line in the profile log')
    names, found = {}, {'A': collections.Counter(), 'B': collections.Counter()}
    with open(out) as f:
        for line in f:
            fields = line.split()
            if fields[2] in ('M', 'T', 'W'):
                continue
            if len(fields) < 11:
                sys.exit('jcpredict: the profile has no jump cache counts '
                         '(an older plugin, or PROFILE_HOST=1)')
            epoch, side, lookups = int(fields[0]), fields[1], int(fields[9])
            vaddr = int(fields[2], 16)
            if not lookups or vaddr < profsym.KERNEL_BASE:
                continue
            if epoch not in names:
                names[epoch] = Names(ksyms, marked[epoch][1])
            found[side][names[epoch].where(vaddr)] += lookups
    return found, calls, {name: addr for addr, name in ksyms.items()}


def placements(bench_log):
    """Each distinct placement the bench log printed: (vfs_read, {symbol: addr})."""
    seen, cur, vfs = [], {}, None

    def close():
        if cur and (vfs, cur) not in seen:
            seen.append((vfs, dict(cur)))

    with open(bench_log, errors='replace') as f:
        for line in f:
            m = VFS_READ.search(line)
            if m:
                close()
                cur, vfs = {}, int(m.group(1), 16)
                continue
            m = profsym.KS.search(line)
            if m and m.group(2) in 'tT':
                cur[f'{m.group(3)} [{m.group(4)}]'] = int(m.group(1), 16)
    close()
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('system_map')
    ap.add_argument('profile_log')
    ap.add_argument('profile_out')
    ap.add_argument('bench_log')
    args = ap.parse_args()
    found, calls, kaddr = targets(args.system_map, args.profile_log, args.profile_out)
    places = placements(args.bench_log)
    if not places:
        sys.exit('jcpredict: no "# ks" lines in the bench log')
    for n, (vfs, mods) in enumerate(places):
        delta = vfs - kaddr['vfs_read'] if vfs else 0
        here = ', '.join(f'{s} at {mods[s]:#x}' for s in ENTRIES if s in mods)
        print(f'placement {n + 1} of {len(places)}: kernel offset {delta:#x}, {here}')
        for side, who in (('A', 'upstream'), ('B', 'ours')):
            slots = collections.defaultdict(list)
            for (name, off), lookups in found[side].items():
                if name.endswith(']'):
                    if name not in mods:
                        sys.exit(f'jcpredict: the bench log does not place {name}')
                    addr = mods[name] + off
                else:
                    addr = kaddr[name] + delta + off
                slots[slot(addr)].append((lookups, f'{name}+{off:#x}'))
            misses, pairs = 0, []
            for blocks in slots.values():
                if len(blocks) < 2:
                    continue
                counts = sorted((c for c, _ in blocks), reverse=True)
                m = sum(counts) - max(0, counts[0] - sum(counts[1:]))
                misses += m
                if m >= 0.05 * calls:
                    pairs.append(' / '.join(b for _, b in sorted(blocks, reverse=True)))
            total = sum(found[side].values())
            print(f'  {who:8} lookups {total / calls:6.1f} per call, predicted misses '
                  f'{misses / calls:5.1f}')
            for p in pairs:
                print(f'    {p}')


if __name__ == '__main__':
    main()
