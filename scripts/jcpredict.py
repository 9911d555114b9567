#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Predicts, for the code placement of each `make bench` round, the misses
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

vfio_bench loads both backends again every round, at a placement drawn at
random, so each round has its own prediction. The table at the end sets
each round's extra misses (ours' less upstream's) beside its speed ratios,
with their correlation over the rounds: how much of the rounds' spread the
jump cache explains.
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
SIZES = ('64m', '256m', '1g')
ROUND = re.compile(r'# round (\d+) unmap_4k_(64m|256m|1g)_page upstream=([0-9.]+) ours=([0-9.]+) s$')


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
    """The placement each round printed, in order: [(vfs_read, {symbol: addr})].

    A bench round's lines start with vfs_read's; a profile log prints the
    modules' lines alone (vfs_read None: the kernel where System.map says).
    Placements that do not place both ioctl entry points (a log cut short)
    are left out.
    """
    seen, cur = [], None

    with open(bench_log, errors='replace') as f:
        for line in f:
            m = VFS_READ.search(line)
            if m:
                cur = {}
                seen.append((int(m.group(1), 16), cur))
                continue
            m = profsym.KS.search(line)
            if m and m.group(2) in 'tT':
                if cur is None:
                    cur = {}
                    seen.append((None, cur))
                cur[f'{m.group(3)} [{m.group(4)}]'] = int(m.group(1), 16)
    return [(vfs, mods) for vfs, mods in seen if all(e in mods for e in ENTRIES)]


def round_ratios(bench_log):
    """{round: {size: speed ratio ours/upstream}} of the 4K per-page unmaps."""
    ratios = collections.defaultdict(dict)
    with open(bench_log, errors='replace') as f:
        for line in f:
            m = ROUND.search(line)
            if m:
                ratios[int(m.group(1))][m.group(2)] = float(m.group(3)) / float(m.group(4))
    return ratios


def predict(found, calls, kaddr, vfs, mods):
    """Per side: (lookups per call, predicted misses per call, colliding blocks)."""
    delta = vfs - kaddr['vfs_read'] if vfs else 0
    res = {}
    for side in ('A', 'B'):
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
        res[side] = (sum(found[side].values()) / calls, misses / calls, pairs)
    return res


def pearson(xs, ys):
    """The correlation coefficient of two equally long lists, or None."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else None


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
    # Distinct placements, with the rounds (1-based) that printed each.
    distinct = []
    for r, place in enumerate(places, 1):
        for d in distinct:
            if d[0] == place:
                d[1].append(r)
                break
        else:
            distinct.append((place, [r]))
    per_round = {}
    for n, ((vfs, mods), rounds) in enumerate(distinct):
        res = predict(found, calls, kaddr, vfs, mods)
        here = ', '.join(f'{s} at {mods[s]:#x}' for s in ENTRIES if s in mods)
        print(f'placement {n + 1} of {len(distinct)} (rounds '
              f'{",".join(map(str, rounds))}): {here}')
        for side, who in (('A', 'upstream'), ('B', 'ours')):
            lookups, misses, pairs = res[side]
            print(f'  {who:8} lookups {lookups:6.1f} per call, predicted misses {misses:5.1f}')
            for p in pairs:
                print(f'    {p}')
        for r in rounds:
            per_round[r] = res['B'][1] - res['A'][1]
    ratios = round_ratios(args.bench_log)
    rows = [r for r in sorted(per_round) if r in ratios]
    if not rows:
        return
    sizes = [s for s in SIZES if any(s in ratios[r] for r in rows)]
    print('\nround  misses ours-upstream  unmap_4k_<size>_page speed ours/upstream')
    print(f'{"":5}  {"":20}  ' + '  '.join(f'{s:>5}' for s in sizes))
    for r in rows:
        print(f'{r:5}  {per_round[r]:20.1f}  ' +
              '  '.join(f'{ratios[r][s]:5.3f}' if s in ratios[r] else '    -' for s in sizes))
    if len(rows) >= 3:
        for s in sizes:
            have = [r for r in rows if s in ratios[r]]
            c = pearson([per_round[r] for r in have], [ratios[r][s] for r in have])
            print(f'correlation of the extra misses with the {s} ratio over '
                  f'{len(have)} rounds: ' + ('undefined (no spread)' if c is None else f'{c:+.2f}'))


if __name__ == '__main__':
    main()
