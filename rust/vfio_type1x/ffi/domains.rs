// SPDX-License-Identifier: GPL-2.0

//! A container's paging domains together with the user pages pinned for
//! what they map: the one owner of both, so that no page is unpinned while
//! a domain still maps it, whatever its caller does.
//!
//! As upstream, nothing is kept per page: the first domain's page table
//! records the pins, and each mapping holds a [`Pins`] token saying what its
//! IOVA range holds. Pages are mapped and unpinned only here; a new domain
//! joins only as a [`Replica`] of the current ones, checked to have missed
//! no mapping and no unpin.
//!
//! What this relies on from the IOMMU core: `iommu_map()` refuses to map
//! over a present mapping (io-pgtable-arm's `-EEXIST`, the generic page
//! table's `-EADDRINUSE`, which its KUnit test asserts), so two tokens'
//! ranges never share a page of the first domain.

use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
};

use super::{
    cond_resched,
    unpin,
    Attached,
    Domain,
    Group,
    Pfns, //
};
use crate::iova::Range;

/// CAST: `PAGE_SIZE` fits in u64.
const PAGE: u64 = kernel::page::PAGE_SIZE as u64;

/// Contiguous runs unmapped from every domain with one `iommu_unmap` (one
/// IOTLB sync) before they are unpinned: upstream's
/// `VFIO_IOMMU_TLB_SYNC_MAX`.
const UNPIN_BATCH: usize = 512;

/// The first batch, on the stack, and every batch when a larger buffer
/// cannot be allocated (unmapping must not fail). Four runs, zeroed inline:
/// at 8 or 16 the compiler calls `memset()` for every unmap.
const UNPIN_BATCH_MIN: usize = 4;

/// Gives every [`Domains`] its own number, which its tokens carry.
static NEXT_ID: Atomic<u64> = Atomic::new(0);

/// What one mapping pinned and mapped, at one IOVA range, in the domains of
/// one [`Domains`]: handed back once, to [`Domains::unmap_unpin`]. Neither
/// `Copy` nor `Clone`. Dropped instead, it leaves its pages pinned (and
/// says so).
///
/// # Invariants
///
/// Every page the first domain of the set numbered `owner` maps in
/// `[iova, iova + len)` holds one pin taken for this token, unless it is a
/// reserved page or device memory, which hold none; then `has_rsvd`. No
/// other live token of that set covers any of these IOVAs.
pub(crate) struct Pins {
    iova: u64,
    len: u64,
    read: bool,
    write: bool,
    has_rsvd: bool,
    owner: u64,
}

impl Pins {
    /// The IOVA range, if not empty.
    pub(crate) fn range(&self) -> Option<Range> {
        // No overflow: `Domains::map` checked that the range ends in u64.
        (self.len != 0).then(|| Range {
            start: self.iova,
            last: self.iova + (self.len - 1),
        })
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if self.len != 0 {
            pr_err!(
                "{:#x}+{:#x}: dropped without unmapping, its pages stay pinned\n",
                self.iova,
                self.len
            );
        }
    }
}

/// A new paging domain with every mapping of a [`Domains`] replayed into it
/// and nothing attached, for [`Domains::add`] or [`Domains::rebuild`].
///
/// # Invariants
///
/// `domain` maps, at the same IOVAs, what the first domain of the set
/// numbered `owner` mapped for every live token when that set had changed
/// `changes` times.
pub(crate) struct Replica {
    domain: Domain,
    owner: u64,
    changes: u64,
}

/// The paging domains of a container, with the groups attached to each,
/// and the pins of what they map.
///
/// # Invariants
///
/// - Every page a domain of `list` maps outside its MSI cookie's doorbells
///   is mapped, at the same IOVA, by the first domain, and belongs to a live
///   token's range (see [`Pins`]).
/// - `live` tokens numbered `id` are alive; `changes` counts the tokens
///   made, grown and given back so far.
pub(crate) struct Domains {
    list: KVec<Attached>,
    id: u64,
    live: u64,
    changes: u64,
}

impl Domains {
    /// No domain.
    pub(crate) fn new() -> Domains {
        Domains {
            list: KVec::new(),
            id: NEXT_ID.fetch_add(1, Relaxed),
            live: 0,
            changes: 0,
        }
    }

