// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_type1x as a VFIO IOMMU backend, on QEMU's edu device (1234:11e8):
 * which backend a container gets, VFIO_IOMMU_GET_INFO against upstream
 * vfio_iommu_type1 (same boot, same group), the MSI isolation policy, and
 * the automatic doorbell mapping: with our domain's MSI cookie, vfio-pci can
 * enable edu's MSI and an interrupt raised by the device arrives on the
 * eventfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <linux/vfio_type1x.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <linux/capability.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "armsi_test.h"
#include "vfio_util.h"


/* Has the kernel log, since @mark bytes, a line containing @needle? */
static int klog_has(const char *needle)
{
	static char buf[1 << 20];
	int n = klogctl(3, buf, sizeof(buf) - 1);

	if (n < 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

/* vfio_setup(), skipping the test where the MSIs are not isolated. */
#define SETUP_OR_SKIP(v, group, type)                                              \
	do {                                                                       \
		int __r = vfio_setup(v, group, type);                              \
		if (__r == -EPERM)                                                 \
			SKIP(return, "MSIs not isolated here: see the policy test"); \
		ASSERT_EQ(0, __r);                                                 \
	} while (0)

FIXTURE(t1x) {
	char edu[32];
	int group;
	struct vfio v;
};

FIXTURE_SETUP(t1x)
{
	self->v.container = self->v.group = -1;
	EDU_VFIO_READY_OR_SKIP(self->edu, &self->group);
}

FIXTURE_TEARDOWN(t1x)
{
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");
}

TEST_F(t1x, serve_type1_decides_which_backend_gets_the_container)
{
	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", ""));
	/* Without serve_type1, upstream type1 gets it. */
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(1, read_long(T1X_CONTAINERS));
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU));
	EXPECT_EQ(0, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_SPAPR_TCE_IOMMU));
	/* In use: the module cannot go away under the container. */
	EXPECT_NE(0, syscall(__NR_delete_module, "vfio_type1x", O_NONBLOCK));
	vfio_teardown(&self->v);
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
}

TEST_F(t1x, get_info_matches_upstream_type1)
{
	static char ours[4096], theirs[4096];
	struct vfio_iommu_type1_info *a, *b, small;
	struct vfio_iommu_type1_info_cap_iova_range *ca, *cb;
	uint32_t i;

	/* Upstream's answer for this group. */
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	b = get_info(self->v.container, theirs, sizeof(theirs));
	ASSERT_NE(NULL, b);
	vfio_teardown(&self->v);

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(1, read_long(T1X_CONTAINERS));

	/* argsz below the fixed part: EINVAL, as upstream. */
	memset(&small, 0, sizeof(small));
	small.argsz = 8;
	EXPECT_EQ(-1, ioctl(self->v.container, VFIO_IOMMU_GET_INFO, &small));
	EXPECT_EQ(EINVAL, errno);
	/* Room for the header only: told how much the capabilities need. */
	small.argsz = sizeof(small);
	ASSERT_EQ(0, ioctl(self->v.container, VFIO_IOMMU_GET_INFO, &small));
	EXPECT_GT(small.argsz, sizeof(small));
	EXPECT_EQ(0, small.cap_offset);
	EXPECT_TRUE(small.flags & VFIO_IOMMU_INFO_CAPS);

	a = get_info(self->v.container, ours, sizeof(ours));
	ASSERT_NE(NULL, a);
	EXPECT_TRUE(a->flags & VFIO_IOMMU_INFO_PGSIZES);
	EXPECT_EQ(b->iova_pgsizes, a->iova_pgsizes);
	ca = iova_cap(a);
	cb = iova_cap(b);
	ASSERT_NE(NULL, ca);
	ASSERT_NE(NULL, cb);
	ASSERT_EQ(cb->nr_iovas, ca->nr_iovas);
	for (i = 0; i < ca->nr_iovas; i++) {
		EXPECT_EQ(cb->iova_ranges[i].start, ca->iova_ranges[i].start);
		EXPECT_EQ(cb->iova_ranges[i].end, ca->iova_ranges[i].end);
		TH_LOG("usable IOVA [%#llx, %#llx]", (unsigned long long)ca->iova_ranges[i].start,
		       (unsigned long long)ca->iova_ranges[i].end);
		/* The software-MSI window at 0x8000000 is never usable. */
		EXPECT_FALSE(ca->iova_ranges[i].start <= 0x80fffff &&
			     ca->iova_ranges[i].end >= 0x8000000);
	}
}

/*
 * One sequence of good and bad MAP/UNMAP calls; the result of each (errno,
 * and the size UNMAP reports) goes to @out. Run against both backends.
 */
static int errno_table(int c, char *buf, int64_t *out)
{
	uint64_t v = (uint64_t)buf, done = 0;
	int n = 0;

#define STEP(call) (out[n++] = (call))
#define UNMAP_STEP(iova, size, flags, argsz)                                    \
	do {                                                                   \
		STEP(unmap_dma(c, iova, size, flags, argsz, &done));           \
		out[n++] = (int64_t)done;                                      \
	} while (0)
	STEP(map_dma(c, v, 0x100000, 0x4000, RW, MAPSZ));          /* ok */
	STEP(map_dma(c, v, 0x100000, 0x4000, RW, MAPSZ));          /* double map */
	STEP(map_dma(c, v, 0x102000, 0x4000, RW, MAPSZ));          /* overlap */
	STEP(map_dma(c, v, 0x0ff000, 0x2000, RW, MAPSZ));          /* overlap below */
	STEP(map_dma(c, v, 0x200800, 0x1000, RW, MAPSZ));          /* unaligned iova */
	STEP(map_dma(c, v + 0x800, 0x200000, 0x1000, RW, MAPSZ));  /* unaligned vaddr */
	STEP(map_dma(c, v, 0x200000, 0x1800, RW, MAPSZ));          /* unaligned size */
	STEP(map_dma(c, v, 0x200000, 0, RW, MAPSZ));               /* zero size */
	STEP(map_dma(c, v, ~0xfffull, 0x2000, RW, MAPSZ));         /* iova wraps */
	STEP(map_dma(c, v, 0x200000, 0x1000, 0, MAPSZ));           /* no permission */
	STEP(map_dma(c, v, 0x200000, 0x1000, RW | 0x80, MAPSZ));   /* bad flag */
	STEP(map_dma(c, v, 0x200000, 0x1000, RW, MAPSZ - 1));      /* argsz too small */
	STEP(map_dma(c, v, 0x8000000, 0x1000, RW, MAPSZ));         /* into the MSI window */
	STEP(map_dma(c, v, 1ull << 60, 0x1000, RW, MAPSZ));        /* beyond the aperture */
	STEP(map_dma(c, 0x1000, 0x300000, 0x1000, RW, MAPSZ));     /* unmapped vaddr */
	STEP(map_dma(c, v, 0x200000, 0x2000, VFIO_DMA_MAP_FLAG_READ, MAPSZ)); /* ok, RO */
	UNMAP_STEP(0x101000, 0x1000, 0, UNMAPSZ);                  /* bisects */
	UNMAP_STEP(0x100000, 0x1000, 0, UNMAPSZ);                  /* bisects the end */
	UNMAP_STEP(0x500000, 0x1000, 0, UNMAPSZ);                  /* nothing there: 0 */
	UNMAP_STEP(0x100800, 0x1000, 0, UNMAPSZ);                  /* unaligned */
	UNMAP_STEP(0x100000, 0, 0, UNMAPSZ);                       /* zero size */
	UNMAP_STEP(0x100000, 0x4000, 0x80, UNMAPSZ);               /* bad flag */
	UNMAP_STEP(0x100000, 0x4000, 0, UNMAPSZ - 1);              /* argsz too small */
	UNMAP_STEP(0x100000, 0x4000, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ); /* ALL with a range */
	UNMAP_STEP(0x100000, 0x4000, 0, UNMAPSZ);                  /* ok: 0x4000 */
	UNMAP_STEP(0, 0x1000000, 0, UNMAPSZ);                      /* covers the RO one */
	STEP(map_dma(c, v, 0x100000, 0x4000, RW, MAPSZ));
	STEP(map_dma(c, v, 0x104000, 0x4000, RW, MAPSZ));
	UNMAP_STEP(0, 0, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ);        /* ALL: 0x8000 */
#undef STEP
#undef UNMAP_STEP
	return n;
}

