// SPDX-License-Identifier: GPL-2.0

//! The ITS model: registers, command queue, device/ITE/collection
//! bookkeeping and the ABI revision 0 save/restore of `vgic-its.c`.
//!
//! [`Its`] mirrors `struct vgic_its`. The caller holds a lock around it
//! (the C's `its_lock`) and reaches KVM through [`Env`]; a caller that also
//! serialises the queue's writers (the C's `cmd_lock`) may run the queue a
//! command at a time and read each command unlocked
//! ([`Its::next_command`]). Devices, ITEs and collections are kept in arrays sorted by ID
//! and looked up by binary search.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use crate::cmd::*;
use crate::env::{Env, Errno, NoMem, Vector, EBUSY, EEXIST, EINVAL, ENODEV, ENOMEM, ENXIO};
use crate::table::{
    self, baser_addr, baser_table_size, baser_valid, cbaser_addr, cmd_buffer_size, cmd_offset, Cte,
    Dte, Itte, ABI_0_ESZ, COLLECTION_NOT_MAPPED, GITS_BASER_ENTRY_SIZE_MASK,
    GITS_BASER_ENTRY_SIZE_SHIFT, GITS_BASER_INDIRECT, GITS_BASER_PAGE_SIZE_64K,
    GITS_BASER_PAGE_SIZE_MASK, GITS_BASER_RO_MASK, GITS_BASER_TYPE_COLLECTION,
    GITS_BASER_TYPE_DEVICE, GITS_BASER_TYPE_SHIFT, GITS_BASER_VALID, GITS_CBASER_VALID,
    INNER_CACHEABILITY_SHIFT, OUTER_CACHEABILITY_SHIFT, SHAREABILITY_SHIFT, SZ_64K, VGIC_MIN_LPI,
    VITS_DTE_MAX_DEVID_OFFSET, VITS_ITE_MAX_EVENTID_OFFSET, VITS_TYPER_IDBITS,
};

/// `GITS_CTLR`.
pub const GITS_CTLR: u64 = 0x0000;
/// `GITS_IIDR`.
pub const GITS_IIDR: u64 = 0x0004;
/// `GITS_TYPER`.
pub const GITS_TYPER: u64 = 0x0008;
/// `GITS_CBASER`.
pub const GITS_CBASER: u64 = 0x0080;
/// `GITS_CWRITER`.
pub const GITS_CWRITER: u64 = 0x0088;
/// `GITS_CREADR`.
pub const GITS_CREADR: u64 = 0x0090;
/// `GITS_BASER<0>` (eight registers).
pub const GITS_BASER: u64 = 0x0100;
/// `GITS_IDREGS_BASE` (= `GITS_PIDR4`).
pub const GITS_IDREGS_BASE: u64 = 0xffd0;
/// `GITS_PIDR4`.
pub const GITS_PIDR4: u64 = 0xffd0;
/// `GITS_PIDR0`.
pub const GITS_PIDR0: u64 = 0xffe0;
/// `GITS_PIDR1`.
pub const GITS_PIDR1: u64 = 0xffe4;
/// `GITS_PIDR2`.
pub const GITS_PIDR2: u64 = 0xffe8;
/// `GITS_CIDR0`.
pub const GITS_CIDR0: u64 = 0xfff0;
/// `GITS_CIDR1`.
pub const GITS_CIDR1: u64 = 0xfff4;
/// `GITS_CIDR2`.
pub const GITS_CIDR2: u64 = 0xfff8;
/// `GITS_CIDR3`.
pub const GITS_CIDR3: u64 = 0xfffc;
/// `KVM_VGIC_V3_ITS_SIZE`: the ITS frame size.
pub const ITS_FRAME_SIZE: u64 = 2 * SZ_64K;

/// `GITS_CTLR_ENABLE`.
pub const GITS_CTLR_ENABLE: u64 = 1;
/// `GITS_CTLR_QUIESCENT`.
pub const GITS_CTLR_QUIESCENT: u64 = 1 << 31;
/// The GITS_TYPER value: PLPIS, Devbits and IDbits 16, ITT entry size 8.
pub const TYPER_VALUE: u64 = 1 | (16 - 1) << 13 | (16 - 1) << 8 | (ABI_0_ESZ - 1) << 4;
/// `PRODUCT_ID_KVM`.
pub const PRODUCT_ID_KVM: u32 = 0x4b;
/// `IMPLEMENTER_ARM`.
pub const IMPLEMENTER_ARM: u32 = 0x43b;
/// The number of ABI revisions (`NR_ITS_ABIS`).
pub const NR_ITS_ABIS: u32 = 1;
/// `INITIAL_BASER_VALUE`: RaWb inner, same-as-inner outer, inner shareable,
/// 64K pages.
pub const INITIAL_BASER_VALUE: u64 =
    3 << INNER_CACHEABILITY_SHIFT | 1 << SHAREABILITY_SHIFT | GITS_BASER_PAGE_SIZE_64K;

const ITS_CMD_SIZE: u64 = 32;

/// An interrupt translation entry (`struct its_ite`). Not `Clone`: it owns
/// its LPI reference.
#[derive(Debug, PartialEq)]
pub struct Ite<L> {
    /// EventID.
    pub event_id: u32,
    /// The collection, `None` once MAPC V=0 unmapped it.
    pub icid: Option<u16>,
    /// The LPI reference this ITE owns.
    pub lpi: L,
}

/// A mapped device (`struct its_device`).
pub struct Device<E: Env> {
    /// DeviceID.
    pub id: u32,
    /// ITT address.
    pub itt_addr: u64,
    /// Number of EventID bits.
    pub num_eventid_bits: u8,
    /// The ITEs, sorted by EventID.
    pub ites: E::Vec<Ite<E::Lpi>>,
}

