#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot the test kernel in QEMU virt and run the guest side of the project.

  vm.py run    [options]   load the modules and print their report
  vm.py check  [options]   run the in-guest suite, print TAP, summarise
  vm.py shell  [options]   an interactive busybox shell with everything packed

The guest's /init (tests/guest/init) marks each test with ARMSI-BEGIN/END and
dumps the kernel log and the kmemleak report at the end. Any kernel splat
(WARNING, BUG, KASAN, lockdep, kmemleak leak, Oops, panic) fails the run, as
do a missing end marker (timeout, crash) and any failing test.
"""

import argparse
import gzip
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ARMSI_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "armsi")

MACHINES = {
    # GICv3 with an ITS: MSIs carry the DeviceID, so they are isolated.
    "gicv3": ("virt,gic-version=3,its=on,iommu=smmuv3,virtualization=on", ""),
    # The same, with the SMMU's default domains in identity (bypass) mode:
    # the devices' DMA is not translated until VFIO attaches a domain.
    # (QEMU's default-bus-bypass-iommu=on only reaches an ACPI guest's IORT;
    # with a device tree every device stays behind the SMMU.)
    "gicv3-passthrough": ("virt,gic-version=3,its=on,iommu=smmuv3,virtualization=on",
                          "iommu.passthrough=1"),
    # GICv2m: an MSI frame with no requester tagging: not isolated.
    "gicv2m": ("virt,gic-version=2,iommu=smmuv3,virtualization=on", ""),
}

# What fails a run when it appears in the kernel log.
SPLATS = [
    r"WARNING:", r"BUG:", r"KASAN", r"kasan", r"possible circular locking",
    r"possible recursive locking", r"inconsistent lock state", r"INFO: possible",
    r"suspicious RCU usage", r"unreferenced object", r"Oops",
    r"Kernel panic", r"Unable to handle kernel", r"Internal error", r"Call trace:",
    r"kmemleak: \d+ new suspected memory leaks", r"UBSAN", r"general protection",
    r"hung_task", r"soft lockup", r"rcu_sched self-detected stall", r"refcount_t:",
]
SPLAT_RE = re.compile("|".join(SPLATS))
KMSG_RE = re.compile(r"^\[\s*\d+\.\d+\]")
TAP_RE = re.compile(r"^(not ok|ok) (\d+)\s*(.*)$")


def kernel_dir(variant):
    d = os.path.join(CACHE, "kernel-" + variant)
    if not os.path.exists(os.path.join(d, ".done")):
        sys.exit(f"vm.py: no {variant} kernel in {d}: run `make kernel`")
    return os.path.realpath(d)


def find_modules(where):
    mods = []
    for root, _, files in os.walk(where):
        mods += [os.path.join(root, f) for f in files if f.endswith(".ko")]
    return sorted(mods)


def copy_exec(src_dir, dst_dir):
    os.makedirs(dst_dir, exist_ok=True)
    n = 0
    for f in sorted(os.listdir(src_dir)):
        p = os.path.join(src_dir, f)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            shutil.copy2(p, dst_dir)
            n += 1
    return n


def build_initramfs(args, stage):
    shutil.rmtree(stage, ignore_errors=True)
    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "armsi/modules", "armsi/tests",
              "peer", "tests/extra", "usr/bin", "usr/sbin", "root"):
        os.makedirs(os.path.join(stage, d), exist_ok=True)
    busybox = os.path.join(CACHE, "busybox-arm64")
    if not os.path.exists(busybox):
        sys.exit("vm.py: no arm64 busybox: run `make setup`")
    shutil.copy2(busybox, os.path.join(stage, "bin/busybox"))
    shutil.copy2(os.path.join(TOP, "tests/guest/init"), os.path.join(stage, "init"))
    shutil.copy2(os.path.join(TOP, "tests/guest/report.sh"), os.path.join(stage, "armsi"))
    shutil.copy2(os.path.join(TOP, "tests/guest/suite.list"), os.path.join(stage, "armsi"))
    for script in ("vfio_peer.sh", "kvm_peer.sh"):
        shutil.copy2(os.path.join(TOP, "tests/guest", script), os.path.join(stage, "armsi"))
    modroot = os.path.join(kernel_dir(args.variant), "build/modroot/lib")
    if os.path.isdir(modroot):
        shutil.copytree(modroot, os.path.join(stage, "lib"), symlinks=True,
                        ignore=shutil.ignore_patterns("build", "source"))
    mods = find_modules(args.modules_dir)
    if not mods:
        sys.exit("vm.py: no modules built: run `make modules`")
    for m in mods:
        shutil.copy2(m, os.path.join(stage, "armsi/modules"))
    kmod = os.path.join(TOP, "build/guest/kmod")
    if os.path.isdir(kmod):
        shutil.copytree(kmod, os.path.join(stage, "armsi/kmod"))
    tests = os.path.join(TOP, "build/guest/tests")
    if os.path.isdir(tests):
        copy_exec(tests, os.path.join(stage, "armsi/tests"))
    peer = os.path.join(TOP, "build/peer")
    for sub in ("kvm", "vfio"):
        if os.path.isdir(os.path.join(peer, sub)):
            copy_exec(os.path.join(peer, sub), os.path.join(stage, "peer", sub))
    if args.vmm:
        # The nested-VMM suite: its scripts and list, L2's kernel (this
        # one) and initramfs; Debian's QEMU comes as a second archive.
        vdir = os.path.join(stage, "armsi/vmm")
        os.makedirs(vdir)
        for script in sorted(os.listdir(os.path.join(TOP, "tests/vmm"))):
            if script.endswith(".sh"):
                shutil.copy2(os.path.join(TOP, "tests/vmm", script), vdir)
        shutil.copy2(os.path.join(TOP, "tests/vmm/suite.list"),
                     os.path.join(stage, "armsi/vmm.list"))
        l2 = os.path.join(TOP, "build/guest/l2/l2.cpio.gz")
        if not os.path.exists(l2):
            sys.exit("vm.py: --vmm: no build/guest/l2/l2.cpio.gz: run scripts/build-guest-tests.sh")
        os.makedirs(os.path.join(stage, "l2"))
        shutil.copy2(l2, os.path.join(stage, "l2"))
        shutil.copy2(os.path.join(kernel_dir(args.variant), "build/arch/arm64/boot/Image"),
                     os.path.join(stage, "l2"))
    for extra in args.extra_tests:
        if not os.path.isdir(extra):
            sys.exit(f"vm.py: --extra-tests {extra}: not a directory")
        if copy_exec(extra, os.path.join(stage, "tests/extra")) == 0:
            sys.exit(f"vm.py: --extra-tests {extra}: no executable files in it")
    out = stage + ".cpio.gz"
    cpio = subprocess.run("find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet",
                          shell=True, cwd=stage, stdout=subprocess.PIPE, check=True).stdout
    with gzip.open(out, "wb", compresslevel=1) as f:
        f.write(cpio)
    if args.vmm:
        # The kernel unpacks concatenated archives in turn.
        vmm = os.path.join(TOP, "build/vmm/vmm.cpio.gz")
        if not os.path.exists(vmm):
            sys.exit("vm.py: --vmm: no build/vmm/vmm.cpio.gz: run scripts/fetch-vmm.sh")
        with open(out, "ab") as f, open(vmm, "rb") as v:
            shutil.copyfileobj(v, f)
    return out


def qemu_cmd(args, kdir, initrd):
    image = os.path.join(kdir, "build/arch/arm64/boot/Image")
    machine, machine_append = MACHINES[args.machine]
    append = (f"console=ttyAMA0 panic=-1 armsi.mode={args.mode} "
              f"armsi.timeout={args.test_timeout} {machine_append} {args.append}")
    if args.only_extra:
        append += " armsi.only=extra"
    if args.filter:
        append += f" armsi.filter={args.filter}"
    if args.vmm:
        append += " armsi.suite=vmm.list"
    cmd = ["qemu-system-aarch64", "-M", machine, "-cpu", "max",
           "-smp", str(args.smp), "-m", str(args.mem), "-nographic", "-no-reboot",
           "-nic", "none", "-kernel", image, "-initrd", initrd, "-append", append]
    for dev in args.devices.split():
        cmd += ["-device", dev]
    return cmd + args.qemu_extra.split()


def run_qemu(cmd, timeout, log, live):
    """Runs QEMU; returns (lines, timed_out)."""
    lines = []
    with open(log, "w") as logf:
        logf.write("# " + " ".join(cmd) + "\n")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        buf = b""
        timed_out = False
        while True:
            left = deadline - time.time()
            if left <= 0:
                timed_out = True
                p.kill()
                break
            r, _, _ = select.select([p.stdout], [], [], min(left, 1.0))
            if not r:
                if p.poll() is not None:
                    break
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            for raw in done:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                lines.append(line)
                logf.write(line + "\n")
                live(line)
        if buf:
            lines.append(buf.decode("utf-8", "replace"))
            logf.write(lines[-1] + "\n")
        p.wait()
    return lines, timed_out


class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def add(self, name, status, why=""):
        if status == "pass":
            self.passed += 1
        elif status == "skip":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(f"{name}{': ' + why if why else ''}")


def parse(lines, res, tap):
    """Counts tests between ARMSI-BEGIN/END markers; returns sections."""
    current, body = None, []
    sections = {"kmemleak": [], "dmesg": [], "report": []}
    sect = None
    done = False
    for line in lines:
        if line.startswith("ARMSI-BEGIN "):
            current, body = line.split(" ", 1)[1], []
            continue
        if line.startswith("ARMSI-END ") and current:
            rc = int(line.rsplit("rc=", 1)[1])
            results = [TAP_RE.match(b) for b in body if TAP_RE.match(b)]
            fails = 0
            for m in results:
                sub = f"{current}: {m.group(3).split(' # ')[0]}"
                if "# SKIP" in m.group(3):
                    res.add(sub, "skip")
                    tap(f"ok {sub} # SKIP{m.group(3).split('# SKIP', 1)[1]}")
                elif m.group(1) == "ok":
                    res.add(sub, "pass")
                    tap(f"ok {sub}")
                else:
                    fails += 1
                    res.add(sub, "fail")
                    tap(f"not ok {sub}")
            if not results:
                # A plain program: its exit code is its result (4 is kselftest's skip).
                st = "pass" if rc == 0 else "skip" if rc == 4 else "fail"
                res.add(current, st, f"exit code {rc}")
                tap(("ok " if st != "fail" else "not ok ") + current +
                    (" # SKIP exit code 4" if st == "skip" else "") +
                    (f" (exit code {rc})" if st == "fail" else ""))
            elif rc != 0 and fails == 0:
                res.add(current, "fail", f"exit code {rc} with no failing test")
                tap(f"not ok {current} (exit code {rc} with no failing test)")
            current = None
            continue
        for key in ("KMEMLEAK", "DMESG", "REPORT"):
            if line == f"ARMSI-{key}-BEGIN":
                sect = key.lower()
                break
            if line == f"ARMSI-{key}-END":
                sect = None
                break
        else:
            if line == "ARMSI-DONE":
                done = True
            elif sect:
                sections[sect].append(line)
            elif current is not None and not KMSG_RE.match(line):
                body.append(line)
    if current:
        res.add(current, "fail", "did not finish (guest died or timed out)")
        tap(f"not ok {current} (did not finish)")
    return sections, done


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "check", "shell"])
    ap.add_argument("--variant", default="debug", help="kernel: debug (default) or perf")
    ap.add_argument("--machine", default="gicv3", choices=sorted(MACHINES))
    ap.add_argument("--devices", default="edu igb", help="QEMU -device list (default: edu igb)")
    ap.add_argument("--mem", type=int, default=2048, help="guest MiB")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--extra-tests", action="append", default=[],
                    help="directory of static aarch64 test programs to run too")
    ap.add_argument("--only-extra", action="store_true", help="run only --extra-tests")
    ap.add_argument("--filter", default="", help="run only suite tests whose name starts so")
    ap.add_argument("--vmm", action="store_true",
                    help="pack Debian's QEMU and L2 and run the nested-VMM suite (tests/vmm)")
    ap.add_argument("--modules-dir", default=os.path.join(TOP, "rust"),
                    help="where our built .ko files are (default: rust/)")
    ap.add_argument("--timeout", type=int, default=1800, help="whole-run limit, s")
    ap.add_argument("--test-timeout", type=int, default=600, help="per-test limit, s")
    ap.add_argument("--append", default="", help="more kernel command line")
    ap.add_argument("--qemu-extra", default="", help="more QEMU arguments")
    ap.add_argument("--tag", default=None, help="name of this run's log and initramfs")
    ap.add_argument("--summary", help="write a JSON summary here")
    ap.add_argument("--quiet", action="store_true", help="do not echo TAP lines")
    args = ap.parse_args()

    kdir = kernel_dir(args.variant)
    tag = args.tag or f"{args.mode}-{args.machine}"
    os.makedirs(os.path.join(TOP, "build/logs"), exist_ok=True)
    initrd = build_initramfs(args, os.path.join(TOP, "build/initramfs", tag))
    cmd = qemu_cmd(args, kdir, initrd)
    log = os.path.join(TOP, "build/logs", tag + ".log")

    if args.mode == "shell":
        os.execvp(cmd[0], cmd)

    started = {}

    def live(line):
        if args.mode != "check" or args.quiet:
            return
        if line.startswith("ARMSI-BEGIN "):
            started[line.split()[1]] = time.time()
            print(f"# {line.split()[1]} ...", flush=True)
        elif line.startswith("ARMSI-END "):
            name = line.split()[1]
            took = time.time() - started.get(name, time.time())
            print(f"# {name}: {line.split()[2]}, {took:.1f} s", flush=True)

    t0 = time.time()
    print(f"# booting {args.machine} ({args.variant} kernel, devices: {args.devices}); "
          f"console log: {os.path.relpath(log)}", flush=True)
    lines, timed_out = run_qemu(cmd, args.timeout, log, live)
    wall = time.time() - t0

    res = Results()
    taplines = []
    sections, done = parse(lines, res, taplines.append)
    if not args.quiet:
        for t in taplines:
            print(t)

    problems = []
    if timed_out:
        problems.append(f"the guest did not finish within {args.timeout} s")
    elif not done:
        problems.append("the guest stopped before the end marker (crash or panic?)")
    # Only the kernel's own lines count: test programs may print "WARNING:".
    splats = [l for l in lines if KMSG_RE.match(l) and SPLAT_RE.search(l)]
    if sections["kmemleak"]:
        splats += [l for l in sections["kmemleak"] if l.strip()][:40]
    if splats:
        problems.append("kernel splats in the guest log:\n#   " +
                        "\n#   ".join(list(dict.fromkeys(splats))[:40]))

    if args.mode == "run":
        for l in sections["report"]:
            print(l)
        print()

    for f in res.failures:
        print(f"# FAILED: {f}")
    for p in problems:
        print(f"# ERROR: {p}")
    print(f"# guest ({args.machine}): {res.passed} passed, {res.failed} failed, "
          f"{res.skipped} skipped, {len(problems)} run errors, {wall:.0f} s wall")
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump({"passed": res.passed, "failed": res.failed, "skipped": res.skipped,
                       "failures": res.failures, "problems": problems, "wall": wall}, f)
    ok = not problems and res.failed == 0 and (args.mode != "check" or res.passed > 0)
    if args.mode == "check" and res.passed == 0 and not problems:
        print("# ERROR: no test ran")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
