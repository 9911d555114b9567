/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * vfio_type1x: the MSI IOVA aperture of a VFIO container.
 *
 * On arm64 an MSI is a DMA write to the MSI controller's doorbell, which the
 * IOMMU translates like any other. vfio_type1x maps the doorbell pages into
 * an IOVA window of the container, the MSI aperture, when vfio-pci sets up
 * MSI/MSI-X vectors. By default the aperture is the IOMMU's software-MSI
 * reserved region (0x8000000, 1 MiB on arm-smmu-v3) or the one the module
 * parameter msi_base= names; with the ioctl below a user picks it per
 * container, e.g. when its guest memory map uses 0x8000000.
 *
 * These numbers cannot collide with upstream VFIO's: the extension value is
 * far above upstream's small extension numbers, the ioctl uses its own type
 * (0xA9, unassigned in Documentation/userspace-api/ioctl/ioctl-number.rst)
 * rather than VFIO_TYPE, and the capability ID is far above upstream's.
 */
#ifndef _UAPI_LINUX_VFIO_TYPE1X_H
#define _UAPI_LINUX_VFIO_TYPE1X_H

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vfio.h>

/*
 * VFIO_CHECK_EXTENSION(VFIO_TYPE1X_MSI_APERTURE) returns 1 on a container
 * served by vfio_type1x: it accepts VFIO_TYPE1X_SET_MSI_APERTURE and reports
 * VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE in VFIO_IOMMU_GET_INFO.
 */
#define VFIO_TYPE1X_MSI_APERTURE	0x41524d00

#define VFIO_TYPE1X_TYPE		0xA9

/**
 * struct vfio_type1x_msi_aperture - argument of VFIO_TYPE1X_SET_MSI_APERTURE
 * @argsz: size of this structure, at least 24
 * @flags: must be 0
 * @iova: first IOVA of the aperture; a multiple of the container's smallest
 *        IOMMU page size (VFIO_IOMMU_GET_INFO's iova_pgsizes)
 * @size: size of the aperture in bytes; a non-zero multiple of that page
 *        size, with room for one page per distinct doorbell page of the MSI
 *        controllers the container's devices use
 *
 * VFIO_TYPE1X_SET_MSI_APERTURE moves the container's MSI aperture to
 * [@iova, @iova + @size). Allowed only while no doorbell is mapped, that is
 * before any MSI/MSI-X vector of the container's devices is enabled. The
 * aperture must lie inside every domain's aperture, outside the IOMMU's
 * other reserved regions, and must not overlap a DMA mapping; afterwards
 * VFIO_IOMMU_MAP_DMA into it fails with EINVAL and GET_INFO's usable IOVA
 * ranges exclude it (and no longer exclude the old one).
 *
 * Errors, each with a kernel log line naming the cause:
 *  EINVAL     @argsz too small, @flags not 0, @size 0, or @iova/@size not
 *             page aligned
 *  EOVERFLOW  @iova + @size wraps around
 *  ERANGE     outside a domain's aperture (IOMMU geometry)
 *  EADDRINUSE overlaps another reserved region of a group
 *  EEXIST     overlaps a DMA mapping
 *  ENOSPC     too small for the doorbell pages the devices need
 *  EBUSY      a doorbell is already mapped in the current aperture
 *  EOPNOTSUPP the IOMMU reports a hardware MSI region (IOMMU_RESV_MSI): it
 *             does not translate MSIs, so no doorbell is mapped anywhere
 */
struct vfio_type1x_msi_aperture {
	__u32	argsz;
	__u32	flags;
	__aligned_u64	iova;
	__aligned_u64	size;
};

#define VFIO_TYPE1X_SET_MSI_APERTURE	_IO(VFIO_TYPE1X_TYPE, 0)

/*
 * The MSI aperture capability of VFIO_IOMMU_GET_INFO's chain.
 */
#define VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE	0x4d53

/**
 * struct vfio_type1x_doorbell - one doorbell page mapped in the aperture
 * @iova: its IOVA in the aperture
 * @phys: the physical address it maps (the doorbell register's page)
 */
struct vfio_type1x_doorbell {
	__aligned_u64	iova;
	__aligned_u64	phys;
};

/**
 * struct vfio_iommu_type1x_info_cap_msi_aperture - the aperture and what is
 * mapped in it now
 * @header: id VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE, version 1
 * @iova: first IOVA of the aperture
 * @size: its size in bytes
 * @nr_doorbells: number of entries in @doorbells
 * @reserved: zero
 * @doorbells: the doorbell pages mapped in the aperture, in IOVA order
 */
struct vfio_iommu_type1x_info_cap_msi_aperture {
	struct vfio_info_cap_header header;
	__aligned_u64	iova;
	__aligned_u64	size;
	__u32	nr_doorbells;
	__u32	reserved;
	struct vfio_type1x_doorbell doorbells[];
};

#endif /* _UAPI_LINUX_VFIO_TYPE1X_H */
