// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the msi_isolation FFI: walks the PCI devices and reads the
 * kernel's own MSI-isolation answer for each. The interpretation lives in
 * Rust (verdict.rs).
 */
#include <linux/iommu.h>
#include <linux/msi.h>
#include <linux/pci.h>
#include <linux/string.h>

#include <armsi/msi_isolation_shim.h>

u32 armsi_msi_collect(struct armsi_msi_evidence *out, u32 max)
{
	struct pci_dev *pdev = NULL;
	u32 n = 0;

	for_each_pci_dev(pdev) {
		struct armsi_msi_evidence *e;
		struct iommu_group *group;

		if (n >= max) {
			n++;
			continue;
		}
		e = &out[n++];
		memset(e, 0, sizeof(*e));
		strscpy(e->name, pci_name(pdev), sizeof(e->name));
		e->vendor = pdev->vendor;
		e->device = pdev->device;
		group = iommu_group_get(&pdev->dev);
		e->iommu_group = group ? iommu_group_id(group) : -1;
		iommu_group_put(group);
		e->isolated_msi = msi_device_has_isolated_msi(&pdev->dev);
	}
	return n;
}