TEST_F(t1x, map_unmap_errnos_match_upstream_type1)
{
	int64_t theirs[64], ours[64];
	int n, m, i;
	char *buf;

	buf = mmap(NULL, 0x8000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 1, 0x8000);

	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	n = errno_table(self->v.container, buf, theirs);
	vfio_teardown(&self->v);

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(1, read_long(T1X_CONTAINERS));
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
	m = errno_table(self->v.container, buf, ours);
	ASSERT_EQ(n, m);
	for (i = 0; i < n; i++)
		EXPECT_EQ(theirs[i], ours[i]) TH_LOG("step %d: upstream %lld, ours %lld", i,
						     (long long)theirs[i], (long long)ours[i]);
	munmap(buf, 0x8000);
}

/*
 * One edu DMA transfer: 0x80 source, 0x88 destination, 0x90 count, 0x98
 * command (bit 0 start, bit 1 device-to-RAM); edu's buffer is at 0x40000.
 * Returns 0, or -1 when it does not complete within 5 s.
 */
static int edu_dma(volatile uint64_t *bar64, uint64_t src, uint64_t dst, uint64_t len,
		   int to_ram)
{
	int i;

	bar64[0x80 / 8] = src;
	bar64[0x88 / 8] = dst;
	bar64[0x90 / 8] = len;
	bar64[0x98 / 8] = 0x1 | (to_ram ? 0x2 : 0);
	for (i = 0; i < 5000 && (bar64[0x98 / 8] & 1); i++)
		usleep(1000);
	return (bar64[0x98 / 8] & 1) ? -1 : 0;
}

/* Maps a buffer, runs one edu DMA round trip through IOVA 0x100000. */
static const char *edu_dma_roundtrip(struct vfio *v, const char *edu)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	const char *err = NULL;
	volatile uint64_t *bar;
	uint64_t done;
	char *buf;
	int dev, i;

	buf = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return "mmap failed";
	for (i = 0; i < 0x1000; i++) {
		buf[i] = (char)(i * 13 + 1);
		buf[0x1000 + i] = 0;
	}
	if (map_dma(v->container, (uint64_t)buf, 0x100000, 0x2000, RW, MAPSZ)) {
		munmap(buf, 0x2000);
		return "MAP_DMA failed";
	}
	dev = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, edu);
	if (dev < 0 || enable_bus_master(dev) || ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &reg))
		err = "cannot open edu";
	bar = err ? MAP_FAILED : mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
				      reg.offset);
	if (!err && bar == MAP_FAILED)
		err = "cannot map BAR0";
	if (!err && (edu_dma(bar, 0x100000, 0x40000, 0x1000, 0) ||
		     edu_dma(bar, 0x40000, 0x101000, 0x1000, 1)))
		err = "edu DMA timed out";
	if (!err && memcmp(buf, buf + 0x1000, 0x1000))
		err = "the data did not round-trip";
	if (bar != MAP_FAILED)
		munmap((void *)bar, reg.size);
	if (dev >= 0)
		close(dev);
	if (unmap_dma(v->container, 0x100000, 0x2000, 0, UNMAPSZ, &done) || done != 0x2000)
		err = err ?: "UNMAP_DMA failed";
	munmap(buf, 0x2000);
	return err;
}

TEST_F(t1x, edu_dma_through_our_domain_and_locked_vm)
{
	const char *err;
	uint64_t done;
	long lck0;
	char *buf;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(1, read_long(T1X_CONTAINERS));

	/* edu's DMA engine masks addresses to 28 bits: IOVAs stay below 256 MiB. */
	err = edu_dma_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);

	/* Pinned pages are charged to locked_vm, and refunded on unmap. */
	buf = mmap(NULL, 0x40000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	lck0 = vmlck_kb();
	ASSERT_EQ(0, map_dma(self->v.container, (uint64_t)buf, 0x200000, 0x40000, RW, MAPSZ));
	EXPECT_EQ(lck0 + 256, vmlck_kb());
	ASSERT_EQ(0, unmap_dma(self->v.container, 0x200000, 0x40000, 0, UNMAPSZ, &done));
	EXPECT_EQ(0x40000, done);
	EXPECT_EQ(lck0, vmlck_kb());
	munmap(buf, 0x40000);
}

TEST_F(t1x, second_group_joins_the_domain_and_leaves)
{
	char igb[32], path[64];
	const char *err;
	int igb_group, g2;

	if (!pci_find(0x8086, 0x10c9, igb, sizeof(igb)) || pci_group(igb) < 0)
		SKIP(return, "no igb device behind the SMMU");
	igb_group = pci_group(igb);
	ASSERT_EQ(0, bind_vfio(igb));
	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);

	snprintf(path, sizeof(path), "/dev/vfio/%d", igb_group);
	g2 = open(path, O_RDWR);
	ASSERT_LE(0, g2);
	ASSERT_EQ(0, ioctl(g2, VFIO_GROUP_SET_CONTAINER, &self->v.container));
	/* Still one container, and edu's DMA works with two groups in it. */
	EXPECT_EQ(1, read_long(T1X_CONTAINERS));
	err = edu_dma_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
	/* The igb group leaves; edu keeps working. */
	ASSERT_EQ(0, ioctl(g2, VFIO_GROUP_UNSET_CONTAINER));
	close(g2);
	err = edu_dma_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
}

struct mapper {
	int container;
	char *buf;
	uint64_t iova;
	int errors;
};

/* Maps and unmaps its own 64 KiB IOVA slot, 50 times. */
static void *mapper_run(void *arg)
{
	struct mapper *m = arg;
	uint64_t done;
	int i;

	for (i = 0; i < 50; i++) {
		if (map_dma(m->container, (uint64_t)m->buf, m->iova, 0x10000, RW, MAPSZ))
			m->errors++;
		if (unmap_dma(m->container, m->iova, 0x10000, 0, UNMAPSZ, &done) || done != 0x10000)
			m->errors++;
	}
	return NULL;
}