/// A collection (`struct its_collection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collection {
    /// ICID.
    pub id: u16,
    /// Target vCPU id, or [`COLLECTION_NOT_MAPPED`].
    pub target: u32,
    /// Creation order: the built-in ITS keeps collections in a list in the
    /// order they were made and saves them in that order; so do we, for
    /// byte-identical tables.
    pub seq: u64,
}

/// The outcome of one ITS command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdResult {
    /// Done (the C's 0).
    Ok,
    /// An ITS command error (`E_ITS_*`, the C's positive return).
    Its(u32),
    /// A generic error (the C's negative return).
    Errno(Errno),
}

/// Command counters (for debugfs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands processed, indexed by command number (0..=0xf).
    pub commands: [u64; 16],
    /// Commands with an unknown number.
    pub unknown: u64,
    /// Commands that failed with an `E_ITS_*` code.
    pub its_errors: u64,
    /// Commands that failed with an errno (including unknown commands).
    pub errno_errors: u64,
}

/// A copy of the ITS registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    /// GITS_CTLR.Enabled.
    pub enabled: bool,
    /// GITS_CBASER.
    pub cbaser: u64,
    /// GITS_CREADR.
    pub creadr: u64,
    /// GITS_CWRITER.
    pub cwriter: u64,
    /// GITS_BASER<0> (device table).
    pub baser_device_table: u64,
    /// GITS_BASER<1> (collection table).
    pub baser_coll_table: u64,
    /// The ABI revision (GITS_IIDR.Revision).
    pub abi_rev: u32,
}

/// The result of [`Its::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The LPI's INTID.
    pub intid: u32,
    /// The ITE's collection.
    pub icid: Option<u16>,
    /// The target vCPU, when the collection is mapped to an existing vCPU.
    pub vcpu: Option<u32>,
}

/// The command at CREADR, as [`Its::next_command`] found it: where to read
/// it, and the queue state that must still hold to run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextCommand {
    creadr: u64,
    cbaser: u64,
}

impl NextCommand {
    /// Reads the command from guest memory; `None` when the read fails.
    pub fn read<E: Env>(&self, env: &mut E) -> Option<[u64; 4]> {
        let mut buf = [0u8; ITS_CMD_SIZE as usize];
        env.read_guest(cbaser_addr(self.cbaser).wrapping_add(self.creadr), &mut buf)
            .ok()?;
        let mut cmd = [0u64; 4];
        for (w, b) in cmd.iter_mut().zip(buf.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
        Some(cmd)
    }
}

/// One ITE, as [`Its::ites_after`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IteInfo {
    /// DeviceID.
    pub devid: u32,
    /// EventID.
    pub eventid: u32,
    /// LPI INTID.
    pub intid: u32,
    /// Collection.
    pub icid: Option<u16>,
    /// The collection's target (`None`: no collection, or not mapped).
    pub target: Option<u32>,
}

impl IteInfo {
    /// A placeholder, to size buffers for [`Its::ites_after`].
    pub const EMPTY: IteInfo = IteInfo {
        devid: 0,
        eventid: 0,
        intid: 0,
        icid: None,
        target: None,
    };
}

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

fn errno(r: Result<(), Errno>) -> CmdResult {
    match r {
        Ok(()) => CmdResult::Ok,
        Err(e) => CmdResult::Errno(e),
    }
}

/// Where a table scan is: which entries `scan_its_table()` walks.
#[derive(Clone, Copy)]
enum Scan {
    /// Level-1 device table entries (`handle_l1_dte`).
    L1,
    /// Device table entries (`vgic_its_restore_dte`).
    Dte,
    /// The ITT of a device (`vgic_its_restore_ite`).
    Ite(u32),
}

/// The emulated ITS (`struct vgic_its`).
pub struct Its<E: Env> {
    enabled: bool,
    cbaser: u64,
    creadr: u64,
    cwriter: u64,
    baser_device_table: u64,
    baser_coll_table: u64,
    abi_rev: u32,
    devices: E::Vec<Device<E>>,
    /// The next [`Collection::seq`].
    next_coll_seq: u64,
    collections: E::Vec<Collection>,
    stats: Stats,
}

impl<E: Env> Default for Its<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Env> Its<E> {
    /// A new ITS, as `vgic_its_create()` leaves it (ABI revision 0).
    pub fn new() -> Self {
        let mut its = Its {
            enabled: false,
            cbaser: 0,
            creadr: 0,
            cwriter: 0,
            baser_device_table: INITIAL_BASER_VALUE
                | GITS_BASER_TYPE_DEVICE << GITS_BASER_TYPE_SHIFT,
            baser_coll_table: INITIAL_BASER_VALUE
                | GITS_BASER_TYPE_COLLECTION << GITS_BASER_TYPE_SHIFT,
            abi_rev: 0,
            devices: E::Vec::new_empty(),
            next_coll_seq: 0,
            collections: E::Vec::new_empty(),
            stats: Stats::default(),
        };
        its.set_abi(NR_ITS_ABIS - 1);
        its
    }

    /// `vgic_its_set_abi()` and `vgic_its_commit_v0()`.
    fn set_abi(&mut self, rev: u32) {
        self.abi_rev = rev;
        let esz = (ABI_0_ESZ - 1) << GITS_BASER_ENTRY_SIZE_SHIFT;
        self.baser_coll_table = (self.baser_coll_table & !GITS_BASER_ENTRY_SIZE_MASK) | esz;
        self.baser_device_table = (self.baser_device_table & !GITS_BASER_ENTRY_SIZE_MASK) | esz;
    }

    /// The registers.
    pub fn regs(&self) -> Regs {
        Regs {
            enabled: self.enabled,
            cbaser: self.cbaser,
            creadr: self.creadr,
            cwriter: self.cwriter,
            baser_device_table: self.baser_device_table,
            baser_coll_table: self.baser_coll_table,
            abi_rev: self.abi_rev,
        }
    }

    /// The command counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The mapped devices, sorted by DeviceID.
    pub fn devices(&self) -> &[Device<E>] {
        &self.devices
    }

