// SPDX-License-Identifier: GPL-2.0

//! IOVA range bookkeeping: the usable IOVA ranges a container reports in
//! `VFIO_IOMMU_GET_INFO`, and the page sizes it offers.
//!
//! Pure logic, free of kernel dependencies and allocation: the module
//! includes this file and so does the host test crate (`tests/host`).

/// An inclusive IOVA range, `start..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First IOVA.
    pub start: u64,
    /// Last IOVA (inclusive), so that a range can end at `u64::MAX`.
    pub last: u64,
}

impl Range {
    /// `start..=last`; `None` when `last < start`.
    pub fn new(start: u64, last: u64) -> Option<Range> {
        (start <= last).then_some(Range { start, last })
    }

    /// Do the two ranges share an IOVA?
    pub fn overlaps(&self, o: &Range) -> bool {
        self.start <= o.last && o.start <= self.last
    }
}

/// How many disjoint ranges a [`Ranges`] holds at most.
pub const MAX_RANGES: usize = 64;

/// The list is full: excluding a hole would split a range once too often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A sorted list of disjoint ranges with a fixed capacity.
///
/// # Invariants
///
/// `r[..n]` is sorted by `start` and its ranges are disjoint.
///
/// Not `Clone`: at 1 KiB, it is read where it lives ([`Ranges::as_slice`]).
#[derive(Debug)]
pub struct Ranges {
    r: [Range; MAX_RANGES],
    n: usize,
}

impl Ranges {
    /// A list holding `whole` alone.
    pub fn new(whole: Range) -> Ranges {
        // INVARIANT: one range is sorted and disjoint.
        Ranges {
            r: [whole; MAX_RANGES],
            n: 1,
        }
    }

    /// The ranges, sorted.
    pub fn as_slice(&self) -> &[Range] {
        &self.r[..self.n]
    }

    /// Clips every range to `window`, dropping those outside it.
    pub fn intersect(&mut self, window: Range) {
        let mut out = 0;
        for i in 0..self.n {
            let r = self.r[i];
            if let Some(c) = Range::new(r.start.max(window.start), r.last.min(window.last)) {
                self.r[out] = c;
                out += 1;
            }
        }
        // INVARIANT: clipping keeps the order and disjointness.
        self.n = out;
    }

    /// Removes `hole` from the list, splitting a range it falls inside.
    ///
    /// # Errors
    ///
    /// [`Full`] when a split would exceed [`MAX_RANGES`]; the list is then
    /// unchanged.
    pub fn exclude(&mut self, hole: Range) -> Result<(), Full> {
        // The ranges `hole` touches are `r[a..b]` (sorted and disjoint).
        let a = self.as_slice().partition_point(|r| r.last < hole.start);
        let b = self.as_slice().partition_point(|r| r.start <= hole.last);
        if a >= b {
            return Ok(());
        }
        // What is left of them: the head of the first, the tail of the last.
        let head = (self.r[a].start < hole.start).then(|| Range {
            start: self.r[a].start,
            last: hole.start - 1,
        });
        let tail = (self.r[b - 1].last > hole.last).then(|| Range {
            start: hole.last + 1,
            last: self.r[b - 1].last,
        });
        let pieces = usize::from(head.is_some()) + usize::from(tail.is_some());
        let n = self.n - (b - a) + pieces;
        if n > MAX_RANGES {
            return Err(Full);
        }
        // In place: the ranges after the hole move to just after the pieces.
        self.r.copy_within(b..self.n, a + pieces);
        for (i, p) in head.into_iter().chain(tail).enumerate() {
            self.r[a + i] = p;
        }
        // INVARIANT: the pieces of sorted, disjoint ranges minus one hole are
        // still sorted and disjoint.
        self.n = n;
        Ok(())
    }
}

/// The page sizes a container offers: those every domain supports, with
/// sizes below the CPU page size folded into it (user memory is pinned in
/// CPU pages), as `vfio_iommu_type1` does.
///
/// Returns 0 when the domains share no size at or above `page_size`.
pub fn effective_pgsizes(domains: impl Iterator<Item = u64>, page_size: u64) -> u64 {
    let mut bitmap = u64::MAX;
    for d in domains {
        bitmap &= d;
    }
    if bitmap == u64::MAX {
        return 0;
    }
    let below = bitmap & (page_size - 1);
    if below != 0 {
        bitmap = (bitmap & !(page_size - 1)) | page_size;
    }
    bitmap
}
