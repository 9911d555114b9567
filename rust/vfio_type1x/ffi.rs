// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI: the C shim in `shim.c`, declared by hand from
//! `include/armsi/vfio_type1x_shim.h` and wrapped in safe functions, and the
//! `t1x_rust_*` entry points the shim's VFIO ops call.

use core::ptr::NonNull;

use kernel::{
    ffi::{
        c_char,
        c_int,
        c_long,
        c_uint,
        c_ulong,
        c_void, //
    },
    prelude::*,
};

use crate::{
    container::Container,
    iova::Range, //
};

mod domains;

pub(crate) use domains::{
    Domains,
    Pins,
    Replica, //
};

/// Opaque `struct iommu_domain`.
#[repr(C)]
pub(crate) struct RawDomain {
    _private: [u8; 0],
}

/// Opaque `struct iommu_group`.
#[repr(C)]
pub(crate) struct RawGroup {
    _private: [u8; 0],
}

/// Opaque `struct device`.
#[repr(C)]
pub(crate) struct RawDevice {
    _private: [u8; 0],
}

/// Opaque `struct mm_struct`.
#[repr(C)]
pub(crate) struct RawMm {
    _private: [u8; 0],
}

/// Mirror of `struct t1x_region`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawRegion {
    start: u64,
    last: u64,
    kind: u32,
    pad: u32,
}

// The C's size, which shim.c asserts too.
kernel::static_assert!(size_of::<RawRegion>() == 24);

extern "C" {
    fn t1x_register() -> c_int;
    fn t1x_unregister();
    fn t1x_domain_alloc(group: *mut RawGroup, out: *mut *mut RawDomain) -> c_int;
    fn t1x_domain_enforce_cc(domain: *mut RawDomain) -> bool;
    fn t1x_access_ok(addr: u64, size: u64) -> bool;
    fn t1x_domain_free(domain: *mut RawDomain);
    fn t1x_domain_attach(domain: *mut RawDomain, group: *mut RawGroup) -> c_int;
    fn t1x_domain_detach(domain: *mut RawDomain, group: *mut RawGroup);
    fn t1x_domain_msi_cookie(domain: *mut RawDomain, base: u64) -> c_int;
    fn t1x_domain_info(domain: *mut RawDomain, start: *mut u64, end: *mut u64, pgsizes: *mut u64);
    fn t1x_group_id(group: *mut RawGroup) -> c_int;
    fn t1x_group_regions(group: *mut RawGroup, out: *mut RawRegion, max: u32) -> c_int;
    fn t1x_group_devices(group: *mut RawGroup, out: *mut *mut RawDevice, max: u32) -> c_int;
    fn t1x_put_device(dev: *mut RawDevice);
    fn t1x_dev_name(dev: *mut RawDevice) -> *const c_char;
    fn t1x_device_msi_query(dev: *mut RawDevice, why: *mut c_char, len: usize) -> c_int;
    fn t1x_device_has_isolated_msi(dev: *mut RawDevice) -> bool;
    fn t1x_mm_current() -> *mut RawMm;
    fn t1x_mm_put(mm: *mut RawMm);
    fn t1x_account(mm: *mut RawMm, npages: u64, inc: c_int) -> c_int;
    fn t1x_pin(vaddr: u64, npages: u64, write: c_int, pfns: *mut u64, charged: *mut u64) -> c_long;
    fn t1x_pfnmap(vaddr: u64, npages: u64, write: c_int, pfn: *mut u64) -> c_long;
    fn t1x_unpin(pfn: u64, npages: u64, dirty: c_int, has_rsvd: c_int) -> u64;
    fn t1x_map(domain: *mut RawDomain, iova: u64, paddr: u64, size: u64, prot: c_int) -> c_int;
    fn t1x_iova_to_phys(domain: *mut RawDomain, iova: u64) -> u64;
    fn t1x_mapped_run(domain: *mut RawDomain, iova: u64, last: u64, phys: *mut u64) -> u64;
    fn t1x_group_doorbells(
        group: *mut RawGroup,
        out: *mut u64,
        max: u32,
        unknown: *mut u32,
    ) -> c_int;
    fn t1x_unmap(domain: *mut RawDomain, iova: u64, size: u64) -> u64;
    fn t1x_cond_resched();
}

