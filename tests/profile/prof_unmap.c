// SPDX-License-Identifier: GPL-2.0
/*
 * `make profile PROFILE=unmap_4k`: UNMAP_DMA of 64 MiB of 4 KiB mappings,
 * one call per page, vfio_iommu_type1 in tbprof's phase A and vfio_type1x in
 * phase B, both live at once and alternating in vfio_bench's chunks (its
 * helpers), one phase per chunk. Round 0 warms up and is not counted. The
 * modules' symbols ("# ks" lines) and each phase's start ("# tbprof A|B") go
 * to the log for scripts/profsym.py.
 *
 *   prof_unmap [rounds]      default PROF_ROUNDS, 4 unless built with
 *                            another (3 counted per side)
 *
 * PROF_MIB (default 64) is the size unmapped per round, set by
 * scripts/profile.sh from PROFILE_MIB; PROF_SWAP (PROFILE_SWAP) 1 gives
 * upstream igb's group and ours edu's.
 */
#ifndef PROF_MIB
#define PROF_MIB 64
#endif
#ifndef PROF_SWAP
#define PROF_SWAP 0
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
	int rounds = argc > 1 ? atoi(argv[1]) : PROF_ROUNDS, r, i, k, g[2], c[2];
	uint64_t len = (uint64_t)PROF_MIB << 20, chunk = len / NCHUNK, off, done;
	char edu[32], igb[32];
	const char *bdf[2];
	int swap = PROF_SWAP;
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
	raise_upstream_limit();
	buf = small_buffer();
	/*
	 * Both backends live, as vfio_bench's DMA figures run them;
	 * PROFILE_SWAP=1 gives upstream igb's group and ours edu's.
	 */
	bdf[0] = swap ? igb : edu;
	bdf[1] = swap ? edu : igb;
	open_pair(bdf, c, g);
	dump_syms("vfio_iommu_type1|vfio_type1x|msi_isolation");
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < 2; k++)
			map_range(c[k], buf, 0, len, SZ_4K);
		/* Chunks alternate between the sides, as in vfio_bench. */
		for (i = 0; i < NCHUNK; i++)
			for (k = 0; k < 2; k++) {
				int ours = (r + i + k) % 2;

				if (r > 0) {
					printf("# tbprof %c\n", ours ? 'B' : 'A');
					fflush(stdout);
					if (ours)
						MARK(0x7e);
					else
						MARK(0x7d);
				}
				for (off = i * chunk; off < (i + 1) * chunk; off += SZ_4K)
					if (unmap_dma(c[ours], IOVA_BASE + off, SZ_4K, 0, UNMAPSZ,
						      &done) || done != SZ_4K)
						die("UNMAP_DMA");
				MARK(0x7c);
			}
	}
	close_pair(c, g);
	printf("# profile calls %d\n", (rounds - 1) * (int)(len / SZ_4K));
	mod_unload("vfio_type1x");
	printf("ok 1 prof_unmap\n");
	return 0;
}
