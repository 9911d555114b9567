// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_type1x against upstream vfio_iommu_type1, alternating in one boot.
 *
 * MAP_DMA, then UNMAP_DMA, of 64 MiB, 256 MiB and 1 GiB (the start of a
 * 1 GiB buffer, at IOVA 1 GiB) for three kinds of memory:
 *
 *   4k     anonymous, madvise(MADV_NOHUGEPAGE)'d before it is touched, so
 *          4 KiB pages back it
 *   thp    anonymous, 2 MiB-aligned, madvise(MADV_HUGEPAGE)'d before it is
 *          touched: transparent huge pages back it (checked in
 *          /proc/self/smaps, AnonHugePages; a "# note:" line says if only
 *          partly)
 *   huge   MAP_HUGETLB of 2 MiB hugetlb pages (reserved in
 *          /proc/sys/vm/nr_hugepages as needed, restored at the end)
 *
 * each in two ways: "page", one call per page (4 KiB for 4k, 2 MiB for thp
 * and huge; UNMAP_DMA then takes the mappings one by one too), and "one",
 * one call for the whole size. Figures map_<kind>_<size>_<way> and
 * unmap_<kind>_<size>_<way> (e.g. map_4k_64m_page, unmap_huge_1g_one), in
 * GiB/s. The buffers stay allocated (and populated) for the whole run, so
 * every round maps the same pages. 1 GiB in 4 KiB pages is 262144 mappings:
 * both backends' dma_entry_limit (65535 by default) is raised to that for
 * the run (upstream's module parameter is restored at the end).
 *
 *   msix_enable_<n>  VFIO_DEVICE_SET_IRQS enabling n MSI-X vectors on igb
 *                    (vector allocation + doorbell mapping), mean of 20,
 *                    each followed by disabling them; n = 1, 4 and the
 *                    number igb offers (VFIO_DEVICE_GET_IRQ_INFO), in us
 *
 * The DMA figures run both backends at once, in two containers: upstream's,
 * set up before vfio_type1x is loaded, and ours, set up after, each one
 * IOMMU domain of one device's group: upstream edu's and ours igb's in
 * even rounds, the other way round in odd ones. One call per page is timed
 * in 16 chunks per figure that alternate between the two, one call for the
 * whole size in turn, so that a drift in the host's speed (other guests on
 * a shared host) falls on both sides alike. The MSI-X figures run one
 * backend at a time on a container of both groups. Which goes first
 * alternates between rounds, chunks and figures.
 *
 * Before its DMA figures, each round loads both backends again: upstream's
 * vfio_iommu_type1 above a random set of spacer modules (armsi_spacer<i>.ko,
 * 2^i pages each, tests/bench/spacer.h), then another random set, then
 * vfio_type1x. Under TCG where code lies moves a figure by a few percent
 * (blocks that share a slot of QEMU's jump cache evict each other), so the
 * rounds sample placements instead of repeating the one a boot drew. The
 * draw's seed is printed; -DVFIO_BENCH_SEED=<n> repeats the draws (the
 * same spacers; the addresses can still differ a little, as the kernel
 * reuses freed module memory lazily).
 *
 * Each round prints its placement (its spacers, "# ks" kallsyms lines) and
 * its raw samples ("# round ..."). At the end every figure gets the two
 * medians and the median of the per-round ratios ours/upstream with its 95%
 * bootstrap interval (tests/bench/stats.h; for the latencies the ratio is
 * upstream's time over ours, so above 1 is always ours faster) and a
 * verdict: parity when the interval spans 1.0. A benchmark, not a test: it
 * prints figures and fails only if a run breaks.
 *
 *   vfio_bench [rounds]     (9 by default)
 *
 * Built with -DVFIO_BENCH_AA=1 (make bench BENCH_VFIO_AA=1), both sides of
 * the DMA figures are upstream ("ours" is a second upstream container): an
 * A/A run, whose ratios show what the method itself makes of two equal
 * sides.
 *
 * It finds edu (1234:11e8) and igb (8086:10c9) and binds them to vfio-pci.
 */
#ifndef VFIO_BENCH_AA
#define VFIO_BENCH_AA 0
#endif
#ifndef VFIO_BENCH_SEED
#define VFIO_BENCH_SEED 0ull
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../guest/vfio_util.h"
#include "stats.h"

#define SZ_4K		4096ul
#define SZ_2M		(2ul << 20)
#define SZ_1G		(1ul << 30)
/* Every buffer is as large as the largest size. */
#define BUF_SZ		SZ_1G
#define IOVA_BASE	SZ_1G
/* The most mappings one container holds: the largest size in 4 KiB pages. */
#define DMA_ENTRIES	(BUF_SZ / SZ_4K)
#define HUGE_PAGES	(BUF_SZ / SZ_2M)
#define MSIX_ITERS	20
/* One call per page is timed in this many chunks per side, alternating. */
#define NCHUNK		16
#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
/* Spacer modules armsi_spacer<i>.ko of 2^i pages (tests/bench/spacer.h). */
#define NSPACER		6

enum { KIND_4K, KIND_THP, KIND_HUGE, NKIND };
static const char *const kind_name[NKIND] = { "4k", "thp", "huge" };
static const uint64_t kind_page[NKIND] = { SZ_4K, SZ_2M, SZ_2M };

#define NSIZE 3
static const uint64_t sizes[NSIZE] = { 64ul << 20, 256ul << 20, SZ_1G };
static const char *const size_name[NSIZE] = { "64m", "256m", "1g" };

/* Per kind, size and way (page, one): a map and an unmap figure. */
#define NDMA (NKIND * NSIZE * 2 * 2)
#define NFIG (NDMA + 3)

struct figure {
	char name[32];
	uint64_t bytes;		/* moved by a DMA figure; 0 for MSI-X */
	int nvec;		/* MSI-X vectors */
};

static struct figure fig[NFIG];
static int nfig;
/* Seconds, [upstream 0 / ours 1][figure][round]. */
static double v[2][NFIG][STATS_MAX_ROUNDS];
/*
 * What to restore at exit: upstream's dma_entry_limit before the run (0:
 * not read yet), nr_hugepages (-1: untouched).
 */
static long old_limit, old_hugepages = -1;
/* The spacers' placement draws (xorshift64, from VFIO_BENCH_SEED or AT_RANDOM). */
static uint64_t seed;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	printf("not ok 1 vfio_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_long(const char *path, long n)
{
	char s[32];

	snprintf(s, sizeof(s), "%ld", n);
	write_str(path, s);
}

/* Unloads every spacer module. */
static void unload_spacers(void)
{
	char name[32];
	int i;

	for (i = 0; i < NSPACER; i++) {
		snprintf(name, sizeof(name), "armsi_spacer%d", i);
		mod_unload(name);
	}
}

/* Upstream's dma_entry_limit for the run: room for DMA_ENTRIES at least. */
static long run_limit(void)
{
	return old_limit > (long)DMA_ENTRIES ? old_limit : (long)DMA_ENTRIES;
}

/* Loads upstream's vfio_iommu_type1 with room for @limit mappings; 0 or -errno. */
static int load_upstream(long limit)
{
	char path[128], params[64];
	struct utsname u;

	if (uname(&u))
		return -errno;
	snprintf(path, sizeof(path), "/lib/modules/%s/kernel/drivers/vfio/vfio_iommu_type1.ko",
		 u.release);
	snprintf(params, sizeof(params), "dma_entry_limit=%ld", limit);
	return mod_load(path, params);
}

static void restore(void)
{
	/* A run that died while upstream was unloaded (place_backends()). */
	if (old_limit > 0 && access("/sys/module/vfio_iommu_type1", F_OK)) {
		if (load_upstream(old_limit))
			printf("# vfio_bench: cannot load vfio_iommu_type1 again\n");
	} else if (old_limit > 0 && old_limit != run_limit()) {
		write_long(UPSTREAM_LIMIT, old_limit);
	}
	unload_spacers();
	if (old_hugepages >= 0)
		write_long(NR_HUGEPAGES, old_hugepages);
}

/* Raises upstream's dma_entry_limit to run_limit(); restore() puts it back. */
static void raise_upstream_limit(void)
{
	old_limit = read_long(UPSTREAM_LIMIT);
	if (old_limit <= 0)
		die(UPSTREAM_LIMIT);
	if (old_limit != run_limit())
		write_long(UPSTREAM_LIMIT, run_limit());
}

static int open_group(const char *bdf, int container)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/vfio/%d", pci_group(bdf));
	fd = open(path, O_RDWR);
	if (fd < 0 || ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container))
		die("group");
	return fd;
}

