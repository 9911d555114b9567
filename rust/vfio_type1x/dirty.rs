// SPDX-License-Identifier: GPL-2.0

//! Dirty page tracking for live migration (`VFIO_IOMMU_DIRTY_PAGES`,
//! `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`): the argument checks and the
//! bitmap words, as `vfio_iommu_type1` validates and writes them
//! (`vfio_iommu_type1_dirty_pages`, `verify_bitmap_size`,
//! `update_user_bitmap`).
//!
//! A device behind an IOMMU without dirty tracking may write any page it
//! has mapped, so upstream reports every page of every mapping a request
//! covers as dirty, on every request, and so does this backend, through
//! the same per-mapping bitmap (see [`Report`]).
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use crate::dma_args::Refusal;

/// `VFIO_IOMMU_DIRTY_PAGES_FLAG_START`.
pub const FLAG_START: u32 = 1 << 0;
/// `VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP`.
pub const FLAG_STOP: u32 = 1 << 1;
/// `VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP`.
pub const FLAG_GET_BITMAP: u32 = 1 << 2;

/// `offsetofend(struct vfio_iommu_type1_dirty_bitmap, flags)`.
pub const DIRTY_MINSZ: u32 = 8;
/// `sizeof(struct vfio_iommu_type1_dirty_bitmap_get)`: iova, size and a
/// `struct vfio_bitmap` (pgsize, size, data).
pub const GET_SIZE: u32 = 40;
/// `sizeof(struct vfio_bitmap)`.
pub const BITMAP_SIZE: u32 = 24;

/// `DIRTY_BITMAP_PAGES_MAX`: the most pages one mapping may have while
/// tracking is on.
pub const PAGES_MAX: u64 = i32::MAX as u64;

/// `DIRTY_BITMAP_BYTES(n)`: a bitmap of `n` bits in whole 64-bit words.
pub const fn bitmap_bytes(nbits: u64) -> u64 {
    nbits.div_ceil(64) * 8
}

/// `DIRTY_BITMAP_SIZE_MAX`, reported in the migration capability.
pub const BITMAP_SIZE_MAX: u64 = bitmap_bytes(PAGES_MAX);

/// What a `VFIO_IOMMU_DIRTY_PAGES` call asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyOp {
    /// Start tracking.
    Start,
    /// Stop tracking.
    Stop,
    /// Report the bitmap of a range (its arguments follow the header).
    GetBitmap,
}

/// Checks the header of a `VFIO_IOMMU_DIRTY_PAGES` call: exactly one known
/// flag (`v2` is the container's type: type1 containers get `EACCES`).
pub fn check_dirty_pages(v2: bool, argsz: u32, flags: u32) -> Result<DirtyOp, DirtyRefusal> {
    if !v2 {
        return Err(DirtyRefusal::NotV2);
    }
    if argsz < DIRTY_MINSZ || flags & !(FLAG_START | FLAG_STOP | FLAG_GET_BITMAP) != 0 {
        return Err(DirtyRefusal::Invalid);
    }
    match flags {
        FLAG_START => Ok(DirtyOp::Start),
        FLAG_STOP => Ok(DirtyOp::Stop),
        FLAG_GET_BITMAP => Ok(DirtyOp::GetBitmap),
        _ => Err(DirtyRefusal::Invalid),
    }
}

/// Why a dirty-page request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyRefusal {
    /// `EACCES`: a `VFIO_TYPE1_IOMMU` container.
    NotV2,
    /// `EINVAL`.
    Invalid,
    /// `EOVERFLOW`: the range wraps around.
    Overflow,
}

impl From<Refusal> for DirtyRefusal {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid => DirtyRefusal::Invalid,
            Refusal::Overflow => DirtyRefusal::Overflow,
        }
    }
}

/// `__ffs(pgsize)` as the kernel computes it on arm64 for a user-given
/// page size: the index of the lowest set bit, 64 for zero.
pub fn page_shift(pgsize: u64) -> u32 {
    pgsize.trailing_zeros()
}

/// `verify_bitmap_size`: a user bitmap of `bitmap_size` bytes holds
/// `npages` bits and is not larger than upstream allows.
pub fn verify_bitmap_size(npages: u64, bitmap_size: u64) -> Result<(), Refusal> {
    if npages == 0
        || bitmap_size == 0
        || bitmap_size > BITMAP_SIZE_MAX
        || bitmap_size < bitmap_bytes(npages)
    {
        return Err(Refusal::Invalid);
    }
    Ok(())
}

/// `size >> __ffs(pgsize)` as the C computes it on arm64: `__ffs(0)` is
/// 64 there, and a 64-bit shift by 64 shifts by 0 (the shift amount is
/// taken modulo 64), so a zero page size counts bytes.
pub fn pages(size: u64, shift: u32) -> u64 {
    size >> (shift % 64)
}

