// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI, wrapped in safe functions and types: the IOMMU,
//! device and mm calls the kernel crate binds (`kernel::bindings`), the C
//! shim in `shim.c` for what it does not (declared by hand from
//! `include/armsi/vfio_type1x_shim.h`), the `t1x_rust_*` entry points the
//! shim's VFIO ops call, and the mirrors of the uAPI structures user space
//! passes ([`uapi`]).

use core::ptr::NonNull;

use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int,
        c_long,
        c_uint,
        c_ulong,
        c_void, //
    },
    mm,
    prelude::*,
    sync::aref::ARef,
};

use crate::{
    container::Container,
    iova::Range, //
};

mod domains;
pub(crate) mod uapi;

pub(crate) use domains::{
    Domains,
    Pins,
    Replica, //
};

type RawDomain = bindings::iommu_domain;
type RawGroup = bindings::iommu_group;
type RawDevice = bindings::device;

/// The page size, as the IOMMU API's sizes.
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;

/// `PAGE`'s log2.
// CAST: 12 (4 KiB pages) to 16.
const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

// IOVAs and sizes are `u64` here and `unsigned long`/`size_t` (`usize`) in
// the IOMMU API: the same width on arm64, the only target.
kernel::static_assert!(size_of::<usize>() == size_of::<u64>());

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

// Only pointers to the bound structs cross here; the lint objects to the
// zero-sized fields bindgen gives some of their members.
#[expect(improper_ctypes)]
extern "C" {
    fn t1x_register() -> c_int;
    fn t1x_unregister();
    fn t1x_access_ok(addr: u64, size: u64) -> bool;
    fn t1x_group_regions(group: *mut RawGroup, out: *mut RawRegion, max: u32) -> c_int;
    fn t1x_device_doorbell(dev: *mut RawDevice, doorbell: *mut u64) -> c_int;
    fn t1x_account(mm: *mut bindings::mm_struct, npages: u64, inc: c_int) -> c_int;
    fn t1x_pin(vaddr: u64, npages: u64, write: c_int, pfns: *mut u64, charged: *mut u64) -> c_long;
    fn t1x_pfnmap(vaddr: u64, npages: u64, write: c_int, pfn: *mut u64) -> c_long;
    fn t1x_pfn_reserved(pfn: u64) -> bool;
    fn t1x_unpin(pfn: u64, npages: u64, dirty: c_int);
    fn t1x_refund_release(mm: *mut bindings::mm_struct, npages: u64);
    fn t1x_cond_resched();
    // msi_isolation's export (include/armsi/msi_isolation_shim.h), called
    // directly: this module depends on msi_isolation, which the module
    // loader keeps loaded while we are. (symbol_get() instead would race
    // the unload: it can find the module UNFORMED.)
    fn armsi_msi_isolation_query(dev: *mut RawDevice, why: *mut c_char, len: usize) -> c_int;
    // kernel/irq/msi.c, EXPORT_SYMBOL_GPL; the kernel crate does not bind it.
    fn msi_device_has_isolated_msi(dev: *mut RawDevice) -> bool;
}

/// Lets other tasks run in a long loop (`cond_resched()`).
pub(crate) fn cond_resched() {
    // SAFETY: no precondition; called only from process context (ioctls and
    // VFIO's ops), where sleeping is allowed.
    unsafe { t1x_cond_resched() }
}

/// A reference to a process's memory (`mmgrab`), for unaccounting locked
/// pages after the process is gone.
pub(crate) struct Mm(ARef<mm::Mm>);

/// `access_ok()` of `size` bytes of user memory at `addr`.
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    // SAFETY: only compares the range with the user address space's limit.
    unsafe { t1x_access_ok(addr, size) }
}

impl Mm {
    /// The calling process's mm; `ENODEV` from a kernel thread, as
    /// upstream's `vfio_pin_pages_remote()`.
    pub(crate) fn current() -> Result<Mm> {
        let task = kernel::current!();
        let mm = task.mm().ok_or(ENODEV)?;
        Ok(Mm(ARef::from(&**mm)))
    }

    /// Charges `npages` locked pages to the mm (`ENOMEM` over
    /// RLIMIT_MEMLOCK).
    pub(crate) fn charge(&self, npages: u64) -> Result {
        // SAFETY: the mm is referenced (`ARef`).
        kernel::error::to_result(unsafe { t1x_account(self.0.as_raw(), npages, 1) })
    }

    /// Is `other` the same mm?
    pub(crate) fn same(&self, other: &Mm) -> bool {
        self.0.as_raw() == other.0.as_raw()
    }

    /// Refunds `npages` locked pages.
    pub(crate) fn refund(&self, npages: u64) {
        // SAFETY: the mm is referenced (`ARef`). A refund cannot fail.
        unsafe { t1x_account(self.0.as_raw(), npages, 0) };
    }