TEST_F(t1x, threads_map_and_unmap_disjoint_ranges)
{
	struct mapper m[4];
	pthread_t t[4];
	uint64_t done;
	int i;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	for (i = 0; i < 4; i++) {
		m[i].container = self->v.container;
		m[i].buf = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		ASSERT_NE(MAP_FAILED, m[i].buf);
		m[i].iova = 0x1000000 + i * 0x100000;
		m[i].errors = 0;
		ASSERT_EQ(0, pthread_create(&t[i], NULL, mapper_run, &m[i]));
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, m[i].errors) TH_LOG("thread %d", i);
		munmap(m[i].buf, 0x10000);
	}
	/* Nothing left behind. */
	ASSERT_EQ(0, unmap_dma(self->v.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ, &done));
	EXPECT_EQ(0, done);
}

/* Drops CAP_IPC_LOCK from the effective set: RLIMIT_MEMLOCK then applies. */
static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	return syscall(SYS_capset, &h, d) ? -1 : 0;
}

TEST_F(t1x, rlimit_memlock_caps_the_pinned_memory)
{
	int status;
	pid_t pid;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct rlimit rl = { .rlim_cur = 64 << 10, .rlim_max = 64 << 10 };
		struct vfio v;
		char *buf = mmap(NULL, 0x100000, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (buf == MAP_FAILED || setrlimit(RLIMIT_MEMLOCK, &rl) || drop_ipc_lock())
			_exit(10);
		if (vfio_setup(&v, self->group, VFIO_TYPE1v2_IOMMU))
			_exit(2);
		/* 1 MiB over a 64 KiB limit: refused, nothing left pinned. */
		if (map_dma(v.container, (uint64_t)buf, 0x100000, 0x100000, RW, MAPSZ) != -ENOMEM)
			_exit(11);
		if (vmlck_kb() != 0)
			_exit(12);
		/* Within the limit: fine. */
		if (map_dma(v.container, (uint64_t)buf, 0x100000, 0x8000, RW, MAPSZ))
			_exit(13);
		if (vmlck_kb() != 32)
			_exit(14);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		SKIP(return, "MSIs not isolated here: see the policy test");
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("step %d failed", WEXITSTATUS(status));
}

TEST_F(t1x, killed_process_releases_everything)
{
	int status;
	pid_t pid;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct vfio v;
		char *buf = mmap(NULL, 0x100000, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (buf == MAP_FAILED || vfio_setup(&v, self->group, VFIO_TYPE1v2_IOMMU))
			_exit(2);
		if (map_dma(v.container, (uint64_t)buf, 0x100000, 0x100000, RW, MAPSZ))
			_exit(3);
		if (read_long(T1X_CONTAINERS) != 1 || vmlck_kb() < 1024)
			_exit(4);
		/* Die with the mapping live. */
		kill(getpid(), SIGKILL);
		_exit(5);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		SKIP(return, "MSIs not isolated here: see the policy test");
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exit %d", WEXITSTATUS(status));
	/* The container went away with the process: nothing left pinned. */
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
	/* And the module can be unloaded. */
	EXPECT_EQ(0, syscall(__NR_delete_module, "vfio_type1x", O_NONBLOCK));
}

/*
 * Opens edu through the group, enables one MSI vector on an eventfd, has the
 * device raise an interrupt and waits for it. vfio-pci allocates the vector;
 * the MSI irq domain maps the doorbell into the device's IOMMU domain through
 * the domain's MSI cookie (without it, SET_IRQS fails with EOPNOTSUPP from
 * iommu_dma_prepare_msi()). Returns 0 or a message.
 */
static const char *edu_msi_roundtrip(struct vfio *v, const char *bdf)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	const char *err = NULL;
	volatile uint32_t *bar;
	struct pollfd pfd;
	uint64_t count = 0;
	int dev, efd;

	dev = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0)
		return "VFIO_GROUP_GET_DEVICE_FD failed";
	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &reg)) {
		close(dev);
		return "VFIO_DEVICE_GET_REGION_INFO failed";
	}
	bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, reg.offset);
	if (bar == MAP_FAILED) {
		close(dev);
		return "mmap of BAR0 failed";
	}
	efd = eventfd(0, EFD_NONBLOCK);
	/* edu: 0x00 identification, 0x60 raise interrupt, 0x64 acknowledge. */
	if ((bar[0] & 0xff0000ffu) != 0x010000edu)
		err = "BAR0 is not edu's";
	/* An MSI is a DMA write: the device needs bus mastering. */
	else if (enable_bus_master(dev))
		err = "cannot enable bus mastering";
	if (!err) {
		irq->argsz = sizeof(irqbuf);
		irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->index = VFIO_PCI_MSI_IRQ_INDEX;
		irq->start = 0;
		irq->count = 1;
		memcpy(irq->data, &efd, sizeof(efd));
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq))
			err = "VFIO_DEVICE_SET_IRQS (MSI) failed: no doorbell mapping?";
	}
	if (!err) {
		bar[0x60 / 4] = 0x1;
		pfd.fd = efd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5000) != 1)
			err = "no MSI from edu within 5 s";
		else if (read(efd, &count, sizeof(count)) != sizeof(count) || count < 1)
			err = "eventfd read failed";
		bar[0x64 / 4] = 0x1;
		irq->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
		irq->count = 0;
		irq->argsz = sizeof(*irq);
		if (ioctl(dev, VFIO_DEVICE_SET_IRQS, irq) && !err)
			err = "disabling MSI failed";
	}
	munmap((void *)bar, reg.size);
	close(efd);
	close(dev);
	return err;
}

TEST_F(t1x, msi_doorbell_is_mapped_and_edu_msi_arrives)
{
	const char *err;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	ASSERT_EQ(1, read_long(T1X_CONTAINERS));
	err = edu_msi_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
}

static struct vfio_iommu_type1x_info_cap_msi_aperture *
aperture_cap(struct vfio_iommu_type1_info *info)
{
	return find_cap(info, VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE);
}

static int set_aperture(int container, uint64_t iova, uint64_t size, uint32_t flags,
			uint32_t argsz)
{
	struct vfio_type1x_msi_aperture a = {
		.argsz = argsz, .flags = flags, .iova = iova, .size = size,
	};

	return ioctl(container, VFIO_TYPE1X_SET_MSI_APERTURE, &a) ? -errno : 0;
}

/* Is [start, last] inside one usable IOVA range of GET_INFO? */
static int iova_usable(struct vfio_iommu_type1_info *info, uint64_t start, uint64_t last)
{
	struct vfio_iommu_type1_info_cap_iova_range *c = iova_cap(info);
	uint32_t i;

	for (i = 0; c && i < c->nr_iovas; i++)
		if (c->iova_ranges[i].start <= start && last <= c->iova_ranges[i].end)
			return 1;
	return 0;
}

/*
 * GET_INFO's aperture capability lists exactly one doorbell page, at @iova,
 * mapping the ITS's GITS_TRANSLATER page (0x8090040 on QEMU virt); logs it.
 */
