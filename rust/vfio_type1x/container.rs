// SPDX-License-Identifier: GPL-2.0

//! A VFIO container served by this backend: its IOMMU groups and the paging
//! domains they are attached to, each with an MSI cookie at the container's
//! MSI aperture so that ITS doorbells are mapped when vfio-pci sets up
//! MSI/MSI-X vectors.
//!
//! Lifetime: VFIO reads a container's `iommu_data` and calls our ioctl
//! without a lock, while the last group's detach may call `release` on
//! another thread (upstream's own backend has that use-after-free). So the
//! [`Container`] VFIO holds stays allocated until module exit, in the
//! registry: `release` takes its state ([`Inner`]: mappings, domains,
//! ranges) out from under its mutex and frees it, and a call that comes
//! later finds none and fails with `EINVAL`, as VFIO answers without a
//! backend. What stays per closed container is the small shell (its number,
//! its type and the mutex); an ioctl takes no reference, only the mutex, as
//! upstream's takes `iommu->lock`.
//!
//! Locks, in the order they nest: [`CONTAINERS`] (the registry), then a
//! container's `inner` mutex, then what the IOMMU core and mm take inside
//! (group mutexes, `mmap_lock` while pinning). `MAP_DMA` holds `inner`
//! across pinning and mapping, as upstream's `iommu->lock`.
//!
//! This file holds the container, its domains and groups, and the MSI
//! aperture; `container/dma.rs` the mappings (`MAP_DMA`, `UNMAP_DMA`, dirty
//! tracking), `container/registry.rs` the registry and its debugfs views,
//! `container/isolation.rs` the isolation verdict at attach.

use kernel::{
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{
        CursorMut,
        RBTree,
        RBTreeNodeReservation, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Mutex, //
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
        cond_resched,
        Attached,
        Domain,
        Domains,
        Group,
        Mm,
        Pfns,
        Pins,
        Replica, //
    },
    iova::{
        self,
        Range,
        Ranges, //
    },
    uapi::DmaMap,
};

mod dma;
mod isolation;
mod registry;

