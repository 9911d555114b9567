// SPDX-License-Identifier: GPL-2.0

//! ITS table formats: the GITS_BASER<n> fields and the ABI revision 0 table
//! entries KVM saves into guest memory (`Documentation/virt/kvm/devices/
//! arm-vgic-its.rst`), plus the table walk of `vgic_its_check_id()`.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

/// Size of an ITS page (the only page size the emulation supports).
pub const SZ_64K: u64 = 0x1_0000;
/// ABI revision 0 entry size (DTE, ITE and CTE).
pub const ABI_0_ESZ: u64 = 8;
/// Size of a level-1 device table entry.
pub const GITS_LVL1_ENTRY_SIZE: u64 = 8;

/// `GITS_BASER_VALID`.
pub const GITS_BASER_VALID: u64 = 1 << 63;
/// `GITS_BASER_INDIRECT`.
pub const GITS_BASER_INDIRECT: u64 = 1 << 62;
/// `GITS_BASER_TYPE_SHIFT`.
pub const GITS_BASER_TYPE_SHIFT: u32 = 56;
/// `GITS_BASER_ENTRY_SIZE_SHIFT`.
pub const GITS_BASER_ENTRY_SIZE_SHIFT: u32 = 48;
/// `GITS_BASER_ENTRY_SIZE_MASK` (bits 52:48).
pub const GITS_BASER_ENTRY_SIZE_MASK: u64 = 0x1f << 48;
/// `GITS_BASER_TYPE_DEVICE`.
pub const GITS_BASER_TYPE_DEVICE: u64 = 1;
/// `GITS_BASER_TYPE_COLLECTION`.
pub const GITS_BASER_TYPE_COLLECTION: u64 = 4;
/// `GITS_BASER_RO_MASK` of `vgic-its.c`: entry size and type.
pub const GITS_BASER_RO_MASK: u64 = (0x1f << 48) | (0x7 << 56);
/// `GITS_BASER_PAGE_SIZE_MASK`.
pub const GITS_BASER_PAGE_SIZE_MASK: u64 = 3 << 8;
/// `GITS_BASER_PAGE_SIZE_64K`.
pub const GITS_BASER_PAGE_SIZE_64K: u64 = 2 << 8;
/// Shareability field shift (GITS_BASER and GITS_CBASER).
pub const SHAREABILITY_SHIFT: u32 = 10;
/// Inner cacheability field shift (GITS_BASER and GITS_CBASER).
pub const INNER_CACHEABILITY_SHIFT: u32 = 59;
/// Outer cacheability field shift (GITS_BASER and GITS_CBASER).
pub const OUTER_CACHEABILITY_SHIFT: u32 = 53;
/// `GITS_CBASER_VALID`.
pub const GITS_CBASER_VALID: u64 = 1 << 63;

/// `VITS_MAX_DEVID`: GITS_TYPER.Devbits is 16.
pub const VITS_MAX_DEVID: u32 = (1 << 16) - 1;
/// `VITS_TYPER_IDBITS`.
pub const VITS_TYPER_IDBITS: u8 = 16;
/// `VITS_DTE_MAX_DEVID_OFFSET`.
pub const VITS_DTE_MAX_DEVID_OFFSET: u32 = (1 << 14) - 1;
/// `VITS_ITE_MAX_EVENTID_OFFSET`.
pub const VITS_ITE_MAX_EVENTID_OFFSET: u32 = (1 << 16) - 1;
/// `COLLECTION_NOT_MAPPED`: a collection's target before MAPC.
pub const COLLECTION_NOT_MAPPED: u32 = u32::MAX;
/// `VGIC_MIN_LPI` / `GIC_LPI_OFFSET`: the first LPI INTID.
pub const VGIC_MIN_LPI: u32 = 8192;

/// `GITS_BASER_TYPE()`.
pub fn baser_type(baser: u64) -> u64 {
    (baser >> GITS_BASER_TYPE_SHIFT) & 7
}

/// `GITS_BASER_ENTRY_SIZE()`: entry size in bytes (1..=32).
pub fn baser_entry_size(baser: u64) -> u64 {
    ((baser >> GITS_BASER_ENTRY_SIZE_SHIFT) & 0x1f) + 1
}

/// `GITS_BASER_NR_PAGES()` (1..=256).
pub fn baser_nr_pages(baser: u64) -> u64 {
    (baser & 0xff) + 1
}

/// The table size in bytes: `GITS_BASER_NR_PAGES(baser) * SZ_64K`.
pub fn baser_table_size(baser: u64) -> u64 {
    baser_nr_pages(baser) * SZ_64K
}

/// `GITS_BASER_ADDR_48_to_52()`: the table's physical address.
pub fn baser_addr(baser: u64) -> u64 {
    (baser & 0x0000_ffff_ffff_0000) | ((baser >> 12) & 0xf) << 48
}

/// Is GITS_BASER.Indirect set?
pub fn baser_indirect(baser: u64) -> bool {
    baser & GITS_BASER_INDIRECT != 0
}

/// Is GITS_BASER.Valid set?
pub fn baser_valid(baser: u64) -> bool {
    baser & GITS_BASER_VALID != 0
}

/// `GITS_CBASER_ADDRESS()`.
pub fn cbaser_addr(cbaser: u64) -> u64 {
    cbaser & 0x000f_ffff_ffff_f000
}

/// `ITS_CMD_BUFFER_SIZE()`: the command queue size in bytes.
pub fn cmd_buffer_size(cbaser: u64) -> u64 {
    ((cbaser & 0xff) + 1) << 12
}

/// `ITS_CMD_OFFSET()`: a CREADR/CWRITER offset.
pub fn cmd_offset(reg: u64) -> u64 {
    reg & 0x000f_ffe0
}

