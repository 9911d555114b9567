/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tbprof's self-test: a bare-metal program for QEMU virt (EL1, PSCI over
 * HVC) whose phases have known lengths. scripts/profile.sh selftest runs it
 * under the plugin and requires exactly these counts:
 *
 *   phase A: 2 movs + 1000 * (subs + b.ne) + the marker ending it = 2003
 *   phase B: 3 movs +  500 * (subs + b.ne) + nop + the marker      = 1005
 *
 * Then a third phase (A again) of data accesses with known misses, for
 * mem=on: 200 loads from 200 new pages (200 misses in each TLB model and in
 * the cache), the same 200 again (none: they fit the 256-entry TLB without
 * a conflict), a TLBI, and the same 200 once more (200 TLB misses each, no
 * cache miss); then an MRS and the three kinds of block exit QEMU does not
 * chain: the TLBI ends its block without a branch, a BR is indirect, and a
 * B goes to another page. There, two blocks at page offsets 0x000 and 0x104
 * share a slot of the jump cache model (0x104: 4 ^ 4 = 0), and BRs go from
 * the first to the second and back: five lookups, all misses (the first
 * four blocks are new, and the second evicted the first). Its instructions:
 * 2 movs, 3 loops of 200 * 4, sub and mov, tlbi, sub and mov, mrs, adr, br,
 * mov, b, 2 * (subs + b.eq), 2 * (adr + br), the marker = 2421.
 *
 *   phase A again: accesses 600, tlb256 400, tlb4096 400, cache 200,
 *   TLBIs 1; MRS/MSR 1, exits: indirect 3, to another page 1, other 1;
 *   jump cache lookups 5, misses 5
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
	movz	x5, #0x4040, lsl #16	// 0x40400000: RAM, 4 MiB above the text
	hint	#0x7d			// 0 -> A
	mov	x7, #4096
	mov	x1, #200
5:	ldr	x6, [x5]
	add	x5, x5, x7
	subs	x1, x1, #1
	b.ne	5b
	sub	x5, x5, #0xc8000	// back 200 pages
	mov	x1, #200
6:	ldr	x6, [x5]
	add	x5, x5, x7
	subs	x1, x1, #1
	b.ne	6b
	tlbi	vmalle1
	sub	x5, x5, #0xc8000
	mov	x1, #200
7:	ldr	x6, [x5]
	add	x5, x5, x7
	subs	x1, x1, #1
	b.ne	7b
	mrs	x9, tpidr_el1		// a system register read
	adr	x8, 8f
	br	x8			// an indirect exit
8:	mov	x1, #2
	b	9f			// an exit to another page
	.balign	4096
9:	subs	x1, x1, #1		// page offset 0x000: jump cache slot 0
	b.eq	11f
	adr	x8, 10f
	br	x8
	.balign	256
	nop
10:	adr	x8, 9b			// page offset 0x104: slot 0 too
	br	x8
11:	hint	#0x7c			// A -> 0
	movz	x0, #0x0008
	movk	x0, #0x8400, lsl #16	// PSCI SYSTEM_OFF
	hvc	#0
4:	wfi
	b	4b