/// Lets other tasks run in a long loop (`cond_resched()`).
pub(crate) fn cond_resched() {
    // SAFETY: no precondition; called only from process context (ioctls and
    // VFIO's ops), where sleeping is allowed.
    unsafe { t1x_cond_resched() }
}

/// A reference to a process's memory (`mmgrab`), for unaccounting locked
/// pages after the process is gone.
///
/// # Invariants
///
/// The pointer holds one `mmgrab` reference, dropped by `Drop`.
pub(crate) struct Mm(NonNull<RawMm>);

// SAFETY: an mm reference may be dropped and used for accounting from any
// thread.
unsafe impl Send for Mm {}
// SAFETY: as above; `Mm` has no interior mutability of its own.
unsafe impl Sync for Mm {}

/// `access_ok()` of `size` bytes of user memory at `addr`.
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    // SAFETY: only compares the range with the user address space's limit.
    unsafe { t1x_access_ok(addr, size) }
}

impl Mm {
    /// The calling process's mm; `ENODEV` from a kernel thread, as
    /// upstream's `vfio_pin_pages_remote()`.
    pub(crate) fn current() -> Result<Mm> {
        // SAFETY: no precondition; the shim takes a reference.
        let mm = unsafe { t1x_mm_current() };
        // INVARIANT: a non-NULL return carries the reference.
        NonNull::new(mm).map(Mm).ok_or(ENODEV)
    }

    /// Charges `npages` locked pages to the mm (`ENOMEM` over
    /// RLIMIT_MEMLOCK).
    pub(crate) fn charge(&self, npages: u64) -> Result {
        // SAFETY: the mm is referenced (type invariant).
        kernel::error::to_result(unsafe { t1x_account(self.0.as_ptr(), npages, 1) })
    }

    /// Is `other` the same mm?
    pub(crate) fn same(&self, other: &Mm) -> bool {
        self.0 == other.0
    }

    /// Refunds `npages` locked pages.
    pub(crate) fn refund(&self, npages: u64) {
        // SAFETY: the mm is referenced (type invariant). A refund cannot fail.
        unsafe { t1x_account(self.0.as_ptr(), npages, 0) };
    }
}

impl Drop for Mm {
    fn drop(&mut self) {
        // SAFETY: drops the reference the type invariant says we hold.
        unsafe { t1x_mm_put(self.0.as_ptr()) }
    }
}

/// Pages of the calling process pinned for long-term DMA by [`get_pfns`]:
/// their page frame numbers, in address order. Dropping it unpins them;
/// [`keep`] hands the pins over to a mapping instead.
///
/// # Invariants
///
/// Each pfn in `pfns` is a page pinned once by `t1x_pin` and not unpinned,
/// or a reserved page whose pin `t1x_pin` dropped (which `t1x_unpin`
/// skips). `charged` of them count against the caller's locked memory.
///
/// [`keep`]: PinnedPages::keep
pub(crate) struct PinnedPages {
    pfns: KVec<u64>,
    charged: u64,
}

impl PinnedPages {
    /// How many pages.
    pub(crate) fn len(&self) -> u64 {
        // CAST: a length fits in u64.
        self.pfns.len() as u64
    }

    /// How many of them are charged to the caller (all but reserved pages,
    /// as upstream counts them).
    pub(crate) fn charged(&self) -> u64 {
        self.charged
    }

    /// The runs of physically contiguous pages: `(first pfn, pages)`.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        crate::dma_args::contiguous_runs(&self.pfns)
    }

    /// Keeps the pages pinned after `self` is gone: the caller has mapped
    /// them into an IOMMU domain and becomes responsible for unpinning them
    /// with [`unpin`] once they are unmapped.
    pub(crate) fn keep(mut self) {
        // INVARIANT: the pins now belong to the caller; nothing is listed.
        self.pfns.clear();
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        for (pfn, n) in crate::dma_args::contiguous_runs(&self.pfns) {
            // SAFETY: by the type invariant these pages are pinned and ours
            // (or reserved, which `t1x_unpin` skips).
            unsafe { t1x_unpin(pfn, n, 0, 1) };
        }
    }
}

/// What backs the start of a range of the caller's address space.
pub(crate) enum Pfns {
    /// Pages, pinned.
    Pinned(PinnedPages),
    /// Device memory of a `VM_PFNMAP` mapping (a BAR mmap, for peer-to-peer
    /// DMA): `pages` physically contiguous pfns from `pfn`, with no struct
    /// page, so nothing to pin or charge (upstream's `vaddr_get_pfns()`).
    Device { pfn: u64, pages: u64 },
}