/// The checks of a `GET_BITMAP` request before the container is looked at
/// (`iova`, `size`, the user bitmap's `pgsize` and `size`); returns the
/// last IOVA. `user_ok` is `access_ok()` of the bitmap.
pub fn check_get_bitmap(
    iova: u64,
    size: u64,
    bitmap_pgsize: u64,
    bitmap_size: u64,
    user_ok: bool,
) -> Result<u64, DirtyRefusal> {
    if size == 0 {
        return Err(DirtyRefusal::Invalid);
    }
    let last = iova.checked_add(size - 1).ok_or(DirtyRefusal::Overflow)?;
    if !user_ok {
        return Err(DirtyRefusal::Invalid);
    }
    verify_bitmap_size(pages(size, page_shift(bitmap_pgsize)), bitmap_size)?;
    Ok(last)
}

/// The checks of a `GET_BITMAP` request against the container: the
/// bitmap's page size must be the smallest the container offers, the range
/// aligned to it, and tracking on.
pub fn check_get_bitmap_container(
    iova: u64,
    size: u64,
    bitmap_pgsize: u64,
    pgsize: u64,
    tracking: bool,
) -> Result<(), DirtyRefusal> {
    if bitmap_pgsize != pgsize || iova & (pgsize - 1) != 0 || size & (pgsize - 1) != 0 {
        return Err(DirtyRefusal::Invalid);
    }
    if !tracking {
        return Err(DirtyRefusal::Invalid);
    }
    Ok(())
}

/// The 64-bit words of the dirty bitmap upstream keeps per mapping while
/// tracking is on: one bit per page and one more word
/// (`DIRTY_BITMAP_BYTES(npages) + sizeof(u64)`, zeroed).
pub fn state_words(npages: u64) -> u64 {
    npages.div_ceil(64) + 1
}

/// One mapping's report into a user's bitmap: upstream's
/// `update_user_bitmap()` with every page dirty, step by step, on the
/// mapping's own bitmap (`state`, [`state_words`] long), which it keeps
/// between reports.
///
/// Upstream shifts that bitmap in place to where the mapping starts in the
/// user's word, ORs the user's word into it, copies it out, and then clears
/// only the mapping's first `nbits` bits: the shifted-out bits and the
/// user's bits above them stay, and the mapping's next report carries them
/// (its pages and, past them, pages of the user's range that are not the
/// mapping's). This backend keeps the same state so that every report is
/// bit for bit upstream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The first word written, in 64-bit words from the bitmap's start.
    pub first: u64,
    /// How many words are written: `state[..count]`.
    pub count: usize,
    /// The mapping's first bit within word `first`.
    shift: u32,
    /// The mapping's pages.
    nbits: u64,
}

impl Report {
    /// The report of a mapping of `nbits` pages at bit `bit_offset` of the
    /// user's bitmap.
    pub fn new(bit_offset: u64, nbits: u64) -> Self {
        // CAST: a remainder of 64 fits.
        let shift = (bit_offset % 64) as u32;
        Report {
            first: bit_offset / 64,
            // CAST: at most `state_words()`, an allocation's length.
            count: (nbits + u64::from(shift)).div_ceil(64) as usize,
            shift,
            nbits,
        }
    }

    /// Must the user's word at `first` be read and passed to
    /// [`Report::fill`]?
    pub fn needs_leftover(&self) -> bool {
        self.shift != 0
    }

    /// Makes `state[..count]` the words to write: sets the mapping's bits
    /// (`bitmap_set`), shifts them to `shift` (`__bitmap_shift_left` over
    /// `nbits + shift` bits) and ORs in `leftover`, the user's word at
    /// `first` (`bitmap_or`).
    pub fn fill(&self, state: &mut [u64], leftover: u64) {
        set_bits(state, self.nbits);
        if self.shift == 0 {
            return;
        }
        for k in (0..self.count).rev() {
            let lower = if k > 0 {
                state[k - 1] >> (64 - self.shift)
            } else {
                0
            };
            state[k] = (state[k] << self.shift) | lower;
        }
        state[0] |= leftover;
    }

    /// After the copy: `bitmap_clear` of the mapping's first `nbits` bits
    /// (upstream then sets the bits of pages an emulated IOMMU pinned: this
    /// backend serves no emulated IOMMU).
    pub fn clear(&self, state: &mut [u64]) {
        // CAST: below `state.len()`.
        let full = (self.nbits / 64) as usize;
        for w in state.iter_mut().take(full) {
            *w = 0;
        }
        let rem = self.nbits % 64;
        if rem != 0 {
            state[full] &= !((1u64 << rem) - 1);
        }
    }
}

/// Sets bits `[0, nbits)` of `state`.
fn set_bits(state: &mut [u64], nbits: u64) {
    // CAST: below `state.len()`.
    let full = (nbits / 64) as usize;
    for w in state.iter_mut().take(full) {
        *w = u64::MAX;
    }
    let rem = nbits % 64;
    if rem != 0 {
        state[full] |= (1u64 << rem) - 1;
    }
}
