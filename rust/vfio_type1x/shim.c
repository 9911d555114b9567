// SPDX-License-Identifier: GPL-2.0
/*
 * C side of vfio_type1x: the VFIO IOMMU driver ops (trampolines into Rust)
 * and what Rust cannot reach through kernel::bindings (macros, static
 * inlines, the private drivers/vfio/vfio.h); include/armsi/vfio_type1x_shim.h
 * says why for each. No policy lives here.
 */
#include <linux/device.h>
#include <linux/err.h>
#include <linux/iommu.h>
#include <linux/mm.h>
#include <linux/irqchip/arm-gic-v3.h>
#include <linux/irqdomain.h>
#include <linux/module.h>
#include <linux/of.h>
#include <linux/of_address.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/msi.h>
#include <linux/vfio.h>

#include "vfio.h"

#include <armsi/msi_doorbell.h>
#include <armsi/msi_isolation_shim.h>
#include <armsi/vfio_type1x_shim.h>
#include <uapi/linux/vfio_type1x.h>

/* The C sizes rust/vfio_type1x/ffi/uapi.rs asserts of its mirrors. */
static_assert(sizeof(struct vfio_iommu_type1_info) == 24);
static_assert(sizeof(struct vfio_iommu_type1_dma_map) == 32);
static_assert(sizeof(struct vfio_iommu_type1_dma_unmap) == 24);
static_assert(sizeof(struct vfio_bitmap) == 24);
static_assert(sizeof(struct vfio_iommu_type1_dirty_bitmap) == 8);
static_assert(sizeof(struct vfio_iommu_type1_dirty_bitmap_get) == 40);
static_assert(sizeof(struct vfio_type1x_msi_aperture) == 24);
static_assert(VFIO_TYPE1X_SET_MSI_APERTURE == _IO(0xA9, 0));
/* And the shim's own, mirrored in ffi.rs. */
static_assert(sizeof(struct t1x_region) == 24);

static void *t1x_open(unsigned long arg)
{
	void *data = NULL;
	int ret = t1x_rust_open(arg, &data);

	return ret ? ERR_PTR(ret) : data;
}

static int t1x_attach_group(void *data, struct iommu_group *group, enum vfio_group_type type)
{
	return t1x_rust_attach_group(data, group, type == VFIO_EMULATED_IOMMU);
}

static const struct vfio_iommu_driver_ops t1x_ops = {
	.name = "vfio-type1x",
	.owner = THIS_MODULE,
	.open = t1x_open,
	.release = t1x_rust_release,
	.ioctl = t1x_rust_ioctl,
	.attach_group = t1x_attach_group,
	.detach_group = t1x_rust_detach_group,
};

int t1x_register(void)
{
	return vfio_register_iommu_driver(&t1x_ops);
}

void t1x_unregister(void)
{
	vfio_unregister_iommu_driver(&t1x_ops);
}

/* access_ok() is a macro on a __user pointer. */
bool t1x_access_ok(u64 addr, u64 size)
{
	return access_ok(u64_to_user_ptr(addr), size);
}

int t1x_group_regions(struct iommu_group *group, struct t1x_region *out, u32 max)
{
	struct iommu_resv_region *r, *tmp;
	LIST_HEAD(regions);
	u32 n = 0;
	int ret;

	ret = iommu_get_group_resv_regions(group, &regions);
	if (ret)
		return ret;
	list_for_each_entry_safe(r, tmp, &regions, list) {
		if (n < max) {
			out[n].start = r->start;
			out[n].last = r->start + r->length - 1;
			out[n].type = r->type;
			out[n].pad = 0;
		}
		n++;
		kfree(r);
	}
	return n;
}

int t1x_account(struct mm_struct *mm, u64 npages, int inc)
{
	int ret;

	if (inc)
		return account_locked_vm(mm, npages, true);
	/*
	 * A refund needs no capability: as upstream's vfio_lock_acct(), do
	 * not ask capable(CAP_IPC_LOCK) (an LSM check, audited) per unmap.
	 */
	if (!npages)
		return 0;
	mmap_write_lock(mm);
	ret = __account_locked_vm(mm, npages, false, current, false);
	mmap_write_unlock(mm);
	return ret;
}

/* Refunds @npages and drops the caller's reference (mmgrab) to @mm. */
void t1x_refund_release(struct mm_struct *mm, u64 npages)
{
	t1x_account(mm, npages, 0);
	mmdrop(mm);
}

#define T1X_PIN_BATCH 512

bool t1x_pfn_reserved(u64 pfn)
{
	if (pfn_valid(pfn))
		return PageReserved(pfn_to_page(pfn));
	return true;
}

long t1x_pin(u64 vaddr, u64 npages, int write, u64 *pfns, u64 *charged)
{
	unsigned int flags = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	int want = min_t(u64, npages, T1X_PIN_BATCH);
	struct page **pages;
	u64 acct = 0;
	int got, i;

	/* A prefix is all the caller asks for: one batch at most. */
	pages = kmalloc_array(want, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	got = pin_user_pages_fast(vaddr, want, flags, pages);
	for (i = 0; i < got; i++) {
		pfns[i] = page_to_pfn(pages[i]);
		/*
		 * A reserved page is never freed or moved, and upstream neither
		 * charges nor unpins it: drop its pin now, so that no pin
		 * outlives the mapping (the zero page takes none).
		 */
		if (PageReserved(pages[i]))
			unpin_user_page(pages[i]);
		else
			acct++;
	}
	kfree(pages);
	if (got <= 0)
		return got ? got : -EFAULT;
	*charged = acct;
	return got;
}

long t1x_pfnmap(u64 vaddr, u64 npages, int write, u64 *pfn)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	long ret = 0;

	if (!mm)
		return 0;
	mmap_read_lock(mm);
	vaddr = untagged_addr_remote(mm, vaddr);
retry:
	vma = vma_lookup(mm, vaddr);
	if (vma && vma->vm_flags & VM_PFNMAP) {
		struct follow_pfnmap_args args = { .vma = vma, .address = vaddr };

		/* follow_fault_pfn() of vfio_iommu_type1.c. */
		ret = follow_pfnmap_start(&args);
		if (ret) {
			bool unlocked = false;

			ret = fixup_user_fault(mm, vaddr,
					       FAULT_FLAG_REMOTE | (write ? FAULT_FLAG_WRITE : 0),
					       &unlocked);
			if (unlocked)
				goto retry;
			if (!ret)
				ret = follow_pfnmap_start(&args);
			if (ret)
				goto out;
		}
		if (write && !args.writable) {
			ret = -EFAULT;
		} else if (!t1x_pfn_reserved(args.pfn)) {
			/* Memory with struct pages mapped by PFN: refused, as upstream. */
			ret = -EFAULT;
		} else {
			u64 epfn = (args.pfn | (~args.addr_mask >> PAGE_SHIFT)) + 1;

			*pfn = args.pfn;
			ret = min_t(u64, npages, epfn - args.pfn);
		}
		follow_pfnmap_end(&args);
	}
out:
	mmap_read_unlock(mm);
	return ret;
}

void t1x_unpin(u64 pfn, u64 npages, int dirty)
{
	unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages, dirty);
}

void t1x_cond_resched(void)
{
	cond_resched();
}

int t1x_device_doorbell(struct device *dev, u64 *doorbell)
{
	struct device_node *np;

	if (armsi_msi_doorbell(dev, &np, doorbell) != ARMSI_MSI_KIND_NONE && *doorbell)
		return 1;
	/* An MSI controller we cannot read the doorbell of (ACPI...). */
	return dev_get_msi_domain(dev) ? -ENOENT : 0;
}
