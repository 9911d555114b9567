// SPDX-License-Identifier: GPL-2.0
/*
 * `make profile PROFILE=unmap_4k`: UNMAP_DMA of 64 MiB of 4 KiB mappings,
 * one call per page, vfio_iommu_type1 in tbprof's phase A and vfio_type1x in
 * phase B, alternating over the rounds in one boot (vfio_bench.c's helpers).
 * Round 0 warms up and is not counted. The modules' symbols ("# ks" lines)
 * and each phase's start ("# tbprof A|B") go to the log for
 * scripts/profsym.py.
 *
 *   prof_unmap [rounds]      default PROF_ROUNDS, 4 unless built with
 *                            another (3 counted per side)
 *
 * PROF_MIB (default 64) is the size unmapped per round, set by
 * scripts/profile.sh from PROFILE_MIB.
 */
#ifndef PROF_MIB
#define PROF_MIB 64
#endif
#ifndef PROF_ROUNDS
#define PROF_ROUNDS 4
#endif
#define main vfio_bench_main
#include "../bench/vfio_bench.c"
#undef main

#define MARK(imm) asm volatile("hint #" #imm ::: "memory")

static void dump_syms(const char *module)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "sed -rn '/\\[(%s)\\]/s/^/# ks /p' /proc/kallsyms", module);
	fflush(stdout);
	if (system(cmd))
		die("kallsyms");
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : PROF_ROUNDS, r, k, g[2], c;
	uint64_t len = (uint64_t)PROF_MIB << 20, off, done;
	char edu[32], igb[32];
	void *buf;

	printf("TAP version 13\n1..1\n");
	if (!pci_find(0x1234, 0x11e8, edu, sizeof(edu)) ||
	    !pci_find(0x8086, 0x10c9, igb, sizeof(igb))) {
		printf("not ok 1 prof_unmap # edu and igb are needed\n");
		return 1;
	}
	if (bind_vfio(edu) || bind_vfio(igb))
		die("bind");
	atexit(restore);
	old_limit = read_long(UPSTREAM_LIMIT);
	if (old_limit < (long)DMA_ENTRIES)
		write_long(UPSTREAM_LIMIT, DMA_ENTRIES);
	else
		old_limit = -1;
	buf = small_buffer();
	for (r = 0; r < rounds; r++)
		for (k = 0; k < 2; k++) {
			int ours = (r + k) % 2;

			c = open_container(ours, edu, igb, g);
			dump_syms(ours ? "vfio_type1x|msi_isolation" : "vfio_iommu_type1");
			for (off = 0; off < len; off += SZ_4K)
				if (map_dma(c, (uint64_t)buf + off, IOVA_BASE + off, SZ_4K, RW,
					    MAPSZ))
					die("MAP_DMA");
			if (r > 0) {
				printf("# tbprof %c\n", ours ? 'B' : 'A');
				fflush(stdout);
				if (ours)
					MARK(0x7e);
				else
					MARK(0x7d);
			}
			for (off = 0; off < len; off += SZ_4K)
				if (unmap_dma(c, IOVA_BASE + off, SZ_4K, 0, UNMAPSZ, &done) ||
				    done != SZ_4K)
					die("UNMAP_DMA");
			MARK(0x7c);
			close(g[1]);
			close(g[0]);
			close(c);
		}
	printf("# profile calls %d\n", (rounds - 1) * (int)(len / SZ_4K));
	mod_unload("vfio_type1x");
	printf("ok 1 prof_unmap\n");
	return 0;
}
