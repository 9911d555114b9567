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
#[derive(Clone, Debug)]
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
        let mut out = [hole; MAX_RANGES];
        let mut n = 0;
        for r in self.as_slice() {
            if !r.overlaps(&hole) {
                *out.get_mut(n).ok_or(Full)? = *r;
                n += 1;
                continue;
            }
            if r.start < hole.start {
                *out.get_mut(n).ok_or(Full)? = Range {
                    start: r.start,
                    last: hole.start - 1,
                };
                n += 1;
            }
            if r.last > hole.last {
                *out.get_mut(n).ok_or(Full)? = Range {
                    start: hole.last + 1,
                    last: r.last,
                };
                n += 1;
            }
        }
        // INVARIANT: the pieces of sorted, disjoint ranges minus one hole are
        // still sorted and disjoint.
        self.r = out;
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
