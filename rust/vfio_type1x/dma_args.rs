// SPDX-License-Identifier: GPL-2.0

//! Validation of `VFIO_IOMMU_MAP_DMA` and `VFIO_IOMMU_UNMAP_DMA` arguments,
//! with the errnos of `vfio_iommu_type1` and in its order
//! (`vfio_iommu_type1_map_dma`, `vfio_dma_do_map`, `vfio_dma_do_unmap`).
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use crate::iova::Range;

/// `VFIO_DMA_MAP_FLAG_READ`: the device may read the memory.
pub const MAP_FLAG_READ: u32 = 1 << 0;
/// `VFIO_DMA_MAP_FLAG_WRITE`: the device may write it.
pub const MAP_FLAG_WRITE: u32 = 1 << 1;
/// `VFIO_DMA_MAP_FLAG_VADDR`: give an invalidated mapping its new user
/// address (`VFIO_UPDATE_VADDR`).
pub const MAP_FLAG_VADDR: u32 = 1 << 2;
/// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP`: report the unmapped pages in a
/// dirty bitmap (a `struct vfio_bitmap` follows the request).
pub const UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
/// `VFIO_DMA_UNMAP_FLAG_ALL`: unmap everything (`iova` and `size` zero).
pub const UNMAP_FLAG_ALL: u32 = 1 << 1;
/// `VFIO_DMA_UNMAP_FLAG_VADDR`: do not unmap; invalidate the user address
/// until a `MAP_DMA` with `VFIO_DMA_MAP_FLAG_VADDR` gives a new one.
pub const UNMAP_FLAG_VADDR: u32 = 1 << 2;

/// `offsetofend(struct vfio_iommu_type1_dma_map, size)`.
pub const MAP_MINSZ: u32 = 32;
/// `offsetofend(struct vfio_iommu_type1_dma_unmap, size)`.
pub const UNMAP_MINSZ: u32 = 24;

/// Why a request is refused; the kernel code maps these to errnos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `EINVAL`.
    Invalid,
    /// `EOVERFLOW`: an address range wraps around.
    Overflow,
}

/// A validated map request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// The IOVA range.
    pub iova: Range,
    /// First user virtual address.
    pub vaddr: u64,
    /// The device may read.
    pub read: bool,
    /// The device may write.
    pub write: bool,
    /// `VFIO_DMA_MAP_FLAG_VADDR`: a new user address for an invalidated
    /// mapping of exactly `iova`, not a new mapping.
    pub set_vaddr: bool,
}

/// Checks a `MAP_DMA` request's own fields. `pgsize` is the smallest page
/// size the container offers (a power of two). A request sets a user
/// address (`VFIO_DMA_MAP_FLAG_VADDR`, without READ or WRITE) or maps
/// (READ and/or WRITE).
pub fn check_map(
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
    pgsize: u64,
) -> Result<MapRequest, Refusal> {
    if argsz < MAP_MINSZ || flags & !(MAP_FLAG_READ | MAP_FLAG_WRITE | MAP_FLAG_VADDR) != 0 {
        return Err(Refusal::Invalid);
    }
    if size == 0 {
        return Err(Refusal::Invalid);
    }
    let last = iova.checked_add(size - 1).ok_or(Refusal::Overflow)?;
    vaddr.checked_add(size - 1).ok_or(Refusal::Overflow)?;
    let set_vaddr = flags & MAP_FLAG_VADDR != 0;
    let prot = flags & (MAP_FLAG_READ | MAP_FLAG_WRITE) != 0;
    if prot == set_vaddr {
        return Err(Refusal::Invalid);
    }
    if (size | iova | vaddr) & (pgsize - 1) != 0 {
        return Err(Refusal::Invalid);
    }
    Ok(MapRequest {
        iova: Range { start: iova, last },
        vaddr,
        read: flags & MAP_FLAG_READ != 0,
        write: flags & MAP_FLAG_WRITE != 0,
        set_vaddr,
    })
}

/// Checks an `UNMAP_DMA` request's header, before anything else
/// (`vfio_iommu_type1_unmap_dma`): known flags, and a dirty bitmap only
/// for a plain unmap.
pub fn check_unmap_header(argsz: u32, flags: u32) -> Result<(), Refusal> {
    let known = UNMAP_FLAG_GET_DIRTY_BITMAP | UNMAP_FLAG_ALL | UNMAP_FLAG_VADDR;
    if argsz < UNMAP_MINSZ || flags & !known != 0 {
        return Err(Refusal::Invalid);
    }
    if flags & UNMAP_FLAG_GET_DIRTY_BITMAP != 0 && flags & (UNMAP_FLAG_ALL | UNMAP_FLAG_VADDR) != 0
    {
        return Err(Refusal::Invalid);
    }
    Ok(())
}

/// Checks an `UNMAP_DMA` request's own fields; returns the IOVA range to
/// unmap (everything for `VFIO_DMA_UNMAP_FLAG_ALL`).
pub fn check_unmap(
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
    pgsize: u64,
) -> Result<Range, Refusal> {
    check_unmap_header(argsz, flags)?;
    if iova & (pgsize - 1) != 0 {
        return Err(Refusal::Invalid);
    }
    if flags & UNMAP_FLAG_ALL != 0 {
        if iova != 0 || size != 0 {
            return Err(Refusal::Invalid);
        }
        return Ok(Range {
            start: 0,
            last: u64::MAX,
        });
    }
    if size == 0 || size & (pgsize - 1) != 0 {
        return Err(Refusal::Invalid);
    }
    let last = iova.checked_add(size - 1).ok_or(Refusal::Overflow)?;
    Ok(Range { start: iova, last })
}

/// The type1v2 rule: an unmap must not bisect a mapping. `at_start` and
/// `at_end` are the mappings containing the first and the last IOVA of
/// `range`, if any.
pub fn check_no_bisect(
    range: Range,
    at_start: Option<Range>,
    at_end: Option<Range>,
) -> Result<(), Refusal> {
    if at_start.is_some_and(|m| m.start != range.start) {
        return Err(Refusal::Invalid);
    }
    if at_end.is_some_and(|m| m.last != range.last) {
        return Err(Refusal::Invalid);
    }
    Ok(())
}

/// Is `range` inside one of the usable IOVA ranges?
pub fn in_usable(range: Range, usable: &[Range]) -> bool {
    usable
        .iter()
        .any(|u| u.start <= range.start && range.last <= u.last)
}

/// Splits page frame numbers into runs of physically contiguous pages:
/// `(first pfn, number of pages)`, in order.
pub fn contiguous_runs(pfns: &[u64]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut i = 0;
    core::iter::from_fn(move || {
        let first = *pfns.get(i)?;
        let mut n = 1;
        while pfns.get(i + n) == Some(&(first + n as u64)) {
            n += 1;
        }
        i += n;
        Some((first, n as u64))
    })
}
