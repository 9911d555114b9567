// SPDX-License-Identifier: GPL-2.0

//! `MAP_DMA`, `UNMAP_DMA` and dirty page tracking: pinning user pages,
//! mapping them in every domain, and giving them back.

use super::*;

/// Pages pinned and mapped at a time by `MAP_DMA` (upstream pins in batches
/// of a page of `struct page` pointers too): the only per-call allocation,
/// whatever the size of the mapping.
const PIN_BATCH: u64 = 512;

/// One `MAP_DMA` mapping: pinned user pages (or device memory, for a BAR
/// mmap) mapped at an IOVA range in every domain of the container. As
/// upstream, nothing is kept per page: the pages are recorded only in the
/// domains' page tables, and unmapping walks the first domain to find what
/// to unpin.
pub(super) struct Dma {
    /// The IOVA range.
    pub(super) iova: Range,
    /// What the domains pinned and mapped for it, given back to them when
    /// it goes.
    pins: Pins,
    /// The process whose locked memory the pages are charged to.
    mm: Mm,
    /// How many pages are charged to it: upstream's count, which leaves
    /// out device memory and reserved pages.
    locked: u64,
    /// Invalidated by `VFIO_DMA_UNMAP_FLAG_VADDR`, until a
    /// `VFIO_DMA_MAP_FLAG_VADDR` gives the new address. The pages stay
    /// pinned and mapped meanwhile.
    vaddr_invalid: bool,
    /// While dirty tracking is on, the mapping's dirty bitmap as upstream
    /// keeps it (`dirty::state_words` long); `None` otherwise (an empty
    /// `KVVec` would still call the allocator when dropped).
    dirty: Option<KVVec<u64>>,
}

