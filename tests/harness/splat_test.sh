#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Not part of the suite: scripts/check.sh runs it as an extra test to prove
# that a kernel WARNING fails the run even when every test passes.
# LKDTM (CONFIG_LKDTM=y in the debug kernel) provokes a real WARN_ON().
echo WARNING > /sys/kernel/debug/provoke-crash/DIRECT
echo "provoked a WARNING; this test itself passes"
exit 0