static void expect_one_doorbell(struct __test_metadata *_metadata, int container, uint64_t iova)
{
	static char buf[4096];
	struct vfio_iommu_type1x_info_cap_msi_aperture *ap = NULL;
	struct vfio_iommu_type1_info *info = get_info(container, buf, sizeof(buf));

	if (info)
		ap = aperture_cap(info);
	EXPECT_NE(NULL, ap);
	if (!ap)
		return;
	EXPECT_EQ(1, ap->nr_doorbells);
	if (ap->nr_doorbells != 1)
		return;
	TH_LOG("MSI aperture %#llx+%#llx: doorbell page mapped at IOVA %#llx -> PA %#llx",
	       (unsigned long long)ap->iova, (unsigned long long)ap->size,
	       (unsigned long long)ap->doorbells[0].iova,
	       (unsigned long long)ap->doorbells[0].phys);
	EXPECT_EQ(iova, ap->doorbells[0].iova);
	EXPECT_EQ(0x8090000, ap->doorbells[0].phys);
}

TEST_F(t1x, default_aperture_reports_the_doorbell_until_teardown)
{
	static char buf[4096];
	const char *view;
	struct vfio_iommu_type1x_info_cap_msi_aperture *ap;
	struct vfio_iommu_type1_info *info;
	const char *err;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1X_MSI_APERTURE));
	info = get_info(self->v.container, buf, sizeof(buf));
	ASSERT_NE(NULL, info);
	ap = aperture_cap(info);
	ASSERT_NE(NULL, ap);
	/* arm-smmu-v3's software-MSI window, empty before any vector. */
	EXPECT_EQ(0x8000000, ap->iova);
	EXPECT_EQ(0x100000, ap->size);
	EXPECT_EQ(0, ap->nr_doorbells);

	err = edu_msi_roundtrip(&self->v, self->edu);
	ASSERT_EQ(NULL, err) TH_LOG("%s", err);
	expect_one_doorbell(_metadata, self->v.container, 0x8000000);
	/* debugfs shows the same, per container. */
	view = slurp("/sys/kernel/debug/vfio_type1x/apertures");
	ASSERT_NE(NULL, view);
	EXPECT_NE(NULL, strstr(view, " type=type1v2 ")) TH_LOG("%s", view);
	EXPECT_NE(NULL, strstr(view, " aperture=0x8000000+0x100000 doorbells=0x8000000->0x8090000\n"))
		TH_LOG("%s", view);
	/* Mapped: the aperture can no longer move. */
	EXPECT_EQ(-EBUSY, set_aperture(self->v.container, 0x9000000, 0x100000, 0,
				       sizeof(struct vfio_type1x_msi_aperture)));

	/* Teardown frees the domain, and the doorbell with it. */
	vfio_teardown(&self->v);
	ASSERT_EQ(0, vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU));
	info = get_info(self->v.container, buf, sizeof(buf));
	ap = aperture_cap(info);
	ASSERT_NE(NULL, ap);
	EXPECT_EQ(0, ap->nr_doorbells);
	view = slurp("/sys/kernel/debug/vfio_type1x/apertures");
	ASSERT_NE(NULL, view);
	EXPECT_NE(NULL, strstr(view, " doorbells=none\n")) TH_LOG("%s", view);
}

TEST_F(t1x, user_aperture_moves_the_doorbell_and_msi_still_lands)
{
	static char buf[4096];
	struct vfio_iommu_type1x_info_cap_msi_aperture *ap;
	struct vfio_iommu_type1_info *info;
	const char *err;
	uint64_t done;
	char *mem;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);

	ASSERT_EQ(0, set_aperture(self->v.container, 0x9000000, 0x100000, 0,
				  sizeof(struct vfio_type1x_msi_aperture)));
	info = get_info(self->v.container, buf, sizeof(buf));
	ap = aperture_cap(info);
	ASSERT_NE(NULL, ap);
	EXPECT_EQ(0x9000000, ap->iova);
	EXPECT_EQ(0x100000, ap->size);
	/* The old window is usable now, the new one is not. */
	EXPECT_TRUE(iova_usable(info, 0x8000000, 0x80fffff));
	EXPECT_FALSE(iova_usable(info, 0x9000000, 0x9000fff));
	EXPECT_EQ(-EINVAL, map_dma(self->v.container, (uint64_t)mem, 0x9000000, 0x1000, RW, MAPSZ));
	ASSERT_EQ(0, map_dma(self->v.container, (uint64_t)mem, 0x8000000, 0x1000, RW, MAPSZ));
	ASSERT_EQ(0, unmap_dma(self->v.container, 0x8000000, 0x1000, 0, UNMAPSZ, &done));

	err = edu_msi_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
	expect_one_doorbell(_metadata, self->v.container, 0x9000000);
	/* DMA still works in the rebuilt domain. */
	err = edu_dma_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
	munmap(mem, 0x1000);
}

TEST_F(t1x, aperture_refusals_have_their_own_errno)
{
	const uint32_t sz = sizeof(struct vfio_type1x_msi_aperture);
	uint64_t done;
	char *mem;
	int c;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	c = self->v.container;
	EXPECT_EQ(-EINVAL, set_aperture(c, 0x9000000, 0x100000, 0, sz - 1));
	EXPECT_EQ(-EINVAL, set_aperture(c, 0x9000000, 0x100000, 1, sz));
	EXPECT_EQ(-EINVAL, set_aperture(c, 0x9000000, 0, 0, sz));
	EXPECT_EQ(-EINVAL, set_aperture(c, 0x9000800, 0x100000, 0, sz));
	EXPECT_EQ(-EOVERFLOW, set_aperture(c, ~0xfffull, 0x2000, 0, sz));
	EXPECT_EQ(-ERANGE, set_aperture(c, 1ull << 60, 0x100000, 0, sz));
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, map_dma(c, (uint64_t)mem, 0x9080000, 0x1000, RW, MAPSZ));
	EXPECT_EQ(-EEXIST, set_aperture(c, 0x9000000, 0x100000, 0, sz));
	ASSERT_EQ(0, unmap_dma(c, 0x9080000, 0x1000, 0, UNMAPSZ, &done));
	/* Nothing moved by the refusals: still the default window. */
	EXPECT_EQ(0, set_aperture(c, 0x9000000, 0x100000, 0, sz));
	munmap(mem, 0x1000);
}

TEST_F(t1x, msi_base_parameter_relocates_the_default)
{
	static char buf[4096];
	struct vfio_iommu_type1x_info_cap_msi_aperture *ap;
	struct vfio_iommu_type1_info *info;
	const char *err;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1 msi_base=0xa000000"));
	SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	info = get_info(self->v.container, buf, sizeof(buf));
	ap = aperture_cap(info);
	ASSERT_NE(NULL, ap);
	EXPECT_EQ(0xa000000, ap->iova);
	EXPECT_EQ(0x100000, ap->size);
	EXPECT_TRUE(iova_usable(info, 0x8000000, 0x80fffff));
	err = edu_msi_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
	expect_one_doorbell(_metadata, self->v.container, 0xa000000);
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");

	/*
	 * Outside the SMMU's input range: we refuse the group, with the cause
	 * logged. (VFIO's SET_IOMMU then asks the next backend, so the
	 * container may still end up with vfio_iommu_type1.)
	 */
	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko",
			      "serve_type1=1 msi_base=0x1000000000000000"));
	vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
	EXPECT_TRUE(klog_has("is outside its IOMMU's aperture (msi_base?)"));
}