impl Pfns {
    /// How many pages from the start of the range.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Pfns::Pinned(p) => p.len(),
            Pfns::Device { pages, .. } => *pages,
        }
    }

    /// The runs of physically contiguous pages: `(first pfn, pages)`.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let (pinned, device) = match self {
            Pfns::Pinned(p) => (Some(p.runs()), None),
            Pfns::Device { pfn, pages } => (None, Some((*pfn, *pages))),
        };
        Iterator::chain(pinned.into_iter().flatten(), device)
    }
}

/// What backs up to `npages` pages of the calling process from `vaddr`,
/// for long-term DMA, writable if `write`: pages pinned (a prefix of the
/// range, at least one), or else the device memory of a `VM_PFNMAP`
/// mapping; the error of pinning when it is neither.
pub(crate) fn get_pfns(vaddr: u64, write: bool, npages: u64) -> Result<Pfns> {
    let n = usize::try_from(npages).map_err(|_| ENOMEM)?;
    let mut pfns = KVec::with_capacity(n, GFP_KERNEL)?;
    pfns.resize(n, 0, GFP_KERNEL)?;
    let mut charged = 0;
    // SAFETY: `pfns` is writable for `npages` entries and `charged` is
    // valid; the shim pins from the calling process's mm, which is the
    // ioctl caller's, and on failure leaves nothing pinned.
    let got = unsafe {
        t1x_pin(
            vaddr,
            npages,
            c_int::from(write),
            pfns.as_mut_ptr(),
            &mut charged,
        )
    };
    let Ok(got) = usize::try_from(got) else {
        // CAST: an errno fits in c_int.
        let pin_err = Error::from_errno(got as c_int);
        let mut pfn = 0;
        // SAFETY: `pfn` is valid; the shim only reads the caller's page
        // tables.
        let pages = unsafe { t1x_pfnmap(vaddr, npages, c_int::from(write), &mut pfn) };
        return match u64::try_from(pages) {
            Ok(0) => Err(pin_err),
            Ok(pages) => Ok(Pfns::Device { pfn, pages }),
            // CAST: as above.
            Err(_) => Err(Error::from_errno(pages as c_int)),
        };
    };
    pfns.truncate(got.min(n));
    // INVARIANT: the shim pinned (or, reserved, released) every page it
    // listed, `charged` of them not reserved.
    Ok(Pfns::Pinned(PinnedPages { pfns, charged }))
}

/// Unpins what [`get_pfns`] pinned in `npages` contiguous pages from `pfn`,
/// dirtying them if `dirty`; device memory and reserved pages are skipped,
/// at the cost of a test per page unless `has_rsvd` is false. Returns how
/// many pages were unpinned.
///
/// # Safety
///
/// The pages came from [`get_pfns`], their pins (if any) were handed over
/// with [`PinnedPages::keep`], nothing maps them for DMA any more, and they
/// are unpinned once. If `has_rsvd` is false, every one of them is pinned:
/// it came from a [`PinnedPages`] whose pages were all charged.
unsafe fn unpin(pfn: u64, npages: u64, dirty: bool, has_rsvd: bool) -> u64 {
    // SAFETY: per the function's contract.
    unsafe { t1x_unpin(pfn, npages, c_int::from(dirty), c_int::from(has_rsvd)) }
}

/// Calls `fill(out, max)` with room for `max` entries until everything fits;
/// `fill` returns how many entries exist (or a negative errno).
///
/// # Safety
///
/// `fill` writes at most `max` initialised entries at `out` and returns
/// their total count, which may exceed `max` (then nothing is assumed).
unsafe fn fill_vec<T>(
    mut cap: usize,
    mut fill: impl FnMut(*mut T, u32) -> c_int,
) -> Result<KVec<T>> {
    loop {
        let mut v = KVec::<T>::with_capacity(cap, GFP_KERNEL)?;
        let max = u32::try_from(cap).map_err(|_| ENOMEM)?;
        let n = fill(v.as_mut_ptr(), max);
        let n = usize::try_from(n).map_err(|_| Error::from_errno(n))?;
        if n > cap {
            cap = n;
            continue;
        }
        // SAFETY: per the contract `fill` initialised the first `n <= cap`
        // entries.
        unsafe { v.inc_len(n) };
        return Ok(v);
    }
}

