// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_type1x against upstream vfio_iommu_type1, in one boot, on edu's
 * group: the same call sequences against each backend must give the same
 * returns, errnos, written-back fields, bitmaps and locked memory (VmLck).
 *
 *  - GET_INFO's capability chain: the same capabilities at the same
 *    offsets, each padded to 8 bytes, with the same contents (ours adds
 *    its MSI aperture capability at the end);
 *  - VFIO_CHECK_EXTENSION, before and after VFIO_SET_IOMMU;
 *  - dirty page tracking (VFIO_IOMMU_DIRTY_PAGES and UNMAP_DMA's dirty
 *    bitmap), for live migration;
 *  - VFIO_UPDATE_VADDR (QEMU's CPR), including the move of the locked-
 *    memory charge to a new process;
 *  - the dma_entry_limit module parameter.
 */
#include <errno.h>
#include <linux/vfio.h>
#include <linux/vfio_type1x.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "armsi_test.h"
#include "vfio_util.h"

#define PG 4096ull

/* The results of one call sequence: a value per step, with its name. */
struct trace {
	int n;
	int64_t v[4096];
	const char *what[4096];
};

static void rec(struct trace *t, const char *what, int64_t v)
{
	if (t->n < 4096) {
		t->what[t->n] = what;
		t->v[t->n++] = v;
	}
}

/* Both traces must be equal, step by step. */
static void expect_same(struct __test_metadata *_metadata, const struct trace *up,
			const struct trace *us)
{
	int i;

	ASSERT_EQ(up->n, us->n);
	for (i = 0; i < up->n; i++) {
		if (up->v[i] == us->v[i])
			continue;
		TH_LOG("step %d (%s): upstream %lld (%#llx), ours %lld (%#llx)", i, up->what[i],
		       (long long)up->v[i], (unsigned long long)up->v[i], (long long)us->v[i],
		       (unsigned long long)us->v[i]);
		_metadata->exit_code = KSFT_FAIL;
	}
	TH_LOG("%d steps compared", up->n);
}

FIXTURE(fid) {
	char edu[32];
	int group;
	struct vfio v;
	char *buf;
};

FIXTURE_SETUP(fid)
{
	self->v.container = self->v.group = -1;
	self->buf = MAP_FAILED;
	EDU_VFIO_READY_OR_SKIP(self->edu, &self->group);
	self->buf = mmap(NULL, 256 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 1, 256 * PG);
}

FIXTURE_TEARDOWN(fid)
{
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");
	if (self->buf != MAP_FAILED)
		munmap(self->buf, 256 * PG);
}

#define BACKEND_OR_SKIP(v, type, ours, params)                                         \
	do {                                                                           \
		int __r = vfio_backend(v, self->group, type, ours, params);                \
		if (__r == -EPERM)                                                     \
			SKIP(return, "MSIs not isolated here: see the policy test");    \
		ASSERT_EQ(0, __r) TH_LOG("%s backend", (ours) ? "our" : "upstream"); \
	} while (0)

/* GET_INFO's chain --------------------------------------------------------- */

/* Records every capability but ours: offset, id, version, bytes. */
static void trace_chain(struct trace *t, int container)
{
	static char buf[8192];
	struct vfio_iommu_type1_info *info = get_info(container, buf, sizeof(buf));
	struct vfio_info_cap_header *h;
	uint32_t off, end, i;

	rec(t, "GET_INFO", info ? 0 : -errno);
	if (!info)
		return;
	rec(t, "flags", info->flags);
	rec(t, "iova_pgsizes", info->iova_pgsizes);
	rec(t, "cap_offset", info->cap_offset);
	for (off = info->cap_offset; off; off = h->next) {
		h = (void *)(buf + off);
		if (h->id == VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE) {
			/* Ours, which must be the last (upstream has none). */
			if (h->next)
				rec(t, "a capability after ours", h->next);
			break;
		}
		rec(t, "cap offset", off);
		rec(t, "cap offset % 8", off % 8);
		rec(t, "cap id", h->id);
		rec(t, "cap version", h->version);
		/* Its bytes: upstream's size of it, padded to 8 bytes. */
		switch (h->id) {
		case VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
			end = off + 16 + 16 * ((struct vfio_iommu_type1_info_cap_iova_range *)h)->nr_iovas;
			break;
		case VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION:
			end = off + sizeof(struct vfio_iommu_type1_info_cap_migration);
			break;
		default:
			end = off + 16;
		}
		for (i = off + 8; i + 8 <= end && i + 8 <= sizeof(buf); i += 8)
			rec(t, "cap contents", *(int64_t *)(buf + i));
	}
}

TEST_F(fid, get_info_chain_layout_and_contents_match_upstream)
{
	struct trace t[2] = {};
	int ours;

	for (ours = 0; ours < 2; ours++) {
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, ours, NULL);
		trace_chain(&t[ours], self->v.container);
		rec(&t[ours], "map", map_dma(self->v.container, (uint64_t)self->buf, 0x100000, 4 * PG,
					     RW, MAPSZ));
		trace_chain(&t[ours], self->v.container);
		vfio_teardown(&self->v);
	}
	expect_same(_metadata, &t[0], &t[1]);
}