TEST_F(t1x, unisolated_group_is_refused_with_the_reason)
{
	const char *err;
	int r;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	r = vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
	if (r == 0) {
		EXPECT_EQ(1, read_long(T1X_CONTAINERS));
		SKIP(return, "this machine's MSIs are isolated");
	}
	EXPECT_EQ(-EPERM, r);
	EXPECT_TRUE(klog_has("MSIs not isolated, refusing it: "));
	EXPECT_TRUE(klog_has("reason=msi-controller-not-isolating"));
	EXPECT_TRUE(klog_has("allow_unsafe_interrupts=1"));
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko",
			      "serve_type1=1 allow_unsafe_interrupts=1"));
	ASSERT_EQ(0, vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, read_long(T1X_CONTAINERS));
	EXPECT_TRUE(klog_has("accepted because allow_unsafe_interrupts=1"));
	/* Accepted, it works: the GICv2m doorbell is mapped like the ITS's. */
	err = edu_msi_roundtrip(&self->v, self->edu);
	EXPECT_EQ(NULL, err) TH_LOG("%s", err);
	vfio_teardown(&self->v);
}

/*
 * msi_isolation's assert_isolated= makes a group with unisolated MSIs
 * (GICv2m) isolated by an administrator's word; we accept it without
 * allow_unsafe_interrupts, but say in the log that the assertion, not the
 * hardware, decided.
 */
TEST_F(t1x, asserted_group_is_accepted_with_a_log_line)
{
	char params[96];

	mod_unload("msi_isolation");
	ASSERT_EQ(0, mod_load("/armsi/modules/msi_isolation.ko", ""));
	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	if (!vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU))
		SKIP(return, "this machine's MSIs are isolated");
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");
	mod_unload("msi_isolation");

	snprintf(params, sizeof(params), "assert_isolated=%s", self->edu);
	ASSERT_EQ(0, mod_load("/armsi/modules/msi_isolation.ko", params));
	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	ASSERT_EQ(0, vfio_setup(&self->v, self->group, VFIO_TYPE1v2_IOMMU));
	EXPECT_EQ(1, read_long(T1X_CONTAINERS));
	EXPECT_TRUE(klog_has("declared isolated by msi_isolation's assert_isolated=, accepted on that assertion: "));
	EXPECT_TRUE(klog_has("reason=asserted-by-parameter"));
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");
	mod_unload("msi_isolation");
}

struct attacher {
	int group;
	volatile int *stop;
	int attaches, failures;
};

/* Attaches the group to a new container (the isolation query) in a loop. */
static void *attach_loop(void *arg)
{
	struct attacher *a = arg;

	while (!*a->stop) {
		struct vfio v;
		int r = vfio_setup(&v, a->group, VFIO_TYPE1v2_IOMMU);

		/* Accepted or refused (GICv2m), the query answered. */
		if (r == 0 || r == -EPERM)
			a->attaches++;
		else
			a->failures++;
		vfio_teardown(&v);
	}
	return NULL;
}

/*
 * Every group attach asks msi_isolation. vfio_type1x links against the
 * query, so the module loader refuses to unload msi_isolation while
 * vfio_type1x is loaded, however many attaches are asking it: an unload
 * racing a query can no longer reach the BUG_ON that a symbol_get() racing
 * free_module() hits in strong_try_module_get().
 */
TEST_F(t1x, msi_isolation_stays_while_attaches_ask_it)
{
	volatile int stop = 0;
	struct attacher a = { .group = self->group, .stop = &stop };
	pthread_t t;
	int i, refused = 0;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	ASSERT_EQ(0, pthread_create(&t, NULL, attach_loop, &a));
	for (i = 0; i < 200; i++) {
		if (syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK) == 0)
			break;
		if (errno == EWOULDBLOCK)
			refused++;
		usleep(2000);
	}
	stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(200, refused) TH_LOG("msi_isolation unloaded under vfio_type1x after %d refusals", refused);
	EXPECT_EQ(0, access("/sys/module/msi_isolation", F_OK));
	EXPECT_LT(0, a.attaches);
	EXPECT_EQ(0, a.failures);
	TH_LOG("%d attaches asked msi_isolation during 200 refused unloads", a.attaches);
	EXPECT_EQ(0, read_long(T1X_CONTAINERS));
	mod_unload("vfio_type1x");
	/* Once vfio_type1x is gone, msi_isolation goes too. */
	EXPECT_EQ(0, syscall(__NR_delete_module, "msi_isolation", O_NONBLOCK));
}

/* ------------------------------------------------------------------------ */
/* Hostile sequences: races with teardown, huge and degenerate inputs.      */
/* ------------------------------------------------------------------------ */

struct racer {
	int container;
	void *buf;
	uint64_t size;
	int ret;
};

static void *race_map(void *arg)
{
	struct racer *r = arg;

	r->ret = map_dma(r->container, (uint64_t)r->buf, 1ull << 32, r->size, RW, MAPSZ);
	return NULL;
}

/*
 * A MAP_DMA of never-touched memory pins for a long time; meanwhile another
 * thread detaches the group and closes the container, so VFIO releases the
 * container under the pinning thread. Nothing may be used after it is freed
 * (KASAN), and nothing may stay pinned or charged.
 */
TEST_F_TIMEOUT(t1x, map_racing_group_detach_leaves_nothing, 240)
{
	static const int delay_ms[] = { 1, 5, 20, 80 };
	const uint64_t size = 512ull << 20;
	unsigned int i;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	for (i = 0; i < sizeof(delay_ms) / sizeof(delay_ms[0]); i++) {
		struct racer r = { .size = size };
		pthread_t t;

		SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
		r.container = self->v.container;
		r.buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ASSERT_NE(MAP_FAILED, r.buf);
		ASSERT_EQ(0, pthread_create(&t, NULL, race_map, &r));
		usleep(delay_ms[i] * 1000);
		EXPECT_EQ(0, ioctl(self->v.group, VFIO_GROUP_UNSET_CONTAINER));
		vfio_teardown(&self->v);
		pthread_join(t, NULL);
		TH_LOG("detach after %d ms: MAP_DMA returned %d", delay_ms[i], r.ret);
		EXPECT_EQ(0, vmlck_kb());
		EXPECT_EQ(0, read_long(T1X_CONTAINERS));
		munmap(r.buf, size);
	}
	EXPECT_EQ(0, syscall(__NR_delete_module, "vfio_type1x", O_NONBLOCK));
}

/*
 * Opens a type1v2 container for @group served by upstream
 * vfio_iommu_type1 (@ours 0) or by vfio_type1x (@ours 1). Returns 1 where
 * the MSIs are not isolated (both backends refuse the group).
 */
static int setup_backend(struct __test_metadata *_metadata, int group, int ours, struct vfio *v)
{
	int r = vfio_backend(v, group, VFIO_TYPE1v2_IOMMU, ours, NULL);

	if (r == -EPERM) {
		vfio_teardown(v);
		return 1;
	}
	ASSERT_EQ(0, r);
	return 0;
}

/* Opens device @bdf of @v's group and reads its BAR0 region into @reg. */
static int bar0_info(struct __test_metadata *_metadata, struct vfio *v, const char *bdf,
		     struct vfio_region_info *reg)
{
	int dev = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);

	ASSERT_LE(0, dev);
	ASSERT_EQ(0, ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, reg));
	return dev;
}