    /// The collections, sorted by ICID.
    pub fn collections(&self) -> &[Collection] {
        &self.collections
    }

    /// Copy the first `out.len()` ITEs after (DeviceID, EventID) `after`
    /// (`None`: from the first), in (DeviceID, EventID) order, into `out`;
    /// returns how many were copied (fewer than `out.len()`: the last ones).
    /// For walking every ITE in bounded steps, a lock hold each, resuming
    /// after the last one seen even if the tables changed in between.
    pub fn ites_after(&self, env: &E, after: Option<(u32, u32)>, out: &mut [IteInfo]) -> usize {
        let first_dev = match after {
            None => 0,
            Some((devid, _)) => self.devices.partition_point(|d| d.id < devid),
        };
        let mut out = out.iter_mut();
        let mut n = 0;
        for dev in self.devices.get(first_dev..).unwrap_or(&[]) {
            let first_ite = match after {
                Some((devid, eventid)) if dev.id == devid => {
                    dev.ites.partition_point(|i| i.event_id <= eventid)
                }
                _ => 0,
            };
            for ite in dev.ites.get(first_ite..).unwrap_or(&[]) {
                let Some(slot) = out.next() else {
                    return n;
                };
                *slot = self.ite_info(env, dev, ite);
                n += 1;
            }
        }
        n
    }

    fn ite_info(&self, env: &E, dev: &Device<E>, ite: &Ite<E::Lpi>) -> IteInfo {
        IteInfo {
            devid: dev.id,
            eventid: ite.event_id,
            intid: env.lpi_intid(&ite.lpi),
            icid: ite.icid,
            target: self.mapped_collection(ite.icid).map(|c| c.target),
        }
    }

    /// Translate (DeviceID, EventID) to its LPI and target, without side
    /// effects. `None` when no ITE maps the event.
    pub fn translate(&self, env: &E, devid: u32, eventid: u32) -> Option<Translation> {
        let (d, i) = self.find_ite(devid, eventid)?;
        let ite = self.devices.get(d)?.ites.get(i)?;
        Some(Translation {
            intid: env.lpi_intid(&ite.lpi),
            icid: ite.icid,
            vcpu: self
                .mapped_collection(ite.icid)
                .and_then(|c| Self::collection_vcpu(env, c)),
        })
    }

    // ---- lookups -------------------------------------------------------

    fn find_device(&self, id: u32) -> Option<usize> {
        self.devices.binary_search_by_key(&id, |d| d.id).ok()
    }

    fn find_ite(&self, devid: u32, eventid: u32) -> Option<(usize, usize)> {
        let d = self.find_device(devid)?;
        let i = self
            .devices
            .get(d)?
            .ites
            .binary_search_by_key(&eventid, |i| i.event_id)
            .ok()?;
        Some((d, i))
    }

    fn find_collection(&self, id: u32) -> Option<&Collection> {
        let id = u16::try_from(id).ok()?;
        let i = self.collections.binary_search_by_key(&id, |c| c.id).ok()?;
        self.collections.get(i)
    }

    /// `its_is_collection_mapped()` of an ITE's collection.
    fn mapped_collection(&self, icid: Option<u16>) -> Option<&Collection> {
        self.find_collection(icid? as u32)
            .filter(|c| c.target != COLLECTION_NOT_MAPPED)
    }

    /// `collection_to_vcpu()` of a mapped collection.
    fn collection_vcpu(env: &E, c: &Collection) -> Option<u32> {
        if c.target != COLLECTION_NOT_MAPPED && env.vcpu_exists(c.target) {
            Some(c.target)
        } else {
            None
        }
    }

    fn check_id(env: &mut E, baser: u64, id: u32) -> Option<u64> {
        table::check_id(
            env,
            baser,
            id,
            |env, gpa| {
                let mut b = [0u8; 8];
                env.read_guest(gpa, &mut b).ok()?;
                Some(u64::from_le_bytes(b))
            },
            |env, gpa| env.is_visible(gpa),
        )
    }

    /// `vgic_its_check_event_id()`.
    fn check_event_id(env: &mut E, itt_addr: u64, bits: u8, event_id: u32) -> bool {
        let limit = 1u64.checked_shl(bits as u32).unwrap_or(u64::MAX);
        if event_id as u64 >= limit {
            return false;
        }
        env.is_visible(itt_addr.wrapping_add(event_id as u64 * ABI_0_ESZ))
    }

    fn write_entry(env: &mut E, gpa: u64, val: u64) -> Result<(), Errno> {
        env.write_guest(gpa, &val.to_le_bytes())
    }

