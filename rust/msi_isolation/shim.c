// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the msi_isolation FFI: only what Rust cannot reach. The walk
 * over the PCI devices, what is read of each and every decision on it are
 * in rust/msi_isolation/ffi.rs (through kernel::bindings); the verdict is
 * in verdict.rs.
 */
#include <linux/device.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/pci.h>
#include <linux/string.h>

#include <armsi/msi_doorbell.h>
#include <armsi/msi_isolation_shim.h>

/* The values rust/msi_isolation/ffi.rs mirrors. */
static_assert(ARMSI_MSI_KIND_NONE == 0 && ARMSI_MSI_KIND_ITS == 1 && ARMSI_MSI_KIND_GICV2M == 2);

/* String parameters: the module! macro takes integer and bool ones only. */
static char assert_isolated[256];
module_param_string(assert_isolated, assert_isolated, sizeof(assert_isolated), 0444);
MODULE_PARM_DESC(assert_isolated,
		 "Semicolon-separated PCI devices (0000:00:01.0) or platforms (platform:<compatible>) whose MSIs are declared isolated whatever the evidence says");

static char deny_isolated[256];
module_param_string(deny_isolated, deny_isolated, sizeof(deny_isolated), 0444);
MODULE_PARM_DESC(deny_isolated,
		 "Semicolon-separated PCI devices or platforms (platform:<compatible>) whose MSIs are declared not isolated (wins over assert_isolated)");

const char *armsi_msi_param_assert(void)
{
	return assert_isolated;
}

const char *armsi_msi_param_deny(void)
{
	return deny_isolated;
}

/*
 * In C because armsi_msi_doorbell() (shared with vfio_type1x's shim),
 * dev_get_msi_domain() and kbasename() are static inlines that Rust cannot
 * call. What the kind means is decided in ffi.rs.
 */
int armsi_msi_controller(struct device *dev, char *name, size_t len, u64 *doorbell)
{
	enum armsi_msi_kind kind;
	struct device_node *np;
	struct irq_domain *d;

	*doorbell = 0;
	if (len)
		name[0] = '\0';
	kind = armsi_msi_doorbell(dev, &np, doorbell);
	if (kind != ARMSI_MSI_KIND_NONE) {
		strscpy(name, kbasename(np->full_name), len);
		return kind;
	}
	d = dev_get_msi_domain(dev);
	if (!d)
		return -ENODEV;
	strscpy(name, d->name ?: "?", len);
	return ARMSI_MSI_KIND_NONE;
}

/* In C because EXPORT_SYMBOL_GPL() and dev_is_pci() are macros. */
int armsi_msi_isolation_query(struct device *dev, char *why, size_t len)
{
	if (!dev_is_pci(dev))
		return -ENODEV;
	return armsi_msi_rust_query(dev_name(dev), why, len);
}
EXPORT_SYMBOL_GPL(armsi_msi_isolation_query);
