// SPDX-License-Identifier: GPL-2.0

//! The ITS frame's registers, as the guest (MMIO) and the VMM
//! (`KVM_DEV_ARM_VGIC_GRP_ITS_REGS`) access them.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reg {
    Ctlr,
    Iidr,
    Typer,
    Cbaser,
    Cwriter,
    Creadr,
    Baser,
    Idregs,
}

struct Region {
    offset: u32,
    len: u32,
    access64: bool,
    reg: Reg,
}

/// `its_registers[]`: every region allows 32-bit accesses.
const REGIONS: [Region; 8] = [
    Region {
        offset: GITS_CTLR as u32,
        len: 4,
        access64: false,
        reg: Reg::Ctlr,
    },
    Region {
        offset: GITS_IIDR as u32,
        len: 4,
        access64: false,
        reg: Reg::Iidr,
    },
    Region {
        offset: GITS_TYPER as u32,
        len: 8,
        access64: true,
        reg: Reg::Typer,
    },
    Region {
        offset: GITS_CBASER as u32,
        len: 8,
        access64: true,
        reg: Reg::Cbaser,
    },
    Region {
        offset: GITS_CWRITER as u32,
        len: 8,
        access64: true,
        reg: Reg::Cwriter,
    },
    Region {
        offset: GITS_CREADR as u32,
        len: 8,
        access64: true,
        reg: Reg::Creadr,
    },
    Region {
        offset: GITS_BASER as u32,
        len: 0x40,
        access64: true,
        reg: Reg::Baser,
    },
    Region {
        offset: GITS_IDREGS_BASE as u32,
        len: 0x30,
        access64: false,
        reg: Reg::Idregs,
    },
];

/// `vgic_find_mmio_region()`.
fn find_region(offset: u32) -> Option<&'static Region> {
    REGIONS
        .iter()
        .find(|r| offset >= r.offset && offset - r.offset < r.len)
}

/// `check_region()`: 32-bit accesses everywhere, 64-bit where allowed,
/// naturally aligned.
fn check_region(region: &Region, offset: u64, len: u32) -> bool {
    let ok = match len {
        4 => true,
        8 => region.access64,
        _ => false,
    };
    // `len` is 4 or 8 here.
    ok && offset & (len as u64 - 1) == 0
}

fn len_mask(len: u32) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (len * 8)) - 1
    }
}

/// `extract_bytes()`.
pub fn extract_bytes(data: u64, offset: u64, num: u32) -> u64 {
    data.checked_shr((offset * 8) as u32).unwrap_or(0) & len_mask(num)
}

/// `update_64bit_reg()`: write either half of a 64-bit register, or all of it.
pub fn update_64bit_reg(reg: u64, offset: u64, len: u32, val: u64) -> u64 {
    let lower = ((offset & 4) * 8) as u32;
    let mask = len_mask(len);
    (reg & !mask.checked_shl(lower).unwrap_or(0)) | (val & mask).checked_shl(lower).unwrap_or(0)
}

fn sanitise_field(reg: u64, shift: u32, mask: u64, f: fn(u64) -> u64) -> u64 {
    let field = (reg >> shift) & mask;
    (reg & !(mask << shift)) | (f(field) & mask) << shift
}

/// `vgic_sanitise_shareability()`: OuterShareable becomes InnerShareable.
fn sanitise_shareability(f: u64) -> u64 {
    if f == 2 {
        1
    } else {
        f
    }
}

/// `vgic_sanitise_inner_cacheability()`: no inner non-cacheable mapping.
fn sanitise_inner_cacheability(f: u64) -> u64 {
    if f <= 1 {
        3
    } else {
        f
    }
}

/// `vgic_sanitise_outer_cacheability()`: non-cacheable or same-as-inner.
fn sanitise_outer_cacheability(f: u64) -> u64 {
    if f <= 1 {
        f
    } else {
        0
    }
}

fn sanitise_common(reg: u64) -> u64 {
    let reg = sanitise_field(reg, SHAREABILITY_SHIFT, 3, sanitise_shareability);
    let reg = sanitise_field(
        reg,
        INNER_CACHEABILITY_SHIFT,
        7,
        sanitise_inner_cacheability,
    );
    sanitise_field(
        reg,
        OUTER_CACHEABILITY_SHIFT,
        7,
        sanitise_outer_cacheability,
    )
}

/// `vgic_sanitise_its_baser()`.
pub fn sanitise_baser(reg: u64) -> u64 {
    (sanitise_common(reg) & !GITS_BASER_PAGE_SIZE_MASK) | GITS_BASER_PAGE_SIZE_64K
}

