// SPDX-License-Identifier: GPL-2.0

//! A VFIO container served by this backend: its IOMMU groups and the paging
//! domains they are attached to, each with an MSI cookie at the container's
//! MSI aperture so that ITS doorbells are mapped when vfio-pci sets up
//! MSI/MSI-X vectors.
//!
//! Lifetime: a container is an [`Arc`]. VFIO holds a [`Handle`] that gives
//! out references until `release`, the registry holds one, and every ioctl
//! in flight one, so a container VFIO releases under a running ioctl stays
//! allocated until that ioctl returns; `release` empties it (unmaps, unpins,
//! frees the domains) under its mutex, after which calls that need a domain
//! fail.
//!
//! Locks, in the order they nest: [`CONTAINERS`] (the registry), then a
//! container's `inner` mutex, then what the IOMMU core and mm take inside
//! (group mutexes, `mmap_lock` while pinning). `MAP_DMA` holds `inner`
//! across pinning and mapping, as upstream's `iommu->lock`. A handle's
//! spinlock is a leaf.

use kernel::{
    new_mutex,
    new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex,
        SpinLock, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

use crate::{
    aperture::{
        check_aperture,
        dma_avoids,
        doorbell_pages,
        msi_window,
        ApertureContext,
        ApertureRefusal,
        MsiWindow,
        APERTURE_MINSZ, //
        RESV_SW_MSI,
    },
    dirty::{
        self,
        DirtyRefusal,
        Report, //
    },
    dma_args::{
        self,
        MapRequest,
        Refusal, //
    },
    ffi::{
        self,
        Domain,
        Group,
        Mm,
        Pfns, //
    },
    iova::{
        self,
        Range,
        Ranges, //
    },
    uapi::DmaMap,
};

/// The reason msi_isolation gives when its `assert_isolated=` parameter, not
/// the hardware, makes a device's MSIs isolated.
const ASSERTED: &str = "reason=asserted-by-parameter";

/// `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU`.
pub(crate) const VFIO_TYPE1_IOMMU: usize = 1;
pub(crate) const VFIO_TYPE1V2_IOMMU: usize = 3;

/// CAST: `PAGE_SIZE` fits in u64.
const PAGE: u64 = PAGE_SIZE as u64;

/// Containers served since the module loaded, for debugfs.
pub(crate) static SERVED: Atomic<i64> = Atomic::new(0);

/// Pages pinned and mapped at a time by `MAP_DMA` (upstream pins in batches
/// of a page of `struct page` pointers too): the only per-call allocation,
/// whatever the size of the mapping.
const PIN_BATCH: u64 = 512;

/// Contiguous runs unmapped from every domain with one `iommu_unmap` (one
/// IOTLB sync) before they are unpinned: upstream's
/// `VFIO_IOMMU_TLB_SYNC_MAX`.
const UNPIN_BATCH: usize = 512;

/// The batch when the runs' buffer cannot be allocated: unmapping must not
/// fail, so it falls back to this many on the stack.
const UNPIN_BATCH_MIN: usize = 16;

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before a container
    // can exist.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<Registry> = Registry {
        handles: KVec::new(),
        next_id: 0,
    };
}

/// Every [`Handle`] VFIO was given, until module exit; those that still
/// hold a container are the containers alive now (debugfs).
pub(crate) struct Registry {
    handles: KVec<Pin<KBox<Handle>>>,
    next_id: u64,
}

/// What VFIO holds as a container's `iommu_data`.
///
/// VFIO reads `iommu_data` and calls our ioctl without a lock, while the
/// last group's detach may call `release` on another thread: a reference
/// taken in our ioctl would come too late if `data` were the container
/// itself. So `data` is a handle that stays allocated until the module
/// exits (one small object per container opened) and gives out references
/// to its container until `release` takes it away.
#[pin_data]
pub(crate) struct Handle {
    /// The container, until `release`. A leaf lock.
    #[pin]
    container: SpinLock<Option<Arc<Container>>>,
}