/*
 * Makes the backend that type1v2 containers set up from now on get upstream
 * (@ours 0: vfio_type1x unloaded) or vfio_type1x (@ours 1: loaded with
 * serve_type1=1, room for DMA_ENTRIES mappings). A container keeps the
 * backend it was set up with.
 */
static void load_backend(int ours)
{
	char params[64];

	mod_unload("vfio_type1x");
	if (!ours)
		return;
	/* vfio_type1x links against msi_isolation's query: load it first. */
	if (access("/sys/module/msi_isolation", F_OK) &&
	    mod_load("/armsi/modules/msi_isolation.ko", ""))
		die("load msi_isolation");
	snprintf(params, sizeof(params), "serve_type1=1 dma_entry_limit=%lu", DMA_ENTRIES);
	if (mod_load(T1X_KO, params))
		die("load vfio_type1x");
}

/* Loads the spacers in @mask (bit i: armsi_spacer<i>, not loaded yet). */
static void load_spacers(unsigned int mask)
{
	char path[64];
	int i;

	for (i = 0; i < NSPACER; i++) {
		if (!(mask & 1u << i))
			continue;
		snprintf(path, sizeof(path), "/armsi/modules/armsi_spacer%d.ko", i);
		if (mod_load(path, ""))
			die(path);
	}
}