/// `vgic_sanitise_its_cbaser()`.
pub fn sanitise_cbaser(reg: u64) -> u64 {
    sanitise_common(reg) & !(0xf << 12)
}

/// The alignment rule of `vgic_its_has_attr_regs()` and
/// `vgic_its_attr_regs_access()`: 64-bit registers need 64-bit aligned
/// offsets. The kernel glue calls this (`kvits_rs_reg_align()`) before its
/// "base address not set" check to keep the C's error precedence.
pub fn uaccess_align(offset: u64) -> Result<(), Errno> {
    let align = if (GITS_TYPER..GITS_PIDR4).contains(&offset) {
        7
    } else {
        3
    };
    if offset & align != 0 {
        Err(EINVAL)
    } else {
        Ok(())
    }
}

impl<E: Env> Its<E> {
    fn reg_read(&self, reg: Reg, offset: u64, len: u32) -> u64 {
        match reg {
            Reg::Ctlr => {
                let mut v = 0;
                if self.creadr == self.cwriter {
                    v |= GITS_CTLR_QUIESCENT;
                }
                if self.enabled {
                    v |= GITS_CTLR_ENABLE;
                }
                v
            }
            Reg::Iidr => {
                (((self.abi_rev << 12) & 0xf000) | (PRODUCT_ID_KVM << 24) | IMPLEMENTER_ARM) as u64
            }
            Reg::Typer => extract_bytes(TYPER_VALUE, offset & 7, len),
            Reg::Cbaser => extract_bytes(self.cbaser, offset & 7, len),
            Reg::Cwriter => extract_bytes(self.cwriter, offset & 7, len),
            Reg::Creadr => extract_bytes(self.creadr, offset & 7, len),
            Reg::Baser => {
                let v = match (offset / 8) & 7 {
                    0 => self.baser_device_table,
                    1 => self.baser_coll_table,
                    _ => 0,
                };
                extract_bytes(v, offset & 7, len)
            }
            Reg::Idregs => match offset & 0xffff {
                GITS_PIDR0 => 0x92,
                GITS_PIDR1 => 0xb4,
                GITS_PIDR2 => 0x30 | 0x0b,
                GITS_PIDR4 => 0x40,
                GITS_CIDR0 => 0x0d,
                GITS_CIDR1 => 0xf0,
                GITS_CIDR2 => 0x05,
                GITS_CIDR3 => 0xb1,
                _ => 0,
            },
        }
    }

    /// Writes a register; true when the write wants the command queue run
    /// (CWRITER, CTLR), which the caller then does.
    fn reg_write(&mut self, env: &mut E, reg: Reg, offset: u64, len: u32, val: u64) -> bool {
        match reg {
            Reg::Ctlr => return self.write_ctlr(env, val),
            Reg::Cbaser => {
                // Read-only while the ITS is enabled.
                if !self.enabled {
                    self.cbaser =
                        sanitise_cbaser(update_64bit_reg(self.cbaser, offset & 7, len, val));
                    self.creadr = 0;
                    // CWRITER is UNKNOWN on reset: start with an empty queue.
                    self.cwriter = self.creadr;
                }
            }
            Reg::Cwriter => {
                let reg = cmd_offset(update_64bit_reg(self.cwriter, offset & 7, len, val));
                if reg < cmd_buffer_size(self.cbaser) {
                    self.cwriter = reg;
                    return true;
                }
            }
            Reg::Baser => self.write_baser(env, offset, len, val),
            Reg::Iidr | Reg::Typer | Reg::Creadr | Reg::Idregs => {}
        }
        false
    }

    /// `vgic_mmio_write_its_ctlr()`; true when the queue must run.
    fn write_ctlr(&mut self, env: &mut E, val: u64) -> bool {
        let enable = val & GITS_CTLR_ENABLE != 0;
        // Enabling with an invalid CBASER or BASER is UNPREDICTABLE: ignore.
        if !self.enabled
            && enable
            && (!baser_valid(self.baser_device_table)
                || !baser_valid(self.baser_coll_table)
                || self.cbaser & GITS_CBASER_VALID == 0)
        {
            return false;
        }
        self.enabled = enable;
        if !self.enabled {
            env.cache_invalidate();
        }
        true
    }

