// SPDX-License-Identifier: GPL-2.0

//! The container ioctls, with the semantics and errnos of
//! `vfio_iommu_type1` (drivers/vfio/vfio_iommu_type1.c).

use kernel::{
    ffi::{
        c_long,
        c_uint,
        c_ulong, //
    },
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use crate::container::{
    Container,
    VFIO_TYPE1V2_IOMMU,
    VFIO_TYPE1_IOMMU, //
};

const fn vfio_io(nr: u32) -> u32 {
    // _IO(VFIO_TYPE, VFIO_BASE + nr), VFIO_TYPE = ';'.
    ((b';' as u32) << 8) | (100 + nr)
}

const VFIO_CHECK_EXTENSION: u32 = vfio_io(1);
const VFIO_IOMMU_GET_INFO: u32 = vfio_io(12);

/// `struct vfio_iommu_type1_info`: argsz, flags, iova_pgsizes, cap_offset,
/// pad.
const INFO_SIZE: usize = 24;
/// The part every caller must provide: through `iova_pgsizes`.
const INFO_MINSZ: usize = 16;
const VFIO_IOMMU_INFO_PGSIZES: u32 = 1 << 0;
const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;
const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;

/// Runs one container ioctl; `container` is `None` before `open`.
pub(crate) fn dispatch(container: Option<&Container>, cmd: c_uint, arg: c_ulong) -> c_long {
    let r = match (cmd, container) {
        (VFIO_CHECK_EXTENSION, _) => Ok(check_extension(arg)),
        (_, None) => Err(EINVAL),
        (VFIO_IOMMU_GET_INFO, Some(c)) => get_info(c, arg).map(|()| 0),
        // MAP_DMA, UNMAP_DMA and the rest are not implemented yet.
        _ => Err(ENOTTY),
    };
    match r {
        Ok(v) => v,
        Err(e) => e.to_errno() as c_long,
    }
}

fn check_extension(arg: c_ulong) -> c_long {
    match arg {
        VFIO_TYPE1_IOMMU | VFIO_TYPE1V2_IOMMU => {
            c_long::from(crate::module_parameters::serve_type1.value())
        }
        _ => 0,
    }
}

fn get_info(c: &Container, arg: c_ulong) -> Result {
    let base = UserPtr::from_addr(arg as usize);
    let mut head = [0u8; INFO_MINSZ];
    UserSlice::new(base, INFO_MINSZ)
        .reader()
        .read_slice(&mut head)?;
    let argsz = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
    let argsz_usize = argsz as usize;
    if argsz_usize < INFO_MINSZ {
        return Err(EINVAL);
    }

    let (pgsizes, ranges) = c.iova_info()?;

    // The IOVA range capability: header (id, version, next), nr_iovas,
    // reserved, then {start, end} pairs.
    let mut cap = KVec::<u8>::new();
    cap.extend_from_slice(
        &VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE.to_ne_bytes(),
        GFP_KERNEL,
    )?;
    cap.extend_from_slice(&1u16.to_ne_bytes(), GFP_KERNEL)?;
    cap.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
    // CAST: at most `iova::MAX_RANGES` ranges.
    cap.extend_from_slice(&(ranges.as_slice().len() as u32).to_ne_bytes(), GFP_KERNEL)?;
    cap.extend_from_slice(&0u32.to_ne_bytes(), GFP_KERNEL)?;
    for r in ranges.as_slice() {
        cap.extend_from_slice(&r.start.to_ne_bytes(), GFP_KERNEL)?;
        cap.extend_from_slice(&r.last.to_ne_bytes(), GFP_KERNEL)?;
    }

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

    let mut info = [0u8; INFO_SIZE];
    info[0..4].copy_from_slice(&out_argsz.to_ne_bytes());
    info[4..8].copy_from_slice(&flags.to_ne_bytes());
    info[8..16].copy_from_slice(&pgsizes.to_ne_bytes());
    info[16..20].copy_from_slice(&cap_offset.to_ne_bytes());
    let n = argsz_usize.min(INFO_SIZE);
    UserSlice::new(base, n).writer().write_slice(&info[..n])
}
