/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which MSI controller serves a device, and where its doorbell is: shared by
 * the C shims of msi_isolation and vfio_type1x.
 */
#ifndef ARMSI_MSI_DOORBELL_H
#define ARMSI_MSI_DOORBELL_H

#include <linux/irqchip/arm-gic-v3.h>
#include <linux/irqdomain.h>
#include <linux/msi.h>
#include <linux/of.h>
#include <linux/of_address.h>

/* drivers/irqchip/irq-gic-v2m.c: the frame's SPI doorbell register. */
#define ARMSI_V2M_MSI_SETSPI_NS 0x040

enum armsi_msi_kind {
	ARMSI_MSI_KIND_NONE,
	ARMSI_MSI_KIND_ITS,	/* "arm,gic-v3-its" */
	ARMSI_MSI_KIND_GICV2M,	/* "arm,gic-v2m-frame" */
};

/**
 * armsi_msi_doorbell() - find the GICv3 ITS or GICv2m frame on @dev's MSI
 * irq-domain path
 * @dev: the device
 * @np: receives the controller's device-tree node (not referenced)
 * @doorbell: receives the doorbell register's physical address, 0 if unknown
 *
 * Return: the kind found, ARMSI_MSI_KIND_NONE when neither is on the path.
 */
static inline enum armsi_msi_kind armsi_msi_doorbell(struct device *dev, struct device_node **np,
						     u64 *doorbell)
{
	struct irq_domain *d;

	for (d = dev_get_msi_domain(dev); d; d = d->parent) {
		struct device_node *n = irq_domain_get_of_node(d);
		enum armsi_msi_kind kind;
		struct resource res;
		u64 off;

		if (!n)
			continue;
		if (of_device_is_compatible(n, "arm,gic-v3-its")) {
			kind = ARMSI_MSI_KIND_ITS;
			off = GITS_TRANSLATER;
		} else if (of_device_is_compatible(n, "arm,gic-v2m-frame")) {
			kind = ARMSI_MSI_KIND_GICV2M;
			off = ARMSI_V2M_MSI_SETSPI_NS;
		} else {
			continue;
		}
		*np = n;
		*doorbell = of_address_to_resource(n, 0, &res) ? 0 : res.start + off;
		return kind;
	}
	return ARMSI_MSI_KIND_NONE;
}

#endif