    fn read_entry(env: &mut E, gpa: u64) -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        env.read_guest(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    // ---- freeing -------------------------------------------------------

    /// Give back the LPI reference of every ITE of `dev`, emptying it.
    fn release_ites(env: &mut E, dev: &mut Device<E>) {
        let mut ites = core::mem::replace(&mut dev.ites, E::Vec::new_empty());
        // From the end, so each removal moves nothing.
        while let Some(last) = ites.len().checked_sub(1) {
            let ite = ites.remove_at(last);
            env.lpi_release(ite.lpi);
        }
    }

    /// Store a new ITE at `pos` of `dev`'s ITEs; if that fails, give its LPI
    /// reference back.
    fn insert_ite(
        env: &mut E,
        dev: Option<&mut Device<E>>,
        pos: usize,
        ite: Ite<E::Lpi>,
    ) -> Result<(), Errno> {
        let Some(dev) = dev else {
            env.lpi_release(ite.lpi);
            return Err(ENOMEM);
        };
        dev.ites.try_insert(pos, ite).map_err(|NoMem(ite)| {
            env.lpi_release(ite.lpi);
            ENOMEM
        })
    }

    /// `vgic_its_free_device()`.
    fn free_device(&mut self, env: &mut E, index: usize) {
        if index >= self.devices.len() {
            return;
        }
        let mut dev = self.devices.remove_at(index);
        Self::release_ites(env, &mut dev);
        env.cache_invalidate();
    }

    /// `vgic_its_free_device_list()`.
    fn free_device_list(&mut self, env: &mut E) {
        if self.devices.is_empty() {
            return;
        }
        let mut devices = core::mem::replace(&mut self.devices, E::Vec::new_empty());
        for dev in devices.iter_mut() {
            Self::release_ites(env, dev);
        }
        env.cache_invalidate();
    }

    /// `vgic_its_free_collection()`: ITEs in it lose their collection.
    fn free_collection(&mut self, id: u16) {
        let index = match self.collections.binary_search_by_key(&id, |c| c.id) {
            Ok(i) => i,
            Err(_) => return,
        };
        for dev in self.devices.iter_mut() {
            for ite in dev.ites.iter_mut() {
                if ite.icid == Some(id) {
                    ite.icid = None;
                }
            }
        }
        self.collections.remove_at(index);
    }

    /// `vgic_its_free_collection_list()`.
    fn free_collection_list(&mut self) {
        if self.collections.is_empty() {
            return;
        }
        for dev in self.devices.iter_mut() {
            for ite in dev.ites.iter_mut() {
                ite.icid = None;
            }
        }
        self.collections = E::Vec::new_empty();
    }

    /// `vgic_its_alloc_collection()` with its target.
    fn alloc_collection(&mut self, id: u16, target: u32) -> Result<(), Errno> {
        match self.collections.binary_search_by_key(&id, |c| c.id) {
            Ok(_) => Err(EEXIST),
            Err(pos) => {
                let c = Collection {
                    id,
                    target,
                    seq: self.next_coll_seq,
                };
                self.collections.try_insert(pos, c).map_err(|_| ENOMEM)?;
                self.next_coll_seq += 1;
                Ok(())
            }
        }
    }

    // ---- commands ------------------------------------------------------

    /// Execute one command (`vgic_its_handle_command()`), as the command
    /// queue does; `cmd` holds the four words in host order.
    pub fn process_command(&mut self, env: &mut E, cmd: &[u64; 4]) -> CmdResult {
        let decoded = Command::decode(cmd);
        let res = match decoded {
            Command::Mapd {
                device_id,
                num_eventid_bits,
                itt_addr,
                valid,
            } => self.cmd_mapd(env, device_id, num_eventid_bits, itt_addr, valid),
            Command::Mapc {
                icid,
                target,
                valid,
            } => self.cmd_mapc(env, icid, target, valid),
            Command::Mapti {
                device_id,
                event_id,
                pintid,
                icid,
            } => self.cmd_mapi(env, device_id, event_id, pintid, icid as u32),
            Command::Mapi {
                device_id,
                event_id,
                icid,
            } => self.cmd_mapi(env, device_id, event_id, event_id, icid as u32),
            Command::Movi {
                device_id,
                event_id,
                icid,
            } => self.cmd_movi(env, device_id, event_id, icid as u32),
            Command::Discard {
                device_id,
                event_id,
            } => self.cmd_discard(env, device_id, event_id),
            Command::Clear {
                device_id,
                event_id,
            } => match self.lpi_of(device_id, event_id) {
                Some(lpi) => errno(env.lpi_clear(lpi)),
                None => CmdResult::Its(E_ITS_CLEAR_UNMAPPED_INTERRUPT),
            },
            Command::Int {
                device_id,
                event_id,
            } => self.trigger_msi(env, device_id, event_id),
            Command::Inv {
                device_id,
                event_id,
            } => match self.lpi_of(device_id, event_id) {
                Some(lpi) => errno(env.lpi_inv(lpi)),
                None => CmdResult::Its(E_ITS_INV_UNMAPPED_INTERRUPT),
            },
            Command::Invall { icid } => match self.mapped_collection(Some(icid)) {
                Some(c) => {
                    if let Some(vcpu) = Self::collection_vcpu(env, c) {
                        env.invall(vcpu);
                    }
                    CmdResult::Ok
                }
                None => CmdResult::Its(E_ITS_INVALL_UNMAPPED_COLLECTION),
            },
            Command::Movall { target1, target2 } => {
                if !env.vcpu_exists(target1) || !env.vcpu_exists(target2) {
                    CmdResult::Its(E_ITS_MOVALL_PROCNUM_OOR)
                } else if target1 == target2 {
                    CmdResult::Ok
                } else {
                    env.movall(target1, target2);
                    env.cache_invalidate();
                    CmdResult::Ok
                }
            }
            // We are in sync all of the time.
            Command::Sync { .. } => CmdResult::Ok,
            Command::Unknown(_) => CmdResult::Errno(ENODEV),
        };

        let slot = match decoded {
            Command::Unknown(_) => None,
            _ => self.stats.commands.get_mut(Command::opcode(cmd) as usize),
        };
        match slot {
            Some(n) => *n += 1,
            None => self.stats.unknown += 1,
        }
        match res {
            CmdResult::Ok => {}
            CmdResult::Its(_) => self.stats.its_errors += 1,
            CmdResult::Errno(_) => self.stats.errno_errors += 1,
        }
        res
    }

    fn ite_lpi(&self, d: usize, i: usize) -> Option<&E::Lpi> {
        Some(&self.devices.get(d)?.ites.get(i)?.lpi)
    }

    /// The LPI the ITE of (`device_id`, `event_id`) maps, if there is one.
    fn lpi_of(&self, device_id: u32, event_id: u32) -> Option<&E::Lpi> {
        let (d, i) = self.find_ite(device_id, event_id)?;
        self.ite_lpi(d, i)
    }

    /// MAPD (`vgic_its_cmd_handle_mapd()`).
    fn cmd_mapd(
        &mut self,
        env: &mut E,
        device_id: u32,
        num_eventid_bits: u8,
        itt_addr: u64,
        valid: bool,
    ) -> CmdResult {
        let gpa = match Self::check_id(env, self.baser_device_table, device_id) {
            Some(gpa) => gpa,
            None => return CmdResult::Its(E_ITS_MAPD_DEVICE_OOR),
        };
        if valid && num_eventid_bits > VITS_TYPER_IDBITS {
            return CmdResult::Its(E_ITS_MAPD_ITTSIZE_OOR);
        }

        // Remapping a mapped device invalidates all its cached data: remove
        // the mapping and re-establish it.
        if let Some(d) = self.find_device(device_id) {
            self.free_device(env, d);
        }

        if !valid {
            return errno(Self::write_entry(env, gpa, 0));
        }

        let pos = match self.devices.binary_search_by_key(&device_id, |d| d.id) {
            Ok(p) | Err(p) => p,
        };
        let dev = Device {
            id: device_id,
            itt_addr,
            num_eventid_bits,
            ites: E::Vec::new_empty(),
        };
        match self.devices.try_insert(pos, dev) {
            Ok(()) => CmdResult::Ok,
            Err(_) => CmdResult::Errno(ENOMEM),
        }
    }

    /// MAPC (`vgic_its_cmd_handle_mapc()`).
    fn cmd_mapc(&mut self, env: &mut E, icid: u16, target: u32, valid: bool) -> CmdResult {
        if !valid {
            self.free_collection(icid);
            env.cache_invalidate();
            return CmdResult::Ok;
        }
        if !env.vcpu_exists(target) {
            return CmdResult::Its(E_ITS_MAPC_PROCNUM_OOR);
        }
        match self.collections.binary_search_by_key(&icid, |c| c.id) {
            Ok(i) => {
                if let Some(c) = self.collections.get_mut(i) {
                    c.target = target;
                }
                // update_affinity_collection()
                for dev in self.devices.iter() {
                    for ite in dev.ites.iter() {
                        if ite.icid == Some(icid) {
                            // The C ignores update_affinity()'s result here.
                            let _ = env.lpi_set_target(&ite.lpi, None, target);
                        }
                    }
                }
                CmdResult::Ok
            }
            Err(pos) => {
                if Self::check_id(env, self.baser_coll_table, icid as u32).is_none() {
                    return CmdResult::Its(E_ITS_MAPC_COLLECTION_OOR);
                }
                let c = Collection {
                    id: icid,
                    target,
                    seq: self.next_coll_seq,
                };
                match self.collections.try_insert(pos, c) {
                    Ok(()) => {
                        self.next_coll_seq += 1;
                        CmdResult::Ok
                    }
                    Err(_) => CmdResult::Errno(ENOMEM),
                }
            }
        }
    }

    /// MAPTI and MAPI (`vgic_its_cmd_handle_mapi()`).
    fn cmd_mapi(
        &mut self,
        env: &mut E,
        device_id: u32,
        event_id: u32,
        lpi_nr: u32,
        coll_id: u32,
    ) -> CmdResult {
        let d = match self.find_device(device_id) {
            Some(d) => d,
            None => return CmdResult::Its(E_ITS_MAPTI_UNMAPPED_DEVICE),
        };
        let (itt_addr, bits) = match self.devices.get(d) {
            Some(dev) => (dev.itt_addr, dev.num_eventid_bits),
            None => return CmdResult::Its(E_ITS_MAPTI_UNMAPPED_DEVICE),
        };
        if !Self::check_event_id(env, itt_addr, bits, event_id) {
            return CmdResult::Its(E_ITS_MAPTI_ID_OOR);
        }
        if lpi_nr < VGIC_MIN_LPI || lpi_nr >= env.max_lpis() {
            return CmdResult::Its(E_ITS_MAPTI_PHYSICALID_OOR);
        }

        // If there is an existing mapping, behavior is UNPREDICTABLE.
        let pos = match self.devices.get(d) {
            Some(dev) => match dev.ites.binary_search_by_key(&event_id, |i| i.event_id) {
                Ok(_) => return CmdResult::Ok,
                Err(pos) => pos,
            },
            None => return CmdResult::Ok,
        };

        let mut new_coll = false;
        let target = match self.find_collection(coll_id) {
            Some(c) => c.target,
            None => {
                if Self::check_id(env, self.baser_coll_table, coll_id).is_none() {
                    return CmdResult::Its(E_ITS_MAPC_COLLECTION_OOR);
                }
                if let Err(e) = self.alloc_collection(coll_id as u16, COLLECTION_NOT_MAPPED) {
                    return CmdResult::Errno(e);
                }
                new_coll = true;
                COLLECTION_NOT_MAPPED
            }
        };
        let vcpu = if target != COLLECTION_NOT_MAPPED && env.vcpu_exists(target) {
            Some(target)
        } else {
            None
        };

        let res = match env.lpi_add(lpi_nr, vcpu) {
            Err(e) => Err(e),
            Ok(lpi) => match env.lpi_map(lpi, vcpu) {
                None => Err(EEXIST),
                Some(lpi) => {
                    let ite = Ite {
                        event_id,
                        icid: Some(coll_id as u16),
                        lpi,
                    };
                    Self::insert_ite(env, self.devices.get_mut(d), pos, ite)
                }
            },
        };
        match res {
            Ok(()) => CmdResult::Ok,
            Err(e) => {
                if new_coll {
                    self.free_collection(coll_id as u16);
                }
                CmdResult::Errno(e)
            }
        }
    }

    /// MOVI (`vgic_its_cmd_handle_movi()`).
    fn cmd_movi(&mut self, env: &mut E, device_id: u32, event_id: u32, coll_id: u32) -> CmdResult {
        let (d, i) = match self.find_ite(device_id, event_id) {
            Some(x) => x,
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };
        let cur = match self.devices.get(d).and_then(|dev| dev.ites.get(i)) {
            Some(ite) => ite.icid,
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };
        if self.mapped_collection(cur).is_none() {
            return CmdResult::Its(E_ITS_MOVI_UNMAPPED_COLLECTION);
        }
        let (icid, vcpu) = match self.find_collection(coll_id) {
            Some(c) if c.target != COLLECTION_NOT_MAPPED => (c.id, Self::collection_vcpu(env, c)),
            _ => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_COLLECTION),
        };
        let lpi = match self.devices.get_mut(d).and_then(|dev| dev.ites.get_mut(i)) {
            Some(ite) => {
                ite.icid = Some(icid);
                &ite.lpi
            }
            None => return CmdResult::Its(E_ITS_MOVI_UNMAPPED_INTERRUPT),
        };

        env.cache_invalidate();

        match vcpu {
            Some(v) => errno(env.lpi_set_target(lpi, None, v)),
            None => CmdResult::Ok,
        }
    }