/// Registers the VFIO IOMMU driver "vfio-type1x".
pub(crate) fn register() -> Result {
    // SAFETY: no precondition; the ops are static in the shim.
    kernel::error::to_result(unsafe { t1x_register() })
}

/// Unregisters it.
pub(crate) fn unregister() {
    // SAFETY: only called after a successful `register()` (module exit).
    unsafe { t1x_unregister() }
}

/// An IOMMU group VFIO handed to a container: made only by the
/// `attach_group`/`detach_group` trampolines, neither `Copy` nor `Clone`,
/// so the container keeps exactly one, from attach until detach, and
/// nothing can use the group after VFIO lets go of it.
///
/// # Invariants
///
/// The pointer is a live `struct iommu_group`: VFIO keeps the group
/// referenced from `attach_group` until `detach_group` returns.
#[derive(PartialEq, Eq)]
pub(crate) struct Group(NonNull<RawGroup>);

// SAFETY: an iommu_group may be used from any thread; the IOMMU core locks it.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    /// The group's number.
    pub(crate) fn id(&self) -> i32 {
        // SAFETY: by the type invariant the group is live.
        unsafe { t1x_group_id(self.0.as_ptr()) }
    }

    /// The group's reserved regions, as `(range, type)` with type a
    /// `T1X_RESV_*` value.
    pub(crate) fn regions(&self) -> Result<KVec<(Range, u32)>> {
        // SAFETY: the group is live (type invariant); `t1x_group_regions`
        // writes at most `max` entries and returns how many exist.
        let raw = unsafe { fill_vec(8, |out, max| t1x_group_regions(self.0.as_ptr(), out, max))? };
        let mut out = KVec::with_capacity(raw.len(), GFP_KERNEL)?;
        for r in raw.iter() {
            if let Some(range) = Range::new(r.start, r.last) {
                out.push((range, r.kind), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// The doorbell pages (physical) of the MSI controllers the group's
    /// devices use, and how many devices have an MSI domain whose doorbell
    /// could not be read.
    pub(crate) fn doorbells(&self) -> Result<(KVec<u64>, u32)> {
        let mut unknown = 0u32;
        // SAFETY: the group is live (type invariant); `t1x_group_doorbells`
        // writes at most `max` entries, returns how many exist and writes
        // the count of unread doorbells to the valid `unknown`.
        let pages = unsafe {
            fill_vec(4, |out, max| {
                t1x_group_doorbells(self.0.as_ptr(), out, max, &mut unknown)
            })?
        };
        Ok((pages, unknown))
    }

    /// The group's devices, each referenced. (The entries are never
    /// `None`: the type only lets the shim write raw pointers into them.)
    pub(crate) fn devices(&self) -> Result<KVec<Option<DeviceRef>>> {
        let mut cap = 4usize;
        loop {
            let mut devs = KVec::<Option<DeviceRef>>::with_capacity(cap, GFP_KERNEL)?;
            let max = u32::try_from(cap).map_err(|_| E2BIG)?;
            // SAFETY: the group is live (type invariant); `devs` has room for
            // `max` entries, and `Option<DeviceRef>` has the layout of a
            // `struct device *` (a `repr(transparent)` `NonNull`), so the
            // shim writes the first `min(n, max)` of them.
            let n = unsafe { t1x_group_devices(self.0.as_ptr(), devs.as_mut_ptr().cast(), max) };
            let n = usize::try_from(n).unwrap_or(0);
            // SAFETY: the shim initialised the first `min(n, cap)` entries.
            // INVARIANT: each non-NULL one holds the reference the shim took
            // for it, and now drops with its `DeviceRef`.
            unsafe { devs.inc_len(n.min(cap)) };
            if n <= cap {
                return Ok(devs);
            }
            // The group grew meanwhile: put the references back and ask
            // again, with room for all.
            drop(devs);
            cap = n;
        }
    }
}

/// A referenced `struct device`, put back on `Drop`.
///
/// # Invariants
///
/// The pointer holds one device reference, taken by `t1x_group_devices`.
#[repr(transparent)]
pub(crate) struct DeviceRef(NonNull<RawDevice>);

impl DeviceRef {
    /// `dev_name()`.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: the device is referenced (type invariant), so its name,
        // a NUL-terminated string it owns, lives at least as long as `self`.
        unsafe { CStr::from_char_ptr(t1x_dev_name(self.0.as_ptr())) }
    }

    /// msi_isolation's verdict on the device: `Ok(true)` isolated,
    /// `Ok(false)` not, `Err(ENODEV)` for a device it does not know (not
    /// PCI). The reason is written into `why` (NUL terminated).
    pub(crate) fn msi_query(&self, why: &mut [u8]) -> Result<bool> {
        // SAFETY: the device is referenced (type invariant); `why` is
        // writable for its length.
        let r =
            unsafe { t1x_device_msi_query(self.0.as_ptr(), why.as_mut_ptr().cast(), why.len()) };
        kernel::error::to_result(r.min(0))?;
        Ok(r == 1)
    }

    /// The IRQ core's `msi_device_has_isolated_msi()`.
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: the device is referenced (type invariant).
        unsafe { t1x_device_has_isolated_msi(self.0.as_ptr()) }
    }
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        // SAFETY: drops the reference the type invariant says we hold.
        unsafe { t1x_put_device(self.0.as_ptr()) }
    }
}

