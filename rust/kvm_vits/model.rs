// SPDX-License-Identifier: GPL-2.0

//! The ITS model: registers, command queue, device/ITE/collection
//! bookkeeping and the ABI revision 0 save/restore of `vgic-its.c`.
//!
//! [`Its`] mirrors `struct vgic_its`. The caller holds a lock around it
//! (the C's `its_lock`) and reaches KVM through [`Env`]; a caller that also
//! serialises the queue's writers (the C's `cmd_lock`) may run the queue a
//! command at a time and read each command unlocked
//! ([`Its::next_command`]). Devices, ITEs and collections are kept in arrays
//! sorted by ID and looked up by binary search.
//!
//! This file holds the state and its bookkeeping; `model/regs.rs` the
//! registers, `model/commands.rs` the command queue and the commands,
//! `model/save.rs` save and restore.
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

// One file per concept. The explicit paths name the same files whether this
// file is the module's `model` or the host tests' `#[path]` module.
#[path = "model/commands.rs"]
pub mod commands;
#[path = "model/regs.rs"]
pub mod regs;
#[path = "model/save.rs"]
mod save;

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
        // Before the references go: the cache may hold their tokens.
        env.cache_invalidate();
        Self::release_ites(env, &mut dev);
    }

    /// `vgic_its_free_device_list()`.
    fn free_device_list(&mut self, env: &mut E) {
        if self.devices.is_empty() {
            return;
        }
        let mut devices = core::mem::replace(&mut self.devices, E::Vec::new_empty());
        // Before the references go: the cache may hold their tokens.
        env.cache_invalidate();
        for dev in devices.iter_mut() {
            Self::release_ites(env, dev);
        }
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
}
