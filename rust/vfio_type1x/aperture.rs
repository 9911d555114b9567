// SPDX-License-Identifier: GPL-2.0

//! Validation of a user-chosen MSI aperture (`VFIO_TYPE1X_SET_MSI_APERTURE`,
//! include/uapi/linux/vfio_type1x.h).
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use crate::iova::Range;

/// `offsetofend(struct vfio_type1x_msi_aperture, size)`.
pub const APERTURE_MINSZ: u32 = 24;

/// Why an aperture is refused; each has its own errno and log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApertureRefusal {
    /// `EINVAL`: argsz too small or flags set.
    Malformed,
    /// `EINVAL`: zero size, or iova/size not aligned to the page size.
    Unaligned,
    /// `EOVERFLOW`: iova + size wraps around.
    Wraps,
    /// `EBUSY`: a doorbell is already mapped in the current aperture.
    DoorbellMapped,
    /// `ERANGE`: outside a domain's aperture.
    OutsideDomain,
    /// `EADDRINUSE`: overlaps another reserved region.
    Reserved,
    /// `EEXIST`: overlaps a DMA mapping.
    OverlapsDma,
    /// `ENOSPC`: fewer pages than the doorbell pages the devices need.
    TooSmall,
}

impl ApertureRefusal {
    /// What the log line says.
    pub fn why(self) -> &'static str {
        match self {
            ApertureRefusal::Malformed => "argsz too small or unknown flags",
            ApertureRefusal::Unaligned => {
                "zero size, or iova/size not aligned to the IOMMU page size"
            }
            ApertureRefusal::Wraps => "iova + size wraps around",
            ApertureRefusal::DoorbellMapped => {
                "a doorbell is already mapped in the current aperture (set it before enabling MSIs)"
            }
            ApertureRefusal::OutsideDomain => "outside an IOMMU domain's aperture",
            ApertureRefusal::Reserved => "overlaps a reserved region of a group",
            ApertureRefusal::OverlapsDma => "overlaps a DMA mapping",
            ApertureRefusal::TooSmall => {
                "too small for the doorbell pages of the devices' MSI controllers"
            }
        }
    }
}

/// What the container looks like, for [`check_aperture`].
pub struct ApertureContext<'a> {
    /// Smallest IOMMU page size (a power of two).
    pub pgsize: u64,
    /// Whether a doorbell is mapped in the current aperture.
    pub doorbell_mapped: bool,
    /// Every domain's aperture.
    pub domains: &'a [Range],
    /// The groups' reserved regions other than the software-MSI window.
    pub reserved: &'a [Range],
    /// Does a DMA mapping overlap this range?
    pub overlaps_dma: &'a dyn Fn(Range) -> bool,
    /// Distinct doorbell pages the container's devices need.
    pub doorbell_pages: u64,
}

/// How many doorbell pages the MSI cookie may hand out for a container's
/// devices: one per distinct known doorbell page (`known` may repeat a
/// page), plus one per device with an MSI domain whose doorbell could not be
/// read (an MSI controller found otherwise than through the device tree, as
/// on ACPI). A device's MSIs all go through one controller, so that is an
/// upper bound, and an aperture that fits it never lets the cookie's bump
/// allocator map a doorbell past its end.
pub fn doorbell_pages(known: &[u64], unknown_devices: u64) -> u64 {
    let distinct = known
        .iter()
        .enumerate()
        .filter(|(i, p)| !known[..*i].contains(p))
        .count();
    // CAST: a count of elements of a slice fits u64.
    (distinct as u64).saturating_add(unknown_devices)
}

/// Checks `VFIO_TYPE1X_SET_MSI_APERTURE`'s argument; returns the aperture.
pub fn check_aperture(
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
    cx: &ApertureContext<'_>,
) -> Result<Range, ApertureRefusal> {
    if argsz < APERTURE_MINSZ || flags != 0 {
        return Err(ApertureRefusal::Malformed);
    }
    if size == 0 || (iova | size) & (cx.pgsize - 1) != 0 {
        return Err(ApertureRefusal::Unaligned);
    }
    let last = iova.checked_add(size - 1).ok_or(ApertureRefusal::Wraps)?;
    let r = Range { start: iova, last };
    if cx.doorbell_mapped {
        return Err(ApertureRefusal::DoorbellMapped);
    }
    if cx
        .domains
        .iter()
        .any(|d| r.start < d.start || r.last > d.last)
    {
        return Err(ApertureRefusal::OutsideDomain);
    }
    if cx.reserved.iter().any(|res| res.overlaps(&r)) {
        return Err(ApertureRefusal::Reserved);
    }
    if (cx.overlaps_dma)(r) {
        return Err(ApertureRefusal::OverlapsDma);
    }
    if size / cx.pgsize < cx.doorbell_pages {
        return Err(ApertureRefusal::TooSmall);
    }
    Ok(r)
}