    /// DISCARD (`vgic_its_cmd_handle_discard()`).
    fn cmd_discard(&mut self, env: &mut E, device_id: u32, event_id: u32) -> CmdResult {
        if let Some((d, i)) = self.find_ite(device_id, event_id) {
            let (itt_addr, icid) = match self.devices.get(d) {
                Some(dev) => (dev.itt_addr, dev.ites.get(i).and_then(|ite| ite.icid)),
                None => (0, None),
            };
            if self.mapped_collection(icid).is_some() {
                let gpa = itt_addr.wrapping_add(event_id as u64 * ABI_0_ESZ);
                // The pending state is a property of the ITE we free.
                env.cache_invalidate();
                if let Some(dev) = self.devices.get_mut(d) {
                    if i < dev.ites.len() {
                        let ite = dev.ites.remove_at(i);
                        env.lpi_release(ite.lpi);
                    }
                }
                return errno(Self::write_entry(env, gpa, 0));
            }
        }
        CmdResult::Its(E_ITS_DISCARD_UNMAPPED_INTERRUPT)
    }

    /// `vgic_its_resolve_lpi()`: caches the translation on success.
    fn resolve_lpi(&self, env: &mut E, devid: u32, eventid: u32) -> Result<&E::Lpi, CmdResult> {
        if !self.enabled {
            return Err(CmdResult::Errno(EBUSY));
        }
        let unmapped = CmdResult::Its(E_ITS_INT_UNMAPPED_INTERRUPT);
        let (d, i) = self.find_ite(devid, eventid).ok_or(unmapped)?;
        let ite = self
            .devices
            .get(d)
            .and_then(|dev| dev.ites.get(i))
            .ok_or(unmapped)?;
        let c = self.mapped_collection(ite.icid).ok_or(unmapped)?;
        let vcpu = Self::collection_vcpu(env, c).ok_or(unmapped)?;
        if !env.lpis_enabled(vcpu) {
            return Err(CmdResult::Errno(EBUSY));
        }
        env.cache_insert(devid, eventid, &ite.lpi);
        Ok(&ite.lpi)
    }