/* CHECK_EXTENSION ------------------------------------------------------------ */

static void trace_extensions(struct trace *t, int fd)
{
	long e;

	for (e = 0; e <= 12; e++)
		rec(t, "VFIO_CHECK_EXTENSION", ioctl(fd, VFIO_CHECK_EXTENSION, e));
}

TEST_F(fid, check_extension_matches_upstream)
{
	struct trace t[2] = {};
	char path[64];
	int ours, grp;

	for (ours = 0; ours < 2; ours++) {
		/* Before SET_IOMMU every driver is asked. */
		mod_unload("vfio_type1x");
		if (ours)
			ASSERT_EQ(0, mod_load(T1X_KO, "serve_type1=1"));
		self->v.container = open("/dev/vfio/vfio", O_RDWR);
		ASSERT_LE(0, self->v.container);
		trace_extensions(&t[ours], self->v.container);
		snprintf(path, sizeof(path), "/dev/vfio/%d", self->group);
		grp = open(path, O_RDWR);
		ASSERT_LE(0, grp);
		ASSERT_EQ(0, ioctl(grp, VFIO_GROUP_SET_CONTAINER, &self->v.container));
		trace_extensions(&t[ours], self->v.container);
		close(grp);
		vfio_teardown(&self->v);

		/* Then only the container's backend. */
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, ours, NULL);
		trace_extensions(&t[ours], self->v.container);
		vfio_teardown(&self->v);
	}
	expect_same(_metadata, &t[0], &t[1]);

	/* Our extension: only where this backend serves, or would. */
	mod_unload("vfio_type1x");
	ASSERT_EQ(0, mod_load(T1X_KO, ""));
	self->v.container = open("/dev/vfio/vfio", O_RDWR);
	EXPECT_EQ(0, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1X_MSI_APERTURE));
	vfio_teardown(&self->v);
	mod_unload("vfio_type1x");
	ASSERT_EQ(0, mod_load(T1X_KO, "serve_type1=1"));
	self->v.container = open("/dev/vfio/vfio", O_RDWR);
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1X_MSI_APERTURE));
	vfio_teardown(&self->v);
	BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, 1, NULL);
	EXPECT_EQ(1, ioctl(self->v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1X_MSI_APERTURE));
}

/* Dirty page tracking --------------------------------------------------------- */

static int dirty_op(int c, uint32_t flags, uint32_t argsz)
{
	struct vfio_iommu_type1_dirty_bitmap d = { .argsz = argsz, .flags = flags };

	return ioctl(c, VFIO_IOMMU_DIRTY_PAGES, &d) ? -errno : 0;
}