/* The next placement draw: NSPACER random bits (xorshift64). */
static unsigned int draw(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed >> 40 & ((1u << NSPACER) - 1);
}

/*
 * Loads upstream's vfio_iommu_type1 again, with room for run_limit()
 * mappings, above the spacers in @below, then the spacers in @between
 * (vfio_type1x, loaded next, goes above those). The module region is
 * filled lowest address first, so both backends' code moves with the
 * draw. Needs both backends' containers closed.
 */
static void place_backends(unsigned int below, unsigned int between)
{
	mod_unload("vfio_type1x");
	mod_unload("vfio_iommu_type1");
	if (!access("/sys/module/vfio_iommu_type1", F_OK)) {
		errno = EBUSY;
		die("unload vfio_iommu_type1");
	}
	unload_spacers();
	load_spacers(below);
	errno = -load_upstream(run_limit());
	if (errno)
		die("load vfio_iommu_type1");
	load_spacers(between);
}

/*
 * A type1v2 container holding the groups of the @n devices @bdf (into
 * *@g), which must be served by vfio_type1x (@ours 1, the only container it
 * serves) or by upstream (@ours 0), with room for DMA_ENTRIES mappings.
 */
static int new_container(int ours, const char *const *bdf, int n, int *g)
{
	struct vfio_iommu_type1_info_dma_avail *avail = NULL;
	struct vfio_iommu_type1_info *info;
	uint64_t buf[512];
	int c, i;

	c = open("/dev/vfio/vfio", O_RDWR);
	if (c < 0)
		die("/dev/vfio/vfio");
	for (i = 0; i < n; i++)
		g[i] = open_group(bdf[i], c);
	if (ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("SET_IOMMU");
	if (ours != (read_long(T1X_CONTAINERS) == 1))
		die("the wrong backend got the container");
	info = get_info(c, buf, sizeof(buf));
	if (info)
		avail = find_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	if (!avail || avail->avail < DMA_ENTRIES) {
		errno = ENOSPC;
		die("dma_entry_limit not raised");
	}
	return c;
}

/* A container of @edu's and @igb's groups (into *@g), served as @ours says. */
static int open_container(int ours, const char *edu, const char *igb, int *g)
{
	const char *bdf[2] = { edu, igb };

	load_backend(ours);
	return new_container(ours, bdf, 2, g);
}

/* The kind, size and way (0: page, 1: one) of DMA figure @f. */
static void dma_figure(int f, int *kind, int *size, int *way)
{
	*way = f / 2 % 2;
	*size = f / 4 % NSIZE;
	*kind = f / 4 / NSIZE;
}

/*
 * Seconds to MAP_DMA [@off, @off + @len) of @buf at IOVA_BASE + @off in
 * @step-sized mappings.
 */
static double map_range(int c, void *buf, uint64_t off, uint64_t len, uint64_t step)
{
	double t0 = now();
	uint64_t end = off + len;

	for (; off < end; off += step)
		if (map_dma(c, (uint64_t)buf + off, IOVA_BASE + off, step, RW, MAPSZ))
			die("MAP_DMA");
	return now() - t0;
}

/* Seconds to UNMAP_DMA those mappings again, one call per mapping. */
static double unmap_range(int c, uint64_t off, uint64_t len, uint64_t step)
{
	double t0 = now();
	uint64_t end = off + len, done;

	for (; off < end; off += step)
		if (unmap_dma(c, IOVA_BASE + off, step, 0, UNMAPSZ, &done) || done != step)
			die("UNMAP_DMA");
	return now() - t0;
}

/*
 * DMA figures @f (map) and @f + 1 (unmap) of round @r, both backends live:
 * @c[0] upstream's container, @c[1] ours. One call per page is timed in
 * NCHUNK chunks that alternate between the two (which goes first
 * alternating too), so both backends run on the same host moments; one call
 * for the whole size alternates call by call. Every mapping of one side is
 * made before the first is unmapped, as before.
 */
static void dma_figures(const int c[2], void *const buf[NKIND], int f, int r)
{
	uint64_t len, step, chunk, off;
	int k, s, w, i, side;

	dma_figure(f, &k, &s, &w);
	len = sizes[s];
	step = w ? len : kind_page[k];
	chunk = w ? len : len / NCHUNK;
	for (i = 0; i < 2; i++)
		v[i][f][r] = v[i][f + 1][r] = 0;
	for (off = 0; off < len; off += chunk)
		for (i = 0; i < 2; i++) {
			side = (r + f / 2 + off / chunk + i) % 2;
			v[side][f][r] += map_range(c[side], buf[k], off, chunk, step);
		}
	for (off = 0; off < len; off += chunk)
		for (i = 0; i < 2; i++) {
			side = (r + f / 2 + off / chunk + i) % 2;
			v[side][f + 1][r] += unmap_range(c[side], off, chunk, step);
		}
}

/* Mean seconds to enable @nvec MSI-X vectors on device @dev, then disable. */
static double msix(int dev, int nvec)
{
	size_t len = sizeof(struct vfio_irq_set) + nvec * sizeof(int);
	struct vfio_irq_set *irq = malloc(len);
	int i, *efd = calloc(nvec, sizeof(int));
	double t = 0;

	if (!irq || !efd)
		die("malloc");
	for (i = 0; i < nvec; i++)
		efd[i] = eventfd(0, 0);
	for (i = 0; i < MSIX_ITERS; i++) {
		double t0 = now();

		irq->argsz = len;
		irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->index = VFIO_PCI_MSIX_IRQ_INDEX;
		irq->start = 0;
		irq->count = nvec;
		memcpy(irq->data, efd, nvec * sizeof(int));
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq))
			die("enable MSI-X");
		t += now() - t0;
		irq->argsz = sizeof(*irq);
		irq->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->count = 0;
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq))
			die("disable MSI-X");
	}
	for (i = 0; i < nvec; i++)
		close(efd[i]);
	free(efd);
	free(irq);
	return t / MSIX_ITERS;
}