/// A paging IOMMU domain the container owns.
///
/// # Invariants
///
/// The pointer came from `t1x_domain_alloc` and is freed only by `Drop`.
pub(crate) struct Domain(NonNull<RawDomain>);

// SAFETY: an iommu_domain may be used from any thread; the IOMMU core and
// io-pgtable serialise updates of its page tables.
unsafe impl Send for Domain {}
// SAFETY: as above.
unsafe impl Sync for Domain {}

impl Domain {
    /// Allocates a paging domain for the IOMMU behind `group`.
    pub(crate) fn alloc(group: &Group) -> Result<Domain> {
        let mut out = core::ptr::null_mut();
        // SAFETY: the group is live (type invariant) and `out` is writable.
        kernel::error::to_result(unsafe { t1x_domain_alloc(group.0.as_ptr(), &mut out) })?;
        // INVARIANT: the shim returned success, so `out` is a new domain.
        NonNull::new(out).map(Domain).ok_or(ENOMEM)
    }

    /// Turns on cache-coherency enforcement where the IOMMU offers it (as
    /// upstream does for every domain); whether it is on.
    fn enforce_cache_coherency(&self) -> bool {
        // SAFETY: the domain pointer is live (type invariant).
        unsafe { t1x_domain_enforce_cc(self.0.as_ptr()) }
    }

    /// Attaches `group` to the domain.
    pub(crate) fn attach(&self, group: &Group) -> Result {
        // SAFETY: both pointers are live (type invariants).
        kernel::error::to_result(unsafe { t1x_domain_attach(self.0.as_ptr(), group.0.as_ptr()) })
    }

    /// Detaches `group`, which then uses its default domain again.
    ///
    /// # Safety
    ///
    /// `group` is attached to this domain. (Detaching it from a domain it
    /// is not attached to would move it off another owner's domain, giving
    /// its devices DMA through the kernel's default domain.)
    unsafe fn detach(&self, group: &Group) {
        // SAFETY: both pointers are live (type invariants); the caller
        // guarantees `group` is attached here.
        unsafe { t1x_domain_detach(self.0.as_ptr(), group.0.as_ptr()) }
    }

    /// Installs the MSI cookie: the doorbells of the devices attached to
    /// this domain are mapped from `base` on when their vectors are set up.
    pub(crate) fn msi_cookie(&self, base: u64) -> Result {
        // SAFETY: the domain is live (type invariant).
        kernel::error::to_result(unsafe { t1x_domain_msi_cookie(self.0.as_ptr(), base) })
    }

    /// Maps `size` bytes at `iova` to physical `paddr`, for the devices of
    /// the attached groups to read and/or write.
    ///
    /// # Safety
    ///
    /// `[paddr, paddr + size)` is memory the caller owns for DMA (pinned user
    /// pages) and keeps, unfreed, until it has unmapped it again.
    unsafe fn map(&self, iova: u64, paddr: u64, size: u64, read: bool, write: bool) -> Result {
        let prot = c_int::from(read) | (c_int::from(write) << 1);
        // SAFETY: the domain is live (type invariant) and the caller owns
        // the memory. The IOMMU core serialises page-table updates; the
        // container's mutex orders ours, and the MSI cookie maps doorbells
        // only inside the aperture, which no mapping of ours overlaps.
        kernel::error::to_result(unsafe { t1x_map(self.0.as_ptr(), iova, paddr, size, prot) })
    }

