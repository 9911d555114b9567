#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Names the code addresses of a tools/tbprof profile and prints, per
function, the instructions executed in phase A (upstream) and phase B (ours).

    profsym.py System.map guest.log tbprof.out [--top N]

System.map names the kernel's text. The modules' text is named from the
guest log: the profile programs print /proc/kallsyms' lines of the modules
that matter ("# ks <addr> <type> <name> [<module>]") and then "# tbprof A"
or "# tbprof B" just before they start a phase. Each phase (an epoch of the
profile) is named with the symbols printed before its "# tbprof" line, the
latest for each module, so a module may load at another address in every
phase. Addresses below the kernel's half are user space, one "user" row. If
the log has "# profile calls N", counts are divided by N (per call and side).

A profile taken with mem=on also has, per instruction, its data accesses and
the modelled misses (QEMU's 256-entry softmmu TLB, a 4096-entry one, a 2 MiB
cache) and, per phase, the TLBIs run; a second table gives them per function.
"""
import argparse
import bisect
import re
import sys

KERNEL_BASE = 0xffff000000000000
KS = re.compile(r'# ks ([0-9a-f]+) (\w) (\S+)\s+\[(\w+)\]')
PHASE = re.compile(r'# tbprof ([AB])$')
CALLS = re.compile(r'# profile calls (\d+)')


def kernel_symbols(system_map):
    syms = {}
    with open(system_map) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in 'tTwW' and not parts[2].startswith('$'):
                syms[int(parts[0], 16)] = parts[2]
    return syms


def phases(log):
    """[(phase letter, {addr: module symbol})] in log order, and the calls."""
    current, pending, out, calls = {}, {}, [], None
    with open(log, errors='replace') as f:
        for line in f:
            line = line.rstrip()
            m = CALLS.search(line)
            if m:
                calls = int(m.group(1))
            m = KS.search(line)
            if m:
                if m.group(2) in 'tT' and not m.group(3).startswith('$'):
                    mod = m.group(4)
                    pending.setdefault(mod, {})[m.group(3)] = int(m.group(1), 16)
                continue
            m = PHASE.search(line)
            if m:
                current.update(pending)
                pending = {}
                table = {}
                for mod, names in current.items():
                    for name, addr in names.items():
                        table[addr] = f'{name} [{mod}]'
                out.append((m.group(1), table))
    return out, calls


class Names:
    """The kernel's symbols plus one phase's module symbols."""

    def __init__(self, kernel, modules):
        self.syms = dict(kernel)
        self.syms.update(modules)
        self.addrs = sorted(self.syms)

    def __call__(self, v):
        if v < KERNEL_BASE:
            return 'user'
        i = bisect.bisect_right(self.addrs, v) - 1
        return self.syms[self.addrs[i]] if i >= 0 else 'unknown'


def print_exits(exits, div, unit, top):
    """The blocks' exits QEMU does not chain, and the system register
    accesses, per function."""
    tot = [[sum(r[s][k] for r in exits.values()) / div for k in range(6)] for s in (0, 1)]
    print(f'\nblock exits not chained, and MRS/MSR, {unit}, A (upstream) / B (ours):')
    for k, what in enumerate(('MRS/MSR', 'indirect branch', 'branch to another page',
                              'no branch (sysreg, exception)', 'jump cache lookups',
                              'jump cache misses (model)')):
        print(f'  {what:30} {tot[0][k]:8.1f} {tot[1][k]:8.1f}')
    print(f'{"ind A":>7} {"ind B":>7} {"pg A":>7} {"pg B":>7} {"oth A":>7} {"oth B":>7} '
          f'{"sys A":>7} {"sys B":>7} {"jmiss A":>7} {"jmiss B":>7}  function')
    rows = sorted(exits.items(), key=lambda kv: -max(sum(kv[1][0][1:4]), sum(kv[1][1][1:4]),
                                                     kv[1][0][5], kv[1][1][5]))
    for name, (a, b) in rows[:top]:
        print(f'{a[1] / div:7.2f} {b[1] / div:7.2f} {a[2] / div:7.2f} {b[2] / div:7.2f} '
              f'{a[3] / div:7.2f} {b[3] / div:7.2f} {a[0] / div:7.2f} {b[0] / div:7.2f} '
              f'{a[5] / div:7.2f} {b[5] / div:7.2f}  {name}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('system_map')
    ap.add_argument('log')
    ap.add_argument('profile')
    ap.add_argument('--top', type=int, default=60)
    args = ap.parse_args()

    ksyms = kernel_symbols(args.system_map)
    marked, calls = phases(args.log)
    if not marked:
        sys.exit('profsym: no "# tbprof A|B" line in the guest log')
    names = {}
    per = {}
    mem = {}
    exits = {}
    tlbis = [0, 0]

    with open(args.profile) as f:
        for line in f:
            fields = line.split()
            epoch, phase = int(fields[0]), fields[1]
            if fields[2] == 'T':
                tlbis[phase == 'B'] += int(fields[3])
                continue
            if fields[2] == 'M':
                vaddr, counts = fields[3], [int(x) for x in fields[4:8]]
            else:
                vaddr, _, count = fields[2:5]
            if epoch >= len(marked) or marked[epoch][0] != phase:
                sys.exit(f'profsym: epoch {epoch} ran in phase {phase}, but the log announced '
                         f'{len(marked)} phases ({"".join(p for p, _ in marked)}): '
                         'a marker without its "# tbprof" line?')
            if epoch not in names:
                names[epoch] = Names(ksyms, marked[epoch][1])
            name = names[epoch](int(vaddr, 16))
            if fields[2] == 'M':
                row = mem.setdefault(name, [[0] * 4, [0] * 4])
                row[phase == 'B'] = [a + b for a, b in zip(row[phase == 'B'], counts)]
                continue
            if len(fields) >= 9:
                # Per segment: the MRS/MSR run, and the exits of its block
                # taken indirectly, to another page, or without a branch;
                # then (a newer plugin) the entries into its block through
                # the jump cache, and the modelled misses.
                ex = exits.setdefault(name, [[0] * 6, [0] * 6])
                ex[phase == 'B'] = [a + int(b) for a, b in zip(ex[phase == 'B'], fields[5:11])]
            row = per.setdefault(name, [0, 0])
            row[phase == 'B'] += int(count)
    if not per:
        sys.exit('profsym: the profile is empty: no marker ran in the guest?')
    div = calls or 1
    unit = f'per call ({calls} calls per side)' if calls else 'in total'
    tot_a = sum(r[0] for r in per.values()) / div
    tot_b = sum(r[1] for r in per.values()) / div
    print(f'instructions {unit}: A (upstream) {tot_a:.1f}, B (ours) {tot_b:.1f}, '
          f'B/A {tot_b / tot_a if tot_a else float("nan"):.3f}')
    print(f'{"A":>12} {"B":>12} {"B-A":>10}  function')
    rows = sorted(per.items(), key=lambda kv: -max(kv[1]))
    for name, (a, b) in rows[:args.top]:
        print(f'{a / div:12.1f} {b / div:12.1f} {(b - a) / div:+10.1f}  {name}')
    if exits:
        print_exits(exits, div, unit, args.top)
    if not mem:
        return
    tot = [[sum(r[s][k] for r in mem.values()) / div for k in range(4)] for s in (0, 1)]
    print(f'\ndata accesses and modelled misses {unit}, A (upstream) / B (ours):')
    for k, what in enumerate(('accesses', 'tlb256 misses', 'tlb4096 misses',
                              '2 MiB cache misses')):
        print(f'  {what:20} {tot[0][k]:10.1f} {tot[1][k]:10.1f}')
    print(f'  {"TLBIs":20} {tlbis[0] / div:10.2f} {tlbis[1] / div:10.2f}')
    print(f'{"acc A":>8} {"acc B":>8} {"t256 A":>8} {"t256 B":>8} {"t4k A":>8} {"t4k B":>8} '
          f'{"$ A":>7} {"$ B":>7}  function')
    rows = sorted(mem.items(), key=lambda kv: -max(kv[1][0][1], kv[1][1][1], kv[1][0][3],
                                                   kv[1][1][3]))
    for name, (a, b) in rows[:args.top]:
        print(f'{a[0] / div:8.1f} {b[0] / div:8.1f} {a[1] / div:8.2f} {b[1] / div:8.2f} '
              f'{a[2] / div:8.2f} {b[2] / div:8.2f} {a[3] / div:7.2f} {b[3] / div:7.2f}  {name}')


if __name__ == '__main__':
    main()