/* GET_BITMAP of [iova, iova + size) into @bm (of @bmsize bytes). */
static int get_bitmap(int c, uint64_t iova, uint64_t size, uint64_t pgsize, void *bm,
		      uint64_t bmsize, uint32_t argsz)
{
	char b[sizeof(struct vfio_iommu_type1_dirty_bitmap) +
	       sizeof(struct vfio_iommu_type1_dirty_bitmap_get)];
	struct vfio_iommu_type1_dirty_bitmap *d = (void *)b;
	struct vfio_iommu_type1_dirty_bitmap_get *g = (void *)d->data;

	d->argsz = argsz;
	d->flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
	g->iova = iova;
	g->size = size;
	g->bitmap.pgsize = pgsize;
	g->bitmap.size = bmsize;
	g->bitmap.data = bm;
	return ioctl(c, VFIO_IOMMU_DIRTY_PAGES, d) ? -errno : 0;
}

/* UNMAP_DMA with a dirty bitmap; the size unmapped to *@done. */
static int unmap_bitmap(int c, uint64_t iova, uint64_t size, uint32_t flags, uint64_t pgsize,
			void *bm, uint64_t bmsize, uint32_t argsz, uint64_t *done)
{
	char b[sizeof(struct vfio_iommu_type1_dma_unmap) + sizeof(struct vfio_bitmap)];
	struct vfio_iommu_type1_dma_unmap *u = (void *)b;
	struct vfio_bitmap *bitmap = (void *)u->data;
	int r;

	u->argsz = argsz;
	u->flags = flags;
	u->iova = iova;
	u->size = size;
	bitmap->pgsize = pgsize;
	bitmap->size = bmsize;
	bitmap->data = bm;
	r = ioctl(c, VFIO_IOMMU_UNMAP_DMA, u) ? -errno : 0;
	*done = u->size;
	return r;
}

#define BM_WORDS 8
static uint64_t bm[BM_WORDS];

/* Fills the bitmap with a pattern: what the backend keeps of it shows. */
static void *pattern(void)
{
	int i;

	for (i = 0; i < BM_WORDS; i++)
		bm[i] = 0xa5a55a5a0ff0f00full ^ ((uint64_t)i << 56);
	return bm;
}

static void rec_bitmap(struct trace *t)
{
	int i;

	for (i = 0; i < BM_WORDS; i++)
		rec(t, "bitmap word", bm[i]);
}

