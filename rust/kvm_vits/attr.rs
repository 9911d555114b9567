// SPDX-License-Identifier: GPL-2.0

//! The device attributes (`KVM_{SET,GET,HAS}_DEVICE_ATTR`), with the
//! groups, checks, errnos and their order of `vgic_its_set_attr()`,
//! `vgic_its_get_attr()` and `vgic_its_has_attr()`, plus
//! `KVM_VITS_GRP_TRANSLATE`. The shim only forwards the call here.

use kernel::{
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

use crate::{
    ffi::{
        Frame,
        TranslationAbi,
        KVM_VITS_NO_VCPU, //
    },
    its::{
        Its,
        CTRL_RESET,
        RESTORE_TABLES,
        SAVE_TABLES, //
    },
};

/// `KVM_DEV_ARM_VGIC_GRP_ADDR`.
pub(crate) const GRP_ADDR: u32 = 0;
/// `KVM_DEV_ARM_VGIC_GRP_CTRL`.
pub(crate) const GRP_CTRL: u32 = 4;
/// `KVM_DEV_ARM_VGIC_GRP_ITS_REGS`.
pub(crate) const GRP_ITS_REGS: u32 = 8;
/// `KVM_VITS_GRP_TRANSLATE` (include/uapi/linux/kvm_vits.h).
pub(crate) const GRP_TRANSLATE: u32 = 0x4b56;
/// `KVM_VGIC_ITS_ADDR_TYPE`.
pub(crate) const ITS_ADDR_TYPE: u64 = 4;
/// `KVM_DEV_ARM_VGIC_CTRL_INIT`.
pub(crate) const CTRL_INIT: u64 = 0;

/// The user's `u64` at `addr`.
fn read_u64(addr: u64) -> Result<u64> {
    // CAST: a user address from the attribute.
    UserSlice::new(UserPtr::from_addr(addr as usize), 8)
        .reader()
        .read::<u64>()
}

/// Writes `val` to the user's `u64` at `addr`.
fn write_u64(addr: u64, val: u64) -> Result {
    // CAST: a user address from the attribute.
    UserSlice::new(UserPtr::from_addr(addr as usize), 8)
        .writer()
        .write(&val)
}

/// A register access of `KVM_DEV_ARM_VGIC_GRP_ITS_REGS`
/// (`vgic_its_attr_regs_access()`): alignment first, then the VM locked,
/// the frame placed.
fn regs_access<T>(
    its: &Its,
    frame: Frame,
    offset: u64,
    op: impl FnOnce() -> Result<T>,
) -> Result<T> {
    Its::reg_align(offset)?;
    let _vm = its.kvm().lock()?;
    if frame.base().is_none() {
        return Err(ENXIO);
    }
    op()
}

/// `KVM_SET_DEVICE_ATTR`.
pub(crate) fn set(its: &Its, frame: Frame, group: u32, attr: u64, addr: u64) -> Result {
    match group {
        GRP_ADDR => {
            if attr != ITS_ADDR_TYPE {
                return Err(ENODEV);
            }
            let base = read_u64(addr)?;
            frame.place(base)?;
            its.set_base(base);
            Ok(())
        }
        GRP_CTRL => {
            if attr == CTRL_INIT {
                return Ok(());
            }
            let _vm = its.kvm().lock()?;
            Ok(its.ctrl(attr)?)
        }
        GRP_ITS_REGS => {
            let val = read_u64(addr)?;
            regs_access(its, frame, attr, || Ok(its.reg_write(attr, val)?))
        }
        _ => Err(ENXIO),
    }
}

/// `KVM_GET_DEVICE_ATTR`.
pub(crate) fn get(its: &Its, frame: Frame, group: u32, attr: u64, addr: u64) -> Result {
    match group {
        GRP_ADDR => {
            if attr != ITS_ADDR_TYPE {
                return Err(ENODEV);
            }
            write_u64(addr, frame.base().unwrap_or(u64::MAX))
        }
        GRP_ITS_REGS => {
            let val = regs_access(its, frame, attr, || Ok(its.reg_read(attr)?))?;
            write_u64(addr, val)
        }
        GRP_TRANSLATE => {
            if frame.base().is_none() {
                return Err(ENXIO);
            }
            // CAST: the attribute packs two 32-bit IDs.
            let (devid, eventid) = ((attr >> 32) as u32, attr as u32);
            let t = its.translate(devid, eventid).ok_or(ENOENT)?;
            let out = TranslationAbi {
                intid: t.intid,
                icid: t.icid.map_or(u32::MAX, u32::from),
                vcpu: t.vcpu.unwrap_or(KVM_VITS_NO_VCPU),
                flags: 0,
            };
            // CAST: a user address from the attribute.
            UserSlice::new(
                UserPtr::from_addr(addr as usize),
                size_of::<TranslationAbi>(),
            )
            .writer()
            .write(&out)
        }
        _ => Err(ENXIO),
    }
}

/// `KVM_HAS_DEVICE_ATTR`.
pub(crate) fn has(group: u32, attr: u64) -> Result {
    match group {
        GRP_ADDR if attr == ITS_ADDR_TYPE => Ok(()),
        GRP_CTRL if matches!(attr, CTRL_INIT | CTRL_RESET | SAVE_TABLES | RESTORE_TABLES) => Ok(()),
        GRP_ITS_REGS => Ok(Its::has_reg(attr)?),
        GRP_TRANSLATE => Ok(()),
        _ => Err(ENXIO),
    }
}