    /// Refunds `npages` locked pages and lets the mm go (`mmdrop`), in one
    /// call into C: the unmap of a mapping does both.
    pub(crate) fn refund_release(self, npages: u64) {
        let mm = ARef::into_raw(self.0);
        // SAFETY: `into_raw` handed over the reference (`mmgrab`) that kept
        // the mm live, which the shim drops after refunding.
        unsafe { t1x_refund_release(mm.as_ptr().cast(), npages) };
    }
}

/// Pages of the calling process pinned for long-term DMA by [`get_pfns`]:
/// their page frame numbers, in address order. Dropping it unpins them;
/// [`keep`] hands the pins over to a mapping instead.
///
/// # Invariants
///
/// Each pfn in `pfns` is a page pinned once by `t1x_pin` and not unpinned,
/// or a reserved page whose pin `t1x_pin` dropped (which [`unpin`]
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
            // (or reserved, which `unpin` skips with `has_rsvd`).
            unsafe { unpin(pfn, n, false, true) };
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
/// Always inlined: with a plain hint it stayed out of line, a call and a
/// return more per unmapped run (`make profile PROFILE=unmap_4k`).
///
/// # Safety
///
/// The pages came from [`get_pfns`], their pins (if any) were handed over
/// with [`PinnedPages::keep`], nothing maps them for DMA any more, and they
/// are unpinned once. If `has_rsvd` is false, every one of them is pinned:
/// it came from a [`PinnedPages`] whose pages were all charged.
#[inline(always)]
unsafe fn unpin(pfn: u64, npages: u64, dirty: bool, has_rsvd: bool) -> u64 {
    let dirty = c_int::from(dirty);
    if !has_rsvd {
        // SAFETY: per the function's contract, all pinned and ours.
        unsafe { t1x_unpin(pfn, npages, dirty) };
        return npages;
    }
    // Upstream's is_invalid_reserved_pfn() test, per page: unpin the runs
    // of pinned pages, skip device memory and the reserved pages whose pin
    // `t1x_pin` dropped.
    let (mut i, mut done) = (0, 0);
    while i < npages {
        let mut run = 0;
        // SAFETY: only looks the pfn up.
        while i + run < npages && !unsafe { t1x_pfn_reserved(pfn + i + run) } {
            run += 1;
        }
        if run == 0 {
            i += 1;
            continue;
        }
        // SAFETY: per the function's contract; these have struct pages and
        // are not reserved, so `t1x_pin` left them pinned.
        unsafe { t1x_unpin(pfn + i, run, dirty) };
        done += run;
        i += run;
    }
    done
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
        unsafe { bindings::iommu_group_id(self.0.as_ptr()) }
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

    /// The doorbell page (physical) of each of the group's devices with an
    /// MSI controller, repeats included (`aperture::doorbell_pages()` counts
    /// the distinct ones over every group), and how many devices have an MSI
    /// domain whose doorbell could not be read.
    pub(crate) fn doorbells(&self) -> Result<(KVec<u64>, u32)> {
        let (mut pages, mut unknown) = (KVec::new(), 0u32);
        for dev in self.devices()?.iter() {
            match dev.doorbell() {
                Ok(Some(pa)) => pages.push(pa & !(PAGE - 1), GFP_KERNEL)?,
                Ok(None) => {}
                Err(_) => unknown += 1,
            }
        }
        Ok((pages, unknown))
    }

    /// The group's devices, each referenced. References, not a callback
    /// per device: a device's queries read its group's domain under the
    /// group's mutex, which `iommu_group_for_each_dev()` holds.
    pub(crate) fn devices(&self) -> Result<KVec<DeviceRef>> {
        let mut c = Collect {
            devs: KVec::new(),
            res: Ok(()),
        };
        // SAFETY: the group is live (type invariant); `collect_device` gets
        // `c`, which outlives the call, as its data.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.0.as_ptr(),
                core::ptr::from_mut(&mut c).cast(),
                Some(collect_device),
            )
        };
        c.res.map(|()| c.devs)
    }
}

/// What [`collect_device`] collects into.
struct Collect {
    devs: KVec<DeviceRef>,
    res: Result,
}

/// An `iommu_group_for_each_dev()` callback: adds a reference to `dev` to
/// the [`Collect`] at `data`; stops (non-zero) when it cannot.
///
/// # Safety
///
/// `dev` is a live device and `data` an exclusively borrowed [`Collect`].
unsafe extern "C" fn collect_device(dev: *mut RawDevice, data: *mut c_void) -> c_int {
    // SAFETY: per the contract.
    let c = unsafe { &mut *data.cast::<Collect>() };
    let Some(dev) = NonNull::new(dev) else {
        return 0;
    };
    // Sleeping is allowed: the iterator holds the group's mutex.
    if let Err(e) = c.devs.reserve(1, GFP_KERNEL) {
        c.res = Err(e.into());
        return 1;
    }
    // SAFETY: the device is live (contract).
    unsafe { bindings::get_device(dev.as_ptr()) };
    // INVARIANT: the reference taken above goes with the `DeviceRef`; room
    // was reserved, so the push cannot fail.
    let _ = c.devs.push_within_capacity(DeviceRef(dev));
    0
}