/*
 * MAP_DMA of @len bytes at @buf with each backend in turn: upstream
 * vfio_iommu_type1, then ours; the results go to @ret[0..1], and VmLck
 * after each call must be 0. Returns 1 where the MSIs are not isolated
 * (both backends refuse the group: nothing to compare).
 */
static int map_both(struct __test_metadata *_metadata, int group, void *buf, uint64_t len,
		    uint64_t iova, int *ret)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct vfio v;

		if (setup_backend(_metadata, group, i, &v))
			return 1;
		ret[i] = map_dma(v.container, (uint64_t)buf, iova, len, RW, MAPSZ);
		EXPECT_EQ(0, vmlck_kb()) TH_LOG("%s", i ? "vfio_type1x" : "vfio_iommu_type1");
		vfio_teardown(&v);
	}
	return 0;
}

#define MAP_BOTH_OR_SKIP(...)                                                     \
	do {                                                                      \
		if (map_both(_metadata, __VA_ARGS__))                             \
			SKIP(return, "MSIs not isolated here: see the policy test"); \
	} while (0)

/*
 * 2 TiB of PROT_NONE, MAP_NORESERVE memory: nothing can be pinned. Upstream
 * says EFAULT; so must we, without a per-page array (its kvmalloc of 4 GiB
 * WARNs) and without a kernel warning of any kind.
 */
TEST_F_TIMEOUT(t1x, huge_prot_none_map_fails_like_upstream, 120)
{
	const uint64_t size = 2ull << 40;
	int ret[2];
	void *buf;

	if (pci_group(self->edu) < 0 || access("/dev/vfio/vfio", F_OK))
		SKIP(return, "no VFIO");
	buf = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	MAP_BOTH_OR_SKIP(self->group, buf, size, 1ull << 32, ret);
	EXPECT_EQ(-EFAULT, ret[0]);
	EXPECT_EQ(ret[0], ret[1]);
	munmap(buf, size);
}

/*
 * A range with a hole in its middle, or a PROT_NONE page in its middle: the
 * pages before it are pinned and mapped, then everything is undone and the
 * call fails as upstream's does.
 */
TEST_F(t1x, holes_and_prot_none_pages_fail_like_upstream)
{
	const uint64_t size = 4ull << 20;
	int ret[2];
	char *buf;

	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	/* A hole after 3 MiB. */
	ASSERT_EQ(0, munmap(buf + (3 << 20), 0x10000));
	MAP_BOTH_OR_SKIP(self->group, buf, size, 1ull << 32, ret);
	EXPECT_EQ(-EFAULT, ret[0]);
	EXPECT_EQ(ret[0], ret[1]);
	/* A PROT_NONE page after 1 MiB (the hole stays beyond it). */
	ASSERT_EQ(0, mprotect(buf + (1 << 20), 0x1000, PROT_NONE));
	MAP_BOTH_OR_SKIP(self->group, buf, 2 << 20, 1ull << 32, ret);
	EXPECT_EQ(-EFAULT, ret[0]);
	EXPECT_EQ(ret[0], ret[1]);
	munmap(buf, size);
}

/*
 * A device BAR mapped into the process (VM_IO | VM_PFNMAP), as QEMU maps an
 * assigned device's BARs for peer-to-peer DMA: there are no struct pages
 * to pin, so upstream maps the device memory by PFN and charges nothing.
 * With each backend in turn, in one boot: edu's BAR0 mmap (faulted in
 * lazily by vfio-pci, so the first MAP_DMA faults it in) is mapped at IOVA
 * 0x100000, and again, once touched, at 0x400000; VmLck stays 0; each
 * unmap returns the whole BAR. Both backends must answer alike at every
 * step. (The data path is not checked: under QEMU's SMMUv3 model a device
 * reads all-ones at a BAR's IOVA with either backend.)
 */
TEST_F(t1x, device_bar_maps_for_peer_to_peer_like_upstream)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	long res[2][8];
	int i, j;

	for (i = 0; i < 2; i++) {
		volatile uint32_t *bar;
		uint64_t done = 0;
		struct vfio v;
		int dev;

		if (setup_backend(_metadata, self->group, i, &v))
			SKIP(return, "MSIs not isolated here: see the policy test");
		dev = bar0_info(_metadata, &v, self->edu, &reg);
		bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, reg.offset);
		ASSERT_NE(MAP_FAILED, bar);

		res[i][0] = map_dma(v.container, (uint64_t)bar, 0x100000, reg.size, RW, MAPSZ);
		res[i][1] = vmlck_kb();
		/* edu's identification register, read by the CPU: the BAR works. */
		EXPECT_EQ(0xed, bar[0] & 0xff);
		res[i][2] = map_dma(v.container, (uint64_t)bar, 0x400000, reg.size, RW, MAPSZ);
		res[i][3] = unmap_dma(v.container, 0x100000, reg.size, 0, UNMAPSZ, &done);
		res[i][4] = done;
		res[i][5] = unmap_dma(v.container, 0x400000, reg.size, 0, UNMAPSZ, &done);
		res[i][6] = done;
		res[i][7] = vmlck_kb();
		munmap((void *)bar, reg.size);
		close(dev);
		vfio_teardown(&v);
	}
	EXPECT_EQ(0, res[0][0]);
	EXPECT_EQ(0, res[0][1]);
	EXPECT_EQ(0, res[0][2]);
	EXPECT_EQ(0, res[0][3]);
	EXPECT_EQ(reg.size, res[0][4]);
	EXPECT_EQ(0, res[0][5]);
	EXPECT_EQ(reg.size, res[0][6]);
	EXPECT_EQ(0, res[0][7]);
	for (j = 0; j < 8; j++) {
		EXPECT_EQ(res[0][j], res[1][j]) TH_LOG("step %d: upstream %ld, ours %ld", j,
						       res[0][j], res[1][j]);
	}
}

/*
 * Where a BAR mapping cannot be mapped for DMA, both backends say so
 * alike: a read-only BAR mmap mapped for writing (EFAULT after faulting it
 * in), and a range running from the BAR into an unmapped hole (the BAR's
 * part is mapped, then undone). Nothing stays charged or mapped.
 */
TEST_F(t1x, device_bar_refusals_match_upstream)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	long res[2][8];
	int i, j;

	for (i = 0; i < 2; i++) {
		struct vfio v;
		uint64_t done = 0;
		char *bar, *ro;
		int dev;

		if (setup_backend(_metadata, self->group, i, &v))
			SKIP(return, "MSIs not isolated here: see the policy test");
		dev = bar0_info(_metadata, &v, self->edu, &reg);
		/* The BAR, then one unmapped page after it. */
		bar = mmap(NULL, reg.size + 0x1000, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, bar);
		ASSERT_EQ(0, munmap(bar + reg.size, 0x1000));
		ASSERT_EQ(bar, mmap(bar, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
				    dev, reg.offset));
		ro = mmap(NULL, reg.size, PROT_READ, MAP_SHARED, dev, reg.offset);
		ASSERT_NE(MAP_FAILED, ro);

		res[i][0] = map_dma(v.container, (uint64_t)ro, 0x100000, 0x1000, RW, MAPSZ);
		res[i][1] = map_dma(v.container, (uint64_t)ro, 0x100000, 0x1000,
				    VFIO_DMA_MAP_FLAG_READ, MAPSZ);
		res[i][2] = map_dma(v.container, (uint64_t)bar, 0x400000, reg.size + 0x1000, RW,
				    MAPSZ);
		/* Nothing of the failed call stayed mapped: the range is free. */
		res[i][3] = map_dma(v.container, (uint64_t)bar, 0x400000, reg.size, RW, MAPSZ);
		EXPECT_EQ(0, vmlck_kb());
		unmap_dma(v.container, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ, &done);
		munmap(ro, reg.size);
		munmap(bar, reg.size);
		close(dev);
		vfio_teardown(&v);
	}
	EXPECT_EQ(-EFAULT, res[0][0]);
	EXPECT_EQ(0, res[0][1]);
	EXPECT_EQ(-EFAULT, res[0][2]);
	EXPECT_EQ(0, res[0][3]);
	for (j = 0; j < 4; j++) {
		EXPECT_EQ(res[0][j], res[1][j]) TH_LOG("step %d: upstream %ld, ours %ld", j,
						       res[0][j], res[1][j]);
	}
}

