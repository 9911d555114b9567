// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the msi_isolation FFI: walks the PCI devices and gathers the
 * evidence for each (IOMMU group, domain, MSI controller and doorbell,
 * reserved MSI regions) from the kernel's own structures. The verdict is
 * computed in Rust (verdict.rs).
 */
#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/irqchip/arm-gic-v3.h>
#include <linux/irqdomain.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/msi.h>
#include <linux/of.h>
#include <linux/of_address.h>
#include <linux/pci.h>
#include <linux/string.h>

#include <armsi/msi_doorbell.h>
#include <armsi/msi_isolation_shim.h>

/* The layout rust/msi_isolation/ffi.rs asserts of its mirror. */
static_assert(sizeof(struct armsi_msi_evidence) == 248);
static_assert(offsetof(struct armsi_msi_evidence, doorbell) == 208);

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

static u8 domain_kind(const struct iommu_domain *d)
{
	if (!d)
		return ARMSI_DOMAIN_NONE;
	switch (d->type) {
	case IOMMU_DOMAIN_BLOCKED:
		return ARMSI_DOMAIN_BLOCKED;
	case IOMMU_DOMAIN_IDENTITY:
		return ARMSI_DOMAIN_IDENTITY;
	case IOMMU_DOMAIN_DMA:
	case IOMMU_DOMAIN_DMA_FQ:
		return ARMSI_DOMAIN_DMA;
	case IOMMU_DOMAIN_UNMANAGED:
		return ARMSI_DOMAIN_UNMANAGED;
	default:
		return ARMSI_DOMAIN_OTHER;
	}
}

struct domain_probe {
	struct device *dev;
	u8 kind;
};

/* Called by iommu_group_for_each_dev() with the group's mutex held. */
static int read_domain(struct device *dev, void *data)
{
	struct domain_probe *p = data;

	if (dev != p->dev)
		return 0;
	p->kind = domain_kind(iommu_driver_get_domain_for_dev(dev));
	return 1;
}

static void read_msi_controller(struct device *dev, struct armsi_msi_evidence *e)
{
	struct device_node *np;
	struct irq_domain *d;

	switch (armsi_msi_doorbell(dev, &np, &e->doorbell)) {
	case ARMSI_MSI_KIND_ITS:
		e->msi_ctrl = ARMSI_MSI_ITS;
		break;
	case ARMSI_MSI_KIND_GICV2M:
		e->msi_ctrl = ARMSI_MSI_GICV2M;
		break;
	case ARMSI_MSI_KIND_NONE:
		d = dev_get_msi_domain(dev);
		if (d) {
			e->msi_ctrl = ARMSI_MSI_OTHER;
			strscpy(e->msi_ctrl_name, d->name ?: "?", sizeof(e->msi_ctrl_name));
		}
		return;
	}
	strscpy(e->msi_ctrl_name, kbasename(np->full_name), sizeof(e->msi_ctrl_name));
}

static void read_resv_regions(struct device *dev, struct armsi_msi_evidence *e)
{
	struct iommu_resv_region *r;
	LIST_HEAD(regions);

	iommu_get_resv_regions(dev, &regions);
	list_for_each_entry(r, &regions, list) {
		if (r->type == IOMMU_RESV_SW_MSI && !e->sw_msi_size) {
			e->sw_msi_base = r->start;
			e->sw_msi_size = r->length;
		} else if (r->type == IOMMU_RESV_MSI && !e->hw_msi_size) {
			e->hw_msi_base = r->start;
			e->hw_msi_size = r->length;
		}
	}
	iommu_put_resv_regions(dev, &regions);
}

static void read_one(struct pci_dev *pdev, struct armsi_msi_evidence *e)
{
	struct device *dev = &pdev->dev;
	struct domain_probe probe = { .dev = dev };
	struct iommu_group *group;

	memset(e, 0, sizeof(*e));
	strscpy(e->name, pci_name(pdev), sizeof(e->name));
	e->vendor = pdev->vendor;
	e->device = pdev->device;
	e->iommu_group = -1;
	group = iommu_group_get(dev);
	if (group) {
		e->iommu_group = iommu_group_id(group);
		/* The domain is only stable under the group's mutex. */
		iommu_group_for_each_dev(group, &probe, read_domain);
		e->domain = probe.kind;
		if (dev->iommu && dev->iommu->iommu_dev && dev->iommu->iommu_dev->dev) {
			/* iommu_dev->dev is the sysfs class device; its parent the SMMU. */
			struct device *idev = dev->iommu->iommu_dev->dev;
			struct device *hw = idev->parent ?: idev;

			strscpy(e->iommu, dev_name(hw), sizeof(e->iommu));
			if (hw->driver)
				strscpy(e->iommu_driver, hw->driver->name, sizeof(e->iommu_driver));
		}
		read_resv_regions(dev, e);
		iommu_group_put(group);
	}
	read_msi_controller(dev, e);
	e->isolated_msi = msi_device_has_isolated_msi(dev);
}

u32 armsi_msi_collect(struct armsi_msi_evidence *out, u32 max)
{
	struct pci_dev *pdev = NULL;
	u32 n = 0;

	for_each_pci_dev(pdev) {
		if (n < max)
			read_one(pdev, &out[n]);
		n++;
	}
	return n;
}

int armsi_msi_isolation_query(struct device *dev, char *why, size_t len)
{
	if (!dev_is_pci(dev))
		return -ENODEV;
	return armsi_msi_rust_query(dev_name(dev), why, len);
}
EXPORT_SYMBOL_GPL(armsi_msi_isolation_query);
