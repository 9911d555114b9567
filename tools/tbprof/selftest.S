/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tbprof's self-test: a bare-metal program for QEMU virt (EL1, PSCI over
 * HVC) whose phases have known lengths. scripts/profile.sh selftest runs it
 * under the plugin and requires exactly these counts:
 *
 *   phase A: 2 movs + 1000 * (subs + b.ne) + the marker ending it = 2003
 *   phase B: 3 movs +  500 * (subs + b.ne) + nop + the marker      = 1005
 *
 * Each marker is followed by other instructions in its translated block,
 * a different number each time, so a plugin that counted whole blocks in
 * the phase they start in would get other totals.
 */
	.text
	.globl _start
_start:
	b	1f
1:	hint	#0x7d			// phase 0 -> A
	mov	x2, #0
	mov	x1, #1000
2:	subs	x1, x1, #1
	b.ne	2b
	hint	#0x7e			// A -> B
	mov	x3, #1
	mov	x4, #2
	mov	x1, #500
3:	subs	x1, x1, #1
	b.ne	3b
	nop
	hint	#0x7c			// B -> 0
	movz	x0, #0x0008
	movk	x0, #0x8400, lsl #16	// PSCI SYSTEM_OFF
	hvc	#0
4:	wfi
	b	4b