/* One stress worker: random calls on one container and device until told. */
struct stressor {
	int container, dev, seed;
	char *buf;
	volatile int *stop;
	unsigned long calls;
};

#define STRESS_SLOTS 16
#define STRESS_SLOT 0x100000ull

static void *stress_run(void *arg)
{
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	struct stressor *s = arg;
	unsigned int rnd = s->seed;
	static __thread char info[4096];
	int efd = eventfd(0, EFD_NONBLOCK);

	while (!*s->stop) {
		uint64_t slot = rand_r(&rnd) % STRESS_SLOTS, done;
		uint64_t len = ((rand_r(&rnd) % 16) + 1) * 0x1000;
		uint64_t iova = (1ull << 32) + slot * STRESS_SLOT;

		switch (rand_r(&rnd) % 6) {
		case 0:
		case 1:
			map_dma(s->container, (uint64_t)s->buf + slot * STRESS_SLOT, iova, len, RW,
				MAPSZ);
			break;
		case 2:
			unmap_dma(s->container, iova, STRESS_SLOT, 0, UNMAPSZ, &done);
			break;
		case 3:
			get_info(s->container, info, sizeof(info));
			break;
		case 4:
			set_aperture(s->container, rand_r(&rnd) & 1 ? 0x9000000 : 0xa000000,
				     0x100000, 0, sizeof(struct vfio_type1x_msi_aperture));
			break;
		case 5:
			irq->argsz = sizeof(irqbuf);
			irq->index = VFIO_PCI_MSI_IRQ_INDEX;
			irq->start = 0;
			if (rand_r(&rnd) & 1) {
				irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
				irq->count = 1;
				memcpy(irq->data, &efd, sizeof(efd));
			} else {
				irq->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
				irq->count = 0;
				irq->argsz = sizeof(*irq);
			}
			ioctl(s->dev, VFIO_DEVICE_SET_IRQS, irq);
			break;
		}
		s->calls++;
	}
	close(efd);
	return NULL;
}

/*
 * Four threads call MAP/UNMAP/GET_INFO/SET_MSI_APERTURE/SET_IRQS at random
 * on one container while the main thread tears it down in a random order
 * (group detach, device, group and container close); eight rounds. Then
 * nothing is pinned, no container is left and the module unloads.
 */
TEST_F_TIMEOUT(t1x, stress_random_calls_racing_teardown, 240)
{
	const uint64_t size = STRESS_SLOTS * STRESS_SLOT;
	unsigned int seed = 0x5eed, round;
	unsigned long calls = 0;
	char *buf;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	for (round = 0; round < 8; round++) {
		struct stressor s[4];
		volatile int stop = 0;
		pthread_t t[4];
		int i, dev, order = rand_r(&seed);

		SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
		dev = ioctl(self->v.group, VFIO_GROUP_GET_DEVICE_FD, self->edu);
		ASSERT_LE(0, dev);
		ASSERT_EQ(0, enable_bus_master(dev));
		for (i = 0; i < 4; i++) {
			s[i] = (struct stressor){ .container = self->v.container, .dev = dev,
						  .seed = rand_r(&seed), .buf = buf, .stop = &stop };
			ASSERT_EQ(0, pthread_create(&t[i], NULL, stress_run, &s[i]));
		}
		usleep(200000 + rand_r(&seed) % 300000);
		/* Hostile teardown while the workers keep calling. */
		if (order & 1) {
			close(dev);
			dev = -1;
			ioctl(self->v.group, VFIO_GROUP_UNSET_CONTAINER);
		}
		if (order & 2) {
			close(self->v.container);
			self->v.container = -1;
		}
		usleep(50000);
		vfio_teardown(&self->v);
		usleep(50000);
		stop = 1;
		for (i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			calls += s[i].calls;
		}
		if (dev >= 0)
			close(dev);
		EXPECT_EQ(0, vmlck_kb()) TH_LOG("round %u", round);
		EXPECT_EQ(0, read_long(T1X_CONTAINERS)) TH_LOG("round %u", round);
	}
	TH_LOG("%lu calls in 8 rounds", calls);
	munmap(buf, size);
	EXPECT_EQ(0, syscall(__NR_delete_module, "vfio_type1x", O_NONBLOCK));
}

struct msi_racer {
	int container, dev;
	pthread_barrier_t *go;
	unsigned long refused;
};

/* Moves the aperture back and forth until a doorbell pins it (EBUSY). */
static void *aperture_mover(void *arg)
{
	struct msi_racer *r = arg;
	int i;

	pthread_barrier_wait(r->go);
	for (i = 0; i < 64; i++)
		if (set_aperture(r->container, i & 1 ? 0x9000000 : 0xa000000, 0x100000, 0,
				 sizeof(struct vfio_type1x_msi_aperture)) == -EBUSY)
			break;
	return NULL;
}

/* Enables edu's MSI once, then disables it. */
static void *msi_enabler(void *arg)
{
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	struct msi_racer *r = arg;
	int efd = eventfd(0, EFD_NONBLOCK);

	irq->argsz = sizeof(irqbuf);
	irq->index = VFIO_PCI_MSI_IRQ_INDEX;
	irq->start = 0;
	irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	irq->count = 1;
	memcpy(irq->data, &efd, sizeof(efd));
	pthread_barrier_wait(r->go);
	if (ioctl(r->dev, VFIO_DEVICE_SET_IRQS, irq))
		r->refused++;
	irq->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	irq->count = 0;
	irq->argsz = sizeof(*irq);
	ioctl(r->dev, VFIO_DEVICE_SET_IRQS, irq);
	close(efd);
	return NULL;
}

/*
 * VFIO_TYPE1X_SET_MSI_APERTURE rebuilds the container's domains while
 * another thread enables edu's first MSI, on a new container each round.
 * An MSI set up while the group moves between domains must fail cleanly:
 * no event ID of edu's ITS device may stay allocated, which the ITS driver
 * WARNs about when the device's MSI domain goes at unbind
 * (its_msi_teardown).
 */