/* The MSI-X vectors device @dev offers. */
static int msix_max(int dev)
{
	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_MSIX_IRQ_INDEX };

	if (ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &irq) || !irq.count)
		die("MSI-X IRQ info");
	return irq.count;
}

/* The kB of transparent huge pages (AnonHugePages) in [@buf, @buf + @len). */
static long anon_huge_kb(const void *buf, uint64_t len)
{
	unsigned long lo, hi, b = (unsigned long)buf;
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	long kb = 0, n;
	int in = 0;

	if (!f)
		die("/proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo < b + len && hi > b;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &n) == 1)
			kb += n;
	}
	fclose(f);
	return kb;
}

/* Says how much of the 4k and thp buffers transparent huge pages back. */
static void check_thp(const char *when, void *small, void *thp)
{
	long s = anon_huge_kb(small, BUF_SZ), t = anon_huge_kb(thp, BUF_SZ);
	long nr = read_long(NR_HUGEPAGES);
	/* slurp()'s buffer: read last. */
	char *mode = slurp("/sys/kernel/mm/transparent_hugepage/enabled");

	printf("# buffers %s: thp AnonHugePages %ld of %lu kB, 4k AnonHugePages %ld kB, hugetlb %lu x 2 MiB (nr_hugepages %ld)\n",
	       when, t, BUF_SZ >> 10, s, HUGE_PAGES, nr);
	if (t < (long)(BUF_SZ >> 10))
		printf("# note: %s only %ld of the thp buffer's %lu MiB are transparent huge pages (THP enabled: %s)\n",
		       when, t >> 10, BUF_SZ >> 20, mode ? strtok(mode, "\n") : "?");
	if (s)
		printf("# note: %s %ld MiB of the 4k buffer are transparent huge pages\n", when,
		       s >> 10);
}