    /// `vgic_its_trigger_msi()`.
    fn trigger_msi(&mut self, env: &mut E, devid: u32, eventid: u32) -> CmdResult {
        match self.resolve_lpi(env, devid, eventid) {
            Ok(lpi) => errno(env.lpi_trigger(lpi)),
            Err(r) => r,
        }
    }

    /// Inject an MSI after a translation cache miss (the slow path of
    /// `vgic_its_inject_msi()`): `Ok(true)` when delivered, `Ok(false)` when
    /// the mapping blocks it (KVM_SIGNAL_MSI returns 0), `Err(EBUSY)` when the
    /// ITS or the target's LPIs are disabled.
    pub fn inject(&mut self, env: &mut E, devid: u32, eventid: u32) -> Result<bool, Errno> {
        match self.trigger_msi(env, devid, eventid) {
            CmdResult::Ok => Ok(true),
            CmdResult::Its(_) => Ok(false),
            CmdResult::Errno(e) => Err(e),
        }
    }

    /// `vgic_its_process_commands()`: run the queue from CREADR to CWRITER.
    fn process_commands(&mut self, env: &mut E) {
        // CREADR and CWRITER are always 32-byte aligned and below the queue
        // size, so this ends within one turn of the queue; the bound only
        // guards against a broken invariant.
        let mut budget = self.queue_slots();
        while budget > 0 && self.step_command(env) {
            budget -= 1;
        }
    }

    /// How many commands the queue holds: a bound on the
    /// [`Its::step_command`] calls that drain it while CWRITER stays.
    pub fn queue_slots(&self) -> u64 {
        cmd_buffer_size(self.cbaser) / ITS_CMD_SIZE + 1
    }

    /// Runs the command at CREADR, if the ITS is enabled and the queue is
    /// not empty, and advances CREADR; whether it ran one.
    pub fn step_command(&mut self, env: &mut E) -> bool {
        match self.next_command() {
            Some(next) => {
                let cmd = next.read(env);
                self.complete_command(env, next, cmd.as_ref())
            }
            None => false,
        }
    }

    /// Where the command at CREADR is, if the ITS is enabled and the queue
    /// is not empty. The caller reads it with [`NextCommand::read`], which
    /// needs no access to the model, and hands it to
    /// [`Its::complete_command`]: upstream reads a command holding only its
    /// command lock, and so can a caller that drops this model's lock
    /// around the read.
    pub fn next_command(&self) -> Option<NextCommand> {
        if !self.enabled || self.cwriter == self.creadr {
            return None;
        }
        Some(NextCommand {
            creadr: self.creadr,
            cbaser: self.cbaser,
        })
    }