    /// `vgic_mmio_write_its_baser()`.
    fn write_baser(&mut self, env: &mut E, offset: u64, len: u32, val: u64) {
        if self.enabled {
            return;
        }
        let (old, table_type, clearbits) = match (offset / 8) & 7 {
            0 => (self.baser_device_table, GITS_BASER_TYPE_DEVICE, 0),
            1 => (
                self.baser_coll_table,
                GITS_BASER_TYPE_COLLECTION,
                GITS_BASER_INDIRECT,
            ),
            _ => return,
        };
        let mut reg = update_64bit_reg(old, offset & 7, len, val);
        reg &= !GITS_BASER_RO_MASK;
        reg &= !clearbits;
        reg |= (ABI_0_ESZ - 1) << GITS_BASER_ENTRY_SIZE_SHIFT;
        reg |= table_type << GITS_BASER_TYPE_SHIFT;
        let reg = sanitise_baser(reg);

        if table_type == GITS_BASER_TYPE_DEVICE {
            self.baser_device_table = reg;
        } else {
            self.baser_coll_table = reg;
        }

        // The ITS driver rewrites an unchanged GITS_BASER<n> on resume.
        if reg != old {
            if table_type == GITS_BASER_TYPE_DEVICE {
                self.free_device_list(env);
            } else {
                self.free_collection_list();
            }
            env.cache_invalidate();
        }
    }

    /// A guest read of `len` bytes at `offset` in the ITS frame. Unknown
    /// offsets and bad sizes or alignments read as zero.
    pub fn mmio_read(&mut self, _env: &mut E, offset: u64, len: u32) -> u64 {
        if offset >= ITS_FRAME_SIZE {
            return 0;
        }
        match find_region(offset as u32) {
            Some(r) if check_region(r, offset, len) => {
                self.reg_read(r.reg, offset, len) & len_mask(len)
            }
            _ => 0,
        }
    }

    /// A guest write of `len` bytes at `offset` in the ITS frame (unknown
    /// offsets and bad sizes or alignments are ignored) that leaves the
    /// command queue to the caller: true when the write wants it run, a command at a time
    /// ([`Its::step_command`], or [`Its::next_command`] and
    /// [`Its::complete_command`] around an unlocked read) until none is
    /// left (at most [`Its::queue_slots`] of them). Upstream runs the
    /// queue holding only its command lock and takes the ITS lock per
    /// command, so an MSI waits for one command, not the queue: a caller
    /// that drops this model's lock between steps does the same.
    pub fn mmio_write_deferred(&mut self, env: &mut E, offset: u64, len: u32, val: u64) -> bool {
        if offset >= ITS_FRAME_SIZE {
            return false;
        }
        match find_region(offset as u32) {
            Some(r) if check_region(r, offset, len) => {
                self.reg_write(env, r.reg, offset, len, val & len_mask(len))
            }
            _ => false,
        }
    }

    fn uaccess_region(offset: u64) -> Result<&'static Region, Errno> {
        uaccess_align(offset)?;
        // vgic_find_mmio_region() takes an unsigned int offset.
        find_region(offset as u32).ok_or(ENXIO)
    }

    /// `vgic_its_has_attr_regs()`.
    pub fn has_reg(offset: u64) -> Result<(), Errno> {
        Self::uaccess_region(offset).map(|_| ())
    }

    /// A KVM_DEV_ARM_VGIC_GRP_ITS_REGS read (`vgic_its_attr_regs_access()`).
    pub fn uaccess_read(&mut self, _env: &mut E, offset: u64) -> Result<u64, Errno> {
        let r = Self::uaccess_region(offset)?;
        let len = if r.access64 { 8 } else { 4 };
        Ok(self.reg_read(r.reg, offset, len))
    }

    /// A KVM_DEV_ARM_VGIC_GRP_ITS_REGS write (`vgic_its_attr_regs_access()`).
    pub fn uaccess_write(&mut self, env: &mut E, offset: u64, val: u64) -> Result<(), Errno> {
        let r = Self::uaccess_region(offset)?;
        let len = if r.access64 { 8 } else { 4 };
        match r.reg {
            Reg::Iidr => {
                let rev = ((val >> 12) & 0xf) as u32;
                if rev >= NR_ITS_ABIS {
                    return Err(EINVAL);
                }
                self.set_abi(rev);
                Ok(())
            }
            Reg::Creadr => {
                if self.enabled {
                    return Err(EBUSY);
                }
                let off = cmd_offset(val);
                if off >= cmd_buffer_size(self.cbaser) {
                    return Err(EINVAL);
                }
                self.creadr = off;
                Ok(())
            }
            reg => {
                if self.reg_write(env, reg, offset, len, val) {
                    self.process_commands(env);
                }
                Ok(())
            }
        }
    }
}