impl Handle {
    /// `open`: a new container of IOMMU type `kind` and its handle, which
    /// lives until [`drop_handles`].
    pub(crate) fn open(kind: usize) -> Result<*const Handle> {
        let mut reg = CONTAINERS.lock();
        reg.handles.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let c = Container::new(kind, reg.next_id)?;
        let h = KBox::pin_init(
            pin_init!(Handle {
                container <- new_spinlock!(Some(c), "Handle::container"),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        let p: *const Handle = &*h;
        // Room was reserved above.
        reg.handles.push_within_capacity(h).map_err(|_| ENOMEM)?;
        reg.next_id += 1;
        SERVED.fetch_add(1, Relaxed);
        Ok(p)
    }

    /// A reference to the container, unless it was released.
    pub(crate) fn get(&self) -> Option<Arc<Container>> {
        self.container.lock().clone()
    }

    /// `release`: the container goes; later calls through the handle find
    /// none.
    pub(crate) fn release(&self) {
        let c = self.container.lock().take();
        if let Some(c) = c {
            Container::release(c);
        }
    }
}

/// Frees every handle, at module exit: VFIO released every container (it
/// holds a module reference while one uses this backend).
pub(crate) fn drop_handles() {
    let handles = core::mem::take(&mut CONTAINERS.lock().handles);
    drop(handles);
}

/// A paging domain and the groups attached to it.
///
/// # Invariants
///
/// Every group in `groups` is attached to `domain`.
struct DomainEntry {
    /// The domain. Declared first so that `Drop` can detach the groups
    /// before the field drops and frees it.
    domain: Domain,
    /// Groups attached to `domain`.
    groups: KVec<Group>,
    /// Its IOMMU blocks non-coherent (no-snoop) DMA: enforced at creation,
    /// as upstream, and reported by `VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU)`.
    coherent: bool,
}

impl Drop for DomainEntry {
    fn drop(&mut self) {
        for g in self.groups.iter() {
            // SAFETY: `g` is attached to the domain (type invariant).
            unsafe { self.domain.detach(g) };
        }
    }
}

/// One `MAP_DMA` mapping: pinned user pages (or device memory, for a BAR
/// mmap) mapped at an IOVA range in every domain of the container. As
/// upstream, nothing is kept per page: the pages are recorded only in the
/// domains' page tables, and unmapping walks the first domain to find what
/// to unpin.
struct Dma {
    /// The IOVA range.
    iova: Range,
    /// The device may read / write.
    read: bool,
    write: bool,
    /// The process whose locked memory the pages are charged to.
    mm: Mm,
    /// How many pages are charged to it: upstream's count, which leaves
    /// out device memory and reserved pages.
    locked: u64,
    /// Some page has no pin of ours (device memory, a reserved page):
    /// upstream's `has_rsvd`. Without one, unpinning tests no page.
    has_rsvd: bool,
    /// Invalidated by `VFIO_DMA_UNMAP_FLAG_VADDR`, until a
    /// `VFIO_DMA_MAP_FLAG_VADDR` gives the new address. The pages stay
    /// pinned and mapped meanwhile.
    vaddr_invalid: bool,
    /// While dirty tracking is on, the mapping's dirty bitmap as upstream
    /// keeps it (`dirty::state_words` long); empty otherwise.
    dirty: KVVec<u64>,
}

impl Dma {
    /// Gives the mapping its dirty bitmap, zeroed, as upstream's
    /// `vfio_dma_bitmap_alloc()` (`EINVAL` past `dirty::PAGES_MAX` pages).
    fn start_dirty(&mut self, pgshift: u32) -> Result {
        let pages = (self.iova.last - self.iova.start + 1) >> pgshift;
        if pages > dirty::PAGES_MAX {
            return Err(EINVAL);
        }
        // CAST: at most 2^25 words.
        self.dirty = KVVec::from_elem(0u64, dirty::state_words(pages) as usize, GFP_KERNEL)?;
        Ok(())
    }

    /// Reports the mapping's pages dirty into the user's bitmap at `data`,
    /// which starts at IOVA `base`, as upstream's `update_user_bitmap()`.
    fn report_dirty(&mut self, data: UserPtr, base: u64, pgshift: u32) -> Result {
        let d = self.iova;
        let r = Report::new(
            (d.start - base) >> pgshift,
            (d.last - d.start + 1) >> pgshift,
        );
        // CAST: a user bitmap is at most `dirty::BITMAP_SIZE_MAX` bytes.
        let at = |word: u64| data.wrapping_byte_add((word * 8) as usize);
        let mut leftover = 0u64;
        if r.needs_leftover() {
            let mut b = [0u8; 8];
            UserSlice::new(at(r.first), 8).reader().read_slice(&mut b)?;
            leftover = u64::from_ne_bytes(b);
        }
        let state = &mut self.dirty[..];
        if state.len() < r.count {
            // Tracking started after the mapping without a bitmap for it.
            return Err(EINVAL);
        }
        r.fill(state, leftover);
        let mut buf = [0u8; 512];
        for (i, chunk) in state[..r.count].chunks(64).enumerate() {
            for (j, w) in chunk.iter().enumerate() {
                buf[j * 8..j * 8 + 8].copy_from_slice(&w.to_ne_bytes());
            }
            let len = chunk.len() * 8;
            // CAST: `i` counts chunks of 64 words of an allocation.
            UserSlice::new(at(r.first + (i as u64) * 64), len)
                .writer()
                .write_slice(&buf[..len])?;
        }
        r.clear(state);
        Ok(())
    }
}

/// The fields of [`Container`] protected by its mutex.
///
/// # Invariants
///
/// Every [`Dma`] in `dmas` is mapped in every domain of `domains`, to pages
/// pinned once for it (but reserved pages and device memory, which hold no
/// pin) and charged to its `mm`; the first domain's page table is the
/// record of those pins. `dmas` is empty when `domains` is.
struct Inner {
    domains: KVec<DomainEntry>,
    /// The mappings, keyed by their *last* IOVA, so that the first entry at
    /// or after an address is the only one that can contain it.
    dmas: RBTree<u64, Dma>,
    /// Usable IOVA ranges and page sizes, recomputed at attach and detach.
    usable: Ranges,
    pgsizes: u64,
    /// How many more entries `dmas` may take: the `dma_entry_limit`
    /// parameter when the container was opened, less the entries.
    dma_avail: usize,
    /// How many entries of `dmas` have their user address invalidated.
    vaddr_invalid: usize,
    /// Dirty page tracking is on (`VFIO_IOMMU_DIRTY_PAGES_FLAG_START`).
    dirty_tracking: bool,
    /// The MSI aperture: every domain's MSI cookie starts here. Chosen at
    /// the first attach (the `msi_base` parameter, else the IOMMU's
    /// software-MSI window), moved by `VFIO_TYPE1X_SET_MSI_APERTURE`.
    aperture: Option<Range>,
}

/// The runs of physically contiguous pages `domain` maps in `r`, as
/// `(iova, phys, bytes)`, in IOVA order; unmapped pages are skipped. A run
/// ends only where the physical addresses do (or at the end of `r`), never
/// inside an IOMMU block mapping, which io-pgtable cannot unmap in part.
fn mapped_runs(domain: &Domain, r: Range) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    let mut next = Some(r.start);
    core::iter::from_fn(move || loop {
        let iova = next.filter(|iova| *iova <= r.last)?;
        match domain.mapped_run(iova, r.last) {
            Some((pa, len)) => {
                next = iova.checked_add(len);
                return Some((iova, pa, len));
            }
            None => next = iova.checked_add(PAGE),
        }
    })
}

impl Inner {
    /// May `r` be mapped now?
    fn may_map(&self, r: Range) -> Result {
        if self.overlaps(r) {
            return Err(EEXIST);
        }
        if self.dma_avail == 0 {
            return Err(ENOSPC);
        }
        if !dma_args::in_usable(r, self.usable.as_slice()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// The IOVA range of the mapping containing `iova`, if any.
    fn dma_at(&self, iova: u64) -> Option<Range> {
        let r = self.dmas.cursor_lower_bound(&iova)?.current().1.iova;
        (r.start <= iova).then_some(r)
    }

    /// Does any mapping overlap `r`?
    fn overlaps(&self, r: Range) -> bool {
        self.first_overlapping(r).is_some()
    }

    /// Detaches `group` from domain `di` and frees the domain (and its MSI
    /// cookie) when it was the last group. The last domain takes every
    /// mapping with it, as upstream's last detach does.
    fn remove_group(&mut self, di: usize, group: &Group) {
        let Some(d) = self.domains.get_mut(di) else {
            return;
        };
        if let Some(gi) = d.groups.iter().position(|g| g == group) {
            // SAFETY: `group` is in `d.groups`, so attached to `d.domain`.
            unsafe { d.domain.detach(group) };
            // `gi` is in bounds: it was just found.
            let _ = d.groups.remove(gi);
        }
        if d.groups.is_empty() {
            if self.domains.len() == 1 {
                self.release_all();
            }
            // INVARIANT: the other domains map every `Dma` too; with the
            // last one, `release_all` emptied `dmas`.
            drop(self.domains.remove(di));
        }
    }

    /// Unmaps `r` from every domain and unpins the pages the first domain
    /// mapped there (dirtying them if `dirty`), in batches.
    ///
    /// `r` must be all of one or more [`Dma`]s being removed from `dmas`, or
    /// the part of a new mapping that `pin_map` mapped before it failed.
    fn unmap_unpin(&self, r: Range, dirty: bool, has_rsvd: bool) {
        let Some(first) = self.domains.first() else {
            return;
        };
        // No more runs than pages: a small unmap allocates nothing.
        let pages = ((r.last - r.start) / PAGE).saturating_add(1);
        let want = usize::try_from(pages).map_or(UNPIN_BATCH, |p| p.min(UNPIN_BATCH));
        let mut small = [(0u64, 0u64); UNPIN_BATCH_MIN];
        let mut large = if want > UNPIN_BATCH_MIN {
            KVec::from_elem((0u64, 0u64), want, GFP_KERNEL).ok()
        } else {
            None
        };
        let runs: &mut [(u64, u64)] = match &mut large {
            Some(v) => v,
            None => &mut small,
        };
        let mut it = mapped_runs(&first.domain, r).peekable();
        while let Some(&(start, _, _)) = it.peek() {
            let mut n = 0;
            // The IOVA span of this batch, first and last byte: runs that
            // follow each other, so that one `iommu_unmap` (which stops at
            // a hole) covers them all.
            let mut span = (start, start);
            while let Some(&(iova, pa, len)) = it.peek() {
                if n == runs.len() || (n > 0 && Some(iova) != span.1.checked_add(1)) {
                    break;
                }
                it.next();
                // No overflow: the run ends within `r`.
                span.1 = iova + (len - 1);
                runs[n] = (pa / PAGE, len / PAGE);
                n += 1;
            }
            for d in self.domains.iter() {
                d.domain.unmap(span.0, span.1 - span.0 + 1);
            }
            for &(pfn, pages) in &runs[..n] {
                // SAFETY: by the invariant of `Inner` (and `pin_map`'s use of
                // this function) the first domain mapped these pages for a
                // mapping that owns their pins (device memory and reserved
                // pages have none, and `unpin` skips them unless the caller
                // says, from what `pin_map` saw, that there are none); they
                // are now unmapped from every domain, and unpinned here once.
                unsafe { ffi::unpin(pfn, pages, dirty, has_rsvd) };
            }
            ffi::cond_resched();
        }
    }

    /// Unmaps, unpins and refunds one mapping taken out of `dmas`, and
    /// gives its entry back.
    fn release_dma(&mut self, dma: Dma) {
        self.dma_avail += 1;
        if dma.vaddr_invalid {
            self.vaddr_invalid -= 1;
        }
        self.drop_dma(dma);
    }

    /// Unmaps, unpins and refunds a mapping `dmas` does not count.
    fn drop_dma(&self, dma: Dma) {
        self.unmap_unpin(dma.iova, dma.write, dma.has_rsvd);
        dma.mm.refund(dma.locked);
    }

    /// Unmaps, unpins and refunds every mapping.
    fn release_all(&mut self) {
        while let Some(c) = self.dmas.cursor_front_mut() {
            let (_, node) = c.remove_current();
            let (_, dma) = node.to_key_value();
            self.release_dma(dma);
        }
    }

    /// `VFIO_DMA_MAP_FLAG_VADDR`: the invalidated mapping of exactly
    /// `req.iova` is valid again (at `req.vaddr`), and moves its locked-memory
    /// charge to the caller's mm if that changed (a process that replaced
    /// the one that mapped, as in QEMU's CPR), as upstream's
    /// `vfio_change_dma_owner()`.
    fn update_vaddr(&mut self, req: &MapRequest) -> Result {
        let d = self.first_overlapping(req.iova).ok_or(ENOENT)?;
        let dma = self.dmas.get_mut(&d.last).ok_or(ENOENT)?;
        if !dma.vaddr_invalid || d != req.iova {
            return Err(EINVAL);
        }
        let mm = Mm::current()?;
        if !dma.mm.same(&mm) {
            mm.charge(dma.locked)?;
            dma.mm.refund(dma.locked);
            dma.mm = mm;
        }
        // The pages stay as pinned: the new address maps the same memory
        // (the caller's promise), and nothing re-pins from it.
        dma.vaddr_invalid = false;
        self.vaddr_invalid -= 1;
        Ok(())
    }

    /// `VFIO_DMA_UNMAP_FLAG_VADDR`: invalidates the user address of every
    /// mapping in `range` (as the unmap loop would take them); returns their
    /// bytes. All or nothing: `EINVAL` if one is invalid already (upstream
    /// marks in order and unmarks at the first such one, to the same end).
    fn invalidate_vaddr(&mut self, range: Range, v2: bool) -> Result<u64> {
        let covered = |d: Range| d.start <= range.last && (v2 || range.start <= d.start);
        let mut c = self.dmas.cursor_lower_bound_mut(&range.start);
        while let Some(cur) = c {
            let d = cur.current().1;
            if !covered(d.iova) {
                break;
            }
            if d.vaddr_invalid {
                return Err(EINVAL);
            }
            c = cur.move_next();
        }
        let (mut n, mut bytes) = (0, 0);
        let mut c = self.dmas.cursor_lower_bound_mut(&range.start);
        while let Some(mut cur) = c {
            let d = cur.current_mut().1;
            if !covered(d.iova) {
                break;
            }
            d.vaddr_invalid = true;
            n += 1;
            bytes += d.iova.last - d.iova.start + 1;
            c = cur.move_next();
        }
        self.vaddr_invalid += n;
        Ok(bytes)
    }

    /// The mapping overlapping `r` with the lowest IOVA, if any.
    fn first_overlapping(&self, r: Range) -> Option<Range> {
        let d = self.dmas.cursor_lower_bound(&r.start)?.current().1.iova;
        (d.start <= r.last).then_some(d)
    }

    /// Maps every mapping of the container into `domain` as the first
    /// domain maps it (upstream's replay); on failure the caller frees
    /// `domain`, which drops what was replayed.
    fn replay_into(&self, domain: &Domain) -> Result {
        let Some(first) = self.domains.first() else {
            return Ok(());
        };
        for (_, dma) in self.dmas.iter() {
            for (iova, pa, len) in mapped_runs(&first.domain, dma.iova) {
                // SAFETY: the pages are pinned for `dma` (or are device
                // memory or reserved, never freed) and stay so while any
                // domain maps them: `release_dma` unmaps them from every
                // domain before unpinning, and a failed replay frees
                // `domain` before anything is unpinned.
                unsafe { domain.map(iova, pa, len, dma.read, dma.write) }?;
                ffi::cond_resched();
            }
        }
        Ok(())
    }

    /// Maps one batch at `iova` in every domain; on failure unmaps what it
    /// mapped of the batch and returns the error (dropping `pinned` then
    /// unpins it).
    fn map_pinned(&self, iova: u64, pinned: &Pfns, read: bool, write: bool) -> Result {
        for (i, d) in self.domains.iter().enumerate() {
            let mut at = iova;
            for (pfn, n) in pinned.runs() {
                // SAFETY: the pages are pinned by `pinned` (or are device
                // memory of the caller's mapping, or reserved pages, neither
                // ever freed to the page allocator); if mapping fails they
                // are unmapped below before `pinned` unpins them, and
                // otherwise `keep()` hands the pins to the mapping, whose
                // removal unmaps before unpinning.
                let r = unsafe { d.domain.map(at, pfn * PAGE, n * PAGE, read, write) };
                if let Err(e) = r {
                    if at > iova {
                        d.domain.unmap(iova, at - iova);
                    }
                    for e in &self.domains[..i] {
                        e.domain.unmap(iova, pinned.len() * PAGE);
                    }
                    return Err(e);
                }
                at += n * PAGE;
            }
        }
        Ok(())
    }

    /// Pins the pages of `req` in batches of at most [`PIN_BATCH`] pages
    /// (device memory of a `VM_PFNMAP` mapping in runs instead, unpinned),
    /// charges each batch to `mm` and maps it into every domain as it goes,
    /// as upstream's `vfio_pin_pages_remote()` loop. All or nothing: on
    /// failure what was mapped is unmapped, unpinned and refunded. Returns
    /// how many pages it charged.
    fn pin_map(&self, req: &MapRequest, mm: &Mm) -> Result<(u64, bool)> {
        let size = req.iova.last - req.iova.start + 1;
        let mut done = 0;
        let mut locked = 0;
        let mut has_rsvd = false;
        let mut res = Ok(());
        while done < size {
            let n = ((size - done) / PAGE).min(PIN_BATCH);
            // `check_map` made sure `vaddr + size` does not wrap.
            res = ffi::get_pfns(req.vaddr + done, req.write, n)
                .and_then(|p| {
                    let charge = match &p {
                        Pfns::Pinned(pinned) => pinned.charged(),
                        Pfns::Device { .. } => 0,
                    };
                    mm.charge(charge)?;
                    if let Err(e) = self.map_pinned(req.iova.start + done, &p, req.read, req.write)
                    {
                        mm.refund(charge);
                        return Err(e);
                    }
                    locked += charge;
                    let len = p.len();
                    // Device memory, or a reserved page `get_pfns` kept no
                    // pin of.
                    has_rsvd |= charge != len;
                    if let Pfns::Pinned(pinned) = p {
                        pinned.keep();
                    }
                    Ok(len)
                })
                .map(|len| {
                    done += len * PAGE;
                });
            if res.is_err() {
                break;
            }
            ffi::cond_resched();
        }
        if let Err(e) = res {
            if done > 0 {
                self.unmap_unpin(
                    Range {
                        start: req.iova.start,
                        last: req.iova.start + done - 1,
                    },
                    req.write,
                    has_rsvd,
                );
                mm.refund(locked);
            }
            return Err(e);
        }
        Ok((locked, has_rsvd))
    }

    /// The smallest page size offered.
    fn min_pgsize(&self) -> u64 {
        if self.pgsizes == 0 {
            PAGE
        } else {
            1 << self.pgsizes.trailing_zeros()
        }
    }

    /// Recomputes the usable ranges and page sizes from the domains.
    fn refresh(&mut self) -> Result {
        self.pgsizes =
            iova::effective_pgsizes(self.domains.iter().map(|d| d.domain.info().1), PAGE);
        let mut ranges = Ranges::new(Range {
            start: 0,
            last: u64::MAX,
        });
        for d in self.domains.iter() {
            ranges.intersect(d.domain.info().0.ok_or(EINVAL)?);
            for g in d.groups.iter() {
                for (r, _) in self.reserved(g)?.iter() {
                    ranges.exclude(*r).map_err(|_| ENOSPC)?;
                }
            }
        }
        // The MSI window is ours to place: the aperture replaces the
        // IOMMU's software-MSI region.
        if let Some(ap) = self.aperture {
            ranges.exclude(ap).map_err(|_| ENOSPC)?;
        }
        self.usable = ranges;
        Ok(())
    }

    /// `group`'s reserved regions that DMA must avoid: all of them but the
    /// relaxable direct ones, as upstream, and but the software-MSI window
    /// once the container has its own aperture.
    fn reserved(&self, group: &Group) -> Result<KVec<(Range, u32)>> {
        let mut regions = group.regions()?;
        let own = self.aperture.is_some();
        regions.retain(|(_, kind)| dma_avoids(*kind) && !(own && *kind == RESV_SW_MSI));
        Ok(regions)
    }

    /// Does a group of the container have a hardware MSI region?
    fn hw_msi(&self) -> Result<bool> {
        for g in self.domains.iter().flat_map(|d| d.groups.iter()) {
            if msi_window(&g.regions()?) == MsiWindow::Hardware {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What an aperture must fit: the reserved regions of every group
    /// (`joining` too) other than the software-MSI window, and how many
    /// distinct doorbell pages their devices need.
    fn aperture_needs(&self, joining: Option<&Group>) -> Result<(KVec<Range>, u64)> {
        let mut reserved = KVec::new();
        let mut known = KVec::<u64>::new();
        let mut unknown = 0u64;
        let groups = self.domains.iter().flat_map(|d| d.groups.iter());
        for g in Iterator::chain(groups, joining) {
            for (r, kind) in g.regions()?.iter() {
                if *kind != RESV_SW_MSI {
                    reserved.push(*r, GFP_KERNEL)?;
                }
            }
            let (pages, unread) = g.doorbells()?;
            known.extend_from_slice(&pages, GFP_KERNEL)?;
            unknown += u64::from(unread);
        }
        Ok((reserved, doorbell_pages(&known, unknown)))
    }

    /// The doorbell pages mapped in the aperture now, `(iova, phys)`, in
    /// IOVA order. The MSI cookie hands out pages upwards from the base, so
    /// the scan stops at the first unmapped page.
    fn doorbells(&self) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        let Some(ap) = self.aperture else {
            return Ok(out);
        };
        let mut iova = ap.start;
        while iova <= ap.last {
            let mut found = false;
            for d in self.domains.iter() {
                if let Some(pa) = d.domain.iova_to_phys(iova) {
                    found = true;
                    let page = pa & !(PAGE - 1);
                    if !out.contains(&(iova, page)) {
                        out.push((iova, page), GFP_KERNEL)?;
                    }
                }
            }
            if !found {
                break;
            }
            iova = match iova.checked_add(PAGE) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(out)
    }
}

/// Moves `groups`, all attached to `from`, to `to`. All or nothing: on
/// failure the groups moved so far go back to `from`.
fn move_groups(groups: &[Group], from: &Domain, to: &Domain) -> Result {
    for (i, g) in groups.iter().enumerate() {
        // SAFETY: the caller passes groups attached to `from`; the first `i`
        // moved to `to` and the loop stops at the first failure.
        unsafe { from.detach(g) };
        if let Err(e) = to.attach(g) {
            let _ = from.attach(g);
            for g in groups.iter().take(i) {
                // SAFETY: the first `i` groups were attached to `to` above.
                unsafe { to.detach(g) };
                let _ = from.attach(g);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The errno of each aperture refusal.
fn aperture_errno(why: ApertureRefusal) -> Error {
    match why {
        ApertureRefusal::Malformed | ApertureRefusal::Unaligned => EINVAL,
        ApertureRefusal::Wraps => EOVERFLOW,
        ApertureRefusal::DoorbellMapped => EBUSY,
        ApertureRefusal::OutsideDomain => ERANGE,
        ApertureRefusal::Reserved => EADDRINUSE,
        ApertureRefusal::OverlapsDma => EEXIST,
        ApertureRefusal::TooSmall => ENOSPC,
    }
}

/// A user's dirty bitmap for `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`
/// (`struct vfio_bitmap`, its size already checked).
pub(crate) struct UserBitmap {
    /// The page size one bit stands for.
    pub(crate) pgsize: u64,
    /// The bitmap.
    pub(crate) data: UserPtr,
}

/// A `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP` request, its own fields
/// checked (`dirty::check_get_bitmap`).
pub(crate) struct GetBitmap {
    /// The IOVA range reported.
    pub(crate) iova: u64,
    pub(crate) last: u64,
    /// The page size one bit stands for.
    pub(crate) pgsize: u64,
    /// The bitmap.
    pub(crate) data: UserPtr,
}

/// The errno of each dirty-page refusal.
pub(crate) fn dirty_errno(r: DirtyRefusal) -> Error {
    match r {
        DirtyRefusal::NotV2 => EACCES,
        DirtyRefusal::Invalid => EINVAL,
        DirtyRefusal::Overflow => EOVERFLOW,
    }
}

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::Invalid => EINVAL,
        Refusal::Overflow => EOVERFLOW,
    }
}

/// One container.
#[pin_data(PinnedDrop)]
pub(crate) struct Container {
    /// Its number in debugfs.
    id: u64,
    /// `VFIO_TYPE1v2_IOMMU` semantics (else `VFIO_TYPE1_IOMMU`).
    pub(crate) v2: bool,
    /// Groups and domains.
    #[pin]
    inner: Mutex<Inner>,
}

impl Container {
    /// A container of IOMMU type `kind`, numbered `id` in debugfs.
    fn new(kind: usize, id: u64) -> Result<Arc<Container>> {
        let v2 = match kind {
            VFIO_TYPE1_IOMMU => false,
            VFIO_TYPE1V2_IOMMU => true,
            _ => return Err(EINVAL),
        };
        Arc::pin_init(
            try_pin_init!(Container {
                id,
                v2,
                inner <- new_mutex!(
                    Inner {
                        domains: KVec::new(),
                        dmas: RBTree::new(),
                        usable: Ranges::new(Range { start: 0, last: u64::MAX }),
                        pgsizes: 0,
                        dma_avail: crate::module_parameters::dma_entry_limit.value() as usize,
                        vaddr_invalid: 0,
                        dirty_tracking: false,
                        aperture: None,
                    },
                    "Container::inner"
                ),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// `release`: VFIO is done with `this` (its last group detached).
    /// Unmaps and unpins whatever is left; an ioctl still running keeps the
    /// memory alive until it returns.
    fn release(this: Arc<Container>) {
        let mut inner = this.inner.lock();
        inner.release_all();
        inner.domains.clear();
    }

    /// `attach_group`: checks the isolation policy, then attaches `group` to
    /// a compatible existing domain or to a new one with an MSI cookie.
    pub(crate) fn attach_group(&self, group: Group, emulated: bool) -> Result {
        let id = group.id();
        if emulated {
            pr_err!("group {id}: emulated-IOMMU (mdev) groups are not supported; use vfio_iommu_type1\n");
            return Err(EINVAL);
        }
        let mut why = [0u8; 512];
        let isolated = group_isolated(&group, &mut why).inspect_err(|e| {
            pr_err!("group {id}: cannot tell whether its MSIs are isolated: {e:?}\n")
        })?;
        let why = cstr_prefix(&why);
        if !isolated {
            if !crate::module_parameters::allow_unsafe_interrupts.value() {
                pr_err!(
                    "group {id}: MSIs not isolated, refusing it: {why}; load vfio_type1x with allow_unsafe_interrupts=1 to accept it anyway\n"
                );
                return Err(EPERM);
            }
            pr_warn!(
                "group {id}: MSIs not isolated, accepted because allow_unsafe_interrupts=1: {why}\n"
            );
        } else if why.contains(ASSERTED) {
            // An administrator's override, not the hardware's word: say so.
            pr_warn!(
                "group {id}: MSIs declared isolated by msi_isolation's assert_isolated=, accepted on that assertion: {why}\n"
            );
        }

        let window = msi_window(&group.regions()?);

        let mut inner = self.inner.lock();
        // Attaching may need to pin (upstream's replay): not while a user
        // address is invalid.
        if inner.vaddr_invalid > 0 {
            pr_err!("group {id}: cannot attach while a mapping's user address is invalidated (VFIO_DMA_UNMAP_FLAG_VADDR)\n");
            return Err(EBUSY);
        }
        if inner.domains.iter().any(|d| d.groups.contains(&group)) {
            return Err(EINVAL);
        }
        // A hardware MSI region takes precedence, as upstream: no cookie,
        // no aperture (nor `msi_base`) for that group's domain.
        let hw_msi = window == MsiWindow::Hardware;
        if inner.aperture.is_none() && !hw_msi && !inner.hw_msi()? {
            let sw = match window {
                MsiWindow::Software(r) => Some(r),
                _ => None,
            };
            inner.aperture = default_aperture(sw);
        }
        // The group's reserved regions must not cover existing mappings.
        let reserved = inner.reserved(&group)?;
        if let Some((r, _)) = reserved.iter().find(|(r, _)| inner.overlaps(*r)) {
            pr_err!(
                "group {id}: reserved region {:#x}..={:#x} overlaps an existing DMA mapping\n",
                r.start,
                r.last
            );
            return Err(EINVAL);
        }
        // The aperture must still serve every group, this one too: the MSI
        // cookie hands out doorbell pages past its end, in usable IOVA.
        if let Some(ap) = inner.aperture {
            let (reserved, doorbell_pages) = inner.aperture_needs(Some(&group))?;
            let cx = ApertureContext {
                pgsize: inner.min_pgsize(),
                doorbell_mapped: false,
                // Each domain checks the aperture against its own range.
                domains: &[],
                reserved: &reserved,
                // The aperture is no usable IOVA: no mapping is in it.
                overlaps_dma: &|_| false,
                doorbell_pages,
            };
            let size = (ap.last - ap.start).checked_add(1).ok_or(EINVAL)?;
            check_aperture(APERTURE_MINSZ, 0, ap.start, size, &cx).map_err(|why| {
                pr_err!(
                    "group {id}: MSI aperture {:#x}..={:#x} cannot serve it: {}\n",
                    ap.start,
                    ap.last,
                    why.why()
                );
                aperture_errno(why)
            })?;
        }
        // A domain already serving another group of the same IOMMU takes
        // this one too; the IOMMU core refuses an incompatible attach.
        let mut joined = None;
        for (i, d) in inner.domains.iter_mut().enumerate() {
            if d.domain.attach(&group).is_ok() {
                d.groups.reserve(1, GFP_KERNEL_ACCOUNT).inspect_err(|_| {
                    // SAFETY: `group` was attached to `d.domain` just above.
                    unsafe { d.domain.detach(&group) }
                })?;
                joined = Some(i);
                break;
            }
        }
        let di = match joined {
            Some(i) => {
                // INVARIANT: attached above; room was reserved.
                inner.domains[i]
                    .groups
                    .push_within_capacity(group)
                    .map_err(|_| ENOMEM)?;
                i
            }
            None => {
                inner.domains.reserve(1, GFP_KERNEL_ACCOUNT)?;
                let msi = if hw_msi { None } else { inner.aperture };
                let entry = Self::new_domain(&inner, group, msi)?;
                inner
                    .domains
                    .push_within_capacity(entry)
                    .map_err(|_| ENOMEM)?;
                inner.domains.len() - 1
            }
        };
        if let Err(e) = inner.refresh() {
            // Undo: VFIO does not detach a group whose attach failed.
            let d = &mut inner.domains[di];
            if let Some(g) = d.groups.pop() {
                // SAFETY: `g`, just pushed, is attached to `d.domain`.
                unsafe { d.domain.detach(&g) };
            }
            if d.groups.is_empty() {
                // A domain made for this group: no mapping was added since.
                drop(inner.domains.remove(di));
            }
            let _ = inner.refresh();
            return Err(e);
        }
        Ok(())
    }

    /// A new paging domain for `group`, with the MSI cookie and the
    /// container's mappings replayed, and `group` attached to it.
    fn new_domain(inner: &Inner, group: Group, msi: Option<Range>) -> Result<DomainEntry> {
        let domain = Self::prepared_domain(inner, &group, msi)?;
        let mut groups = KVec::with_capacity(1, GFP_KERNEL_ACCOUNT)?;
        domain.attach(&group)?;
        // INVARIANT: `group` is attached to `domain`; room was reserved.
        groups.push_within_capacity(group).map_err(|_| ENOMEM)?;
        let coherent = domain.enforce_cache_coherency();
        Ok(DomainEntry {
            domain,
            groups,
            coherent,
        })
    }

    /// A new paging domain for the IOMMU behind `group`, with the MSI cookie
    /// at the base of the aperture `msi` and the container's mappings
    /// replayed; nothing attached.
    fn prepared_domain(inner: &Inner, group: &Group, msi: Option<Range>) -> Result<Domain> {
        let id = group.id();
        let domain = Domain::alloc(group)?;
        if let Some(ap) = domain.info().0 {
            if let Some((_, d)) = inner
                .dmas
                .iter()
                .find(|(_, d)| d.iova.start < ap.start || d.iova.last > ap.last)
            {
                pr_err!(
                    "group {id}: its IOMMU's aperture {:#x}..={:#x} does not cover the mapping at {:#x}\n",
                    ap.start,
                    ap.last,
                    d.iova.start
                );
                return Err(EINVAL);
            }
        }
        if let (Some(ap), Some(msi)) = (domain.info().0, msi) {
            if msi.start < ap.start || msi.last > ap.last {
                pr_err!(
                    "group {id}: MSI aperture {:#x}..={:#x} is outside its IOMMU's aperture (msi_base?)\n",
                    msi.start,
                    msi.last
                );
                return Err(ERANGE);
            }
        }
        if let Some(base) = msi.map(|m| m.start) {
            domain.msi_cookie(base).inspect_err(|e| {
                pr_err!("group {id}: cannot install the MSI cookie at {base:#x}: {e:?}\n")
            })?;
        }
        // Replay the existing mappings before any device can use the domain;
        // on failure, freeing the domain drops whatever was replayed.
        inner.replay_into(&domain).inspect_err(|e| {
            pr_err!("group {id}: cannot replay the container's mappings: {e:?}\n")
        })?;
        Ok(domain)
    }

    /// `VFIO_TYPE1X_SET_MSI_APERTURE`: moves the MSI aperture, giving every
    /// domain a fresh one with its cookie at the new base (a domain's cookie
    /// is set once), while no doorbell is mapped.
    pub(crate) fn set_aperture(&self, argsz: u32, flags: u32, iova: u64, size: u64) -> Result {
        let mut inner = self.inner.lock();
        if inner.hw_msi()? {
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused: the IOMMU has a hardware MSI region, MSIs are not translated\n");
            return Err(EOPNOTSUPP);
        }
        let doorbell_mapped = !inner.doorbells()?.is_empty();
        let mut domains = KVec::new();
        for d in inner.domains.iter() {
            domains.push(d.domain.info().0.ok_or(EINVAL)?, GFP_KERNEL)?;
        }
        let (reserved, doorbell_pages) = inner.aperture_needs(None)?;
        let overlaps = |r: Range| inner.overlaps(r);
        let cx = ApertureContext {
            pgsize: inner.min_pgsize(),
            doorbell_mapped,
            domains: &domains,
            reserved: &reserved,
            overlaps_dma: &overlaps,
            doorbell_pages,
        };
        let new = check_aperture(argsz, flags, iova, size, &cx).map_err(|why| {
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused: {}\n", why.why());
            aperture_errno(why)
        })?;
        drop(domains);

        // Build every new domain first, then move the groups; a failure
        // before the move leaves the container as it was.
        let mut fresh = KVec::with_capacity(inner.domains.len(), GFP_KERNEL)?;
        for d in inner.domains.iter() {
            let first = d.groups.first().ok_or(EINVAL)?;
            fresh.push(Self::prepared_domain(&inner, first, Some(new))?, GFP_KERNEL)?;
        }
        // Move every group; all or nothing.
        let mut moved = 0;
        let mut res = Ok(());
        for (d, nd) in inner.domains.iter().zip(fresh.iter()) {
            res = move_groups(&d.groups, &d.domain, nd);
            if res.is_err() {
                break;
            }
            moved += 1;
        }
        // vfio-pci maps a doorbell under the group's mutex, not ours: a
        // vector set up while the groups moved got its doorbell in an old
        // domain, with an old-aperture address. Then the old domains stay.
        if res.is_ok() && !inner.doorbells()?.is_empty() {
            res = Err(EBUSY);
        }
        if let Err(e) = res {
            for (d, nd) in inner.domains.iter().zip(fresh.iter()).take(moved) {
                if move_groups(&d.groups, nd, &d.domain).is_err() {
                    pr_err!("MSI aperture: a group could not return to its domain\n");
                }
            }
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused: moving the groups failed ({e:?}); nothing changed\n");
            return Err(e);
        }
        for (d, nd) in inner.domains.iter_mut().zip(fresh.into_iter()) {
            // INVARIANT: `move_groups` attached every group to `nd`. The old
            // domain (and its cookie) is freed here.
            d.domain = nd;
        }
        let old = inner.aperture.replace(new);
        let (from, to) = old.map_or((0, 0), |o| (o.start, o.last));
        pr_info!(
            "MSI aperture moved from {from:#x}..={to:#x} to {:#x}..={:#x}\n",
            new.start,
            new.last
        );
        inner.refresh()
    }

    /// The aperture and the doorbells mapped in it, for `GET_INFO`.
    pub(crate) fn aperture_info(&self) -> Result<Option<(Range, KVec<(u64, u64)>)>> {
        let inner = self.inner.lock();
        match inner.aperture {
            Some(ap) => Ok(Some((ap, inner.doorbells()?))),
            None => Ok(None),
        }
    }

    /// `detach_group`.
    pub(crate) fn detach_group(&self, group: &Group) {
        let mut inner = self.inner.lock();
        let Some(di) = inner.domains.iter().position(|d| d.groups.contains(&group)) else {
            return;
        };
        inner.remove_group(di, group);
        if !inner.domains.is_empty() && inner.refresh().is_err() {
            pr_warn!(
                "group {}: detached; usable IOVA ranges not recomputed\n",
                group.id()
            );
        }
    }

    /// `VFIO_IOMMU_MAP_DMA` of an already parsed request: checks, charges,
    /// pins and maps with the container's mutex held throughout, as upstream
    /// holds `iommu->lock`, so a concurrent detach or release waits for it.
    /// With `VFIO_DMA_MAP_FLAG_VADDR`, gives an invalidated mapping its new
    /// user address instead.
    pub(crate) fn map(&self, m: &DmaMap) -> Result {
        let mut inner = self.inner.lock();
        let req = dma_args::check_map(
            m.argsz,
            m.flags,
            m.vaddr,
            m.iova,
            m.size,
            inner.min_pgsize(),
        )
        .map_err(refusal)?;
        if req.set_vaddr {
            return inner.update_vaddr(&req);
        }
        if inner.domains.is_empty() {
            // Released, or its last group detached: VFIO answers EINVAL too.
            return Err(EINVAL);
        }
        inner.may_map(req.iova)?;
        let mm = Mm::current()?;
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let (locked, has_rsvd) = inner.pin_map(&req, &mm)?;
        let mut dma = Dma {
            iova: req.iova,
            read: req.read,
            write: req.write,
            mm,
            locked,
            has_rsvd,
            vaddr_invalid: false,
            dirty: KVVec::new(),
        };
        // Upstream allocates the mapping's dirty bitmap after pinning, and
        // unmaps it again when that fails.
        if inner.dirty_tracking {
            if let Err(e) = dma.start_dirty(inner.min_pgsize().trailing_zeros()) {
                inner.drop_dma(dma);
                return Err(e);
            }
        }
        // INVARIANT: `pin_map` mapped the pinned pages in every domain.
        inner.dmas.insert(reservation.into_node(req.iova.last, dma));
        inner.dma_avail -= 1;
        Ok(())
    }

    /// `VFIO_IOMMU_UNMAP_DMA`; returns the bytes unmapped (or invalidated,
    /// with `VFIO_DMA_UNMAP_FLAG_VADDR`). With a dirty `bitmap` (its size
    /// already checked by the ioctl), every page unmapped is reported dirty
    /// in it.
    pub(crate) fn unmap(
        &self,
        argsz: u32,
        flags: u32,
        iova: u64,
        size: u64,
        bitmap: Option<UserBitmap>,
    ) -> Result<u64> {
        let mut inner = self.inner.lock();
        let pgsize = inner.min_pgsize();
        let range = dma_args::check_unmap(argsz, flags, iova, size, pgsize).map_err(refusal)?;
        if let Some(b) = &bitmap {
            if !inner.dirty_tracking || b.pgsize != pgsize {
                return Err(EINVAL);
            }
        }
        if self.v2 && flags & dma_args::UNMAP_FLAG_ALL == 0 {
            dma_args::check_no_bisect(range, inner.dma_at(range.start), inner.dma_at(range.last))
                .map_err(refusal)?;
        }
        if flags & dma_args::UNMAP_FLAG_VADDR != 0 {
            return inner.invalidate_vaddr(range, self.v2);
        }
        let mut unmapped = 0;
        loop {
            let Some(mut c) = inner.dmas.cursor_lower_bound_mut(&range.start) else {
                break;
            };
            let d = c.current().1.iova;
            // Type1 (v1) unmaps nothing when the range starts inside a
            // mapping; v2 refused that above.
            if d.start > range.last || (!self.v2 && range.start > d.start) {
                break;
            }
            if let Some(b) = &bitmap {
                c.current_mut()
                    .1
                    .report_dirty(b.data, range.start, pgsize.trailing_zeros())?;
            }
            let (_, node) = c.remove_current();
            let (_, dma) = node.to_key_value();
            unmapped += d.last - d.start + 1;
            inner.release_dma(dma);
        }
        Ok(unmapped)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES`.
    pub(crate) fn dirty_pages(&self, op: dirty::DirtyOp, get: Option<GetBitmap>) -> Result {
        let mut inner = self.inner.lock();
        match op {
            dirty::DirtyOp::Start => {
                if !inner.dirty_tracking {
                    // Every mapping gets its bitmap, or none does.
                    let shift = inner.min_pgsize().trailing_zeros();
                    let mut res = Ok(());
                    for (_, d) in inner.dmas.iter_mut() {
                        res = d.start_dirty(shift);
                        if res.is_err() {
                            break;
                        }
                    }
                    if res.is_err() {
                        for (_, d) in inner.dmas.iter_mut() {
                            d.dirty = KVVec::new();
                        }
                        return res;
                    }
                    inner.dirty_tracking = true;
                }
                Ok(())
            }
            dirty::DirtyOp::Stop => {
                if inner.dirty_tracking {
                    inner.dirty_tracking = false;
                    for (_, d) in inner.dmas.iter_mut() {
                        d.dirty = KVVec::new();
                    }
                }
                Ok(())
            }
            dirty::DirtyOp::GetBitmap => {
                let g = get.ok_or(EINVAL)?;
                let pgsize = inner.min_pgsize();
                dirty::check_get_bitmap_container(
                    g.iova,
                    g.last - g.iova + 1,
                    g.pgsize,
                    pgsize,
                    inner.dirty_tracking,
                )
                .map_err(dirty_errno)?;
                // The range must not split a mapping, as an unmap.
                let range = Range {
                    start: g.iova,
                    last: g.last,
                };
                dma_args::check_no_bisect(range, inner.dma_at(g.iova), inner.dma_at(g.last))
                    .map_err(refusal)?;
                let mut c = inner.dmas.cursor_lower_bound_mut(&g.iova);
                while let Some(mut cur) = c {
                    let d = cur.current_mut().1;
                    if d.iova.start > g.last {
                        break;
                    }
                    d.report_dirty(g.data, g.iova, pgsize.trailing_zeros())?;
                    c = cur.move_next();
                }
                Ok(())
            }
        }
    }

    /// Do all its domains enforce cache coherency (`VFIO_DMA_CC_IOMMU`)?
    pub(crate) fn cache_coherent(&self) -> bool {
        self.inner.lock().domains.iter().all(|d| d.coherent)
    }

    /// How many more mappings the container takes.
    pub(crate) fn dma_avail(&self) -> usize {
        self.inner.lock().dma_avail
    }

    /// The page sizes offered and the usable IOVA ranges: the intersection
    /// of the domains' apertures minus every group's reserved regions
    /// (which include the MSI window).
    pub(crate) fn iova_info(&self) -> (u64, Ranges) {
        let inner = self.inner.lock();
        (inner.pgsizes, inner.usable.clone())
    }
}

#[pinned_drop]
impl PinnedDrop for Container {
    fn drop(self: Pin<&mut Self>) {
        // `release` emptied it; a container dropped without a release (an
        // `open` whose caller failed) has nothing mapped either. Nothing to
        // do but make sure.
        let mut inner = self.inner.lock();
        inner.release_all();
    }
}

/// How many containers are alive now, for debugfs `containers`.
pub(crate) fn open_count() -> usize {
    let reg = CONTAINERS.lock();
    reg.handles.iter().filter(|h| h.get().is_some()).count()
}

/// debugfs `apertures`: one line per container,
/// `container=<n> type=<type1|type1v2> groups=<g>[,<g>...] mappings=<n>
/// aperture=<iova>+<size>|none doorbells=<iova>-><pa>[,...]|none`.
pub(crate) fn show_apertures(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let reg = CONTAINERS.lock();
    for c in reg.handles.iter().filter_map(|h| h.get()) {
        let id = c.id;
        let inner = c.inner.lock();
        write!(
            f,
            "container={id} type={} groups=",
            if c.v2 { "type1v2" } else { "type1" }
        )?;
        let mut first = true;
        for g in inner.domains.iter().flat_map(|d| d.groups.iter()) {
            write!(f, "{}{}", if first { "" } else { "," }, g.id())?;
            first = false;
        }
        write!(f, " mappings={}", inner.dmas.iter().count())?;
        match inner.aperture {
            Some(a) => write!(f, " aperture={:#x}+{:#x}", a.start, a.last - a.start + 1)?,
            None => write!(f, " aperture=none")?,
        }
        let doorbells = inner.doorbells().map_err(|_| core::fmt::Error)?;
        if doorbells.is_empty() {
            writeln!(f, " doorbells=none")?;
        } else {
            f.write_str(" doorbells=")?;
            for (i, (iova, pa)) in doorbells.iter().enumerate() {
                write!(f, "{}{iova:#x}->{pa:#x}", if i > 0 { "," } else { "" })?;
            }
            writeln!(f)?;
        }
    }
    Ok(())
}

/// The size of an aperture the `msi_base` parameter places when the IOMMU
/// has no software-MSI window to copy it from.
const DEFAULT_APERTURE_SIZE: u64 = 0x10_0000;

/// The aperture of a new container: at the `msi_base` parameter when set
/// (with the size of the IOMMU's software-MSI window, or 1 MiB), else the
/// software-MSI window itself, else none.
fn default_aperture(sw_msi: Option<Range>) -> Option<Range> {
    let base = crate::module_parameters::msi_base.value();
    if base == 0 {
        return sw_msi;
    }
    let size = sw_msi.map_or(DEFAULT_APERTURE_SIZE, |r| r.last - r.start + 1);
    Range::new(base, base.checked_add(size - 1)?)
}

/// Are the MSIs of every device in `group` isolated? Each device is asked
/// in turn, msi_isolation first, the IRQ core for a device msi_isolation
/// does not know (not PCI), until one is not isolated; `why` gets the reason
/// of the last device asked (NUL terminated).
fn group_isolated(group: &Group, why: &mut [u8]) -> Result<bool> {
    for dev in group.devices()?.iter().flatten() {
        let isolated = match dev.msi_query(why) {
            Err(e) if e == ENODEV => {
                let isolated = dev.has_isolated_msi();
                let verdict = if isolated { "" } else { "not " };
                let name = dev.name().to_str().unwrap_or("?");
                write_cstr(
                    why,
                    format_args!("{name}: {verdict}isolated (msi_device_has_isolated_msi())"),
                );
                isolated
            }
            r => r?,
        };
        if !isolated {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes `args` into `buf`, truncated, NUL terminated.
fn write_cstr(buf: &mut [u8], args: core::fmt::Arguments<'_>) {
    struct Out<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for Out<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // Room for the NUL stays.
            let room = self.0.len().saturating_sub(self.1 + 1);
            let n = s.len().min(room);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut out = Out(buf, 0);
    let _ = core::fmt::write(&mut out, args);
    let end = out.1;
    if let Some(b) = buf.get_mut(end) {
        *b = 0;
    }
}

/// The text before the first NUL of `buf`.
fn cstr_prefix(buf: &[u8]) -> &str {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}
