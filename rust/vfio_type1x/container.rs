// SPDX-License-Identifier: GPL-2.0

//! A VFIO container served by this backend: its IOMMU groups and the paging
//! domains they are attached to, each with an MSI cookie at the IOMMU's
//! software-MSI window so that ITS doorbells are mapped when vfio-pci sets
//! up MSI/MSI-X vectors.

use kernel::{
    alloc::KVVec,
    new_mutex,
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
        Mutex,
    }, //
};

use crate::{
    aperture::{
        check_aperture,
        ApertureContext,
        ApertureRefusal, //
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
        Mm, //
    },
    iova::{
        self,
        Range,
        Ranges, //
    },
};

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

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before a container
    // can exist.
    pub(crate) unsafe(uninit) static CONTAINERS: Mutex<Registry> = Registry {
        list: KVec::new(),
        next_id: 0,
    };
}

/// The containers alive now, for debugfs.
///
/// # Invariants
///
/// Each address in `list` is that of a live, pinned [`Container`]: it is
/// added once the container is pinned, and removed, under the lock, before
/// the container is dropped.
pub(crate) struct Registry {
    list: KVec<(u64, usize)>,
    next_id: u64,
}

/// A paging domain and the groups attached to it.
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
            self.domain.detach(*g);
        }
    }
}

/// One `MAP_DMA` mapping: pinned user pages mapped at an IOVA range in
/// every domain of the container.
struct Dma {
    /// The IOVA range.
    iova: Range,
    /// The device may read / write.
    read: bool,
    write: bool,
    /// Runs of physically contiguous pinned pages: (first pfn, pages), in
    /// IOVA order.
    runs: KVVec<(u64, u64)>,
    /// The process whose locked memory the pages are charged to.
    mm: Mm,
}

impl Dma {
    fn pages(&self) -> u64 {
        (self.iova.last - self.iova.start + 1) / PAGE
    }

    /// Maps every run into `domain`; on failure unmaps what it mapped.
    fn map_into(&self, domain: &Domain) -> Result {
        let mut at = self.iova.start;
        for &(pfn, n) in self.runs.iter() {
            if let Err(e) = domain.map(at, pfn * PAGE, n * PAGE, self.read, self.write) {
                if at > self.iova.start {
                    domain.unmap(self.iova.start, at - self.iova.start);
                }
                return Err(e);
            }
            at += n * PAGE;
        }
        Ok(())
    }

    /// Unmaps the mapping from every domain, unpins and refunds the pages.
    fn release(self, domains: &[DomainEntry]) {
        let size = self.iova.last - self.iova.start + 1;
        for d in domains {
            d.domain.unmap(self.iova.start, size);
        }
        for &(pfn, n) in self.runs.iter() {
            ffi::unpin(pfn, n, self.write);
        }
        self.mm.refund(self.pages());
    }
}

/// The fields of [`Container`] protected by its mutex.
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

/// Pins `npages` pages from `vaddr` and returns their contiguous runs.
fn pin_runs(vaddr: u64, write: bool, npages: u64) -> Result<KVVec<(u64, u64)>> {
    let n = usize::try_from(npages).map_err(|_| ENOMEM)?;
    let mut pfns = KVVec::<u64>::with_capacity(n, GFP_KERNEL)?;
    pfns.resize(n, 0, GFP_KERNEL)?;
    ffi::pin(vaddr, write, &mut pfns)?;
    let mut runs = KVVec::new();
    for run in dma_args::contiguous_runs(&pfns) {
        if let Err(e) = runs.push(run, GFP_KERNEL) {
            for (pfn, n) in dma_args::contiguous_runs(&pfns) {
                ffi::unpin(pfn, n, false);
            }
            return Err(e.into());
        }
    }
    Ok(runs)
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
    /// cookie) when it was the last group.
    fn remove_group(&mut self, di: usize, group: Group) {
        // PANIC: callers pass an index from `position()` or the last push.
        let d = &mut self.domains[di];
        if let Some(gi) = d.groups.iter().position(|g| *g == group) {
            d.domain.detach(group);
            // `gi` is in bounds: it was just found.
            let _ = d.groups.remove(gi);
        }
        if d.groups.is_empty() {
            drop(self.domains.remove(di));
        }
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

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::Invalid => EINVAL,
        Refusal::Overflow => EOVERFLOW,
    }
}

/// One container.
#[pin_data(PinnedDrop)]
pub(crate) struct Container {
    /// Its number in debugfs, set at registration.
    id: Atomic<u64>,
    /// `VFIO_TYPE1v2_IOMMU` semantics (else `VFIO_TYPE1_IOMMU`).
    pub(crate) v2: bool,
    /// Groups and domains.
    #[pin]
    inner: Mutex<Inner>,
}

