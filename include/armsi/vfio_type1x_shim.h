/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C shim of the vfio_type1x module. The VFIO IOMMU driver ops (whose struct
 * lives in the kernel's private drivers/vfio/vfio.h) are C trampolines into
 * the t1x_rust_* functions. The t1x_* helpers are what Rust cannot call
 * through kernel::bindings: macros, static inlines without a Rust helper,
 * and code under the mmap lock; each says which. (The IOMMU domain and
 * group calls, get_device()/put_device(), dev_name() and the mm reference
 * are called from Rust directly.) Every function has a hand-written Rust
 * prototype in rust/vfio_type1x/ffi.rs.
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

/* access_ok() of @size bytes of user memory at @addr: a macro. */
bool t1x_access_ok(u64 addr, u64 size);

/**
 * t1x_group_regions() - the group's reserved regions, from a C list
 * (iommu_get_group_resv_regions()) walked and freed here
 * @group: the IOMMU group
 * @out: array of @max entries
 * @max: its capacity
 *
 * Return: the number of regions (only the first @max are written), or a
 * negative errno.
 */
int t1x_group_regions(struct iommu_group *group, struct t1x_region *out, u32 max);

struct device;


/* Memory of the calling process, for DMA mappings. */
struct mm_struct;

/**
 * t1x_account() - charge (account_locked_vm()) or refund (without the
 * capability check a charge needs) locked memory
 * @mm: the mm the pages belong to
 * @npages: pages
 * @inc: charge (1) or refund (0)
 *
 * Return: 0, or -ENOMEM when a charge would exceed RLIMIT_MEMLOCK (unless
 * the caller has CAP_IPC_LOCK). In C for mmap_write_lock(), a static inline.
 */
int t1x_account(struct mm_struct *mm, u64 npages, int inc);

/**
 * t1x_refund_release() - refund locked memory and drop a reference to the mm
 * @mm: the mm the pages belong to, referenced (mmgrab()) by the caller
 * @npages: pages to refund
 *
 * The unmap of a mapping does both: one call instead of two, mmdrop() being
 * a static inline.
 */
void t1x_refund_release(struct mm_struct *mm, u64 npages);

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
 * call), as pin_user_pages_remote() does for upstream. In C for
 * page_to_pfn() and PageReserved(), macros.
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
 * from faulting it in. In C for the mmap lock and untagged_addr_remote(),
 * static inlines.
 */
long t1x_pfnmap(u64 vaddr, u64 npages, int write, u64 *pfn);


/*
 * drivers/vfio/vfio_iommu_type1.c's is_invalid_reserved_pfn(): no struct
 * page, or a reserved one (pfn_valid() and PageReserved() are inlines).
 */
bool t1x_pfn_reserved(u64 pfn);
/*
 * unpin_user_page_range_dirty_lock() of @npages physically contiguous pinned
 * pages from @pfn (pfn_to_page() is a macro).
 */
void t1x_unpin(u64 pfn, u64 npages, int dirty);


/**
 * t1x_device_doorbell() - the doorbell of @dev's MSI controller (GICv3 ITS
 * GITS_TRANSLATER, GICv2m frame), found by armsi_msi_doorbell(), a static
 * inline of include/armsi/msi_doorbell.h
 * @dev: a referenced device
 * @doorbell: receives the physical address
 *
 * Return: 1 with *@doorbell set; 0 when @dev has no MSI domain; -ENOENT
 * when it has one whose doorbell cannot be read (no device-tree node for
 * it, as on ACPI).
 */
int t1x_device_doorbell(struct device *dev, u64 *doorbell);

/* cond_resched(), a macro, for the pin, unpin and replay loops. */
void t1x_cond_resched(void);

#endif
