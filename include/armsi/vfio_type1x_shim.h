/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim of the vfio_type1x module. The VFIO IOMMU driver ops (whose struct
 * lives in the kernel's private drivers/vfio/vfio.h) are C trampolines into
 * the t1x_rust_* functions; the t1x_* helpers wrap the IOMMU API. Every
 * function has a hand-written Rust prototype in rust/vfio_type1x/ffi.rs.
 */
#ifndef ARMSI_VFIO_TYPE1X_SHIM_H
#define ARMSI_VFIO_TYPE1X_SHIM_H

#include <linux/types.h>

struct iommu_domain;
struct iommu_group;

/* Reserved region types, as enum iommu_resv_type. */
#define T1X_RESV_DIRECT			0
#define T1X_RESV_DIRECT_RELAXABLE	1
#define T1X_RESV_RESERVED		2
#define T1X_RESV_MSI			3
#define T1X_RESV_SW_MSI			4

/**
 * struct t1x_region - one IOMMU reserved region of a group
 * @start: first IOVA
 * @last: last IOVA (inclusive)
 * @type: T1X_RESV_*
 * @pad: zero
 */
struct t1x_region {
	u64 start;
	u64 last;
	u32 type;
	u32 pad;
};

/* Implemented in Rust (ffi.rs, into container.rs and ioctl.rs), called by the ops. */
int t1x_rust_open(unsigned long type, void **data);
void t1x_rust_release(void *data);
long t1x_rust_ioctl(void *data, unsigned int cmd, unsigned long arg);
int t1x_rust_attach_group(void *data, struct iommu_group *group, int emulated);
void t1x_rust_detach_group(void *data, struct iommu_group *group);

/* Registration of the VFIO IOMMU driver "vfio-type1x". */
int t1x_register(void);
void t1x_unregister(void);

/* IOMMU API wrappers; negative errno on failure. */
int t1x_domain_alloc(struct iommu_group *group, struct iommu_domain **out);
void t1x_domain_free(struct iommu_domain *domain);
/* Turns on cache-coherency enforcement where the IOMMU offers it. */
bool t1x_domain_enforce_cc(struct iommu_domain *domain);
/* access_ok() of @size bytes of user memory at @addr. */
bool t1x_access_ok(u64 addr, u64 size);
int t1x_domain_attach(struct iommu_domain *domain, struct iommu_group *group);
void t1x_domain_detach(struct iommu_domain *domain, struct iommu_group *group);
int t1x_domain_msi_cookie(struct iommu_domain *domain, u64 base);
void t1x_domain_info(struct iommu_domain *domain, u64 *aperture_start,
		     u64 *aperture_end, u64 *pgsize_bitmap);
int t1x_group_id(struct iommu_group *group);

/**
 * t1x_group_regions() - the group's reserved regions
 * @group: the IOMMU group
 * @out: array of @max entries
 * @max: its capacity
 *
 * Return: the number of regions (only the first @max are written), or a
 * negative errno.
 */
int t1x_group_regions(struct iommu_group *group, struct t1x_region *out, u32 max);

struct device;

/**
 * t1x_group_devices() - the devices of @group, referenced
 * @group: the IOMMU group
 * @out: array of @max entries
 * @max: its capacity
 *
 * The first @max devices are written with a reference each, which the
 * caller drops with t1x_put_device().
 *
 * Return: how many devices the group has (only the first @max written).
 */
int t1x_group_devices(struct iommu_group *group, struct device **out, u32 max);
/* Drops a reference t1x_group_devices() took. */
void t1x_put_device(struct device *dev);
/* dev_name(), an inline. */
const char *t1x_dev_name(struct device *dev);
/**
 * t1x_device_msi_query() - msi_isolation's armsi_msi_isolation_query()
 * @dev: a device
 * @why: receives the reason (NUL terminated, truncated to @len)
 * @len: size of @why
 *
 * Return: 1 isolated, 0 not, -ENODEV for a device msi_isolation does not
 * know (not PCI), another negative errno.
 */
int t1x_device_msi_query(struct device *dev, char *why, size_t len);
/* msi_device_has_isolated_msi(): the IRQ core's answer for @dev. */
bool t1x_device_has_isolated_msi(struct device *dev);

/* Memory of the calling process, for DMA mappings. */
struct mm_struct;

/**
 * t1x_mm_current() - the calling process's mm, with a reference (mmgrab)
 *
 * Return: the mm, or NULL for a kernel thread.
 */
struct mm_struct *t1x_mm_current(void);
/* Drops the reference t1x_mm_current() took (mmdrop). */
void t1x_mm_put(struct mm_struct *mm);

/**
 * t1x_account() - charge (account_locked_vm()) or refund (without the
 * capability check a charge needs) locked memory
 * @mm: the mm the pages belong to
 * @npages: pages
 * @inc: charge (1) or refund (0)
 *
 * Return: 0, or -ENOMEM when a charge would exceed RLIMIT_MEMLOCK (unless
 * the caller has CAP_IPC_LOCK).
 */
int t1x_account(struct mm_struct *mm, u64 npages, int inc);

/**
 * t1x_pin() - pin user pages of the calling process for long-term DMA
 * @vaddr: first user address (page aligned)
 * @npages: number of pages wanted
 * @write: pin for writing too
 * @pfns: receives up to @npages page frame numbers
 * @charged: receives how many of them count against RLIMIT_MEMLOCK (not
 *           reserved pages, whose pins are dropped at once: upstream's
 *           is_invalid_reserved_pfn() rule)
 *
 * Pins a prefix of the range (at most 512 pages, one pin_user_pages_fast()
 * call), as pin_user_pages_remote() does for upstream.
 *
 * Return: how many pages from @vaddr are pinned (1 to @npages), or a
 * negative errno with nothing pinned (-EFAULT for an address without
 * pages, a VM_PFNMAP mapping among them).
 */
long t1x_pin(u64 vaddr, u64 npages, int write, u64 *pfns, u64 *charged);

/**
 * t1x_pfnmap() - the device memory a VM_PFNMAP mapping (a BAR mmap) of the
 * calling process has at @vaddr, as vfio_iommu_type1's vaddr_get_pfns()
 * finds it when pinning fails (faulting the PTE in if need be)
 * @vaddr: user address (page aligned)
 * @npages: most pages wanted
 * @write: the mapping must be writable
 * @pfn: receives the first page frame number
 *
 * Return: how many physically contiguous pfns from *@pfn the mapping's
 * page-table entry covers (at most @npages); 0 when @vaddr is not in a
 * VM_PFNMAP mapping; -EFAULT when the entry is read-only but @write, or
 * names memory with struct pages (not reserved); another negative errno
 * from faulting it in.
 */
long t1x_pfnmap(u64 vaddr, u64 npages, int write, u64 *pfn);

/**
 * t1x_unpin() - unpin what t1x_pin() left pinned in @npages physically
 * contiguous pages from @pfn, dirtying them if asked; pfns without struct
 * pages (device memory) or reserved are skipped
 * @has_rsvd: 0 when the caller knows every page is pinned (upstream's
 * dma->has_rsvd): then no page is tested
 *
 * Return: how many pages were unpinned.
 */
u64 t1x_unpin(u64 pfn, u64 npages, int dirty, int has_rsvd);

/* iommu_iova_to_phys(): the physical address @iova maps, 0 if none. */
u64 t1x_iova_to_phys(struct iommu_domain *domain, u64 iova);

/**
 * t1x_mapped_run() - the physically contiguous run mapped at an IOVA
 * @domain: the domain
 * @iova: page-aligned start of the run
 * @last: last byte the run may cover (at least @iova + PAGE_SIZE - 1)
 * @phys: set to the run's physical start
 *
 * The pages are looked up one by one with iommu_iova_to_phys(), as upstream
 * finds the chunks it unmaps; the loop is here, not in Rust, so that a run
 * costs one call instead of one per page.
 *
 * Return: the run's length in bytes, 0 when @iova is not mapped.
 */
u64 t1x_mapped_run(struct iommu_domain *domain, u64 iova, u64 last, u64 *phys);

/**
 * t1x_group_doorbells() - the doorbell pages of the MSI controllers that the
 * devices of @group use (GICv3 ITS GITS_TRANSLATER, GICv2m frame)
 * @group: the IOMMU group
 * @out: array of @max physical page addresses
 * @max: its capacity
 * @unknown: receives how many devices have an MSI domain whose doorbell
 *           could not be read (no device-tree node for it, as on ACPI)
 *
 * Return: the number of distinct pages found (only the first @max written).
 */
int t1x_group_doorbells(struct iommu_group *group, u64 *out, u32 max, u32 *unknown);

/* iommu_map() with GFP_KERNEL; @prot: 1 read, 2 write. */
int t1x_map(struct iommu_domain *domain, u64 iova, u64 paddr, u64 size, int prot);
/* iommu_unmap(); returns the bytes unmapped. */
u64 t1x_unmap(struct iommu_domain *domain, u64 iova, u64 size);
/* cond_resched(), for the pin, unpin and replay loops. */
void t1x_cond_resched(void);

#endif