/* 4 KiB-backed: the advice must come before the pages exist. */
static void *small_buffer(void)
{
	void *p = mmap(NULL, BUF_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || madvise(p, BUF_SZ, MADV_NOHUGEPAGE))
		die("4 KiB buffer");
	memset(p, 0x5a, BUF_SZ);
	return p;
}

/* THP-backed: 2 MiB-aligned, exactly BUF_SZ mapped, advised, then touched. */
static void *thp_buffer(void)
{
	char *p = mmap(NULL, BUF_SZ + SZ_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		die("THP buffer");
	a = (char *)(((uintptr_t)p + SZ_2M - 1) & ~(SZ_2M - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + BUF_SZ, p + SZ_2M - a);
	if (madvise(a, BUF_SZ, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	memset(a, 0x5a, BUF_SZ);
	return a;
}

/* hugetlb-backed, reserving the pages it needs. */
static void *huge_buffer(void)
{
	void *p;

	old_hugepages = read_long(NR_HUGEPAGES);
	if (old_hugepages < 0)
		die(NR_HUGEPAGES);
	if (old_hugepages < (long)HUGE_PAGES) {
		write_long(NR_HUGEPAGES, HUGE_PAGES);
		if (read_long(NR_HUGEPAGES) < (long)HUGE_PAGES) {
			printf("# note: only %ld of %lu 2 MiB hugetlb pages could be reserved\n",
			       read_long(NR_HUGEPAGES), HUGE_PAGES);
			errno = ENOMEM;
			die("reserve hugetlb pages");
		}
	} else {
		old_hugepages = -1;
	}
	p = mmap(NULL, BUF_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
		 -1, 0);
	if (p == MAP_FAILED)
		die("2 MiB hugetlb buffer");
	return p;
}

/*
 * The figures, in the order a round measures them: per kind, size and way,
 * map then unmap; then MSI-X enable for 1, 4 and @max vectors (those of
 * them the device offers, once each).
 */
static void figures(int max)
{
	const int nvec[3] = { 1, 4, max };
	int f, k, s, w, i, last = 0;

	for (f = 0; f < NDMA; f++) {
		dma_figure(f, &k, &s, &w);
		snprintf(fig[f].name, sizeof(fig[f].name), "%s_%s_%s_%s", f % 2 ? "unmap" : "map",
			 kind_name[k], size_name[s], w ? "one" : "page");
		fig[f].bytes = sizes[s];
	}
	for (i = 0; i < 3; i++) {
		if (nvec[i] > max || nvec[i] <= last)
			continue;
		snprintf(fig[f].name, sizeof(fig[f].name), "msix_enable_%d", nvec[i]);
		fig[f++].nvec = last = nvec[i];
	}
	nfig = f;
}

/*
 * Both backends live at once: @c[0] upstream's container (the group of
 * device @bdf[0], into @g[0]), set up while vfio_type1x is not loaded, and
 * @c[1] ours (@bdf[1]'s group), set up after loading it. One group each:
 * one IOMMU domain each, as with both groups in one container.
 */
static void open_pair(const char *const bdf[2], int c[2], int g[2])
{
	load_backend(0);
	c[0] = new_container(0, &bdf[0], 1, &g[0]);
	load_backend(!VFIO_BENCH_AA);
	c[1] = new_container(!VFIO_BENCH_AA, &bdf[1], 1, &g[1]);
}

static void close_pair(const int c[2], const int g[2])
{
	int k;

	for (k = 0; k < 2; k++) {
		close(g[k]);
		close(c[k]);
	}
}

/*
 * Where both backends' code lies ("# ks" lines of /proc/kallsyms, and
 * vfs_read's for the kernel's): under TCG it decides which blocks share a
 * slot of QEMU's jump cache (scripts/jcpredict.py). Printed every round,
 * as vfio_type1x is loaded again for each.
 */
static void print_placement(void)
{
	fflush(stdout);
	if (system("sed -rn '/\\[(vfio_iommu_type1|vfio_type1x)\\]| vfs_read$/s/^/# ks /p' "
		   "/proc/kallsyms"))
		die("kallsyms");
}

/*
 * Round @r's DMA figures, both backends live at once. Which device's group
 * each side gets alternates by round (upstream edu's in even rounds), so
 * that a difference between the two devices' IOMMU setups falls on both.
 */
static void run_dma(int r, const char *edu, const char *igb, void *const buf[NKIND])
{
	const char *bdf[2] = { r % 2 ? igb : edu, r % 2 ? edu : igb };
	/* A spacer each is below upstream, between the two, or not loaded. */
	unsigned int below = draw(), between = draw() & ~below;
	int c[2], g[2], f;

	printf("# round %d spacers below upstream 0x%02x, between 0x%02x\n", r + 1, below,
	       between);
	fflush(stdout);
	place_backends(below, between);
	open_pair(bdf, c, g);
	print_placement();
	for (f = 0; f < NDMA; f += 2)
		dma_figures(c, buf, f, r);
	close_pair(c, g);
}

/* One backend's MSI-X figures of round @r, on igb in a container of both. */
static void run_msix(int ours, int r, const char *edu, const char *igb)
{
	int g[2], c = open_container(ours, edu, igb, g), f, dev;

	dev = ioctl(g[1], VFIO_GROUP_GET_DEVICE_FD, igb);
	if (dev < 0)
		die("device fd");
	for (f = NDMA; f < nfig; f++)
		v[ours][f][r] = msix(dev, fig[f].nvec);
	close(dev);
	close(g[1]);
	close(g[0]);
	close(c);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9, r, k, f, g[2], c, dev, max;
	char edu[32], igb[32];
	void *buf[NKIND];
	double t0 = now();

	if (rounds < 1 || rounds > STATS_MAX_ROUNDS) {
		fprintf(stderr, "usage: %s [rounds <= %d]\n", argv[0], STATS_MAX_ROUNDS);
		return 2;
	}
	if (!pci_find(0x1234, 0x11e8, edu, sizeof(edu)) || !pci_find(0x8086, 0x10c9, igb, sizeof(igb))) {
		printf("1..0 # SKIP needs edu and igb\n");
		return 4;
	}
	printf("TAP version 13\n1..1\n");
	if (bind_vfio(edu) || bind_vfio(igb))
		die("bind to vfio-pci");
	atexit(restore);
	/* Upstream takes its limit at container open, ours at module load. */
	raise_upstream_limit();
	/*
	 * The kernel's 16 random bytes for this program (not the clock: under
	 * -icount every boot reaches this point at the same guest time).
	 * xorshift64 needs a seed other than 0.
	 */
	seed = VFIO_BENCH_SEED;
	if (!seed)
		memcpy(&seed, (void *)getauxval(AT_RANDOM), sizeof(seed));
	seed |= 1;
	/* hugetlb first, while free memory is least fragmented. */
	buf[KIND_HUGE] = huge_buffer();
	buf[KIND_THP] = thp_buffer();
	buf[KIND_4K] = small_buffer();
	check_thp("at start", buf[KIND_4K], buf[KIND_THP]);

	c = open_container(0, edu, igb, g);
	dev = ioctl(g[1], VFIO_GROUP_GET_DEVICE_FD, igb);
	if (dev < 0)
		die("device fd");
	max = msix_max(dev);
	close(dev);
	close(g[1]);
	close(g[0]);
	close(c);
	figures(max);
	printf("# vfio_bench: %d rounds, %d figures, igb offers %d MSI-X vectors, placement seed 0x%llx%s\n",
	       rounds, nfig, max, (unsigned long long)seed,
	       VFIO_BENCH_AA ? "; A/A: both DMA sides upstream" : "");
	fflush(stdout);

	for (r = 0; r < rounds; r++) {
		run_dma(r, edu, igb, buf);
		/* Alternate which backend goes first. */
		for (k = 0; k < 2; k++)
			run_msix((r + k) % 2, r, edu, igb);
		printf("# round %d DMA devices upstream=%s ours=%s\n", r + 1, r % 2 ? "igb" : "edu",
		       r % 2 ? "edu" : "igb");
		for (f = 0; f < nfig; f++)
			printf("# round %d %s upstream=%.9f ours=%.9f s\n", r + 1, fig[f].name,
			       v[0][f][r], v[1][f][r]);
		fflush(stdout);
	}
	mod_unload("vfio_type1x");
	unload_spacers();
	check_thp("at end", buf[KIND_4K], buf[KIND_THP]);
	for (k = 0; k < NKIND; k++)
		munmap(buf[k], BUF_SZ);

	for (f = 0; f < nfig; f++) {
		double ratio[STATS_MAX_ROUNDS], up, us;
		struct stats_ratio q;

		for (r = 0; r < rounds; r++)
			ratio[r] = v[0][f][r] / v[1][f][r];
		q = stats_ratio(ratio, rounds);
		up = stats_median(v[0][f], rounds);
		us = stats_median(v[1][f], rounds);
		if (fig[f].bytes)
			printf("# %-20s upstream %8.3f GiB/s  ours %8.3f GiB/s  ratio ours/upstream %.2f [95%% %.2f, %.2f] %s\n",
			       fig[f].name, fig[f].bytes / up / (1 << 30),
			       fig[f].bytes / us / (1 << 30), q.median, q.lo, q.hi, stats_verdict(q));
		else
			printf("# %-20s upstream %8.1f us     ours %8.1f us     ratio (speed) ours/upstream %.2f [95%% %.2f, %.2f] %s\n",
			       fig[f].name, up * 1e6, us * 1e6, q.median, q.lo, q.hi,
			       stats_verdict(q));
	}
	printf("ok 1 vfio_bench (%d rounds, medians, %.0f s)\n", rounds, now() - t0);
	return 0;
}
