/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim of the msi_isolation module, only what Rust cannot reach: the
 * string module parameters (the Rust module! macro takes integers only), the
 * module's export (EXPORT_SYMBOL_GPL() is a C macro), and the MSI controller
 * of a device (armsi_msi_doorbell(), dev_get_msi_domain() and kbasename() are
 * static inlines). The walk over the PCI devices and the rest of the evidence
 * are read in Rust through kernel::bindings (rust/msi_isolation/ffi.rs).
 * Every function here has a hand-written Rust prototype in ffi.rs; keep the
 * two in step (fixed-width integers and opaque pointers only).
 */
#ifndef ARMSI_MSI_ISOLATION_SHIM_H
#define ARMSI_MSI_ISOLATION_SHIM_H

#include <linux/types.h>

struct device;

/* The module parameters (module_param_string, in the shim): NUL terminated. */
const char *armsi_msi_param_assert(void);
const char *armsi_msi_param_deny(void);

/**
 * armsi_msi_controller() - who receives @dev's MSIs
 * @dev: a device
 * @name: buffer of @len bytes for the controller's name, NUL terminated
 *        (truncated as strscpy() does)
 * @len: size of @name
 * @doorbell: receives the doorbell register's physical address
 *            (GITS_TRANSLATER, V2M_MSI_SETSPI_NS), 0 when unknown
 *
 * Return: ARMSI_MSI_KIND_ITS or ARMSI_MSI_KIND_GICV2M
 * (include/armsi/msi_doorbell.h) when that controller is on @dev's MSI
 * irq-domain path, @name its device-tree node's base name;
 * ARMSI_MSI_KIND_NONE when @dev has an MSI irq domain but neither is on its
 * path, @name that domain's name ("?" when it has none) and @doorbell 0;
 * -ENODEV when @dev has no MSI irq domain, @name empty and @doorbell 0.
 */
int armsi_msi_controller(struct device *dev, char *name, size_t len, u64 *doorbell);

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