static void dirty_script(struct trace *t, int c, char *buf)
{
	uint64_t v = (uint64_t)buf, done = 0;
	const uint32_t DSZ = sizeof(struct vfio_iommu_type1_dirty_bitmap) +
			     sizeof(struct vfio_iommu_type1_dirty_bitmap_get);
	const uint32_t USZ = sizeof(struct vfio_iommu_type1_dma_unmap) +
			     sizeof(struct vfio_bitmap);
	const uint32_t GBM = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;

	/* Mappings: A (3 pages) and B (5) adjacent, C (70) after a gap. */
	rec(t, "map A", map_dma(c, v, 0x100000, 3 * PG, RW, MAPSZ));
	rec(t, "map B", map_dma(c, v + 3 * PG, 0x103000, 5 * PG, RW, MAPSZ));
	rec(t, "map C", map_dma(c, v + 8 * PG, 0x120000, 70 * PG, RW, MAPSZ));
	rec(t, "get before start", get_bitmap(c, 0x100000, 8 * PG, PG, pattern(), 64, DSZ));
	rec(t, "no flag", dirty_op(c, 0, 8));
	rec(t, "two flags", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
				    VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 8));
	rec(t, "unknown flag", dirty_op(c, 1 << 3, 8));
	rec(t, "argsz 4", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 4));
	rec(t, "start", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 8));
	rec(t, "start again", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 8));
	rec(t, "get A+B", get_bitmap(c, 0x100000, 8 * PG, PG, pattern(), 64, DSZ));
	rec_bitmap(t);
	rec(t, "get A+B again", get_bitmap(c, 0x100000, 8 * PG, PG, pattern(), 64, DSZ));
	rec_bitmap(t);
	rec(t, "get from B", get_bitmap(c, 0x103000, 5 * PG, PG, pattern(), 64, DSZ));
	rec_bitmap(t);
	rec(t, "get A..C with the gap",
	    get_bitmap(c, 0x100000, 0x20000 + 70 * PG, PG, pattern(), 64, DSZ));
	rec_bitmap(t);
	rec(t, "get bisecting A", get_bitmap(c, 0x101000, 7 * PG, PG, pattern(), 64, DSZ));
	rec(t, "get bisecting C's end",
	    get_bitmap(c, 0x120000, 69 * PG, PG, pattern(), 64, DSZ));
	rec(t, "get pgsize 8K", get_bitmap(c, 0x100000, 8 * PG, 2 * PG, pattern(), 64, DSZ));
	rec(t, "get pgsize 0", get_bitmap(c, 0x100000, 8 * PG, 0, pattern(), 64, DSZ));
	rec(t, "get bitmap too small",
	    get_bitmap(c, 0x120000, 70 * PG, PG, pattern(), 8, DSZ));
	rec(t, "get bitmap too big",
	    get_bitmap(c, 0x100000, 8 * PG, PG, pattern(), 1ull << 40, DSZ));
	rec(t, "get unaligned", get_bitmap(c, 0x100800, 8 * PG, PG, pattern(), 64, DSZ));
	rec(t, "get size 0", get_bitmap(c, 0x100000, 0, PG, pattern(), 64, DSZ));
	rec(t, "get wraps", get_bitmap(c, ~0xfffull, 2 * PG, PG, pattern(), 64, DSZ));
	rec(t, "get argsz short", get_bitmap(c, 0x100000, 8 * PG, PG, pattern(), 64, DSZ - 1));
	rec(t, "get bad pointer", get_bitmap(c, 0x100000, 8 * PG, PG, (void *)8, 64, DSZ));
	rec(t, "get nothing mapped", get_bitmap(c, 0x400000, 8 * PG, PG, pattern(), 64, DSZ));
	rec_bitmap(t);
	rec(t, "unmap+bitmap with ALL",
	    unmap_bitmap(c, 0, 0, GBM | VFIO_DMA_UNMAP_FLAG_ALL, PG, pattern(), 64, USZ, &done));
	rec(t, "unmap+bitmap with VADDR",
	    unmap_bitmap(c, 0x103000, 5 * PG, GBM | VFIO_DMA_UNMAP_FLAG_VADDR, PG, pattern(), 64,
			 USZ, &done));
	rec(t, "unmap+bitmap argsz short",
	    unmap_bitmap(c, 0x103000, 5 * PG, GBM, PG, pattern(), 64, USZ - 1, &done));
	rec(t, "unmap+bitmap pgsize 8K",
	    unmap_bitmap(c, 0x103000, 5 * PG, GBM, 2 * PG, pattern(), 64, USZ, &done));
	rec(t, "unmap+bitmap too small",
	    unmap_bitmap(c, 0x120000, 70 * PG, GBM, PG, pattern(), 8, USZ, &done));
	rec(t, "unmap+bitmap B", unmap_bitmap(c, 0x103000, 5 * PG, GBM, PG, pattern(), 64, USZ,
					       &done));
	rec(t, "unmapped", done);
	rec_bitmap(t);
	rec(t, "unmap+bitmap A..C from 0xff000",
	    unmap_bitmap(c, 0xff000, 0x22000 + 70 * PG, GBM, PG, pattern(), 64, USZ, &done));
	rec(t, "unmapped", done);
	rec_bitmap(t);
	rec(t, "VmLck", vmlck_kb());
	rec(t, "map A again", map_dma(c, v, 0x100000, 3 * PG, RW, MAPSZ));
	rec(t, "stop", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 8));
	rec(t, "stop again", dirty_op(c, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 8));
	rec(t, "get after stop", get_bitmap(c, 0x100000, 3 * PG, PG, pattern(), 64, DSZ));
	rec(t, "unmap+bitmap after stop",
	    unmap_bitmap(c, 0x100000, 3 * PG, GBM, PG, pattern(), 64, USZ, &done));
	rec(t, "unmap A", unmap_dma(c, 0x100000, 3 * PG, 0, UNMAPSZ, &done));
	rec(t, "unmapped", done);
	rec(t, "VmLck", vmlck_kb());
}

