// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_type1x against upstream vfio_iommu_type1, alternating in one boot:
 *
 *   map_4k / unmap_4k    MAP_DMA / UNMAP_DMA of 256 MiB in 4 KiB pages: one
 *                        call per page (65535 of them: both backends allow
 *                        65535 mappings per container by default)
 *   map_2m / unmap_2m    256 MiB of 2 MiB hugetlb pages, one call per page
 *   map_256m / unmap_256m  one call for the whole 4 KiB-backed 256 MiB
 *
 * The 4 KiB-backed buffer is madvise(MADV_NOHUGEPAGE)'d before it is touched,
 * so no transparent huge page backs it.
 *   msix_enable          VFIO_DEVICE_SET_IRQS enabling 4 MSI-X vectors on igb
 *                        (vector allocation + doorbell mapping), then
 *                        disabling them
 *
 * Each round runs upstream then ours (order alternating between rounds);
 * the medians and the ratios ours/upstream are printed (throughput: higher
 * is better; latency: lower is better, so the ratio is upstream/ours). A
 * benchmark, not a test: it prints figures and fails only if a run breaks.
 *
 *   vfio_bench [rounds]
 *
 * It finds edu (1234:11e8) and igb (8086:10c9), binds them to vfio-pci and
 * reserves the 2 MiB hugetlb pages it needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../guest/armsi_test.h"
#include "stats.h"

#define SZ (256ul << 20)
#define NVEC 4
#define MSIX_ITERS 20

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

static void backend(int ours)
{
	mod_unload("vfio_type1x");
	/* vfio_type1x links against msi_isolation's query: load it first. */
	if (ours && access("/sys/module/msi_isolation", F_OK) &&
	    mod_load("/armsi/modules/msi_isolation.ko", ""))
		die("load msi_isolation");
	if (ours && mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"))
		die("load vfio_type1x");
}

/*
 * Seconds to MAP_DMA @len bytes of @buf at IOVA 1 GiB in @chunk-sized
 * mappings, then to UNMAP_DMA them chunk by chunk.
 */
static void map_unmap(int c, void *buf, uint64_t len, uint64_t chunk, double *map_s,
		      double *unmap_s)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.size = chunk,
	};
	struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u), .size = chunk };
	uint64_t off;
	double t0 = now();

	for (off = 0; off < len; off += chunk) {
		m.vaddr = (uint64_t)buf + off;
		m.iova = (1ul << 30) + off;
		if (ioctl(c, VFIO_IOMMU_MAP_DMA, &m))
			die("MAP_DMA");
	}
	*map_s = now() - t0;
	t0 = now();
	for (off = 0; off < len; off += chunk) {
		u.iova = (1ul << 30) + off;
		u.size = chunk;
		if (ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u) || u.size != chunk)
			die("UNMAP_DMA");
	}
	*unmap_s = now() - t0;
}

/* The bytes each figure moves. */
static const uint64_t bytes[7] = { SZ - 4096, SZ - 4096, SZ, SZ, SZ, SZ, 0 };

