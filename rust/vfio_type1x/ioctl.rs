// SPDX-License-Identifier: GPL-2.0

//! The container ioctls, with the semantics and errnos of
//! `vfio_iommu_type1` (drivers/vfio/vfio_iommu_type1.c).

use core::mem::offset_of;

use kernel::{
    ffi::{
        c_long,
        c_uint,
        c_ulong, //
    },
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use crate::{
    container::{
        dirty_errno,
        Container,
        GetBitmap,
        UserBitmap,
        VFIO_TYPE1V2_IOMMU,
        VFIO_TYPE1_IOMMU, //
    },
    dirty,
    dma_args,
    ffi,
    uapi::{
        Bitmap,
        DirtyBitmap,
        DirtyBitmapGet,
        DmaMap,
        DmaUnmap,
        IommuInfo,
        MsiAperture,
        VFIO_CHECK_EXTENSION,
        VFIO_IOMMU_DIRTY_PAGES,
        VFIO_IOMMU_GET_INFO,
        VFIO_IOMMU_MAP_DMA,
        VFIO_IOMMU_UNMAP_DMA,
        VFIO_TYPE1X_SET_MSI_APERTURE, //
    }, //
};

/// `VFIO_DMA_CC_IOMMU` extension: the domains enforce cache coherency.
const VFIO_DMA_CC_IOMMU: usize = 4;
/// `VFIO_UNMAP_ALL` extension.
const VFIO_UNMAP_ALL: usize = 9;
/// `VFIO_UPDATE_VADDR` extension.
const VFIO_UPDATE_VADDR: usize = 10;
/// include/uapi/linux/vfio_type1x.h.
const VFIO_TYPE1X_MSI_APERTURE: usize = 0x4152_4d00;
const VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE: u16 = 0x4d53;

/// `struct vfio_iommu_type1_info`.
const INFO_SIZE: usize = size_of::<IommuInfo>();
/// The part every caller must provide: through `iova_pgsizes`.
const INFO_MINSZ: usize = 16;
const VFIO_IOMMU_INFO_PGSIZES: u32 = 1 << 0;
const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;
const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;
const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: u16 = 2;
const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: u16 = 3;

/// Runs one container ioctl; `container` is `None` before `open`.
pub(crate) fn dispatch(container: Option<&Container>, cmd: c_uint, arg: c_ulong) -> c_long {
    let r = match (cmd, container) {
        (VFIO_CHECK_EXTENSION, c) => Ok(check_extension(c, arg)),
        (_, None) => Err(EINVAL),
        (VFIO_IOMMU_GET_INFO, Some(c)) => get_info(c, arg).map(|()| 0),
        (VFIO_IOMMU_MAP_DMA, Some(c)) => map_dma(c, arg).map(|()| 0),
        (VFIO_IOMMU_UNMAP_DMA, Some(c)) => unmap_dma(c, arg).map(|()| 0),
        (VFIO_IOMMU_DIRTY_PAGES, Some(c)) => dirty_pages(c, arg).map(|()| 0),
        (VFIO_TYPE1X_SET_MSI_APERTURE, Some(c)) => set_aperture(c, arg).map(|()| 0),
        _ => Err(ENOTTY),
    };
    match r {
        Ok(v) => v,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `VFIO_CHECK_EXTENSION`, on a container this backend serves or (`None`)
/// before the container has a backend, when VFIO asks every driver.
fn check_extension(c: Option<&Container>, arg: c_ulong) -> c_long {
    // A released container answers as one without a backend.
    let c = c.filter(|c| c.is_live());
    // Would a type1 container be ours?
    let serves = c.is_some() || crate::module_parameters::serve_type1.value();
    let yes = match arg {
        VFIO_TYPE1_IOMMU | VFIO_TYPE1V2_IOMMU | VFIO_TYPE1X_MSI_APERTURE => serves,
        VFIO_UNMAP_ALL => true,
        VFIO_UPDATE_VADDR => c.is_some(),
        VFIO_DMA_CC_IOMMU => c.is_some_and(|c| c.cache_coherent()),
        _ => false,
    };
    c_long::from(yes)
}

fn get_info(c: &Container, arg: c_ulong) -> Result {
    let base = UserPtr::from_addr(arg as usize);
    // Upstream reads through `iova_pgsizes` only.
    let mut head = IommuInfo::default();
    UserSlice::new(base, INFO_MINSZ)
        .reader()
        .read_slice(&mut head.as_bytes_mut()[..INFO_MINSZ])?;
    let argsz = head.argsz;
    let argsz_usize = argsz as usize;
    if argsz_usize < INFO_MINSZ {
        return Err(EINVAL);
    }

    // The capability chain, in upstream's order: migration (dirty page
    // tracking), DMA_AVAIL, the IOVA ranges; then the MSI aperture with the
    // doorbells mapped in it. One hold of the container's mutex, as
    // upstream's iommu->lock, so the chain is one snapshot.
    let (pgsizes, cap) = c.info(|i| {
        let pgsizes = i.pgsizes;
        let mut caps = CapChain::new();
        caps.start(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION)?;
        // flags, pad, pgsize_bitmap (the smallest page), max_dirty_bitmap_size.
        caps.put(&0u32.to_ne_bytes())?;
        caps.put(&0u32.to_ne_bytes())?;
        caps.put(&(pgsizes & pgsizes.wrapping_neg()).to_ne_bytes())?;
        caps.put(&dirty::BITMAP_SIZE_MAX.to_ne_bytes())?;
        // CAST: at most the `dma_entry_limit` parameter, a u32.
        caps.start(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)?;
        caps.put(&(i.dma_avail as u32).to_ne_bytes())?;
        caps.start(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE)?;
        // CAST: at most `iova::MAX_RANGES` ranges.
        caps.put(&(i.usable.len() as u32).to_ne_bytes())?;
        caps.put(&0u32.to_ne_bytes())?;
        for r in i.usable {
            caps.put(&r.start.to_ne_bytes())?;
            caps.put(&r.last.to_ne_bytes())?;
        }
        if let Some((ap, doorbells)) = &i.aperture {
            caps.start(VFIO_IOMMU_TYPE1X_INFO_CAP_MSI_APERTURE)?;
            caps.put(&ap.start.to_ne_bytes())?;
            caps.put(&(ap.last - ap.start + 1).to_ne_bytes())?;
            // CAST: a handful of doorbells.
            caps.put(&(doorbells.len() as u32).to_ne_bytes())?;
            caps.put(&0u32.to_ne_bytes())?;
            for (iova, pa) in doorbells.iter() {
                caps.put(&iova.to_ne_bytes())?;
                caps.put(&pa.to_ne_bytes())?;
            }
        }
        Ok((pgsizes, caps.finish()?))
    })?;

    let mut flags = VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS;
    let needed = INFO_SIZE + cap.len();
    let (out_argsz, cap_offset) = if argsz_usize < needed {
        // Too small for the capabilities: say how much is needed.
        (u32::try_from(needed).map_err(|_| EINVAL)?, 0u32)
    } else {
        let at = base.wrapping_byte_add(INFO_SIZE);
        UserSlice::new(at, cap.len()).writer().write_slice(&cap)?;
        (argsz, INFO_SIZE as u32)
    };
    if cap.is_empty() {
        flags &= !VFIO_IOMMU_INFO_CAPS;
    }

    let info = IommuInfo {
        argsz: out_argsz,
        flags,
        iova_pgsizes: pgsizes,
        cap_offset,
        pad: 0,
    };
    let n = argsz_usize.min(INFO_SIZE);
    UserSlice::new(base, n)
        .writer()
        .write_slice(&info.as_bytes()[..n])
}

/// The bytes a chain usually takes: migration (24), DMA_AVAIL (16), a few
/// IOVA ranges (16 + 16 each) and the aperture (40 + 16 per doorbell).
const CAP_CHAIN_ROOM: usize = 256;

/// Builds a `vfio_info_cap_header` chain whose `next` offsets count from
/// the start of the info struct, which the chain follows. Each capability
/// is padded to 8 bytes, as `vfio_info_cap_add()` does, so that the next
/// one's `__aligned_u64` fields are aligned.
struct CapChain {
    buf: KVec<u8>,
    /// Offset in `buf` of the last header's `next` field.
    last_next: Option<usize>,
}

impl CapChain {
    /// An empty chain, with room for the usual one (a few hundred bytes)
    /// so that it grows without reallocating; an allocation failure here
    /// only means it grows as it goes.
    fn new() -> Self {
        CapChain {
            buf: KVec::with_capacity(CAP_CHAIN_ROOM, GFP_KERNEL).unwrap_or_default(),
            last_next: None,
        }
    }

    /// Starts capability `id` (version 1) and links the previous one to it.
    fn start(&mut self, id: u16) -> Result {
        self.pad()?;
        // CAST: the chain is a few hundred bytes.
        let here = (INFO_SIZE + self.buf.len()) as u32;
        if let Some(at) = self.last_next {
            self.buf[at..at + 4].copy_from_slice(&here.to_ne_bytes());
        }
        self.put(&id.to_ne_bytes())?;
        self.put(&1u16.to_ne_bytes())?;
        self.last_next = Some(self.buf.len());
        self.put(&0u32.to_ne_bytes())
    }

    fn put(&mut self, bytes: &[u8]) -> Result {
        self.buf.extend_from_slice(bytes, GFP_KERNEL)?;
        Ok(())
    }

    /// Zeroes up to the next multiple of 8 bytes.
    fn pad(&mut self) -> Result {
        while self.buf.len() % 8 != 0 {
            self.buf.push(0, GFP_KERNEL)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<KVec<u8>> {
        self.pad()?;
        Ok(self.buf)
    }
}

/// Reads a `T` at `at`.
fn read_at<T: FromBytes>(at: UserPtr) -> Result<T> {
    UserSlice::new(at, size_of::<T>()).reader().read::<T>()
}

fn set_aperture(c: &Container, arg: c_ulong) -> Result {
    let a: MsiAperture = read_at(UserPtr::from_addr(arg as usize))?;
    c.set_aperture(a.argsz, a.flags, a.iova, a.size)
}

fn map_dma(c: &Container, arg: c_ulong) -> Result {
    c.map(&read_at::<DmaMap>(UserPtr::from_addr(arg as usize))?)
}

/// `struct vfio_iommu_type1_dma_unmap`, followed with
/// `VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP` by a `struct vfio_bitmap`; the
/// size unmapped is written back.
fn unmap_dma(c: &Container, arg: c_ulong) -> Result {
    let base = UserPtr::from_addr(arg as usize);
    let u: DmaUnmap = read_at(base)?;
    let (argsz, flags, size) = (u.argsz, u.flags, u.size);
    dma_args::check_unmap_header(argsz, flags).map_err(|_| EINVAL)?;
    let mut bitmap = None;
    if flags & dma_args::UNMAP_FLAG_GET_DIRTY_BITMAP != 0 {
        if argsz < dma_args::UNMAP_MINSZ + dirty::BITMAP_SIZE {
            return Err(EINVAL);
        }
        let b: Bitmap = read_at(base.wrapping_byte_add(size_of::<DmaUnmap>()))?;
        let (pgsize, bsize, data) = (b.pgsize, b.size, b.data);
        if !ffi::access_ok(data, bsize) {
            return Err(EINVAL);
        }
        let npages = dirty::pages(size, dirty::page_shift(pgsize));
        dirty::verify_bitmap_size(npages, bsize).map_err(|_| EINVAL)?;
        bitmap = Some(UserBitmap {
            pgsize,
            // CAST: a user address, checked by `access_ok`.
            data: UserPtr::from_addr(data as usize),
        });
    }
    let unmapped = c.unmap(argsz, flags, u.iova, size, bitmap)?;
    UserSlice::new(base.wrapping_byte_add(offset_of!(DmaUnmap, size)), 8)
        .writer()
        .write(&unmapped)
}

/// `VFIO_IOMMU_DIRTY_PAGES`: `struct vfio_iommu_type1_dirty_bitmap`,
/// followed for `GET_BITMAP` by a `struct vfio_iommu_type1_dirty_bitmap_get`.
fn dirty_pages(c: &Container, arg: c_ulong) -> Result {
    let base = UserPtr::from_addr(arg as usize);
    // Upstream refuses a type1 container before reading the argument.
    if !c.v2 {
        return Err(EACCES);
    }
    let h: DirtyBitmap = read_at(base)?;
    let (argsz, flags) = (h.argsz, h.flags);
    let op = dirty::check_dirty_pages(c.v2, argsz, flags).map_err(dirty_errno)?;
    if op != dirty::DirtyOp::GetBitmap {
        return c.dirty_pages(op, None);
    }
    if argsz - dirty::DIRTY_MINSZ < dirty::GET_SIZE {
        return Err(EINVAL);
    }
    let g: DirtyBitmapGet = read_at(base.wrapping_byte_add(size_of::<DirtyBitmap>()))?;
    let (iova, size) = (g.iova, g.size);
    let (pgsize, bsize, data) = (g.bitmap.pgsize, g.bitmap.size, g.bitmap.data);
    let last = dirty::check_get_bitmap(iova, size, pgsize, bsize, ffi::access_ok(data, bsize))
        .map_err(dirty_errno)?;
    let get = GetBitmap {
        iova,
        last,
        pgsize,
        // CAST: a user address, checked by `access_ok`.
        data: UserPtr::from_addr(data as usize),
    };
    c.dirty_pages(op, Some(get))
}