TEST_F(fid, dirty_page_tracking_matches_upstream)
{
	struct trace t[2] = {};
	int ours;

	for (ours = 0; ours < 2; ours++) {
		/* A type1 (v1) container has none of it. */
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1_IOMMU, ours, NULL);
		rec(&t[ours], "v1 start", dirty_op(self->v.container,
						     VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 8));
		vfio_teardown(&self->v);
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, ours, NULL);
		dirty_script(&t[ours], self->v.container, self->buf);
		vfio_teardown(&self->v);
	}
	expect_same(_metadata, &t[0], &t[1]);
}

/* VFIO_UPDATE_VADDR ------------------------------------------------------------ */

/*
 * In a child (a new mm, like QEMU after CPR's exec): gives mapping A its
 * user address back; reports the result and the child's VmLck.
 */
static void child_update(int c, uint64_t vaddr, int64_t *out)
{
	int64_t *res = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	res[0] = res[1] = -1;
	pid = fork();
	if (!pid) {
		res[0] = map_dma(c, vaddr, 0x100000, 3 * PG, VFIO_DMA_MAP_FLAG_VADDR, MAPSZ);
		res[1] = vmlck_kb();
		_exit(0);
	}
	waitpid(pid, &status, 0);
	out[0] = res[0];
	out[1] = res[1];
	munmap(res, PG);
}

static void vaddr_script(struct trace *t, int c, int igb_group, char *buf)
{
	uint64_t v = (uint64_t)buf, done = 0;
	const uint32_t VA = VFIO_DMA_MAP_FLAG_VADDR, UVA = VFIO_DMA_UNMAP_FLAG_VADDR;
	int64_t child[2];

	rec(t, "UPDATE_VADDR extension", ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR));
	rec(t, "map A", map_dma(c, v, 0x100000, 3 * PG, RW, MAPSZ));
	rec(t, "map B", map_dma(c, v + 3 * PG, 0x103000, 2 * PG, RW, MAPSZ));
	rec(t, "VmLck", vmlck_kb());
	rec(t, "vaddr of a valid mapping", map_dma(c, v, 0x100000, 3 * PG, VA, MAPSZ));
	rec(t, "vaddr of nothing", map_dma(c, v, 0x200000, PG, VA, MAPSZ));
	rec(t, "vaddr with READ", map_dma(c, v, 0x100000, 3 * PG, VA | VFIO_DMA_MAP_FLAG_READ,
					  MAPSZ));
	rec(t, "vaddr unaligned", map_dma(c, v + 8, 0x100000, 3 * PG, VA, MAPSZ));
	rec(t, "invalidate A", unmap_dma(c, 0x100000, 3 * PG, UVA, UNMAPSZ, &done));
	rec(t, "invalidated", done);
	rec(t, "VmLck", vmlck_kb());
	rec(t, "invalidate A+B", unmap_dma(c, 0x100000, 5 * PG, UVA, UNMAPSZ, &done));
	rec(t, "reported", done);
	rec(t, "invalidate bisecting B", unmap_dma(c, 0x104000, PG, UVA, UNMAPSZ, &done));
	rec(t, "map over invalid A", map_dma(c, v, 0x100000, 3 * PG, RW, MAPSZ));
	if (igb_group >= 0) {
		char path[64];
		int g;

		snprintf(path, sizeof(path), "/dev/vfio/%d", igb_group);
		g = open(path, O_RDWR);
		rec(t, "attach while invalid",
		    g < 0 ? -1000 : ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) ? -errno : 0);
		if (g >= 0)
			close(g);
	}
	rec(t, "vaddr of A, other size", map_dma(c, v, 0x100000, 2 * PG, VA, MAPSZ));
	rec(t, "vaddr of A and B", map_dma(c, v, 0x100000, 5 * PG, VA, MAPSZ));
	rec(t, "vaddr of A", map_dma(c, v + 16 * PG, 0x100000, 3 * PG, VA, MAPSZ));
	rec(t, "vaddr of A again", map_dma(c, v, 0x100000, 3 * PG, VA, MAPSZ));
	rec(t, "invalidate all", unmap_dma(c, 0, 0, UVA | VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ, &done));
	rec(t, "invalidated", done);
	rec(t, "vaddr of B", map_dma(c, v, 0x103000, 2 * PG, VA, MAPSZ));
	/* A new process takes A over: its locked memory moves along. */
	child_update(c, v, child);
	rec(t, "child: vaddr of A", child[0]);
	rec(t, "child: VmLck", child[1]);
	rec(t, "VmLck", vmlck_kb());
	rec(t, "unmap all", unmap_dma(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ, &done));
	rec(t, "unmapped", done);
	rec(t, "VmLck", vmlck_kb());
}

