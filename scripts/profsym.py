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
    with open(args.profile) as f:
        for line in f:
            epoch, phase, vaddr, _, count = line.split()
            epoch = int(epoch)
            if epoch >= len(marked) or marked[epoch][0] != phase:
                sys.exit(f'profsym: epoch {epoch} ran in phase {phase}, but the log announced '
                         f'{len(marked)} phases ({"".join(p for p, _ in marked)}): '
                         'a marker without its "# tbprof" line?')
            if epoch not in names:
                names[epoch] = Names(ksyms, marked[epoch][1])
            name = names[epoch](int(vaddr, 16))
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


if __name__ == '__main__':
    main()