TEST_F_TIMEOUT(t1x, aperture_move_racing_msi_setup_leaks_no_lpi, 180)
{
	pthread_barrier_t go;
	struct msi_racer r = {};
	int round, dev;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	ASSERT_EQ(0, pthread_barrier_init(&go, NULL, 2));
	for (round = 0; round < 200; round++) {
		pthread_t a, b;

		SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
		dev = ioctl(self->v.group, VFIO_GROUP_GET_DEVICE_FD, self->edu);
		ASSERT_LE(0, dev);
		ASSERT_EQ(0, enable_bus_master(dev));
		r.container = self->v.container;
		r.dev = dev;
		r.go = &go;
		ASSERT_EQ(0, pthread_create(&a, NULL, aperture_mover, &r));
		ASSERT_EQ(0, pthread_create(&b, NULL, msi_enabler, &r));
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		close(dev);
		vfio_teardown(&self->v);
	}
	TH_LOG("200 rounds, %lu first MSI enables refused", r.refused);
	/* edu's MSI domain goes with its driver: every event ID must be free. */
	ASSERT_EQ(0, bind_vfio(self->edu));
	EXPECT_FALSE(klog_has("its_msi_teardown"));
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

struct window_racer {
	int container, dev, efd;
	pthread_barrier_t *go;
	uint64_t delay_ns;
	int moved, enabled;
	uint64_t move_start, move_end, enable_start, enable_end;
};

/* Moves the aperture to 0x9000000 once, timing the call. */
static void *window_mover(void *arg)
{
	struct window_racer *r = arg;

	pthread_barrier_wait(r->go);
	r->move_start = now_ns();
	r->moved = set_aperture(r->container, 0x9000000, 0x100000, 0,
				sizeof(struct vfio_type1x_msi_aperture));
	r->move_end = now_ns();
	return NULL;
}

/* After delay_ns, enables edu's MSI on r->efd and leaves it enabled. */
static void *window_enabler(void *arg)
{
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	struct window_racer *r = arg;
	struct timespec d;

	irq->argsz = sizeof(irqbuf);
	irq->index = VFIO_PCI_MSI_IRQ_INDEX;
	irq->start = 0;
	irq->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	irq->count = 1;
	memcpy(irq->data, &r->efd, sizeof(r->efd));
	d.tv_sec = r->delay_ns / 1000000000ull;
	d.tv_nsec = r->delay_ns % 1000000000ull;
	pthread_barrier_wait(r->go);
	nanosleep(&d, NULL);
	r->enable_start = now_ns();
	r->enabled = ioctl(r->dev, VFIO_DEVICE_SET_IRQS, irq) ? -errno : 0;
	r->enable_end = now_ns();
	return NULL;
}

/*
 * An MSI enabled while VFIO_TYPE1X_SET_MSI_APERTURE builds the new domains
 * gets its doorbell in an old domain, at an old-aperture IOVA, under the
 * group's mutex and not the container's. Such a move must fail with EBUSY
 * and leave the groups where they were: after any round, a vector that was
 * enabled must deliver edu's interrupt, and GET_INFO must report its
 * doorbell inside the aperture the container has. 64 MiB of mappings make
 * the replay into the new domain take long enough for the enable to land
 * inside it; the enable's delay sweeps the measured length of a move.
 */
TEST_F_TIMEOUT(t1x, msi_enabled_during_aperture_move_still_lands, 300)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX };
	const size_t size = 64 << 20;
	static char buf[4096];
	unsigned int round, inside = 0, busy = 0, rounds = 16;
	uint64_t move_ns = 0;
	char *mem;

	ASSERT_EQ(0, mod_load("/armsi/modules/vfio_type1x.ko", "serve_type1=1"));
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);
	memset(mem, 1, size);
	for (round = 0; round <= rounds; round++) {
		struct vfio_iommu_type1x_info_cap_msi_aperture *ap;
		struct window_racer r = {};
		struct vfio_iommu_type1_info *info;
		volatile uint32_t *bar;
		pthread_barrier_t go;
		struct pollfd pfd;
		pthread_t a, b;
		uint64_t count;

		SETUP_OR_SKIP(&self->v, self->group, VFIO_TYPE1v2_IOMMU);
		ASSERT_EQ(0, map_dma(self->v.container, (uint64_t)mem, 0x40000000, size, RW, MAPSZ));
		if (round == 0) {
			/* Time a move alone: the sweep's length. */
			uint64_t t = now_ns();

			ASSERT_EQ(0, set_aperture(self->v.container, 0x9000000, 0x100000, 0,
						  sizeof(struct vfio_type1x_msi_aperture)));
			move_ns = now_ns() - t;
			TH_LOG("a move with 64 MiB mapped takes %llu us",
			       (unsigned long long)move_ns / 1000);
			vfio_teardown(&self->v);
			continue;
		}
		r.dev = ioctl(self->v.group, VFIO_GROUP_GET_DEVICE_FD, self->edu);
		ASSERT_LE(0, r.dev);
		ASSERT_EQ(0, enable_bus_master(r.dev));
		ASSERT_EQ(0, ioctl(r.dev, VFIO_DEVICE_GET_REGION_INFO, &reg));
		bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.dev, reg.offset);
		ASSERT_NE(MAP_FAILED, bar);
		r.efd = eventfd(0, EFD_NONBLOCK);
		ASSERT_LE(0, r.efd);
		r.container = self->v.container;
		r.delay_ns = move_ns * (round - 1) / rounds;
		r.go = &go;
		ASSERT_EQ(0, pthread_barrier_init(&go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&a, NULL, window_mover, &r));
		ASSERT_EQ(0, pthread_create(&b, NULL, window_enabler, &r));
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		pthread_barrier_destroy(&go);
		EXPECT_TRUE(r.moved == 0 || r.moved == -EBUSY) TH_LOG("round %u: %d", round, r.moved);
		if (r.enable_start > r.move_start && r.enable_end < r.move_end)
			inside++;
		if (r.moved == -EBUSY)
			busy++;
		if (r.enabled == 0) {
			/* edu: 0x60 raises its interrupt, 0x64 acknowledges it. */
			bar[0x60 / 4] = 0x1;
			pfd.fd = r.efd;
			pfd.events = POLLIN;
			EXPECT_EQ(1, poll(&pfd, 1, 3000))
				TH_LOG("round %u: the move returned %d, then no MSI", round, r.moved);
			if (read(r.efd, &count, sizeof(count)) != sizeof(count))
				count = 0;
			bar[0x64 / 4] = 0x1;
			info = get_info(self->v.container, buf, sizeof(buf));
			ap = info ? aperture_cap(info) : NULL;
			ASSERT_NE(NULL, ap);
			EXPECT_EQ(r.moved ? 0x8000000 : 0x9000000, ap->iova);
			EXPECT_EQ(1, ap->nr_doorbells) TH_LOG("round %u: move %d", round, r.moved);
			if (ap->nr_doorbells == 1)
				EXPECT_EQ(ap->iova, ap->doorbells[0].iova);
		}
		munmap((void *)bar, reg.size);
		close(r.efd);
		close(r.dev);
		vfio_teardown(&self->v);
	}
	TH_LOG("%u rounds: %u enables inside a move, %u moves refused with EBUSY", rounds,
	       inside, busy);
	/* The sweep must have hit the window, or the test showed nothing. */
	EXPECT_LT(0, inside);
	munmap(mem, size);
}

TEST_HARNESS_MAIN
