// SPDX-License-Identifier: GPL-2.0

//! A VFIO container served by this backend: its IOMMU groups and the paging
//! domains they are attached to, each with an MSI cookie at the IOMMU's
//! software-MSI window so that ITS doorbells are mapped when vfio-pci sets
//! up MSI/MSI-X vectors.
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
    }, //
};

use crate::{
    aperture::{
        check_aperture,
        doorbell_pages,
        ApertureContext,
        ApertureRefusal,
        APERTURE_MINSZ, //
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
};

/// The reason msi_isolation gives when its `assert_isolated=` parameter, not
/// the hardware, makes a device's MSIs isolated.
const ASSERTED: &str = "reason=asserted-by-parameter";

/// `T1X_RESV_SW_MSI`: the IOMMU's software-managed MSI window.
const RESV_SW_MSI: u32 = 4;

/// `VFIO_TYPE1_IOMMU` and `VFIO_TYPE1v2_IOMMU`.
pub(crate) const VFIO_TYPE1_IOMMU: usize = 1;
pub(crate) const VFIO_TYPE1V2_IOMMU: usize = 3;

/// How many mappings a container may hold, as `vfio_iommu_type1`'s default
/// `dma_entry_limit`.
pub(crate) const DMA_ENTRY_LIMIT: usize = u16::MAX as usize;

/// CAST: `PAGE_SIZE` fits in u64.
const PAGE: u64 = PAGE_SIZE as u64;

/// Containers served since the module loaded, for debugfs.
pub(crate) static SERVED: Atomic<i64> = Atomic::new(0);

/// Pages pinned and mapped at a time by `MAP_DMA` (upstream pins in batches
/// of a page of `struct page` pointers too): the only per-call allocation,
/// whatever the size of the mapping.
const PIN_BATCH: u64 = 512;

/// Contiguous runs unmapped from every domain with one `iommu_unmap` before
/// they are unpinned.
const UNPIN_BATCH: usize = 32;

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
    /// How many entries `dmas` holds.
    ndma: usize,
    /// The MSI aperture: every domain's MSI cookie starts here. Chosen at
    /// the first attach (the `msi_base` parameter, else the IOMMU's
    /// software-MSI window), moved by `VFIO_TYPE1X_SET_MSI_APERTURE`.
    aperture: Option<Range>,
}

/// The runs of physically contiguous pages `domain` maps in `r`, as
/// `(iova, phys, bytes)`, in IOVA order; unmapped pages are skipped.
fn mapped_runs(domain: &Domain, r: Range) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
    let mut next = Some(r.start);
    core::iter::from_fn(move || loop {
        let iova = next?;
        if iova > r.last {
            return None;
        }
        next = iova.checked_add(PAGE);
        let Some(pa) = domain.iova_to_phys(iova) else {
            continue;
        };
        let mut len = PAGE;
        // A run ends only where the physical addresses do (or at the end of
        // `r`), never inside an IOMMU block mapping, which io-pgtable cannot
        // unmap in part.
        while let Some(at) = next.filter(|at| *at <= r.last) {
            if domain.iova_to_phys(at) != Some(pa + len) {
                break;
            }
            len += PAGE;
            next = at.checked_add(PAGE);
            if (len / PAGE) % PIN_BATCH == 0 {
                ffi::cond_resched();
            }
        }
        return Some((iova, pa, len));
    })
}