/// A referenced `struct device`, put back on `Drop`.
///
/// # Invariants
///
/// The pointer holds one device reference, taken by [`Group::devices`].
pub(crate) struct DeviceRef(NonNull<RawDevice>);

impl DeviceRef {
    /// `dev_name()`.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: the device is referenced (type invariant), so its name,
        // a NUL-terminated string it owns, lives at least as long as `self`.
        unsafe { CStr::from_char_ptr(bindings::dev_name(self.0.as_ptr())) }
    }

    /// msi_isolation's verdict on the device: `Ok(true)` isolated,
    /// `Ok(false)` not, `Err(ENODEV)` for a device it does not know (not
    /// PCI). The reason is written into `why` (NUL terminated).
    pub(crate) fn msi_query(&self, why: &mut [u8]) -> Result<bool> {
        // SAFETY: the device is referenced (type invariant); `why` is
        // writable for its length.
        let r = unsafe {
            armsi_msi_isolation_query(self.0.as_ptr(), why.as_mut_ptr().cast(), why.len())
        };
        kernel::error::to_result(r.min(0))?;
        Ok(r == 1)
    }

    /// The IRQ core's `msi_device_has_isolated_msi()`.
    pub(crate) fn has_isolated_msi(&self) -> bool {
        // SAFETY: the device is referenced (type invariant).
        unsafe { msi_device_has_isolated_msi(self.0.as_ptr()) }
    }

    /// The doorbell address of the device's MSI controller (GICv3 ITS
    /// GITS_TRANSLATER, GICv2m frame); `None` without an MSI domain;
    /// `ENOENT` for an MSI controller whose doorbell cannot be read (no
    /// device-tree node, as on ACPI).
    pub(crate) fn doorbell(&self) -> Result<Option<u64>> {
        let mut doorbell = 0;
        // SAFETY: the device is referenced (type invariant); `doorbell` is
        // writable.
        let r = unsafe { t1x_device_doorbell(self.0.as_ptr(), &mut doorbell) };
        kernel::error::to_result(r)?;
        Ok((r == 1).then_some(doorbell))
    }
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        // SAFETY: drops the reference the type invariant says we hold.
        unsafe { bindings::put_device(self.0.as_ptr()) }
    }
}

/// A paging IOMMU domain the container owns.
///
/// # Invariants
///
/// The pointer came from `iommu_paging_domain_alloc_flags()` and is freed
/// only by `Drop`.
pub(crate) struct Domain(NonNull<RawDomain>);

// SAFETY: an iommu_domain may be used from any thread; the IOMMU core and
// io-pgtable serialise updates of its page tables.
unsafe impl Send for Domain {}
// SAFETY: as above.
unsafe impl Sync for Domain {}

impl Domain {
    /// Allocates a paging domain for the IOMMU behind `group`.
    pub(crate) fn alloc(group: &Group) -> Result<Domain> {
        let devs = group.devices()?;
        let dev = devs.first().ok_or(ENODEV)?;
        // SAFETY: the device is referenced (`DeviceRef`).
        let d = unsafe { bindings::iommu_paging_domain_alloc_flags(dev.0.as_ptr(), 0) };
        let d = kernel::error::from_err_ptr(d)?;
        // INVARIANT: not an error, so a new domain.
        NonNull::new(d).map(Domain).ok_or(ENOMEM)
    }

    /// Turns on cache-coherency enforcement where the IOMMU offers it (as
    /// upstream does for every domain); whether it is on.
    fn enforce_cache_coherency(&self) -> bool {
        let d = self.0.as_ptr();
        // SAFETY: the domain is live (type invariant); its ops are set at
        // allocation and never change.
        let Some(ops) = (unsafe { (*d).ops.as_ref() }) else {
            return false;
        };
        // SAFETY: an ops callback of this domain, called on it.
        ops.enforce_cache_coherency.is_some_and(|f| unsafe { f(d) })
    }

    /// Attaches `group` to the domain.
    pub(crate) fn attach(&self, group: &Group) -> Result {
        // SAFETY: both pointers are live (type invariants).
        kernel::error::to_result(unsafe {
            bindings::iommu_attach_group(self.0.as_ptr(), group.0.as_ptr())
        })
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
        unsafe { bindings::iommu_detach_group(self.0.as_ptr(), group.0.as_ptr()) }
    }