use dma::Dma;
pub(crate) use dma::{
    dirty_errno,
    GetBitmap,
    UserBitmap, //
};
use isolation::{
    cstr_prefix,
    group_isolated, //
};
pub(crate) use registry::{
    drop_containers,
    open_count,
    show_apertures,
    CONTAINERS, //
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

/// The fields of [`Container`] protected by its mutex.
///
/// # Invariants
///
/// Every [`Dma`] in `dmas` holds the token of the pages `domains` pinned and
/// mapped for it, charged to its `mm`; those are all of `domains`' live
/// tokens. `dmas` is empty when `domains` is.
struct Inner {
    /// The domains, their groups, and the pins of what they map: the only
    /// place pages are mapped and unpinned (`ffi/domains.rs`).
    domains: Domains,
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

impl Inner {
    /// Detaches `group` from domain `di` and frees the domain (and its MSI
    /// cookie) when it was the last group. The last domain takes every
    /// mapping with it, as upstream's last detach does.
    fn remove_group(&mut self, di: usize, group: &Group) {
        self.domains.detach(di, Some(group));
        if self.domains.get(di).is_some_and(|d| d.groups().is_empty()) {
            if self.domains.len() == 1 {
                self.release_all();
            }
            // INVARIANT: the other domains map every `Dma` too; with the
            // last one, `release_all` emptied `dmas`.
            self.domains.remove(di);
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
            iova::effective_pgsizes(self.domains.iter().map(|d| d.domain().info().1), PAGE);
        let mut ranges = Ranges::new(Range {
            start: 0,
            last: u64::MAX,
        });
        for d in self.domains.iter() {
            ranges.intersect(d.domain().info().0.ok_or(EINVAL)?);
            for g in d.groups().iter() {
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
        for g in self.domains.iter().flat_map(|d| d.groups().iter()) {
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
        let groups = self.domains.iter().flat_map(|d| d.groups().iter());
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

    /// The doorbell pages mapped in the aperture now (see [`doorbells`]).
    fn doorbells(&self) -> Result<KVec<(u64, u64)>> {
        doorbells(self.domains.iter().map(Attached::domain), self.aperture)
    }
}

/// The doorbell pages `domains` map in `aperture`, `(iova, phys)`, in IOVA
/// order. The MSI cookie hands out pages upwards from the base, so the scan
/// stops at the first unmapped page.
fn doorbells<'a>(
    domains: impl Iterator<Item = &'a Domain> + Clone,
    aperture: Option<Range>,
) -> Result<KVec<(u64, u64)>> {
    let mut out = KVec::new();
    let Some(ap) = aperture else {
        return Ok(out);
    };
    let mut iova = ap.start;
    while iova <= ap.last {
        let mut found = false;
        for d in domains.clone() {
            if let Some(pa) = d.iova_to_phys(iova) {
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

/// What `VFIO_IOMMU_GET_INFO` reports of a container (see [`Container::info`]).
pub(crate) struct Info<'a> {
    /// The page sizes offered.
    pub(crate) pgsizes: u64,
    /// The usable IOVA ranges: the intersection of the domains' apertures
    /// minus every group's reserved regions (which include the MSI window).
    pub(crate) usable: &'a [Range],
    /// How many more mappings it takes.
    pub(crate) dma_avail: usize,
    /// The MSI aperture and the doorbells mapped in it (IOVA, physical page).
    pub(crate) aperture: Option<(Range, KVec<(u64, u64)>)>,
}

/// One container: what VFIO's `iommu_data` points to, from `open` to
/// module exit (see the module's lifetime notes above).
#[pin_data(PinnedDrop)]
pub(crate) struct Container {
    /// Its number in debugfs.
    id: u64,
    /// `VFIO_TYPE1v2_IOMMU` semantics (else `VFIO_TYPE1_IOMMU`).
    pub(crate) v2: bool,
    /// Groups, domains and mappings, until `release` takes them.
    #[pin]
    inner: Mutex<Option<KBox<Inner>>>,
}

impl Container {
    /// A container of IOMMU type `kind`, numbered `id` in debugfs.
    fn new(kind: usize, id: u64) -> Result<Pin<KBox<Container>>> {
        let v2 = match kind {
            VFIO_TYPE1_IOMMU => false,
            VFIO_TYPE1V2_IOMMU => true,
            _ => return Err(EINVAL),
        };
        let inner = KBox::new(
            Inner {
                domains: Domains::new(),
                dmas: RBTree::new(),
                usable: Ranges::new(Range {
                    start: 0,
                    last: u64::MAX,
                }),
                pgsizes: 0,
                dma_avail: crate::module_parameters::dma_entry_limit.value() as usize,
                vaddr_invalid: 0,
                dirty_tracking: false,
                aperture: None,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        KBox::pin_init(
            try_pin_init!(Container {
                id,
                v2,
                inner <- new_mutex!(Some(inner), "Container::inner"),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// Not released yet?
    pub(crate) fn is_live(&self) -> bool {
        self.inner.lock().is_some()
    }

    /// `release`: VFIO is done with the container (its last group
    /// detached). Waits for a running call, takes the state, then unmaps,
    /// unpins and frees it; later calls find none.
    pub(crate) fn release(&self) {
        let inner = self.inner.lock().take();
        if let Some(mut inner) = inner {
            inner.release_all();
            inner.domains.clear();
        }
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

        let mut guard = self.inner.lock();
        let inner = guard.as_deref_mut().ok_or(EINVAL)?;
        // Attaching may need to pin (upstream's replay): not while a user
        // address is invalid.
        if inner.vaddr_invalid > 0 {
            pr_err!("group {id}: cannot attach while a mapping's user address is invalidated (VFIO_DMA_UNMAP_FLAG_VADDR)\n");
            return Err(EBUSY);
        }
        if inner.domains.iter().any(|d| d.groups().contains(&group)) {
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
        let di = match inner.domains.join(group)? {
            Ok(di) => di,
            Err(group) => {
                let msi = if hw_msi { None } else { inner.aperture };
                let replica = Self::prepared_domain(&inner, &group, msi)?;
                inner.domains.add(replica, group)?
            }
        };
        if let Err(e) = inner.refresh() {
            // Undo: VFIO does not detach a group whose attach failed.
            inner.domains.detach(di, None);
            if inner.domains.get(di).is_some_and(|d| d.groups().is_empty()) {
                // A domain made for this group: no mapping was added since.
                inner.domains.remove(di);
            }
            let _ = inner.refresh();
            return Err(e);
        }
        Ok(())
    }

    /// A new paging domain for the IOMMU behind `group`, with the MSI cookie
    /// at the base of the aperture `msi` and the container's mappings
    /// replayed; nothing attached.
    fn prepared_domain(inner: &Inner, group: &Group, msi: Option<Range>) -> Result<Replica> {
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
        let all = inner.dmas.iter().map(|(_, d)| d.pins());
        inner
            .domains
            .replica(domain, all)
            .inspect_err(|e| pr_err!("group {id}: cannot replay the container's mappings: {e:?}\n"))
    }

    /// `VFIO_TYPE1X_SET_MSI_APERTURE`: moves the MSI aperture, giving every
    /// domain a fresh one with its cookie at the new base (a domain's cookie
    /// is set once), while no doorbell is mapped.
    pub(crate) fn set_aperture(&self, argsz: u32, flags: u32, iova: u64, size: u64) -> Result {
        let mut guard = self.inner.lock();
        let inner = guard.as_deref_mut().ok_or(EINVAL)?;
        if inner.hw_msi()? {
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused: the IOMMU has a hardware MSI region, MSIs are not translated\n");
            return Err(EOPNOTSUPP);
        }
        let doorbell_mapped = !inner.doorbells()?.is_empty();
        let mut domains = KVec::new();
        for d in inner.domains.iter() {
            domains.push(d.domain().info().0.ok_or(EINVAL)?, GFP_KERNEL)?;
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
            let first = d.groups().first().ok_or(EINVAL)?;
            fresh.push(Self::prepared_domain(&inner, first, Some(new))?, GFP_KERNEL)?;
        }
        // Move every group, all or nothing. vfio-pci maps a doorbell under
        // the group's mutex, not ours: a vector set up since the check above
        // got its doorbell in an old domain, at an old-aperture address its
        // MSI message now carries. Then the old domains stay. (Not knowing
        // counts as a failure too: the groups go back.)
        let old_ap = inner.aperture;
        let res = inner
            .domains
            .rebuild(fresh, |old| match doorbells(old.iter(), old_ap) {
                Ok(d) if d.is_empty() => Ok(()),
                Ok(_) => Err(EBUSY),
                Err(e) => Err(e),
            });
        if let Err(e) = res {
            pr_err!("MSI aperture {iova:#x}+{size:#x} refused ({e:?}): a group could not move, or a vector was set up meanwhile; nothing changed\n");
            return Err(e);
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

    /// `detach_group`.
    pub(crate) fn detach_group(&self, group: &Group) {
        let mut guard = self.inner.lock();
        let Some(inner) = guard.as_deref_mut() else {
            return;
        };
        let Some(di) = inner.domains.position(group) else {
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

    /// Do all its domains enforce cache coherency (`VFIO_DMA_CC_IOMMU`)?
    pub(crate) fn cache_coherent(&self) -> bool {
        let guard = self.inner.lock();
        guard
            .as_deref()
            .is_some_and(|i| i.domains.iter().all(|d| d.coherent()))
    }

    /// Calls `f` with what `VFIO_IOMMU_GET_INFO` reports, read in one hold
    /// of the mutex.
    pub(crate) fn info<R>(&self, f: impl FnOnce(&Info<'_>) -> Result<R>) -> Result<R> {
        let guard = self.inner.lock();
        let inner = guard.as_deref().ok_or(EINVAL)?;
        let aperture = match inner.aperture {
            Some(ap) => Some((ap, inner.doorbells()?)),
            None => None,
        };
        f(&Info {
            pgsizes: inner.pgsizes,
            usable: inner.usable.as_slice(),
            dma_avail: inner.dma_avail,
            aperture,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Container {
    fn drop(self: Pin<&mut Self>) {
        // `release` emptied it; a container dropped without a release (at
        // module exit, after VFIO released every container) has nothing
        // mapped either. Nothing to do but make sure.
        if let Some(inner) = self.inner.lock().as_deref_mut() {
            inner.release_all();
        }
    }
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
