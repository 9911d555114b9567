#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Splits a host `perf record` of QEMU by the guest's tbprof phases and
prints, per side, the wall clock and the host CPU time per call, by thread
and by host function (PROFILE_HOST=1 make profile).

    profhost.py guest.log tbprof.out perf.data [--top N] [--system-map MAP]

tbprof.out has the phases' spans ("epoch phase W start end", CLOCK_MONOTONIC
ns; the plugin ran with count=off,time=on); perf.data was recorded with
-k CLOCK_MONOTONIC, so a sample belongs to the phase whose span holds its
time. The guest log gives "# profile calls N" (per side). Samples in code
perf cannot name (QEMU's translated guest code) are "[jit]". With QEMU's
-perfmap, perf names translated code by the guest address its block starts
at ("guest-0x..."); with --system-map those are named by the guest function
("[jit] <function>"), the modules' from the log's "# ks" lines.
"""
import argparse
import bisect
import re
import subprocess
import sys

from profsym import Names, kernel_symbols, phases

# "comm tid time: period ip sym (dso)"; comm may hold spaces ("CPU 0/TCG").
GUEST = re.compile(r'^guest-0x([0-9a-f]+)$')
SAMPLE = re.compile(r'^\s*(.*?)\s+(\d+)\s+(\d+)\.(\d+):\s+(\d+)\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)$')


def spans(path):
    out = []
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) == 5 and fields[2] == 'W':
                out.append((int(fields[3]), int(fields[4]), fields[1]))
    return sorted(out)


def thread_class(comm):
    if '/TCG' in comm:
        return 'vCPU'
    if comm.startswith('qemu-system'):
        return 'main loop'
    return comm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('log')
    ap.add_argument('profile')
    ap.add_argument('perf')
    ap.add_argument('--top', type=int, default=40)
    ap.add_argument('--system-map')
    args = ap.parse_args()

    guest = None
    if args.system_map:
        marked = phases(args.log)[0]
        guest = Names(kernel_symbols(args.system_map), marked[-1][1] if marked else {})

    sp = spans(args.profile)
    if not sp:
        sys.exit('profhost: no phase spans ("W" lines): was the plugin run with time=on?')
    calls = phases(args.log)[1] or 1
    starts = [s for s, _, _ in sp]
    wall = {'A': 0, 'B': 0}
    for s, e, p in sp:
        wall[p] += e - s
    script = subprocess.run(['perf', 'script', '-i', args.perf, '--ns',
                             '-F', 'comm,tid,time,period,ip,sym,dso'],
                            capture_output=True, text=True, check=True).stdout
    funcs, threads = {}, {}
    unparsed = 0
    for line in script.splitlines():
        m = SAMPLE.match(line)
        if not m:
            unparsed += 1
            continue
        t = int(m.group(3)) * 1_000_000_000 + int(m.group(4).ljust(9, '0')[:9])
        i = bisect.bisect_right(starts, t) - 1
        if i < 0 or t > sp[i][1]:
            continue
        side = sp[i][2] == 'B'
        ns = int(m.group(5))
        sym, dso = m.group(7), m.group(8)
        g = GUEST.match(sym)
        if g:
            name = f'[jit] {guest(int(g.group(1), 16))}' if guest else '[jit]'
        elif sym in ('[unknown]', '') and dso in ('[unknown]', '', '//anon'):
            name = '[jit]'
        elif sym in ('[unknown]', ''):
            name = f'[{dso.rsplit("/", 1)[-1]}]'
        else:
            name = sym
        cls = f'{thread_class(m.group(1))} {m.group(2)}'
        funcs.setdefault((cls, name), [0, 0])[side] += ns
        threads.setdefault(cls, [0, 0])[side] += ns
    if not funcs:
        sys.exit(f'profhost: no sample fell in a phase ({unparsed} lines not parsed)')
    us = calls * 1000.0
    print(f'per call ({calls} calls per side), microseconds: A (upstream), B (ours), B/A')
    print(f'  {"wall clock":24} {wall["A"] / us:9.3f} {wall["B"] / us:9.3f} '
          f'{wall["B"] / wall["A"] if wall["A"] else float("nan"):7.3f}')
    for cls, (a, b) in sorted(threads.items(), key=lambda kv: -max(kv[1])):
        print(f'  {"CPU, " + cls:24} {a / us:9.3f} {b / us:9.3f} '
              f'{b / a if a else float("nan"):7.3f}')
    print(f'{"A":>9} {"B":>9} {"B-A":>9}  thread: host function')
    rows = sorted(funcs.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))
    for (cls, name), (a, b) in rows[:args.top]:
        print(f'{a / us:9.3f} {b / us:9.3f} {(b - a) / us:+9.3f}  {cls}: {name}')


if __name__ == '__main__':
    main()