impl Dma {
    /// Its pins' token.
    pub(super) fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Gives the mapping its dirty bitmap, zeroed, as upstream's
    /// `vfio_dma_bitmap_alloc()` (`EINVAL` past `dirty::PAGES_MAX` pages).
    fn start_dirty(&mut self, pgshift: u32) -> Result {
        let pages = (self.iova.last - self.iova.start + 1) >> pgshift;
        if pages > dirty::PAGES_MAX {
            return Err(EINVAL);
        }
        // CAST: at most 2^25 words.
        self.dirty = Some(KVVec::from_elem(
            0u64,
            dirty::state_words(pages) as usize,
            GFP_KERNEL,
        )?);
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
        let state = self.dirty.as_deref_mut().unwrap_or_default();
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

/// Takes the cursor's mapping out of the tree if another follows it, and
/// returns it (`None` only if the tree broke its contract: a neighbour it
/// found and then did not have) with a cursor at that next mapping; `None`,
/// with nothing taken, if it is the last (then [`RBTree::remove`] of its key
/// takes it).
///
/// As `CursorMut::remove_current()`, which also walks to both neighbours:
/// the walk to the previous node of the first one climbs the whole height of
/// the tree, and an unmap in address order always takes the first. From the
/// next node the way back is short. One `rb_next()` and one `rb_prev()`,
/// where looking before moving would cost a second `rb_next()`.
///
/// Always inlined: out of line, every unmapped mapping paid a call, a return
/// and a copy of its [`Dma`] (`make profile PROFILE=unmap_4k`).
#[inline(always)]
fn take_before_next(c: CursorMut<'_, u64, Dma>) -> Option<(Option<Dma>, CursorMut<'_, u64, Dma>)> {
    let mut next = c.move_next()?;
    let node = next.remove_prev();
    Some((node.map(|n| n.to_key_value().1), next))
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
    pub(super) fn overlaps(&self, r: Range) -> bool {
        self.first_overlapping(r).is_some()
    }

    /// Unmaps, unpins and refunds one mapping taken out of `dmas`, and
    /// gives its entry back.
    #[inline]
    fn release_dma(&mut self, dma: Dma) {
        self.dma_avail += 1;
        if dma.vaddr_invalid {
            self.vaddr_invalid -= 1;
        }
        self.drop_dma(dma);
    }

    /// Unmaps, unpins and refunds a mapping `dmas` does not count.
    #[inline]
    fn drop_dma(&mut self, dma: Dma) {
        self.domains.unmap_unpin(dma.pins);
        dma.mm.refund_release(dma.locked);
    }

    /// Unmaps, unpins and refunds every mapping.
    pub(super) fn release_all(&mut self) {
        while let Some(c) = self.dmas.cursor_front_mut() {
            let key = *c.current().0;
            let dma = match take_before_next(c) {
                Some((dma, _)) => dma,
                None => self.dmas.remove(&key),
            };
            let Some(dma) = dma else {
                pr_err!("the mapping tree broke, mappings left pinned\n");
                return;
            };
            self.release_dma(dma);
            cond_resched();
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

    /// Pins the pages of `req` in batches of at most [`PIN_BATCH`] pages
    /// (device memory of a `VM_PFNMAP` mapping in runs instead, unpinned),
    /// charges each batch to `mm` and maps it into every domain as it goes,
    /// as upstream's `vfio_pin_pages_remote()` loop. All or nothing: on
    /// failure what was mapped is unmapped, unpinned and refunded. Returns
    /// the mapping's token and how many pages it charged.
    fn pin_map(&mut self, req: &MapRequest, mm: &Mm) -> Result<(Pins, u64)> {
        let size = req.iova.last - req.iova.start + 1;
        let mut pins = self.domains.pins(req.iova.start, req.read, req.write);
        let mut done = 0;
        let mut locked = 0;
        while done < size {
            let n = ((size - done) / PAGE).min(PIN_BATCH);
            // `check_map` made sure `vaddr + size` does not wrap.
            let res = ffi::get_pfns(req.vaddr + done, req.write, n).and_then(|p| {
                let charge = match &p {
                    Pfns::Pinned(pinned) => pinned.charged(),
                    Pfns::Device { .. } => 0,
                };
                mm.charge(charge)?;
                let len = p.len();
                if let Err(e) = self.domains.map(&mut pins, p) {
                    mm.refund(charge);
                    return Err(e);
                }
                locked += charge;
                Ok(len)
            });
            match res {
                Ok(len) => done += len * PAGE,
                Err(e) => {
                    self.domains.unmap_unpin(pins);
                    mm.refund(locked);
                    return Err(e);
                }
            }
            ffi::cond_resched();
        }
        Ok((pins, locked))
    }
}

impl Container {
    /// `VFIO_IOMMU_MAP_DMA` of an already parsed request: checks, charges,
    /// pins and maps with the container's mutex held throughout, as upstream
    /// holds `iommu->lock`, so a concurrent detach or release waits for it.
    /// With `VFIO_DMA_MAP_FLAG_VADDR`, gives an invalidated mapping its new
    /// user address instead.
    pub(crate) fn map(&self, m: &DmaMap) -> Result {
        let mut guard = self.inner.lock();
        let inner = guard.as_deref_mut().ok_or(EINVAL)?;
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
        let (pins, locked) = inner.pin_map(&req, &mm)?;
        let mut dma = Dma {
            iova: req.iova,
            pins,
            mm,
            locked,
            vaddr_invalid: false,
            dirty: None,
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
        let mut guard = self.inner.lock();
        let inner = guard.as_deref_mut().ok_or(EINVAL)?;
        let pgsize = inner.min_pgsize();
        let range = dma_args::check_unmap(argsz, flags, iova, size, pgsize).map_err(refusal)?;
        if let Some(b) = &bitmap {
            if !inner.dirty_tracking || b.pgsize != pgsize {
                return Err(EINVAL);
            }
        }
        // The first mapping ending at or after `range.start` (keyed by last
        // IOVA): the only one that can hold `range.start`, and the first to
        // remove. One lookup serves the v2 check and the removal of an
        // unmap of one mapping; upstream looks up both ends, then the first.
        let mut next = inner.dmas.cursor_lower_bound_mut(&range.start);
        if self.v2 && flags & dma_args::UNMAP_FLAG_ALL == 0 {
            let first = next.as_ref().map(|c| c.current().1.iova);
            let (at_start, at_last) = match first {
                None => (None, None),
                // It also ends at or after `range.last`: the first such
                // mapping, the only one that can hold `range.last`.
                Some(d) if d.last >= range.last => (
                    (d.start <= range.start).then_some(d),
                    (d.start <= range.last).then_some(d),
                ),
                Some(d) => {
                    drop(next);
                    let at_last = inner.dma_at(range.last);
                    next = inner.dmas.cursor_lower_bound_mut(&range.start);
                    ((d.start <= range.start).then_some(d), at_last)
                }
            };
            dma_args::check_no_bisect(range, at_start, at_last).map_err(refusal)?;
        }
        if flags & dma_args::UNMAP_FLAG_VADDR != 0 {
            drop(next);
            return inner.invalidate_vaddr(range, self.v2);
        }
        let mut unmapped = 0;
        while let Some(mut c) = next {
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
            let (dma, after) = match take_before_next(c) {
                Some((dma, after)) => (dma, Some(after)),
                None => (inner.dmas.remove(&d.last), None),
            };
            let Some(dma) = dma else {
                pr_err!("the mapping tree broke, unmap stopped\n");
                break;
            };
            // Whether another mapping follows in the range, read now rather
            // than with another lookup (upstream's `rb_next()`).
            let more = after.is_some_and(|n| n.current().1.iova.start <= range.last);
            unmapped += d.last - d.start + 1;
            inner.release_dma(dma);
            next = if more {
                // Between mappings, as upstream's unmap of each: an unmap of
                // one returns to user space (a preemption point) instead.
                cond_resched();
                inner.dmas.cursor_lower_bound_mut(&range.start)
            } else {
                None
            };
        }
        Ok(unmapped)
    }

    /// `VFIO_IOMMU_DIRTY_PAGES`.
    pub(crate) fn dirty_pages(&self, op: dirty::DirtyOp, get: Option<GetBitmap>) -> Result {
        let mut guard = self.inner.lock();
        let inner = guard.as_deref_mut().ok_or(EINVAL)?;
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
                            d.dirty = None;
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
                        d.dirty = None;
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
