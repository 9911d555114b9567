// SPDX-License-Identifier: GPL-2.0
/*
 * C side of vfio_type1x: the VFIO IOMMU driver ops (trampolines into Rust)
 * and thin wrappers of the IOMMU API. No policy lives here.
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

/* The C sizes rust/vfio_type1x/uapi.rs asserts of its mirrors. */
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

static int first_dev(struct device *dev, void *data)
{
	struct device **out = data;

	*out = get_device(dev);
	return 1;
}

int t1x_domain_alloc(struct iommu_group *group, struct iommu_domain **out)
{
	struct device *dev = NULL;
	struct iommu_domain *d;

	/* The iterator gives a representative device without racing removal. */
	iommu_group_for_each_dev(group, &dev, first_dev);
	if (!dev)
		return -ENODEV;
	d = iommu_paging_domain_alloc(dev);
	put_device(dev);
	if (IS_ERR(d))
		return PTR_ERR(d);
	*out = d;
	return 0;
}

/*
 * Upstream turns on cache-coherency enforcement (blocking no-snoop) on
 * every domain whose IOMMU can; an ops callback Rust cannot call.
 */
bool t1x_domain_enforce_cc(struct iommu_domain *domain)
{
	return domain->ops->enforce_cache_coherency &&
	       domain->ops->enforce_cache_coherency(domain);
}

/* access_ok() is a macro on a __user pointer. */
bool t1x_access_ok(u64 addr, u64 size)
{
	return access_ok(u64_to_user_ptr(addr), size);
}

void t1x_domain_free(struct iommu_domain *domain)
{
	iommu_domain_free(domain);
}

int t1x_domain_attach(struct iommu_domain *domain, struct iommu_group *group)
{
	return iommu_attach_group(domain, group);
}

void t1x_domain_detach(struct iommu_domain *domain, struct iommu_group *group)
{
	iommu_detach_group(domain, group);
}

int t1x_domain_msi_cookie(struct iommu_domain *domain, u64 base)
{
	return iommu_get_msi_cookie(domain, base);
}

void t1x_domain_info(struct iommu_domain *domain, u64 *aperture_start,
		     u64 *aperture_end, u64 *pgsize_bitmap)
{
	*aperture_start = domain->geometry.aperture_start;
	*aperture_end = domain->geometry.aperture_end;
	*pgsize_bitmap = domain->pgsize_bitmap;
}

int t1x_group_id(struct iommu_group *group)
{
	return iommu_group_id(group);
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

struct dev_list {
	struct device **out;
	u32 max;
	int n;
};

static int collect_dev(struct device *dev, void *data)
{
	struct dev_list *l = data;

	if (l->n < l->max)
		l->out[l->n] = get_device(dev);
	l->n++;
	return 0;
}

int t1x_group_devices(struct iommu_group *group, struct device **out, u32 max)
{
	struct dev_list l = { .out = out, .max = max };

	/*
	 * References, not a callback per device: the query reads each
	 * group's domain under the group's mutex, which the iterator holds.
	 */
	iommu_group_for_each_dev(group, &l, collect_dev);
	return l.n;
}

void t1x_put_device(struct device *dev)
{
	put_device(dev);
}

const char *t1x_dev_name(struct device *dev)
{
	return dev_name(dev);
}

int t1x_device_msi_query(struct device *dev, char *why, size_t len)
{
	/*
	 * A direct call: this module depends on msi_isolation, which the
	 * module loader keeps loaded while we are. (symbol_get() instead
	 * would race the unload: it can find the module UNFORMED in
	 * strong_try_module_get().)
	 */
	return armsi_msi_isolation_query(dev, why, len);
}

bool t1x_device_has_isolated_msi(struct device *dev)
{
	return msi_device_has_isolated_msi(dev);
}

struct mm_struct *t1x_mm_current(void)
{
	struct mm_struct *mm = current->mm;

	if (mm)
		mmgrab(mm);
	return mm;
}

void t1x_mm_put(struct mm_struct *mm)
{
	mmdrop(mm);
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

#define T1X_PIN_BATCH 512

/* drivers/vfio/vfio_iommu_type1.c's test: no struct page, or a reserved one. */
static bool t1x_pfn_reserved(unsigned long pfn)
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

u64 t1x_unpin(u64 pfn, u64 npages, int dirty, int has_rsvd)
{
	u64 i = 0, done = 0;

	/* Every page pinned: no per-page test, as upstream without has_rsvd. */
	if (!has_rsvd) {
		unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages, dirty);
		return npages;
	}

	while (i < npages) {
		u64 run = 0;

		while (i + run < npages && !t1x_pfn_reserved(pfn + i + run))
			run++;
		if (run) {
			unpin_user_page_range_dirty_lock(pfn_to_page(pfn + i), run, dirty);
			done += run;
			i += run;
		} else {
			/* Device memory, or a reserved page whose pin t1x_pin dropped. */
			i++;
		}
	}
	return done;
}

int t1x_map(struct iommu_domain *domain, u64 iova, u64 paddr, u64 size, int prot)
{
	int iprot = ((prot & 1) ? IOMMU_READ : 0) | ((prot & 2) ? IOMMU_WRITE : 0);

	/* Page tables are charged to the caller's memcg, as upstream's. */
	return iommu_map(domain, iova, paddr, size, iprot | IOMMU_CACHE, GFP_KERNEL_ACCOUNT);
}

u64 t1x_unmap(struct iommu_domain *domain, u64 iova, u64 size)
{
	return iommu_unmap(domain, iova, size);
}

void t1x_cond_resched(void)
{
	cond_resched();
}

u64 t1x_iova_to_phys(struct iommu_domain *domain, u64 iova)
{
	return iommu_iova_to_phys(domain, iova);
}

u64 t1x_mapped_run(struct iommu_domain *domain, u64 iova, u64 last, u64 *phys)
{
	phys_addr_t pa = iommu_iova_to_phys(domain, iova);
	u64 len = PAGE_SIZE;

	if (!pa)
		return 0;
	/* While a next page is in [iova, last] and follows physically. */
	while (len <= last - iova && iommu_iova_to_phys(domain, iova + len) == pa + len) {
		len += PAGE_SIZE;
		if (!((len >> PAGE_SHIFT) % T1X_PIN_BATCH))
			cond_resched();
	}
	*phys = pa;
	return len;
}

struct doorbells {
	u64 *out;
	u32 max;
	int n;
	u32 unknown;
};

static int add_doorbell(struct device *dev, void *data)
{
	struct doorbells *db = data;
	struct device_node *np;
	u64 doorbell, page;
	int i;

	if (armsi_msi_doorbell(dev, &np, &doorbell) == ARMSI_MSI_KIND_NONE || !doorbell) {
		/* An MSI controller we cannot read the doorbell of (ACPI...). */
		if (dev_get_msi_domain(dev))
			db->unknown++;
		return 0;
	}
	page = doorbell & PAGE_MASK;
	for (i = 0; i < db->n && i < db->max; i++)
		if (db->out[i] == page)
			return 0;
	if (db->n < db->max)
		db->out[db->n] = page;
	db->n++;
	return 0;
}

int t1x_group_doorbells(struct iommu_group *group, u64 *out, u32 max, u32 *unknown)
{
	struct doorbells db = { .out = out, .max = max };

	iommu_group_for_each_dev(group, &db, add_doorbell);
	*unknown = db.unknown;
	return db.n;
}