    /// Unmaps `size` bytes at `iova` (and waits for the IOTLB); returns the
    /// bytes unmapped.
    fn unmap(&self, iova: u64, size: u64) -> u64 {
        // SAFETY: the domain is live (type invariant); unmapping takes
        // access away and frees nothing the CPU uses.
        unsafe { t1x_unmap(self.0.as_ptr(), iova, size) }
    }

    /// The physical address `iova` maps to, if any.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        // SAFETY: the domain is live (type invariant).
        let pa = unsafe { t1x_iova_to_phys(self.0.as_ptr(), iova) };
        (pa != 0).then_some(pa)
    }

    /// The run of physically contiguous pages mapped from page-aligned
    /// `iova` on, within `[iova, last]`: `(phys, bytes)`, or `None` when
    /// `iova` is not mapped.
    pub(crate) fn mapped_run(&self, iova: u64, last: u64) -> Option<(u64, u64)> {
        if last < iova {
            return None;
        }
        let mut pa = 0;
        // SAFETY: the domain is live (type invariant); `pa` is writable;
        // `last >= iova`, as the shim requires.
        let len = unsafe { t1x_mapped_run(self.0.as_ptr(), iova, last, &mut pa) };
        (len != 0).then_some((pa, len))
    }

    /// The domain's aperture and supported page sizes.
    pub(crate) fn info(&self) -> (Option<Range>, u64) {
        let (mut start, mut end, mut pgsizes) = (0, 0, 0);
        // SAFETY: the domain is live (type invariant); the outputs are
        // writable.
        unsafe { t1x_domain_info(self.0.as_ptr(), &mut start, &mut end, &mut pgsizes) };
        (Range::new(start, end), pgsizes)
    }
}

/// A paging domain and the groups attached to it: the only way to attach
/// and detach a group, so that a group leaves only the domain it is
/// attached to. Only [`Domains`] changes one.
///
/// # Invariants
///
/// Every group in `groups` is attached to `domain`.
pub(crate) struct Attached {
    /// Declared first: `Drop` detaches the groups, then the domain drops.
    domain: Domain,
    groups: KVec<Group>,
    /// The IOMMU blocks non-coherent (no-snoop) DMA: enforced after the
    /// first attach, as upstream, and reported by
    /// `VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU)`.
    coherent: bool,
}

impl Attached {
    /// `domain` with `group` attached, and cache coherency enforced where
    /// the IOMMU offers it: after the attach, as upstream, so that an IOMMU
    /// that cannot enforce it for the device says so instead of refusing
    /// the attach.
    fn new(domain: Domain, group: Group) -> Result<Attached> {
        let mut groups = KVec::with_capacity(1, GFP_KERNEL_ACCOUNT)?;
        domain.attach(&group)?;
        if let Err(g) = groups.push_within_capacity(group) {
            // SAFETY: attached just above.
            unsafe { domain.detach(&g.0) };
            return Err(ENOMEM);
        }
        let coherent = domain.enforce_cache_coherency();
        // INVARIANT: the one group was attached above.
        Ok(Attached {
            domain,
            groups,
            coherent,
        })
    }

    /// The domain.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The groups attached to it.
    pub(crate) fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Does its IOMMU enforce cache coherency?
    pub(crate) fn coherent(&self) -> bool {
        self.coherent
    }

    /// Attaches `group` too. `Ok(Err(group))`: the IOMMU refused it (another
    /// IOMMU, or incompatible), and it is handed back.
    fn attach(&mut self, group: Group) -> Result<Result<(), Group>> {
        self.groups.reserve(1, GFP_KERNEL_ACCOUNT)?;
        if self.domain.attach(&group).is_err() {
            return Ok(Err(group));
        }
        if let Err(g) = self.groups.push_within_capacity(group) {
            // SAFETY: attached just above.
            unsafe { self.domain.detach(&g.0) };
            return Err(ENOMEM);
        }
        // INVARIANT: attached above, then listed.
        Ok(Ok(()))
    }

    /// Detaches `group`, if attached here; the last one attached, if `None`.
    fn detach(&mut self, group: Option<&Group>) -> Option<Group> {
        let gi = match group {
            Some(group) => self.groups.iter().position(|g| g == group)?,
            None => self.groups.len().checked_sub(1)?,
        };
        // SAFETY: listed, so attached here (type invariant).
        unsafe { self.domain.detach(&self.groups[gi]) };
        // INVARIANT: detached above, so unlisted. `gi` is in bounds.
        self.groups.remove(gi).ok()
    }