    /// Installs the MSI cookie: the doorbells of the devices attached to
    /// this domain are mapped from `base` on when their vectors are set up.
    pub(crate) fn msi_cookie(&self, base: u64) -> Result {
        // SAFETY: the domain is live (type invariant).
        kernel::error::to_result(unsafe { bindings::iommu_get_msi_cookie(self.0.as_ptr(), base) })
    }

    /// Maps `size` bytes at `iova` to physical `paddr`, for the devices of
    /// the attached groups to read and/or write.
    ///
    /// # Safety
    ///
    /// `[paddr, paddr + size)` is memory the caller owns for DMA (pinned user
    /// pages) and keeps, unfreed, until it has unmapped it again.
    unsafe fn map(&self, iova: u64, paddr: u64, size: u64, read: bool, write: bool) -> Result {
        let mut prot = bindings::IOMMU_CACHE;
        if read {
            prot |= bindings::IOMMU_READ;
        }
        if write {
            prot |= bindings::IOMMU_WRITE;
        }
        // SAFETY: the domain is live (type invariant) and the caller owns
        // the memory. The IOMMU core serialises page-table updates; the
        // container's mutex orders ours, and the MSI cookie maps doorbells
        // only inside the aperture, which no mapping of ours overlaps. Page
        // tables are charged to the caller's memcg, as upstream's.
        kernel::error::to_result(unsafe {
            bindings::iommu_map(
                self.0.as_ptr(),
                // CAST: the same width (asserted above); the prot bits are
                // small.
                iova as usize,
                paddr,
                size as usize,
                prot as c_int,
                bindings::GFP_KERNEL_ACCOUNT,
            )
        })
    }

    /// Unmaps `size` bytes at `iova` (and waits for the IOTLB); returns the
    /// bytes unmapped.
    fn unmap(&self, iova: u64, size: u64) -> u64 {
        // SAFETY: the domain is live (type invariant); unmapping takes
        // access away and frees nothing the CPU uses.
        // CAST: the same width (asserted above).
        let done = unsafe { bindings::iommu_unmap(self.0.as_ptr(), iova as usize, size as usize) };
        // CAST: as above.
        done as u64
    }

    /// The physical address `iova` maps to, if any.
    pub(crate) fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let pa = self.phys(iova);
        (pa != 0).then_some(pa)
    }

    /// `iommu_iova_to_phys()`: the physical address `iova` maps to, 0 if
    /// none.
    #[inline]
    fn phys(&self, iova: u64) -> u64 {
        // SAFETY: the domain is live (type invariant).
        unsafe { bindings::iommu_iova_to_phys(self.0.as_ptr(), iova) }
    }

    /// The run of physically contiguous pages mapped from page-aligned
    /// `iova` on, within `[iova, last]`: `(phys, bytes)`, or `None` when
    /// `iova` is not mapped. The pages are looked up one by one, as
    /// upstream finds the chunks it unmaps.
    ///
    /// The loop over the pages is written for few branches (a THP's or a
    /// huge page's unmap runs it 511 times): `make bench` measured the
    /// unmap of those 1 to 3% slower than upstream's with an overflow check
    /// and a `cond_resched()` test in every step.
    #[inline]
    pub(crate) fn mapped_run(&self, iova: u64, last: u64) -> Option<(u64, u64)> {
        if last < iova {
            return None;
        }
        let pa = self.iova_to_phys(iova)?;
        // The pages after the first that start within [iova, last].
        let after = (last - iova) / PAGE;
        // How many of them follow physically, so far.
        let mut n = 0;
        'run: while n < after {
            let stop = after.min(n + 512);
            while n < stop {
                // No overflow: (n + 1) pages from `iova` still start at or
                // before `last`; physical addresses are far below 2^64.
                let off = (n + 1) << PAGE_SHIFT;
                // `pa` is not 0, so neither is `pa + off`: an unmapped page
                // (0) ends the run too.
                if self.phys(iova.wrapping_add(off)) != pa.wrapping_add(off) {
                    break 'run;
                }
                n += 1;
            }
            if n < after {
                cond_resched();
            }
        }
        Some((pa, (n + 1) << PAGE_SHIFT))
    }

    /// The domain's aperture and supported page sizes.
    pub(crate) fn info(&self) -> (Option<Range>, u64) {
        let d = self.0.as_ptr();
        // SAFETY: the domain is live (type invariant); its geometry and
        // page sizes are set at allocation and never change.
        let (start, end, pgsizes) = unsafe {
            (
                (*d).geometry.aperture_start,
                (*d).geometry.aperture_end,
                (*d).pgsize_bitmap,
            )
        };
        // CAST: the same width (asserted above).
        (Range::new(start, end), pgsizes as u64)
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
        unsafe { bindings::iommu_domain_free(self.0.as_ptr()) }
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