/// Where `id` lives in the table `baser` describes (`vgic_its_check_id()`).
///
/// `read_l1(ctx, gpa)` reads the little-endian level-1 entry at `gpa`
/// (`None` when the read fails); `visible(ctx, gpa)` tells whether the page
/// of `gpa` is guest memory. Returns the entry's address when the ID is in
/// range and the entry is in visible memory.
pub fn check_id<C>(
    ctx: &mut C,
    baser: u64,
    id: u32,
    read_l1: impl FnOnce(&mut C, u64) -> Option<u64>,
    visible: impl FnOnce(&mut C, u64) -> bool,
) -> Option<u64> {
    let l1_tbl_size = baser_table_size(baser);
    let base = baser_addr(baser);
    let esz = baser_entry_size(baser);
    let id64 = id as u64;

    match baser_type(baser) {
        GITS_BASER_TYPE_DEVICE => {
            if id > VITS_MAX_DEVID {
                return None;
            }
        }
        GITS_BASER_TYPE_COLLECTION => {
            // As GITS_TYPER.CIL == 0, the ITS supports 16-bit collection IDs.
            if id64 >= 1 << 16 {
                return None;
            }
        }
        _ => return None,
    }

    if !baser_indirect(baser) {
        if id64 >= l1_tbl_size / esz {
            return None;
        }
        let addr = base.wrapping_add(id64 * esz);
        return if visible(ctx, addr) { Some(addr) } else { None };
    }

    // Calculate and check the index into the first level.
    let per_page = SZ_64K / esz;
    let index = id64 / per_page;
    if index >= l1_tbl_size / GITS_LVL1_ENTRY_SIZE {
        return None;
    }
    let entry = read_l1(ctx, base.wrapping_add(index * GITS_LVL1_ENTRY_SIZE))?;
    if !l1_valid(entry) {
        return None;
    }
    let addr = l1_addr(entry).wrapping_add((id64 % per_page) * esz);
    if visible(ctx, addr) {
        Some(addr)
    } else {
        None
    }
}

/// Is a level-1 device table entry valid (`KVM_ITS_L1E_VALID_MASK`)?
pub fn l1_valid(entry: u64) -> bool {
    entry & (1 << 63) != 0
}

/// A level-1 entry's level-2 table address (`KVM_ITS_L1E_ADDR_MASK`).
pub fn l1_addr(entry: u64) -> u64 {
    entry & 0x000f_ffff_ffff_0000
}

/// A device table entry, ABI revision 0.
///
/// `| V (63) | Next (62:49) | ITT_addr >> 8 (48:5) | Size (4:0) |`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dte {
    /// Valid bit.
    pub valid: bool,
    /// DeviceID offset to the next saved DTE (0: last).
    pub next: u32,
    /// ITT address (256-byte aligned).
    pub itt_addr: u64,
    /// Number of EventID bits (Size + 1).
    pub num_eventid_bits: u8,
}

impl Dte {
    /// Decode a DTE (host-order value), like `vgic_its_restore_dte()`.
    pub fn decode(entry: u64) -> Dte {
        Dte {
            valid: entry >> 63 != 0,
            next: ((entry & 0x7ffe_0000_0000_0000) >> 49) as u32,
            itt_addr: ((entry & 0x0001_ffff_ffff_ffe0) >> 5) << 8,
            num_eventid_bits: ((entry & 0x1f) + 1) as u8,
        }
    }

    /// Encode a DTE, like `vgic_its_save_dte()` (fields are truncated).
    pub fn encode(&self) -> u64 {
        (self.valid as u64) << 63
            | ((self.next as u64) << 49) & 0x7ffe_0000_0000_0000
            | ((self.itt_addr >> 8) << 5) & 0x0001_ffff_ffff_ffe0
            | (self.num_eventid_bits.wrapping_sub(1) as u64 & 0x1f)
    }
}

/// An interrupt translation table entry, ABI revision 0.
///
/// `| Next (63:48) | pINTID (47:16) | ICID (15:0) |`; pINTID 0 is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Itte {
    /// EventID offset to the next saved ITE (0: last).
    pub next: u32,
    /// Physical LPI INTID (0: invalid entry).
    pub pintid: u32,
    /// Collection ID.
    pub icid: u16,
}

impl Itte {
    /// Decode an ITE, like `vgic_its_restore_ite()`.
    pub fn decode(entry: u64) -> Itte {
        Itte {
            next: (entry >> 48) as u32,
            pintid: (entry >> 16) as u32,
            icid: entry as u16,
        }
    }

    /// Encode an ITE, like `vgic_its_save_ite()` (fields are truncated).
    pub fn encode(&self) -> u64 {
        ((self.next as u64) & 0xffff) << 48 | (self.pintid as u64) << 16 | self.icid as u64
    }
}

/// A collection table entry, ABI revision 0.
///
/// `| V (63) | RES0 (62:48) | RDBase (47:16) | ICID (15:0) |`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cte {
    /// Valid bit (an invalid entry ends the table).
    pub valid: bool,
    /// Target vCPU id, or [`COLLECTION_NOT_MAPPED`].
    pub target: u32,
    /// Collection ID.
    pub icid: u16,
}

impl Cte {
    /// Decode a CTE, like `vgic_its_restore_cte()`.
    pub fn decode(entry: u64) -> Cte {
        Cte {
            valid: entry & (1 << 63) != 0,
            target: (entry >> 16) as u32,
            icid: entry as u16,
        }
    }

    /// Encode a CTE, like `vgic_its_save_cte()`.
    pub fn encode(&self) -> u64 {
        (self.valid as u64) << 63 | (self.target as u64) << 16 | self.icid as u64
    }
}
