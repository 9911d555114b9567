/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim of the msi_isolation module: string module parameters (the Rust
 * module! macro takes integers only), the module's export, and the evidence
 * walk over every PCI device, which reads through macros and static inlines
 * (for_each_pci_dev(), pci_name(), dev_get_msi_domain(), the reserved-region
 * list, armsi_msi_doorbell()) and under the group's mutex (the domain), and
 * two calls the kernel crate does not bind (of_address_to_resource(),
 * msi_device_has_isolated_msi()). Every function here has a hand-written Rust
 * prototype in rust/msi_isolation/ffi.rs; keep the two in step (types are
 * fixed-width integers and plain structs only).
 */
#ifndef ARMSI_MSI_ISOLATION_SHIM_H
#define ARMSI_MSI_ISOLATION_SHIM_H

#include <linux/types.h>

#define ARMSI_NAME_LEN 48

/* struct armsi_msi_evidence.domain: the group's current IOMMU domain. */
enum armsi_domain {
	ARMSI_DOMAIN_NONE = 0,		/* no group, or no domain attached */
	ARMSI_DOMAIN_BLOCKED = 1,	/* DMA blocked */
	ARMSI_DOMAIN_IDENTITY = 2,	/* bypass: DMA not translated */
	ARMSI_DOMAIN_DMA = 3,		/* kernel DMA API domain, translated */
	ARMSI_DOMAIN_UNMANAGED = 4,	/* user/driver paging domain (VFIO), translated */
	ARMSI_DOMAIN_OTHER = 5,		/* SVA, nested, platform... */
};

/* struct armsi_msi_evidence.msi_ctrl: who receives the device's MSIs. */
enum armsi_msi_ctrl {
	ARMSI_MSI_NONE = 0,		/* no MSI irq domain */
	ARMSI_MSI_ITS = 1,		/* GICv3 ITS ("arm,gic-v3-its") */
	ARMSI_MSI_GICV2M = 2,		/* GICv2m frame ("arm,gic-v2m-frame") */
	ARMSI_MSI_OTHER = 3,		/* anything else */
};

/**
 * struct armsi_msi_evidence - what the kernel says about one PCI device
 * @name: the device name (PCI address, "0000:00:02.0"), NUL terminated
 * @iommu: the IOMMU instance's device name ("9050000.smmuv3"), or empty
 * @iommu_driver: that instance's driver ("arm-smmu-v3", "arm-smmu"), or empty
 * @msi_ctrl_name: the MSI controller's firmware node name, or empty
 * @vendor: PCI vendor ID
 * @device: PCI device ID
 * @iommu_group: IOMMU group number, or -1 when the device has no group
 *               (nothing translates its DMA)
 * @domain: enum armsi_domain, read under the group's mutex
 * @msi_ctrl: enum armsi_msi_ctrl
 * @isolated_msi: 1 when msi_device_has_isolated_msi() holds: an irq domain on
 *                the device's MSI path carries IRQ_DOMAIN_FLAG_ISOLATED_MSI
 * @doorbell: physical address of the MSI controller's doorbell register
 *            (GITS_TRANSLATER, V2M_MSI_SETSPI_NS), 0 when unknown
 * @sw_msi_base: start of the IOMMU_RESV_SW_MSI region (MSI writes are
 *               translated by the IOMMU; software maps the doorbell there)
 * @sw_msi_size: its size, 0 when the device has none
 * @hw_msi_base: start of an IOMMU_RESV_MSI region (a hardware window that
 *               bypasses translation)
 * @hw_msi_size: its size, 0 when the device has none
 */
struct armsi_msi_evidence {
	char name[ARMSI_NAME_LEN];
	char iommu[ARMSI_NAME_LEN];
	char iommu_driver[ARMSI_NAME_LEN];
	char msi_ctrl_name[ARMSI_NAME_LEN];
	u16 vendor;
	u16 device;
	s32 iommu_group;
	u8 domain;
	u8 msi_ctrl;
	u8 isolated_msi;
	u8 pad;
	u64 doorbell;
	u64 sw_msi_base;
	u64 sw_msi_size;
	u64 hw_msi_base;
	u64 hw_msi_size;
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

/* The module parameters (module_param_string, in the shim): NUL terminated. */
const char *armsi_msi_param_assert(void);
const char *armsi_msi_param_deny(void);

/**
 * armsi_msi_isolation_query() - the kernel-side question VFIO backends ask
 * @dev: a device
 * @why: buffer for the verdict line (as in debugfs), may be NULL
 * @len: size of @why
 *
 * Exported for the vfio_type1x module, which links against it: the module
 * loader then refuses to unload msi_isolation while vfio_type1x is loaded.
 * (symbol_get() would make the dependency optional, but it races the
 * unload: strong_try_module_get() BUGs on a module free_module() has just
 * marked UNFORMED.)
 *
 * Return: 1 when @dev's MSIs are isolated, 0 when not, -ENODEV when @dev is
 * not a PCI device this module knows, or another negative errno.
 */
int armsi_msi_isolation_query(struct device *dev, char *why, size_t len);

/* Implemented in Rust (ffi.rs), called by the export above. */
int armsi_msi_rust_query(const char *name, char *why, size_t len);

#endif