    /// Moves every group to `to`, all or nothing, and keeps `to`; gives
    /// back the old domain, or on failure the error and `to`.
    fn move_to(&mut self, to: Domain) -> core::result::Result<Domain, (Error, Domain)> {
        for (i, g) in self.groups.iter().enumerate() {
            // SAFETY: `g` is attached here (type invariant), and the first
            // `i` moved to `to` before it.
            unsafe { self.domain.detach(g) };
            if let Err(e) = to.attach(g) {
                let _ = self.domain.attach(g);
                for g in self.groups.iter().take(i) {
                    // SAFETY: the first `i` groups were attached to `to`.
                    unsafe { to.detach(g) };
                    let _ = self.domain.attach(g);
                }
                return Err((e, to));
            }
        }
        // INVARIANT: every group is attached to `to` now.
        Ok(core::mem::replace(&mut self.domain, to))
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        for g in self.groups.iter() {
            // SAFETY: `g` is attached to the domain (type invariant).
            unsafe { self.domain.detach(g) };
        }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the domain is ours and freed once.
        unsafe { t1x_domain_free(self.0.as_ptr()) }
    }
}

/// `vfio_iommu_driver_ops.open`.
///
/// # Safety
///
/// `data` is writable.
#[no_mangle]
pub(crate) unsafe extern "C" fn t1x_rust_open(kind: c_ulong, data: *mut *mut c_void) -> c_int {
    match Container::open(kind) {
        Ok(h) => {
            // SAFETY: the caller gives a writable `data`.
            unsafe { *data = h.cast_mut().cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// The container behind VFIO's `data`.
///
/// # Safety
///
/// `data` came from `t1x_rust_open`.
unsafe fn container<'a>(data: *mut c_void) -> &'a Container {
    // SAFETY: per the contract `data` is a container, and containers stay
    // allocated (pinned) until module exit (`drop_containers`), after VFIO
    // has stopped calling us.
    unsafe { &*data.cast::<Container>() }
}

/// `vfio_iommu_driver_ops.release`.
///
/// # Safety
///
/// `data` came from `t1x_rust_open`.
#[no_mangle]
pub(crate) unsafe extern "C" fn t1x_rust_release(data: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { container(data) }.release();
}

/// `vfio_iommu_driver_ops.ioctl`; `data` is NULL before `open`
/// (`VFIO_CHECK_EXTENSION` on a container without a backend).
///
/// # Safety
///
/// `data` is NULL or came from `t1x_rust_open`. (VFIO reads it and calls
/// us without a lock, so `release` may have run meanwhile: the container
/// then has no state and the ioctl fails with `EINVAL`, as VFIO's own
/// answer without a backend.)
#[no_mangle]
pub(crate) unsafe extern "C" fn t1x_rust_ioctl(
    data: *mut c_void,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    let c = if data.is_null() {
        None
    } else {
        // SAFETY: per the contract.
        Some(unsafe { container(data) })
    };
    crate::ioctl::dispatch(c, cmd, arg)
}

/// `vfio_iommu_driver_ops.attach_group`.
///
/// # Safety
///
/// `data` came from `t1x_rust_open`; `group` is live until the matching
/// `t1x_rust_detach_group`.
#[no_mangle]
pub(crate) unsafe extern "C" fn t1x_rust_attach_group(
    data: *mut c_void,
    group: *mut RawGroup,
    emulated: c_int,
) -> c_int {
    // SAFETY: per the contract.
    let c = unsafe { container(data) };
    let Some(group) = NonNull::new(group) else {
        return EINVAL.to_errno();
    };
    // INVARIANT: VFIO keeps the group live until detach_group.
    match c.attach_group(Group(group), emulated != 0) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `vfio_iommu_driver_ops.detach_group`.
///
/// # Safety
///
/// `data` came from `t1x_rust_open`; `group` was attached to it.
#[no_mangle]
pub(crate) unsafe extern "C" fn t1x_rust_detach_group(data: *mut c_void, group: *mut RawGroup) {
    // SAFETY: per the contract.
    let c = unsafe { container(data) };
    if let Some(group) = NonNull::new(group) {
        // INVARIANT: VFIO keeps the group live until this returns.
        c.detach_group(&Group(group));
    }
}