impl Inner {
    /// May `r` be mapped now?
    fn may_map(&self, r: Range) -> Result {
        if self.overlaps(r) {
            return Err(EEXIST);
        }
        if self.ndma >= DMA_ENTRY_LIMIT {
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
        self.dmas
            .cursor_lower_bound(&r.start)
            .is_some_and(|c| c.current().1.iova.start <= r.last)
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
    fn unmap_unpin(&self, r: Range, dirty: bool) {
        let Some(first) = self.domains.first() else {
            return;
        };
        let mut runs = [(0u64, 0u64); UNPIN_BATCH];
        let mut it = mapped_runs(&first.domain, r).peekable();
        while it.peek().is_some() {
            let mut n = 0;
            // The IOVA span of this batch: first and last byte.
            let mut span = (0, 0);
            for (i, (iova, pa, len)) in it.by_ref().take(UNPIN_BATCH).enumerate() {
                if i == 0 {
                    span.0 = iova;
                }
                // No overflow: the run ends within `r`.
                span.1 = iova + (len - 1);
                runs[i] = (pa / PAGE, len / PAGE);
                n = i + 1;
            }
            for d in self.domains.iter() {
                d.domain.unmap(span.0, span.1 - span.0 + 1);
            }
            for &(pfn, pages) in &runs[..n] {
                // SAFETY: by the invariant of `Inner` (and `pin_map`'s use of
                // this function) the first domain mapped these pages for a
                // mapping that owns their pins (device memory and reserved
                // pages have none, and `unpin` skips them); they are now
                // unmapped from every domain, and unpinned here once.
                unsafe { ffi::unpin(pfn, pages, dirty) };
            }
            ffi::cond_resched();
        }
    }

    /// Unmaps, unpins and refunds one mapping taken out of `dmas`.
    fn release_dma(&self, dma: Dma) {
        self.unmap_unpin(dma.iova, dma.write);
        dma.mm.refund(dma.locked);
    }

    /// Unmaps, unpins and refunds every mapping.
    fn release_all(&mut self) {
        while let Some(c) = self.dmas.cursor_front_mut() {
            let (_, node) = c.remove_current();
            let (_, dma) = node.to_key_value();
            self.ndma -= 1;
            self.release_dma(dma);
        }
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
    fn pin_map(&self, req: &MapRequest, mm: &Mm) -> Result<u64> {
        let size = req.iova.last - req.iova.start + 1;
        let mut done = 0;
        let mut locked = 0;
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
                );
                mm.refund(locked);
            }
            return Err(e);
        }
        Ok(locked)
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

    /// `group`'s reserved regions that DMA must avoid: all of them, but the
    /// software-MSI window once the container has its own aperture.
    fn reserved(&self, group: &Group) -> Result<KVec<(Range, u32)>> {
        let mut regions = group.regions()?;
        if self.aperture.is_some() {
            regions.retain(|(_, kind)| *kind != RESV_SW_MSI);
        }
        Ok(regions)
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
                        ndma: 0,
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
        let isolated = group.isolated(&mut why).inspect_err(|e| {
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

        let regions = group.regions()?;
        let sw_msi = regions
            .iter()
            .find(|(_, kind)| *kind == RESV_SW_MSI)
            .map(|(r, _)| *r);

        let mut inner = self.inner.lock();
        if inner.domains.iter().any(|d| d.groups.contains(&group)) {
            return Err(EINVAL);
        }
        if inner.aperture.is_none() {
            inner.aperture = default_aperture(sw_msi);
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
                let entry = Self::new_domain(&inner, group, inner.aperture)?;
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
        Ok(DomainEntry { domain, groups })
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
    pub(crate) fn map(&self, argsz: u32, flags: u32, vaddr: u64, iova: u64, size: u64) -> Result {
        let mut inner = self.inner.lock();
        let req = dma_args::check_map(argsz, flags, vaddr, iova, size, inner.min_pgsize())
            .map_err(refusal)?;
        if inner.domains.is_empty() {
            // Released, or its last group detached: VFIO answers EINVAL too.
            return Err(EINVAL);
        }
        inner.may_map(req.iova)?;
        let mm = Mm::current()?;
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL_ACCOUNT)?;
        let locked = inner.pin_map(&req, &mm)?;
        let dma = Dma {
            iova: req.iova,
            read: req.read,
            write: req.write,
            mm,
            locked,
        };
        // INVARIANT: `pin_map` mapped the pinned pages in every domain.
        inner.dmas.insert(reservation.into_node(req.iova.last, dma));
        inner.ndma += 1;
        Ok(())
    }

    /// `VFIO_IOMMU_UNMAP_DMA`; returns the bytes unmapped.
    pub(crate) fn unmap(&self, argsz: u32, flags: u32, iova: u64, size: u64) -> Result<u64> {
        let mut inner = self.inner.lock();
        let range =
            dma_args::check_unmap(argsz, flags, iova, size, inner.min_pgsize()).map_err(refusal)?;
        if self.v2 && flags & dma_args::UNMAP_FLAG_ALL == 0 {
            dma_args::check_no_bisect(range, inner.dma_at(range.start), inner.dma_at(range.last))
                .map_err(refusal)?;
        }
        let mut unmapped = 0;
        loop {
            let Some(c) = inner.dmas.cursor_lower_bound_mut(&range.start) else {
                break;
            };
            let d = c.current().1.iova;
            // Type1 (v1) unmaps nothing when the range starts inside a
            // mapping; v2 refused that above.
            if d.start > range.last || (!self.v2 && range.start > d.start) {
                break;
            }
            let (_, node) = c.remove_current();
            let (_, dma) = node.to_key_value();
            inner.ndma -= 1;
            unmapped += d.last - d.start + 1;
            inner.release_dma(dma);
        }
        Ok(unmapped)
    }

    /// How many more mappings the container takes.
    pub(crate) fn dma_avail(&self) -> usize {
        DMA_ENTRY_LIMIT - self.inner.lock().ndma
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
        write!(f, " mappings={}", inner.ndma)?;
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

/// The text before the first NUL of `buf`.
fn cstr_prefix(buf: &[u8]) -> &str {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}
