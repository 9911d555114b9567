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
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

#endif