    /// The domains, first first.
    pub(crate) fn iter(&self) -> core::slice::Iter<'_, Attached> {
        self.list.iter()
    }

    /// Domain `di`.
    pub(crate) fn get(&self, di: usize) -> Option<&Attached> {
        self.list.get(di)
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// None?
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The index of the domain `group` is attached to.
    pub(crate) fn position(&self, group: &Group) -> Option<usize> {
        self.list.iter().position(|d| d.groups().contains(group))
    }

    /// Attaches `group` to the first domain whose IOMMU takes it; its index,
    /// or `Ok(Err(group))` when none does.
    pub(crate) fn join(&mut self, group: Group) -> Result<Result<usize, Group>> {
        let mut group = group;
        for (i, d) in self.list.iter_mut().enumerate() {
            match d.attach(group)? {
                Ok(()) => return Ok(Ok(i)),
                Err(g) => group = g,
            }
        }
        Ok(Err(group))
    }

    /// Detaches `group` (the last group attached, if `None`) from domain
    /// `di`; the group, if it was attached there.
    pub(crate) fn detach(&mut self, di: usize, group: Option<&Group>) -> Option<Group> {
        self.list.get_mut(di)?.detach(group)
    }

    /// Frees domain `di` (detaching what is left of its groups). The others
    /// map every mapping too; with the last one goes the record of the pins,
    /// so the caller unmaps and unpins every mapping first.
    pub(crate) fn remove(&mut self, di: usize) {
        if di < self.list.len() {
            drop(self.list.remove(di));
        }
    }

    /// Frees every domain (see [`Domains::remove`]).
    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }

    /// An empty token for a mapping at `iova`, which [`Domains::map`] grows.
    pub(crate) fn pins(&mut self, iova: u64, read: bool, write: bool) -> Pins {
        self.live += 1;
        self.changes += 1;
        // INVARIANT: the range is empty; counted in `live` and `changes`.
        Pins {
            iova,
            len: 0,
            read,
            write,
            has_rsvd: false,
            owner: self.id,
        }
    }

    /// Maps `pfns` at the end of `pins`'s range in every domain, and grows
    /// the token by them: the pins move into it. On failure nothing of
    /// `pfns` stays mapped, and dropping `pfns` unpins them.
    pub(crate) fn map(&mut self, pins: &mut Pins, pfns: Pfns) -> Result {
        if pins.owner != self.id || self.list.is_empty() {
            return Err(EINVAL);
        }
        let iova = pins.iova.checked_add(pins.len).ok_or(EINVAL)?;
        let bytes = pfns.len().checked_mul(PAGE).ok_or(EINVAL)?;
        // The last byte is in u64 (the range may end at its top).
        iova.checked_add(bytes - 1).ok_or(EINVAL)?;
        self.changes += 1;
        for (i, d) in self.list.iter().enumerate() {
            let mut at = iova;
            for (pfn, n) in pfns.runs() {
                // SAFETY: the pages are pinned by `pfns` (or are device
                // memory of the caller's mapping, or reserved pages, neither
                // ever freed to the page allocator). If mapping fails they
                // are unmapped below before `pfns` unpins them; otherwise
                // the token takes the pins, and only `unmap_unpin` gives
                // them back, after unmapping them from every domain.
                let r = unsafe {
                    d.domain()
                        .map(at, pfn * PAGE, n * PAGE, pins.read, pins.write)
                };
                if let Err(e) = r {
                    if at > iova {
                        d.domain().unmap(iova, at - iova);
                    }
                    for e in &self.list[..i] {
                        e.domain().unmap(iova, bytes);
                    }
                    return Err(e);
                }
                at += n * PAGE;
            }
        }
        // INVARIANT: mapped in every domain, at the token's end (an IOVA no
        // other token covers: the first domain refused a present mapping).
        pins.len += bytes;
        match pfns {
            Pfns::Pinned(p) => {
                pins.has_rsvd |= p.charged() != p.len();
                p.keep();
            }
            Pfns::Device { .. } => pins.has_rsvd = true,
        }
        Ok(())
    }

    /// Unmaps `pins`'s range from every domain and unpins the pages the
    /// first domain mapped there (dirtying them if the device could write
    /// them, as upstream), in batches.
    pub(crate) fn unmap_unpin(&mut self, mut pins: Pins) {
        if pins.owner != self.id {
            pr_err!(
                "{:#x}: a token of another container, not unmapped\n",
                pins.iova
            );
            return;
        }
        self.live = self.live.saturating_sub(1);
        self.changes += 1;
        let range = pins.range();
        let (has_rsvd, dirty) = (pins.has_rsvd, pins.write);
        // The pages go back here (or stay pinned, with no domain left).
        pins.len = 0;
        drop(pins);
        let (Some(r), Some(first)) = (range, self.list.first()) else {
            return;
        };
        // The first batch's runs go on the stack: an unmap of a few runs
        // (a page, a huge page, a THP) allocates nothing. With more, the
        // following batches are larger, no more runs than pages.
        let pages = ((r.last - r.start) / PAGE).saturating_add(1);
        let want = usize::try_from(pages).map_or(UNPIN_BATCH, |p| p.min(UNPIN_BATCH));
        let mut small = [(0u64, 0u64); UNPIN_BATCH_MIN];
        let mut large: Option<KVec<(u64, u64)>> = None;
        let mut it = mapped_runs(first.domain(), r).peekable();
        let mut more = false;
        while let Some(&(start, _, _)) = it.peek() {
            // Between batches: an unmap of one batch returns to its caller,
            // which yields between mappings (or to user space) instead.
            if more {
                cond_resched();
                if large.is_none() && want > UNPIN_BATCH_MIN {
                    // If that fails, the batches stay small.
                    large = KVec::from_elem((0u64, 0u64), want, GFP_KERNEL).ok();
                }
            }
            more = true;
            let runs: &mut [(u64, u64)] = match &mut large {
                Some(v) => v,
                None => &mut small,
            };
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
            for d in self.list.iter() {
                d.domain().unmap(span.0, span.1 - span.0 + 1);
            }
            for &(pfn, pages) in &runs[..n] {
                // SAFETY: by the type invariants the first domain mapped
                // these pages for the token just consumed, which held their
                // pins (reserved pages and device memory have none; `unpin`
                // tests for them unless the token says there are none); no
                // domain maps them any more, and the token is gone.
                unsafe { unpin(pfn, pages, dirty, has_rsvd) };
            }
        }
    }

    /// Replays every mapping into `domain`, as the first domain maps it
    /// (upstream's replay); `all` is every live token of this set. On
    /// failure `domain` is freed, which drops what was replayed.
    pub(crate) fn replica<'a>(
        &self,
        domain: Domain,
        all: impl Iterator<Item = &'a Pins>,
    ) -> Result<Replica> {
        let mut n = 0;
        if let Some(first) = self.list.first() {
            for pins in all {
                if pins.owner != self.id {
                    return Err(EINVAL);
                }
                n += 1;
                let Some(r) = pins.range() else { continue };
                for (iova, pa, len) in mapped_runs(first.domain(), r) {
                    // SAFETY: the pages are pinned for `pins` (or are device
                    // memory or reserved, never freed) and stay so while the
                    // first domain maps them: unpinning counts as a change,
                    // and a replica made before a change never joins.
                    // `domain` has nothing attached until it joins.
                    unsafe { domain.map(iova, pa, len, pins.read, pins.write) }?;
                    cond_resched();
                }
            }
        }
        // A token left out would leave its range unmapped in `domain`, where
        // another could map once `domain` is first. (A token given twice
        // fails above: its range is mapped already.)
        if n != self.live {
            return Err(EINVAL);
        }
        // INVARIANT: every live token replayed, as the set is now.
        Ok(Replica {
            domain,
            owner: self.id,
            changes: self.changes,
        })
    }

    /// Is `r` a replica of the set as it is now?
    fn current(&self, r: &Replica) -> bool {
        r.owner == self.id && r.changes == self.changes
    }

    /// Adds the replica `r` as a domain with `group` attached; its index.
    /// The IOMMU's cache-coherency enforcement is turned on after the
    /// attach, as upstream.
    pub(crate) fn add(&mut self, r: Replica, group: Group) -> Result<usize> {
        if !self.current(&r) {
            return Err(EAGAIN);
        }
        self.list.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let attached = Attached::new(r.domain, group)?;
        self.list
            .push_within_capacity(attached)
            .map_err(|_| ENOMEM)?;
        Ok(self.list.len() - 1)
    }

    /// Moves every domain's groups to its replica in `fresh` (one per
    /// domain, in order), then runs `check` on the old domains, which no
    /// group uses any more; all or nothing: when a move or the check fails,
    /// the groups go back and `fresh` is freed. The old domains are freed on
    /// success.
    pub(crate) fn rebuild(
        &mut self,
        fresh: KVec<Replica>,
        check: impl FnOnce(&[Domain]) -> Result,
    ) -> Result {
        if fresh.len() != self.list.len() || !fresh.iter().all(|r| self.current(r)) {
            return Err(EAGAIN);
        }
        let mut old = KVec::with_capacity(self.list.len(), GFP_KERNEL)?;
        let mut res = Ok(());
        for (d, r) in self.list.iter_mut().zip(fresh) {
            match d.move_to(r.domain) {
                Ok(o) => {
                    // Room was reserved for every domain.
                    let _ = old.push_within_capacity(o);
                }
                Err((e, _)) => {
                    res = Err(e);
                    break;
                }
            }
        }
        if res.is_ok() {
            res = check(&old);
        }
        if let Err(e) = res {
            for (d, o) in self.list.iter_mut().zip(old) {
                if d.move_to(o).is_err() {
                    pr_err!("MSI aperture: a group could not return to its domain\n");
                }
            }
            return Err(e);
        }
        // The old domains (and their cookies) are freed here.
        Ok(())
    }
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
