// SPDX-License-Identifier: GPL-2.0

//! The container ioctls' numbers and argument structures, mirrored by hand
//! from include/uapi/linux/vfio.h and include/uapi/linux/vfio_type1x.h
//! (the kernel crate's generated uAPI has no VFIO). Each mirror's size is
//! asserted against the C's (`shim.c` asserts the same sizes of the C
//! structures), so a layout change fails the build on both sides.

use kernel::{
    ioctl::_IO,
    transmute::{
        AsBytes,
        FromBytes, //
    },
};

/// `VFIO_TYPE`: `';'`.
const VFIO_TYPE: u32 = b';' as u32;
/// `VFIO_BASE`.
const VFIO_BASE: u32 = 100;
/// `VFIO_TYPE1X_TYPE`.
const VFIO_TYPE1X_TYPE: u32 = 0xA9;

pub(crate) const VFIO_CHECK_EXTENSION: u32 = _IO(VFIO_TYPE, VFIO_BASE + 1);
pub(crate) const VFIO_IOMMU_GET_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 12);
pub(crate) const VFIO_IOMMU_MAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 13);
pub(crate) const VFIO_IOMMU_UNMAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 14);
pub(crate) const VFIO_IOMMU_DIRTY_PAGES: u32 = _IO(VFIO_TYPE, VFIO_BASE + 17);
pub(crate) const VFIO_TYPE1X_SET_MSI_APERTURE: u32 = _IO(VFIO_TYPE1X_TYPE, 0);

/// `struct vfio_iommu_type1_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct IommuInfo {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova_pgsizes: u64,
    pub(crate) cap_offset: u32,
    pub(crate) pad: u32,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DmaMap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) vaddr: u64,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` without its flexible `data[]`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DmaUnmap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

/// `struct vfio_bitmap`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Bitmap {
    pub(crate) pgsize: u64,
    pub(crate) size: u64,
    /// A user address.
    pub(crate) data: u64,
}

/// `struct vfio_iommu_type1_dirty_bitmap` without its flexible `data[]`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DirtyBitmap {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
}

/// `struct vfio_iommu_type1_dirty_bitmap_get`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct DirtyBitmapGet {
    pub(crate) iova: u64,
    pub(crate) size: u64,
    pub(crate) bitmap: Bitmap,
}

/// `struct vfio_type1x_msi_aperture`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct MsiAperture {
    pub(crate) argsz: u32,
    pub(crate) flags: u32,
    pub(crate) iova: u64,
    pub(crate) size: u64,
}

// The C's sizes; with these, no mirror has padding either (its fields add
// up to its size).
kernel::static_assert!(size_of::<IommuInfo>() == 24);
kernel::static_assert!(size_of::<DmaMap>() == 32);
kernel::static_assert!(size_of::<DmaUnmap>() == 24);
kernel::static_assert!(size_of::<Bitmap>() == 24);
kernel::static_assert!(size_of::<DirtyBitmap>() == 8);
kernel::static_assert!(size_of::<DirtyBitmapGet>() == 40);
kernel::static_assert!(size_of::<MsiAperture>() == 24);
// And the pure checks' sizes (shared with the host tests) are these.
kernel::static_assert!(size_of::<DmaMap>() == crate::dma_args::MAP_MINSZ as usize);
kernel::static_assert!(size_of::<DmaUnmap>() == crate::dma_args::UNMAP_MINSZ as usize);
kernel::static_assert!(size_of::<Bitmap>() == crate::dirty::BITMAP_SIZE as usize);
kernel::static_assert!(size_of::<DirtyBitmap>() == crate::dirty::DIRTY_MINSZ as usize);
kernel::static_assert!(size_of::<DirtyBitmapGet>() == crate::dirty::GET_SIZE as usize);

// SAFETY: integers only, no padding (sizes asserted above): every byte
// pattern is a valid value and every byte is initialised.
unsafe impl FromBytes for IommuInfo {}
// SAFETY: as above.
unsafe impl AsBytes for IommuInfo {}
// SAFETY: as above.
unsafe impl FromBytes for DmaMap {}
// SAFETY: as above.
unsafe impl FromBytes for DmaUnmap {}
// SAFETY: as above.
unsafe impl FromBytes for Bitmap {}
// SAFETY: as above.
unsafe impl FromBytes for DirtyBitmap {}
// SAFETY: as above.
unsafe impl FromBytes for DirtyBitmapGet {}
// SAFETY: as above.
unsafe impl FromBytes for MsiAperture {}
