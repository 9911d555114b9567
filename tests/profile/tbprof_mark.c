// SPDX-License-Identifier: GPL-2.0
/*
 * tbprof_mark off|a|b: switches tools/tbprof's phase (the whole machine's)
 * for the guest scripts of `make profile`. Without the plugin it is a NOP.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *p = argc == 2 ? argv[1] : "";

	if (!strcmp(p, "off"))
		asm volatile("hint #0x7c" ::: "memory");
	else if (!strcmp(p, "a"))
		asm volatile("hint #0x7d" ::: "memory");
	else if (!strcmp(p, "b"))
		asm volatile("hint #0x7e" ::: "memory");
	else {
		fprintf(stderr, "usage: tbprof_mark off|a|b\n");
		return 2;
	}
	return 0;
}
