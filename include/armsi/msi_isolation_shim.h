/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim of the msi_isolation module: the kernel APIs it needs that the Rust
 * `kernel` crate does not bind. Every function here has a hand-written Rust
 * prototype in rust/msi_isolation/ffi.rs; keep the two in step (types are
 * fixed-width integers and plain structs only).
 */
#ifndef ARMSI_MSI_ISOLATION_SHIM_H
#define ARMSI_MSI_ISOLATION_SHIM_H

#include <linux/types.h>

#define ARMSI_DEV_NAME_LEN 32

/**
 * struct armsi_msi_evidence - what the kernel says about one PCI device
 * @name: the device name (PCI BDF, "0000:00:02.0"), NUL terminated
 * @vendor: PCI vendor ID
 * @device: PCI device ID
 * @iommu_group: IOMMU group number, or -1 when the device has no group
 *               (its DMA is not translated by any IOMMU)
 * @isolated_msi: 1 when msi_device_has_isolated_msi() holds: an irq domain on
 *                the device's MSI path carries IRQ_DOMAIN_FLAG_ISOLATED_MSI
 */
struct armsi_msi_evidence {
	char name[ARMSI_DEV_NAME_LEN];
	u16 vendor;
	u16 device;
	s32 iommu_group;
	u8 isolated_msi;
};

/**
 * armsi_msi_collect() - gather evidence for every PCI device present
 * @out: array of @max entries
 * @max: capacity of @out
 *
 * Return: the number of PCI devices present (which may exceed @max; only the
 * first @max are written).
 */
u32 armsi_msi_collect(struct armsi_msi_evidence *out, u32 max);

#endif