impl Container {
    /// `open`: a container of IOMMU type `kind`.
    pub(crate) fn new(kind: usize) -> Result<Pin<KBox<Container>>> {
        let v2 = match kind {
            VFIO_TYPE1_IOMMU => false,
            VFIO_TYPE1V2_IOMMU => true,
            _ => return Err(EINVAL),
        };
        let c = KBox::pin_init(
            try_pin_init!(Container {
                id: Atomic::new(0),
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
            GFP_KERNEL,
        )?;
        {
            let mut reg = CONTAINERS.lock();
            let id = reg.next_id;
            let addr = core::ptr::from_ref::<Container>(&c) as usize;
            // INVARIANT: `c` is pinned and alive; `PinnedDrop` removes it.
            reg.list.push((id, addr), GFP_KERNEL)?;
            reg.next_id += 1;
            c.id.store(id, Relaxed);
        }
        SERVED.fetch_add(1, Relaxed);
        Ok(c)
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
        // A domain already serving another group of the same IOMMU takes
        // this one too; the IOMMU core refuses an incompatible attach.
        let mut joined = None;
        for (i, d) in inner.domains.iter_mut().enumerate() {
            if d.domain.attach(group).is_ok() {
                d.groups
                    .push(group, GFP_KERNEL)
                    .inspect_err(|_| d.domain.detach(group))?;
                joined = Some(i);
                break;
            }
        }
        let di = match joined {
            Some(i) => i,
            None => {
                let entry = Self::new_domain(&inner, group, inner.aperture)?;
                inner.domains.push(entry, GFP_KERNEL)?;
                inner.domains.len() - 1
            }
        };
        if let Err(e) = inner.refresh() {
            // Undo: VFIO does not detach a group whose attach failed.
            inner.remove_group(di, group);
            let _ = inner.refresh();
            return Err(e);
        }
        Ok(())
    }

    /// A new paging domain for `group`, with the MSI cookie and the
    /// container's mappings replayed, and `group` attached to it.
    fn new_domain(inner: &Inner, group: Group, msi: Option<Range>) -> Result<DomainEntry> {
        let domain = Self::prepared_domain(inner, group, msi)?;
        let mut groups = KVec::new();
        groups.push(group, GFP_KERNEL)?;
        domain.attach(group)?;
        // From here `DomainEntry::drop` detaches the group on error.
        Ok(DomainEntry { domain, groups })
    }

    /// A new paging domain for the IOMMU behind `group`, with the MSI cookie
    /// at the base of the aperture `msi` and the container's mappings
    /// replayed; nothing attached.
    fn prepared_domain(inner: &Inner, group: Group, msi: Option<Range>) -> Result<Domain> {
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
        for (_, dma) in inner.dmas.iter() {
            dma.map_into(&domain).inspect_err(|e| {
                pr_err!("group {id}: cannot replay the container's mappings: {e:?}\n")
            })?;
        }
        Ok(domain)
    }

    /// `VFIO_TYPE1X_SET_MSI_APERTURE`: moves the MSI aperture, giving every
    /// domain a fresh one with its cookie at the new base (a domain's cookie
    /// is set once), while no doorbell is mapped.
    pub(crate) fn set_aperture(&self, argsz: u32, flags: u32, iova: u64, size: u64) -> Result {
        let mut inner = self.inner.lock();
        let doorbell_mapped = !inner.doorbells()?.is_empty();
        let mut domains = KVec::new();
        let mut reserved = KVec::new();
        let mut doorbells = KVec::<u64>::new();
        for d in inner.domains.iter() {
            domains.push(d.domain.info().0.ok_or(EINVAL)?, GFP_KERNEL)?;
            for g in d.groups.iter() {
                for (r, kind) in g.regions()?.iter() {
                    if *kind != RESV_SW_MSI {
                        reserved.push(*r, GFP_KERNEL)?;
                    }
                }
                for db in g.doorbells()?.iter() {
                    if !doorbells.contains(db) {
                        doorbells.push(*db, GFP_KERNEL)?;
                    }
                }
            }
        }
        let overlaps = |r: Range| inner.overlaps(r);
        let cx = ApertureContext {
            pgsize: inner.min_pgsize(),
            doorbell_mapped,
            domains: &domains,
            reserved: &reserved,
            overlaps_dma: &overlaps,
            // CAST: a handful of MSI controllers.
            doorbell_pages: doorbells.len() as u64,
        };
        let new = check_aperture(argsz, flags, iova, size, &cx).map_err(|why| {
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused: {}\n", why.why());
            match why {
                ApertureRefusal::Malformed | ApertureRefusal::Unaligned => EINVAL,
                ApertureRefusal::Wraps => EOVERFLOW,
                ApertureRefusal::DoorbellMapped => EBUSY,
                ApertureRefusal::OutsideDomain => ERANGE,
                ApertureRefusal::Reserved => EADDRINUSE,
                ApertureRefusal::OverlapsDma => EEXIST,
                ApertureRefusal::TooSmall => ENOSPC,
            }
        })?;
        drop(domains);

        // Build every new domain first, then move the groups; a failure
        // before the move leaves the container as it was.
        let mut fresh = KVec::with_capacity(inner.domains.len(), GFP_KERNEL)?;
        for d in inner.domains.iter() {
            let first = *d.groups.first().ok_or(EINVAL)?;
            fresh.push(Self::prepared_domain(&inner, first, Some(new))?, GFP_KERNEL)?;
        }
        for (d, nd) in inner.domains.iter_mut().zip(fresh.into_iter()) {
            let mut moved = 0;
            let mut res = Ok(());
            for g in d.groups.iter() {
                d.domain.detach(*g);
                res = nd.attach(*g);
                if res.is_err() {
                    // Put this group back where it was.
                    let _ = d.domain.attach(*g);
                    break;
                }
                moved += 1;
            }
            if let Err(e) = res {
                for g in d.groups.iter().take(moved) {
                    nd.detach(*g);
                    let _ = d.domain.attach(*g);
                }
                pr_err!("MSI aperture: moving a group to its new domain failed: {e:?}\n");
                return Err(e);
            }
            // The old domain (and its cookie) is freed here.
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
    pub(crate) fn detach_group(&self, group: Group) {
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

    /// `VFIO_IOMMU_MAP_DMA` of an already parsed request.
    pub(crate) fn map(&self, argsz: u32, flags: u32, vaddr: u64, iova: u64, size: u64) -> Result {
        let req = {
            let inner = self.inner.lock();
            let req = dma_args::check_map(argsz, flags, vaddr, iova, size, inner.min_pgsize())
                .map_err(refusal)?;
            inner.may_map(req.iova)?;
            req
        };
        self.map_request(req)
    }

    /// Pins, charges and maps a request `may_map` accepted; the lock is
    /// dropped meanwhile, so the checks are repeated before inserting.
    fn map_request(&self, req: MapRequest) -> Result {
        let npages = (req.iova.last - req.iova.start + 1) / PAGE;
        // Pin and charge without the lock: it can fault and sleep long.
        let mm = Mm::current()?;
        mm.charge(npages)?;
        let pinned = pin_runs(req.vaddr, req.write, npages);
        let runs = match pinned {
            Ok(runs) => runs,
            Err(e) => {
                mm.refund(npages);
                return Err(e);
            }
        };
        let dma = Dma {
            iova: req.iova,
            read: req.read,
            write: req.write,
            runs,
            mm,
        };
        let reservation = match RBTreeNodeReservation::new(GFP_KERNEL) {
            Ok(r) => r,
            Err(e) => {
                dma.release(&[]);
                return Err(e.into());
            }
        };

        let mut inner = self.inner.lock();
        // Re-check under the lock: another thread may have mapped meanwhile.
        if let Err(e) = inner.may_map(req.iova) {
            drop(inner);
            dma.release(&[]);
            return Err(e);
        }
        for (i, d) in inner.domains.iter().enumerate() {
            if let Err(e) = dma.map_into(&d.domain) {
                dma.release(&inner.domains[..i]);
                return Err(e);
            }
        }
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
            dma.release(&inner.domains);
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
        {
            let id = self.id.load(Relaxed);
            let mut reg = CONTAINERS.lock();
            // INVARIANT: removed before the container goes away.
            reg.list.retain(|(i, _)| *i != id);
        }
        // Unmap, unpin and refund whatever the user left mapped.
        let mut inner = self.inner.lock();
        while let Some(c) = inner.dmas.cursor_front_mut() {
            let (_, node) = c.remove_current();
            let (_, dma) = node.to_key_value();
            inner.ndma -= 1;
            dma.release(&inner.domains);
        }
    }
}

/// How many containers are alive now, for debugfs `containers`.
pub(crate) fn open_count() -> usize {
    CONTAINERS.lock().list.len()
}

/// debugfs `apertures`: one line per container,
/// `container=<n> type=<type1|type1v2> groups=<g>[,<g>...] mappings=<n>
/// aperture=<iova>+<size>|none doorbells=<iova>-><pa>[,...]|none`.
pub(crate) fn show_apertures(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let reg = CONTAINERS.lock();
    for &(id, addr) in reg.list.iter() {
        // SAFETY: by the registry's invariant `addr` is a live container,
        // and it stays alive while we hold the registry lock.
        let c = unsafe { &*(addr as *const Container) };
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