    /// Runs the command read for `next` (`None`: the read failed, which
    /// skips the command, GICv3 spec 6.3.2) and advances CREADR. False,
    /// running nothing, when the queue moved since [`Its::next_command`]
    /// (a caller that lets another writer in between).
    pub fn complete_command(
        &mut self,
        env: &mut E,
        next: NextCommand,
        cmd: Option<&[u64; 4]>,
    ) -> bool {
        if self.next_command() != Some(next) {
            return false;
        }
        if let Some(cmd) = cmd {
            self.process_command(env, cmd);
        }
        self.creadr += ITS_CMD_SIZE;
        if self.creadr >= cmd_buffer_size(self.cbaser) {
            self.creadr = 0;
        }
        true
    }

    // ---- registers -----------------------------------------------------

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

    // ---- reset, destroy ------------------------------------------------

    /// KVM_DEV_ARM_ITS_CTRL_RESET (`vgic_its_reset()`).
    pub fn reset(&mut self, env: &mut E) {
        // Keep the ABI specific field values.
        self.baser_coll_table &= !GITS_BASER_VALID;
        self.baser_device_table &= !GITS_BASER_VALID;
        self.cbaser = 0;
        self.creadr = 0;
        self.cwriter = 0;
        self.enabled = false;
        self.free_device_list(env);
        self.free_collection_list();
    }

    /// Free everything (`vgic_its_destroy()`): every LPI reference is
    /// released and the translation cache invalidated.
    pub fn destroy(&mut self, env: &mut E) {
        self.free_device_list(env);
        self.free_collection_list();
        env.cache_invalidate();
    }

    // ---- save ----------------------------------------------------------

