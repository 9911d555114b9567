/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VFIO helpers shared by the guest tests and the KVM tests that drive a
 * device through a VFIO container: container and group set-up, the
 * GET_INFO capability chain, bus mastering.
 */
#ifndef ARMSI_VFIO_UTIL_H
#define ARMSI_VFIO_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "armsi_test.h"

#define T1X_KO "/armsi/modules/vfio_type1x.ko"
#define T1X_CONTAINERS "/sys/kernel/debug/vfio_type1x/containers"
/* Upstream's mappings-per-container limit (vfio_type1x takes dma_entry_limit=N). */
#define UPSTREAM_LIMIT "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit"

struct vfio {
	int container;
	int group;
};

/* Opens a container and the group, sets the IOMMU type; -errno on failure. */
static inline int vfio_setup(struct vfio *v, int group, int type)
{
	char path[64];

	v->container = open("/dev/vfio/vfio", O_RDWR);
	if (v->container < 0)
		return -errno;
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	v->group = open(path, O_RDWR);
	if (v->group < 0)
		return -errno;
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container))
		return -errno;
	if (ioctl(v->container, VFIO_SET_IOMMU, type))
		return -errno;
	return 0;
}

static inline void vfio_teardown(struct vfio *v)
{
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	v->group = v->container = -1;
}

/* GET_INFO into @buf (of @len bytes); returns the info header. */
static inline struct vfio_iommu_type1_info *get_info(int container, void *buf, size_t len)
{
	struct vfio_iommu_type1_info *info = buf;

	memset(buf, 0, len);
	info->argsz = len;
	if (ioctl(container, VFIO_IOMMU_GET_INFO, info))
		return NULL;
	return info;
}

/* The capability @id in GET_INFO's chain, or NULL. */
static inline void *find_cap(struct vfio_iommu_type1_info *info, uint16_t id)
{
	struct vfio_info_cap_header *h;
	uint32_t off = info->cap_offset;

	while (off) {
		h = (void *)((char *)info + off);
		if (h->id == id)
			return h;
		off = h->next;
	}
	return NULL;
}

static inline struct vfio_iommu_type1_info_cap_iova_range *
iova_cap(struct vfio_iommu_type1_info *info)
{
	return find_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
}

/* Sets PCI_COMMAND_MASTER: an MSI or a DMA is a write by the device. */
static inline int enable_bus_master(int dev)
{
	struct vfio_region_info cfg = { .argsz = sizeof(cfg),
					 .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t cmd;

	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		return -errno;
	if (pread(dev, &cmd, sizeof(cmd), cfg.offset + 4) != sizeof(cmd))
		return -EIO;
	cmd |= 0x4; /* PCI_COMMAND_MASTER */
	if (pwrite(dev, &cmd, sizeof(cmd), cfg.offset + 4) != sizeof(cmd))
		return -EIO;
	return 0;
}

/* MAP_DMA: 0 or -errno. */
static inline int map_dma(int container, uint64_t vaddr, uint64_t iova, uint64_t size,
			  uint32_t flags, uint32_t argsz)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = argsz, .flags = flags, .vaddr = vaddr, .iova = iova, .size = size,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

/* UNMAP_DMA; the size unmapped goes to *@done. */
static inline int unmap_dma(int container, uint64_t iova, uint64_t size, uint32_t flags,
			    uint32_t argsz, uint64_t *done)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = argsz, .flags = flags, .iova = iova, .size = size,
	};
	int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) ? -errno : 0;

	*done = u.size;
	return r;
}

#define RW (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)
#define MAPSZ sizeof(struct vfio_iommu_type1_dma_map)
#define UNMAPSZ sizeof(struct vfio_iommu_type1_dma_unmap)

/* The locked memory of this process, in kB (VmLck). */
static inline long vmlck_kb(void)
{
	const char *s = slurp("/proc/self/status"), *p;

	p = s ? strstr(s, "VmLck:") : NULL;
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/*
 * Pages pinned for long-term use (FOLL_PIN) system-wide and not yet
 * unpinned, from /proc/vmstat after folding every CPU's pending counts
 * into it (vm.stat_refresh); -1 if that fails. Nothing else pins in the
 * test guest, so a backend's mappings are the difference between two
 * readings: a page left pinned after its unmap shows.
 */
static inline long foll_pins(void)
{
	const char *s, *a, *r;

	if (write_str("/proc/sys/vm/stat_refresh", "1"))
		return -1;
	s = slurp("/proc/vmstat");

	a = s ? strstr(s, "nr_foll_pin_acquired ") : NULL;
	r = s ? strstr(s, "nr_foll_pin_released ") : NULL;
	if (!a || !r)
		return -1;
	return strtol(a + 21, NULL, 10) - strtol(r + 21, NULL, 10);
}

/*
 * Finds edu, binds it to vfio-pci and readies the two backends: upstream
 * vfio_iommu_type1 loaded, vfio_type1x not (loaded after it, it would be
 * asked first), msi_isolation loaded (vfio_type1x links against its
 * query). Returns NULL, or why the tests cannot run here (a skip), or with
 * *@fail set, what failed.
 */
static inline const char *edu_vfio_ready(char *bdf, size_t len, int *group, int *fail)
{
	*fail = 0;
	if (!pci_find(0x1234, 0x11e8, bdf, len))
		return "no edu device on this machine";
	*group = pci_group(bdf);
	if (*group < 0)
		return "edu has no IOMMU group";
	if (access("/sys/bus/pci/drivers/vfio-pci", F_OK))
		return "vfio-pci is not loaded";
	*fail = 1;
	if (bind_vfio(bdf))
		return "cannot bind edu to vfio-pci";
	if (access("/sys/module/vfio_iommu_type1", F_OK))
		return "vfio_iommu_type1 is not loaded";
	mod_unload("vfio_type1x");
	if (access("/sys/module/msi_isolation", F_OK) &&
	    mod_load("/armsi/modules/msi_isolation.ko", ""))
		return "cannot load msi_isolation";
	*fail = 0;
	return NULL;
}

/* edu_vfio_ready() in a kselftest fixture's setup. */
#define EDU_VFIO_READY_OR_SKIP(bdf, group)                                      \
	do {                                                                    \
		int __fail;                                                     \
		const char *__why = edu_vfio_ready(bdf, sizeof(bdf), group, &__fail); \
		ASSERT_FALSE(__why && __fail) TH_LOG("%s", __why);              \
		if (__why)                                                      \
			SKIP(return, "%s", __why);                              \
	} while (0)

/*
 * Opens a container of @type on @group served by upstream (@ours 0) or by
 * vfio_type1x loaded with @params (@ours 1); 0 or -errno.
 */
static inline int vfio_backend(struct vfio *v, int group, int type, int ours, const char *params)
{
	char p[128];
	int r;

	mod_unload("vfio_type1x");
	if (!access("/sys/module/vfio_type1x", F_OK))
		return -EBUSY;
	if (ours) {
		snprintf(p, sizeof(p), "serve_type1=1 %s", params ?: "");
		r = mod_load(T1X_KO, p);
		if (r)
			return r;
	}
	r = vfio_setup(v, group, type);
	/* Ours has it, or upstream (vfio_type1x is not even loaded). */
	if (!r && ours && read_long(T1X_CONTAINERS) != 1)
		r = -ENXIO;
	return r;
}

#endif