/* Mean seconds to enable NVEC MSI-X vectors on the device, then disable. */
static double msix(int group, const char *bdf)
{
	char buf[sizeof(struct vfio_irq_set) + NVEC * sizeof(int)];
	struct vfio_irq_set *irq = (void *)buf;
	int dev, i, efd[NVEC];
	double t = 0;

	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0)
		die("device fd");
	for (i = 0; i < NVEC; i++)
		efd[i] = eventfd(0, 0);
	for (i = 0; i < MSIX_ITERS; i++) {
		double t0 = now();

		irq->argsz = sizeof(buf);
		irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->index = VFIO_PCI_MSIX_IRQ_INDEX;
		irq->start = 0;
		irq->count = NVEC;
		memcpy(irq->data, efd, sizeof(efd));
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq))
			die("enable MSI-X");
		t += now() - t0;
		irq->argsz = sizeof(*irq);
		irq->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->count = 0;
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq))
			die("disable MSI-X");
	}
	for (i = 0; i < NVEC; i++)
		close(efd[i]);
	close(dev);
	return t / MSIX_ITERS;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9, r, k;
	double v[2][7][16];
	const char *names[7] = { "map_4k", "unmap_4k", "map_2m", "unmap_2m", "map_256m",
				 "unmap_256m", "msix_enable" };
	char edu[32], igb[32];
	void *small, *huge;

	if (rounds < 1 || rounds > 16) {
		fprintf(stderr, "usage: %s [rounds <= 16]\n", argv[0]);
		return 2;
	}
	if (!pci_find(0x1234, 0x11e8, edu, sizeof(edu)) || !pci_find(0x8086, 0x10c9, igb, sizeof(igb))) {
		printf("1..0 # SKIP needs edu and igb\n");
		return 4;
	}
	if (bind_vfio(edu) || bind_vfio(igb))
		die("bind to vfio-pci");
	if (read_long("/proc/sys/vm/nr_hugepages") < 160 && write_str("/proc/sys/vm/nr_hugepages", "160"))
		die("reserve hugepages");
	/*
	 * 4 KiB-backed: no transparent huge pages. The advice must come before
	 * the pages exist, so populate by touching them afterwards.
	 */
	small = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED || madvise(small, SZ, MADV_NOHUGEPAGE))
		die("4 KiB buffer");
	memset(small, 0x5a, SZ);
	huge = mmap(NULL, SZ, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT),
		    -1, 0);
	if (huge == MAP_FAILED)
		die("2 MiB hugetlb buffer (reserve /proc/sys/vm/nr_hugepages)");

	printf("TAP version 13\n1..1\n");
	for (r = 0; r < rounds; r++) {
		for (k = 0; k < 2; k++) {
			/* Alternate which backend goes first. */
			int ours = (r + k) % 2, c, g1, g2;

			backend(ours);
			c = open("/dev/vfio/vfio", O_RDWR);
			g1 = open_group(edu, c);
			g2 = open_group(igb, c);
			if (ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
				die("SET_IOMMU");
			if (ours != (read_long("/sys/kernel/debug/vfio_type1x/containers") == 1))
				die("the wrong backend got the container");
			map_unmap(c, small, SZ - 4096, 4096, &v[ours][0][r], &v[ours][1][r]);
			map_unmap(c, huge, SZ, 2ul << 20, &v[ours][2][r], &v[ours][3][r]);
			map_unmap(c, small, SZ, SZ, &v[ours][4][r], &v[ours][5][r]);
			v[ours][6][r] = msix(g2, igb);
			close(g2);
			close(g1);
			close(c);
		}
		for (k = 0; k < 7; k++)
			printf("# round %d %s upstream=%.9f ours=%.9f s\n", r + 1, names[k],
			       v[0][k][r], v[1][k][r]);
	}
	mod_unload("vfio_type1x");
	for (k = 0; k < 7; k++) {
		double ratio[STATS_MAX_ROUNDS], up, us;
		struct stats_ratio q;

		for (r = 0; r < rounds && r < STATS_MAX_ROUNDS; r++)
			ratio[r] = v[0][k][r] / v[1][k][r];
		q = stats_ratio(ratio, rounds);
		up = stats_median(v[0][k], rounds);
		us = stats_median(v[1][k], rounds);
		if (bytes[k])
			printf("# %-12s upstream %8.3f GiB/s  ours %8.3f GiB/s  ratio ours/upstream %.2f [95%% %.2f, %.2f] %s\n",
			       names[k], bytes[k] / up / (1 << 30), bytes[k] / us / (1 << 30), q.median,
			       q.lo, q.hi, stats_verdict(q));
		else
			printf("# %-12s upstream %7.1f us  ours %7.1f us  ratio (speed) ours/upstream %.2f [95%% %.2f, %.2f] %s\n",
			       names[k], up * 1e6, us * 1e6, q.median, q.lo, q.hi, stats_verdict(q));
	}
	printf("ok 1 vfio_bench (%d rounds, medians)\n", rounds);
	return 0;
}