    /// KVM_DEV_ARM_ITS_SAVE_TABLES (`vgic_its_save_tables_v0()`).
    pub fn save_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        self.save_device_tables(env)?;
        self.save_collection_table(env)
    }

    fn save_device_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_device_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        for (n, dev) in self.devices.iter().enumerate() {
            // Don't fail a save that userspace must be able to issue.
            let eaddr = match Self::check_id(env, baser, dev.id) {
                Some(a) => a,
                None => continue,
            };

            // vgic_its_save_itt()
            for (k, ite) in dev.ites.iter().enumerate() {
                let gpa = dev.itt_addr.wrapping_add(ite.event_id as u64 * ABI_0_ESZ);
                let val = match ite.icid {
                    // MAPC V=0 dropped the ICID: save an invalid entry.
                    None => 0,
                    Some(icid) => {
                        let next = dev
                            .ites
                            .get(k + 1..)
                            .and_then(|rest| rest.iter().find(|n| n.icid.is_some()))
                            .map(|n| {
                                n.event_id
                                    .wrapping_sub(ite.event_id)
                                    .min(VITS_ITE_MAX_EVENTID_OFFSET)
                            })
                            .unwrap_or(0);
                        Itte {
                            next,
                            pintid: env.lpi_intid(&ite.lpi),
                            icid,
                        }
                        .encode()
                    }
                };
                Self::write_entry(env, gpa, val)?;
            }

            // vgic_its_save_dte(), compute_next_devid_offset()
            let mut next = 0;
            if let Some(rest) = self.devices.get(n + 1..) {
                for nd in rest.iter() {
                    if Self::check_id(env, baser, nd.id).is_some() {
                        next = nd.id.wrapping_sub(dev.id).min(VITS_DTE_MAX_DEVID_OFFSET);
                        break;
                    }
                }
            }
            let dte = Dte {
                valid: true,
                next,
                itt_addr: dev.itt_addr,
                num_eventid_bits: dev.num_eventid_bits,
            };
            Self::write_entry(env, eaddr, dte.encode())?;
        }
        Ok(())
    }

    fn save_collection_table(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_coll_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max_size = baser_table_size(baser);
        let mut filled = 0u64;
        // In creation order, as the built-in ITS's list.
        let mut order: E::Vec<(u64, u16)> = E::Vec::new_empty();
        for c in self.collections.iter() {
            let pos = order.partition_point(|&(seq, _)| seq < c.seq);
            order.try_insert(pos, (c.seq, c.id)).map_err(|_| ENOMEM)?;
        }
        for &(_, id) in order.iter() {
            let Ok(i) = self.collections.binary_search_by_key(&id, |c| c.id) else {
                continue;
            };
            let Some(c) = self.collections.get(i) else {
                continue;
            };
            let cte = Cte {
                valid: true,
                target: c.target,
                icid: c.id,
            };
            Self::write_entry(env, gpa, cte.encode())?;
            gpa = gpa.wrapping_add(ABI_0_ESZ);
            filled += ABI_0_ESZ;
        }
        if filled == max_size {
            return Ok(());
        }
        // The table is not full: end it with an invalid entry.
        Self::write_entry(env, gpa, 0)
    }

    // ---- restore -------------------------------------------------------

    /// KVM_DEV_ARM_ITS_RESTORE_TABLES (`vgic_its_restore_tables_v0()`).
    pub fn restore_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        self.restore_collection_table(env)?;
        let r = self.restore_device_tables(env);
        if r.is_err() {
            self.free_collection_list();
        }
        r
    }

    /// `vgic_its_restore_cte()`: `Ok(false)` at the end of the table.
    fn restore_cte(&mut self, env: &mut E, gpa: u64) -> Result<bool, Errno> {
        let cte = Cte::decode(Self::read_entry(env, gpa)?);
        if !cte.valid {
            return Ok(false);
        }
        if cte.target != COLLECTION_NOT_MAPPED && !env.vcpu_exists(cte.target) {
            return Err(EINVAL);
        }
        if self.find_collection(cte.icid as u32).is_some() {
            return Err(EEXIST);
        }
        if Self::check_id(env, self.baser_coll_table, cte.icid as u32).is_none() {
            return Err(EINVAL);
        }
        self.alloc_collection(cte.icid, cte.target)?;
        Ok(true)
    }

    fn restore_collection_table(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_coll_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max_size = baser_table_size(baser);
        let mut read = 0;
        while read < max_size {
            match self.restore_cte(env, gpa) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.free_collection_list();
                    return Err(e);
                }
            }
            gpa = gpa.wrapping_add(ABI_0_ESZ);
            read += ABI_0_ESZ;
        }
        Ok(())
    }

    fn restore_device_tables(&mut self, env: &mut E) -> Result<(), Errno> {
        let baser = self.baser_device_table;
        if !baser_valid(baser) {
            return Ok(());
        }
        let kind = if baser & GITS_BASER_INDIRECT != 0 {
            Scan::L1
        } else {
            Scan::Dte
        };
        let r = self.scan_table(env, baser_addr(baser), baser_table_size(baser), 0, kind);
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                self.free_device_list(env);
                Err(e)
            }
        }
    }

    /// `scan_its_table()` over 8-byte entries: `Ok(false)` when an entry
    /// said it was the last, `Ok(true)` when the table ran out. The walk
    /// nests at most three deep (L1 -> DTE -> ITE).
    fn scan_table(
        &mut self,
        env: &mut E,
        base: u64,
        size: u64,
        start_id: u32,
        kind: Scan,
    ) -> Result<bool, Errno> {
        let esz = ABI_0_ESZ;
        let mut len = size;
        let mut id = start_id;
        let mut gpa = base;
        loop {
            let entry = Self::read_entry(env, gpa)?;
            let next = match kind {
                Scan::L1 => self.restore_l1(env, id, entry)?,
                Scan::Dte => self.restore_dte(env, id, entry)?,
                Scan::Ite(devid) => self.restore_ite(env, devid, id, entry)?,
            };
            if next == 0 {
                return Ok(false);
            }
            let byte_offset = next as u64 * esz;
            if byte_offset >= len {
                return Ok(true);
            }
            id = id.wrapping_add(next);
            gpa = gpa.wrapping_add(byte_offset);
            len -= byte_offset;
        }
    }

    /// `handle_l1_dte()`: 0 once the last DTE was found, else 1.
    fn restore_l1(&mut self, env: &mut E, index: u32, entry: u64) -> Result<u32, Errno> {
        let l2_start_id = index.wrapping_mul((SZ_64K / ABI_0_ESZ) as u32);
        if !table::l1_valid(entry) {
            return Ok(1);
        }
        let more = self.scan_table(env, table::l1_addr(entry), SZ_64K, l2_start_id, Scan::Dte)?;
        Ok(more as u32)
    }

    /// `vgic_its_restore_dte()`: the DeviceID offset to the next DTE.
    fn restore_dte(&mut self, env: &mut E, id: u32, entry: u64) -> Result<u32, Errno> {
        let dte = Dte::decode(entry);
        if !dte.valid {
            return Ok(1);
        }
        // Mimic the MAPD behaviour and reject invalid EID bits.
        if dte.num_eventid_bits > VITS_TYPER_IDBITS {
            return Err(EINVAL);
        }
        if Self::check_id(env, self.baser_device_table, id).is_none() {
            return Err(EINVAL);
        }
        // The C would add a second device with the same ID; refuse it.
        let pos = match self.devices.binary_search_by_key(&id, |d| d.id) {
            Ok(_) => return Err(EEXIST),
            Err(pos) => pos,
        };
        let dev = Device {
            id,
            itt_addr: dte.itt_addr,
            num_eventid_bits: dte.num_eventid_bits,
            ites: E::Vec::new_empty(),
        };
        self.devices.try_insert(pos, dev).map_err(|_| ENOMEM)?;

        // vgic_its_restore_itt()
        let max_size = (1u64 << dte.num_eventid_bits) * ABI_0_ESZ;
        if let Err(e) = self.scan_table(env, dte.itt_addr, max_size, 0, Scan::Ite(id)) {
            if let Some(d) = self.find_device(id) {
                self.free_device(env, d);
            }
            return Err(e);
        }
        Ok(dte.next)
    }

    /// `vgic_its_restore_ite()`: the EventID offset to the next ITE.
    fn restore_ite(
        &mut self,
        env: &mut E,
        devid: u32,
        event_id: u32,
        entry: u64,
    ) -> Result<u32, Errno> {
        let ite = Itte::decode(entry);
        if ite.pintid == 0 {
            // Invalid entry: no choice but to scan the next one.
            return Ok(1);
        }
        if ite.pintid < VGIC_MIN_LPI {
            return Err(EINVAL);
        }
        let d = self.find_device(devid).ok_or(EINVAL)?;
        let (itt_addr, bits) = match self.devices.get(d) {
            Some(dev) => (dev.itt_addr, dev.num_eventid_bits),
            None => return Err(EINVAL),
        };
        let limit = 1u64.checked_shl(bits as u32).unwrap_or(u64::MAX);
        if event_id as u64 + ite.next as u64 >= limit {
            return Err(EINVAL);
        }
        let target = match self.find_collection(ite.icid as u32) {
            Some(c) => c.target,
            None => return Err(EINVAL),
        };
        if !Self::check_event_id(env, itt_addr, bits, event_id) {
            return Err(EINVAL);
        }
        let pos = match self.devices.get(d) {
            Some(dev) => match dev.ites.binary_search_by_key(&event_id, |i| i.event_id) {
                Ok(_) => return Err(EEXIST),
                Err(pos) => pos,
            },
            None => return Err(EINVAL),
        };
        let vcpu = if target != COLLECTION_NOT_MAPPED && env.vcpu_exists(target) {
            Some(target)
        } else {
            None
        };
        let lpi = env.lpi_add(ite.pintid, vcpu)?;
        // Drop an ITE whose LPI another ITE maps, as MAPTI does.
        let Some(lpi) = env.lpi_map(lpi, vcpu) else {
            return Ok(ite.next);
        };
        let new = Ite {
            event_id,
            icid: Some(ite.icid),
            lpi,
        };
        Self::insert_ite(env, self.devices.get_mut(d), pos, new)?;
        Ok(ite.next)
    }
}
