// SPDX-License-Identifier: GPL-2.0

//! Validation of a user-chosen MSI aperture (`VFIO_TYPE1X_SET_MSI_APERTURE`,
//! include/uapi/linux/vfio_type1x.h).
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use crate::iova::Range;

/// `enum iommu_resv_type`'s `IOMMU_RESV_DIRECT_RELAXABLE`, as the shim
/// reports region types (`T1X_RESV_*`): a direct-mapped region the device
/// may do without once it is assigned.
pub const RESV_DIRECT_RELAXABLE: u32 = 1;
/// `IOMMU_RESV_MSI`: a hardware MSI region, untranslated by the IOMMU.
pub const RESV_MSI: u32 = 3;
/// `IOMMU_RESV_SW_MSI`: the IOMMU's software-managed MSI window.
pub const RESV_SW_MSI: u32 = 4;

/// How a group's MSIs reach their controller, from its reserved regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiWindow {
    /// A hardware MSI region: the IOMMU does not translate MSIs, so no
    /// doorbell is mapped and the domain gets no MSI cookie.
    Hardware,
    /// The software-managed window, where doorbells are mapped.
    Software(Range),
    /// Neither is reported.
    Absent,
}

/// The MSI window of a group with `regions` (`(range, T1X_RESV_*)`), as
/// upstream's `vfio_iommu_has_sw_msi()` decides: a hardware MSI region takes
/// precedence over a software one; of several software ones the last
/// counts.
pub fn msi_window(regions: &[(Range, u32)]) -> MsiWindow {
    let mut w = MsiWindow::Absent;
    for (r, kind) in regions {
        match *kind {
            RESV_MSI => return MsiWindow::Hardware,
            RESV_SW_MSI => w = MsiWindow::Software(*r),
            _ => {}
        }
    }
    w
}

/// Must DMA mappings stay out of a reserved region of type `kind`? All but
/// a relaxable direct region, as upstream's `vfio_iommu_resv_exclude()` and
/// `vfio_iommu_resv_conflict()`.
pub fn dma_avoids(kind: u32) -> bool {
    kind != RESV_DIRECT_RELAXABLE
}

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