TEST_F(fid, update_vaddr_matches_upstream)
{
	struct trace t[2] = {};
	char igb[32];
	int ours, igb_group = -1;

	if (pci_find(0x8086, 0x10c9, igb, sizeof(igb)) && !bind_vfio(igb))
		igb_group = pci_group(igb);
	for (ours = 0; ours < 2; ours++) {
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, ours, NULL);
		vaddr_script(&t[ours], self->v.container, igb_group, self->buf);
		vfio_teardown(&self->v);
	}
	expect_same(_metadata, &t[0], &t[1]);
}

/* dma_entry_limit ---------------------------------------------------------------- */

TEST_F(fid, dma_entry_limit_matches_upstream)
{
	static char info[4096];
	struct vfio_iommu_type1_info_dma_avail *avail;
	struct trace t[2] = {};
	long old = read_long(UPSTREAM_LIMIT);
	int ours, i;

	ASSERT_LT(0, old);
	ASSERT_EQ(0, write_str(UPSTREAM_LIMIT, "3"));
	for (ours = 0; ours < 2; ours++) {
		int r = vfio_backend(&self->v, self->group, VFIO_TYPE1v2_IOMMU, ours,
				"dma_entry_limit=3");

		if (r) {
			char s[32];

			snprintf(s, sizeof(s), "%ld", old);
			write_str(UPSTREAM_LIMIT, s);
			if (r == -EPERM)
				SKIP(return, "MSIs not isolated here: see the policy test");
			ASSERT_EQ(0, r);
		}
		for (i = 0; i < 5; i++) {
			rec(&t[ours], "map", map_dma(self->v.container, (uint64_t)self->buf,
						     0x100000 + i * PG, PG, RW, MAPSZ));
			avail = find_cap(get_info(self->v.container, info, sizeof(info)),
					 VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
			rec(&t[ours], "dma_avail", avail ? avail->avail : -1);
		}
		vfio_teardown(&self->v);
	}
	{
		char s[32];

		snprintf(s, sizeof(s), "%ld", old);
		write_str(UPSTREAM_LIMIT, s);
	}
	expect_same(_metadata, &t[0], &t[1]);
	EXPECT_EQ(-ENOSPC, t[1].v[6]);
}

/*
 * Read-only pins of never-written memory (the shared zero page) ------------
 *
 * On this kernel both backends pin and charge every page: a read-only
 * FOLL_LONGTERM pin of a private mapping unshares the zero page.
 */

/*
 * @ro read-only pages never touched, then @rw read-write pages (touched if
 * @touch), one range: MAP_DMA with READ only, then UNMAP.
 */
static void zero_page_case(struct trace *t, int c, int ro, int rw, int touch)
{
	uint64_t done = 0;
	char *p = mmap(NULL, (ro + rw) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile char sink;
	int i;

	if (p == MAP_FAILED) {
		rec(t, "mmap", -errno);
		return;
	}
	if (ro)
		mprotect(p, ro * PG, PROT_READ);
	if (rw)
		mprotect(p + ro * PG, rw * PG, PROT_READ | PROT_WRITE);
	/* touch: 1 writes the read-write pages; 2 reads every page first, so
	 * that the never-written ones map the shared zero page. */
	if (touch == 1)
		memset(p + ro * PG, 7, rw * PG);
	for (i = 0; touch == 2 && i < ro + rw; i++)
		sink = p[i * PG];
	(void)sink;
	rec(t, "map READ", map_dma(c, (uint64_t)p, 0x100000, (ro + rw) * PG,
				   VFIO_DMA_MAP_FLAG_READ, MAPSZ));
	rec(t, "VmLck", vmlck_kb());
	rec(t, "unmap", unmap_dma(c, 0x100000, (ro + rw) * PG, 0, UNMAPSZ, &done));
	rec(t, "unmapped", done);
	rec(t, "VmLck", vmlck_kb());
	munmap(p, (ro + rw) * PG);
}

TEST_F(fid, readonly_pins_of_never_written_memory_match_upstream)
{
	struct trace t[2] = {};
	int ours;

	for (ours = 0; ours < 2; ours++) {
		BACKEND_OR_SKIP(&self->v, VFIO_TYPE1v2_IOMMU, ours, NULL);
		zero_page_case(&t[ours], self->v.container, 4, 0, 0);
		zero_page_case(&t[ours], self->v.container, 4, 4, 0);
		zero_page_case(&t[ours], self->v.container, 4, 4, 1);
		zero_page_case(&t[ours], self->v.container, 0, 4, 0);
		zero_page_case(&t[ours], self->v.container, 1, 600, 1);
		zero_page_case(&t[ours], self->v.container, 4, 0, 2);
		zero_page_case(&t[ours], self->v.container, 4, 4, 2);
		zero_page_case(&t[ours], self->v.container, 0, 4, 2);
		zero_page_case(&t[ours], self->v.container, 1, 600, 2);
		vfio_teardown(&self->v);
	}
	expect_same(_metadata, &t[0], &t[1]);
}

/* Seeded random call streams ----------------------------------------------- */

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* An IOVA: mostly page slots, sometimes misaligned, in the MSI window, far
 * out, or wrapping. */
static uint64_t rnd_iova(uint64_t *s)
{
	uint64_t slot = 0x100000 + (xs(s) % 24) * 0x4000;

	switch (xs(s) % 16) {
	case 0:
		return slot + 0x800;
	case 1:
		return 0x8000000 + (xs(s) % 4) * PG;
	case 2:
		return 1ull << 60;
	case 3:
		return ~0xfffull;
	default:
		return slot;
	}
}

static uint64_t rnd_size(uint64_t *s)
{
	switch (xs(s) % 16) {
	case 0:
		return 0;
	case 1:
		return 0x1800;
	case 2:
		return 0x40000;
	default:
		return (1 + xs(s) % 8) * PG;
	}
}

/*
 * @n calls drawn from @seed on container @c: MAP_DMA (good and bad vaddr,
 * flags, argsz, VADDR updates), UNMAP_DMA (plain, ALL, VADDR, bad flags and
 * argsz), GET_INFO (DMA_AVAIL and the IOVA ranges) and CHECK_EXTENSION;
 * every return, errno, written-back size, and VmLck and the pages pinned
 * (foll_pins(), from the stream's start) every 8 calls and at the end.
 */
static void random_stream(struct trace *t, int c, char *buf, uint64_t seed, int n)
{
	static char info[4096];
	uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1, done;
	const uint32_t mflags[] = { RW, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, 0,
				    RW | 0x80, VFIO_DMA_MAP_FLAG_VADDR };
	const uint32_t uflags[] = { 0, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
				    VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL, 0x80 };
	struct vfio_iommu_type1_info *in;
	struct vfio_iommu_type1_info_dma_avail *avail;
	struct vfio_iommu_type1_info_cap_iova_range *ranges;
	long pins = foll_pins();
	int i;

	rec(t, "pins readable", pins >= 0);
	for (i = 0; i < n; i++) {
		uint64_t iova = rnd_iova(&st), size = rnd_size(&st);
		uint64_t vaddr = (uint64_t)buf + (xs(&st) % 200) * PG;
		uint32_t argsz = xs(&st) % 32 ? 0 : 1; /* rarely one byte short */

		if (xs(&st) % 16 == 0)
			vaddr += 0x800;
		if (xs(&st) % 32 == 0)
			vaddr = 0x1000; /* nothing mapped there */
		switch (xs(&st) % 8) {
		case 0:
		case 1:
		case 2:
			rec(t, "map", map_dma(c, vaddr, iova, size,
					      mflags[xs(&st) % (sizeof(mflags) / 4)], MAPSZ - argsz));
			break;
		case 3:
		case 4:
			done = 0xdead;
			rec(t, "unmap", unmap_dma(c, iova, xs(&st) % 4 ? size : 0x40000,
						  uflags[xs(&st) % (sizeof(uflags) / 4)], UNMAPSZ - argsz,
						  &done));
			rec(t, "unmapped", done);
			break;
		case 5:
			in = get_info(c, info, sizeof(info));
			rec(t, "GET_INFO", in ? 0 : -errno);
			if (!in)
				break;
			avail = find_cap(in, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
			ranges = iova_cap(in);
			rec(t, "dma_avail", avail ? avail->avail : -1);
			rec(t, "IOVA ranges", ranges ? ranges->nr_iovas : -1);
			break;
		case 6:
			rec(t, "CHECK_EXTENSION", ioctl(c, VFIO_CHECK_EXTENSION, xs(&st) % 13));
			break;
		case 7:
			rec(t, "vaddr update", map_dma(c, vaddr, iova, size, VFIO_DMA_MAP_FLAG_VADDR,
						       MAPSZ));
			break;
		}
		if (i % 8 == 7) {
			rec(t, "VmLck", vmlck_kb());
			rec(t, "pages pinned", foll_pins() - pins);
		}
	}
	rec(t, "unmap all", unmap_dma(c, 0, 0, VFIO_DMA_UNMAP_FLAG_ALL, UNMAPSZ, &done));
	rec(t, "VmLck", vmlck_kb());
	rec(t, "pages pinned", foll_pins() - pins);
}

/* Seeds: armsi.fid_seeds=<n> on the kernel command line, else 4. */
static int nr_seeds(void)
{
	const char *c = slurp("/proc/cmdline"), *p = c ? strstr(c, "armsi.fid_seeds=") : NULL;

	return p ? atoi(p + 16) : 4;
}

TEST_F_TIMEOUT(fid, random_call_streams_match_upstream, 3600)
{
	static struct trace t[2];
	int seeds = nr_seeds(), seed, type, ours;

	for (seed = 1; seed <= seeds; seed++) {
		for (type = 0; type < 2; type++) {
			int iommu = type ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;

			memset(t, 0, sizeof(t));
			for (ours = 0; ours < 2; ours++) {
				BACKEND_OR_SKIP(&self->v, iommu, ours, NULL);
				random_stream(&t[ours], self->v.container, self->buf, seed, 300);
				vfio_teardown(&self->v);
			}
			{
				int k, maps = 0, unmapped = 0;

				for (k = 0; k < t[1].n; k++) {
					maps += !strcmp(t[1].what[k], "map") && !t[1].v[k];
					unmapped += !strcmp(t[1].what[k], "unmapped") &&
						    t[1].v[k] > 0 && t[1].v[k] != 0xdead;
				}
				TH_LOG("seed %d, %s: %d maps and %d unmaps that took effect", seed,
				       type ? "type1v2" : "type1", maps, unmapped);
			}
			expect_same(_metadata, &t[0], &t[1]);
			/* The pin counts were read, and upstream gave every pin back. */
			EXPECT_EQ(1, t[0].v[0]);
			EXPECT_EQ(0, t[0].v[t[0].n - 1]);
		}
	}
}

TEST_HARNESS_MAIN
