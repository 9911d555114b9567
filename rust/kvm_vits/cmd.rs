// SPDX-License-Identifier: GPL-2.0

//! ITS command decoding (`its_cmd_get_*` in `vgic-its.c`).
//!
//! A command is four 64-bit words, stored little-endian in the guest's
//! command queue; the functions here take the words already converted to
//! host order (`u64::from_le_bytes`).
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

/// `GITS_CMD_MOVI`.
pub const GITS_CMD_MOVI: u8 = 0x01;
/// `GITS_CMD_INT`.
pub const GITS_CMD_INT: u8 = 0x03;
/// `GITS_CMD_CLEAR`.
pub const GITS_CMD_CLEAR: u8 = 0x04;
/// `GITS_CMD_SYNC`.
pub const GITS_CMD_SYNC: u8 = 0x05;
/// `GITS_CMD_MAPD`.
pub const GITS_CMD_MAPD: u8 = 0x08;
/// `GITS_CMD_MAPC`.
pub const GITS_CMD_MAPC: u8 = 0x09;
/// `GITS_CMD_MAPTI`.
pub const GITS_CMD_MAPTI: u8 = 0x0a;
/// `GITS_CMD_MAPI`.
pub const GITS_CMD_MAPI: u8 = 0x0b;
/// `GITS_CMD_INV`.
pub const GITS_CMD_INV: u8 = 0x0c;
/// `GITS_CMD_INVALL`.
pub const GITS_CMD_INVALL: u8 = 0x0d;
/// `GITS_CMD_MOVALL`.
pub const GITS_CMD_MOVALL: u8 = 0x0e;
/// `GITS_CMD_DISCARD`.
pub const GITS_CMD_DISCARD: u8 = 0x0f;

/// MOVI: no ITE for (DeviceID, EventID).
pub const E_ITS_MOVI_UNMAPPED_INTERRUPT: u32 = 0x010107;
/// MOVI: the ITE's or the new collection is not mapped.
pub const E_ITS_MOVI_UNMAPPED_COLLECTION: u32 = 0x010109;
/// INT: no (mapped) translation.
pub const E_ITS_INT_UNMAPPED_INTERRUPT: u32 = 0x010307;
/// CLEAR: no ITE.
pub const E_ITS_CLEAR_UNMAPPED_INTERRUPT: u32 = 0x010507;
/// MAPD: DeviceID out of range of the device table.
pub const E_ITS_MAPD_DEVICE_OOR: u32 = 0x010801;
/// MAPD: ITT size too large.
pub const E_ITS_MAPD_ITTSIZE_OOR: u32 = 0x010802;
/// MAPC: no such target vCPU.
pub const E_ITS_MAPC_PROCNUM_OOR: u32 = 0x010902;
/// MAPC (and MAPTI/MAPI): ICID out of range of the collection table.
pub const E_ITS_MAPC_COLLECTION_OOR: u32 = 0x010903;
/// MAPTI/MAPI: device not mapped.
pub const E_ITS_MAPTI_UNMAPPED_DEVICE: u32 = 0x010a04;
/// MAPTI/MAPI: EventID out of range of the ITT.
pub const E_ITS_MAPTI_ID_OOR: u32 = 0x010a05;
/// MAPTI/MAPI: physical INTID out of range.
pub const E_ITS_MAPTI_PHYSICALID_OOR: u32 = 0x010a06;
/// INV: no ITE.
pub const E_ITS_INV_UNMAPPED_INTERRUPT: u32 = 0x010c07;
/// INVALL: collection not mapped.
pub const E_ITS_INVALL_UNMAPPED_COLLECTION: u32 = 0x010d09;
/// MOVALL: no such vCPU.
pub const E_ITS_MOVALL_PROCNUM_OOR: u32 = 0x010e01;
/// DISCARD: no ITE with a mapped collection.
pub const E_ITS_DISCARD_UNMAPPED_INTERRUPT: u32 = 0x010f07;

/// `its_cmd_mask_field()`: `size` bits of `word` from `shift`.
pub fn field(cmd: &[u64; 4], word: usize, shift: u32, size: u32) -> u64 {
    let w = match cmd.get(word) {
        Some(w) => *w,
        None => return 0,
    };
    let mask = if size >= 64 {
        u64::MAX
    } else {
        (1u64 << size) - 1
    };
    w.checked_shr(shift).unwrap_or(0) & mask
}

/// A decoded ITS command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// MAPD: map (`valid`) or unmap a device to an ITT.
    Mapd {
        /// DeviceID.
        device_id: u32,
        /// Number of EventID bits (the command's Size field plus one, 1..=32).
        num_eventid_bits: u8,
        /// ITT address (bits 51:8).
        itt_addr: u64,
        /// V bit.
        valid: bool,
    },
    /// MAPC: map (`valid`) or unmap a collection to a vCPU.
    Mapc {
        /// ICID.
        icid: u16,
        /// RDbase (a vCPU id, GITS_TYPER.PTA is 0).
        target: u32,
        /// V bit.
        valid: bool,
    },
    /// MAPTI: map an event to an explicit LPI.
    Mapti {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
        /// pINTID.
        pintid: u32,
        /// ICID.
        icid: u16,
    },
    /// MAPI: map an event to the LPI with the EventID's number.
    Mapi {
        /// DeviceID.
        device_id: u32,
        /// EventID (also the pINTID).
        event_id: u32,
        /// ICID.
        icid: u16,
    },
    /// MOVI: move an event to another collection.
    Movi {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
        /// New ICID.
        icid: u16,
    },
    /// DISCARD: remove an event's mapping.
    Discard {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
    },
    /// CLEAR: clear an event's pending state.
    Clear {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
    },
    /// INT: make an event's LPI pending.
    Int {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
    },
    /// INV: reload an event's LPI configuration.
    Inv {
        /// DeviceID.
        device_id: u32,
        /// EventID.
        event_id: u32,
    },
    /// INVALL: reload the configuration of a collection's LPIs.
    Invall {
        /// ICID.
        icid: u16,
    },
    /// MOVALL: move every LPI from one redistributor to another.
    Movall {
        /// RDbase1 (source vCPU).
        target1: u32,
        /// RDbase2 (destination vCPU).
        target2: u32,
    },
    /// SYNC (ignored: the emulation is always in sync).
    Sync {
        /// RDbase.
        target: u32,
    },
    /// Any other command number.
    Unknown(u8),
}

impl Command {
    /// The command number (`its_cmd_get_command`).
    pub fn opcode(cmd: &[u64; 4]) -> u8 {
        field(cmd, 0, 0, 8) as u8
    }

    /// Decode a command exactly like the `its_cmd_get_*` accessors.
    pub fn decode(cmd: &[u64; 4]) -> Command {
        let device_id = field(cmd, 0, 32, 32) as u32;
        let id = field(cmd, 1, 0, 32) as u32;
        let icid = field(cmd, 2, 0, 16) as u16;
        let target = field(cmd, 2, 16, 32) as u32;
        let valid = field(cmd, 2, 63, 1) != 0;
        match Self::opcode(cmd) {
            GITS_CMD_MAPD => Command::Mapd {
                device_id,
                num_eventid_bits: (field(cmd, 1, 0, 5) + 1) as u8,
                itt_addr: field(cmd, 2, 8, 44) << 8,
                valid,
            },
            GITS_CMD_MAPC => Command::Mapc {
                icid,
                target,
                valid,
            },
            GITS_CMD_MAPTI => Command::Mapti {
                device_id,
                event_id: id,
                pintid: field(cmd, 1, 32, 32) as u32,
                icid,
            },
            GITS_CMD_MAPI => Command::Mapi {
                device_id,
                event_id: id,
                icid,
            },
            GITS_CMD_MOVI => Command::Movi {
                device_id,
                event_id: id,
                icid,
            },
            GITS_CMD_DISCARD => Command::Discard {
                device_id,
                event_id: id,
            },
            GITS_CMD_CLEAR => Command::Clear {
                device_id,
                event_id: id,
            },
            GITS_CMD_INT => Command::Int {
                device_id,
                event_id: id,
            },
            GITS_CMD_INV => Command::Inv {
                device_id,
                event_id: id,
            },
            GITS_CMD_INVALL => Command::Invall { icid },
            GITS_CMD_MOVALL => Command::Movall {
                target1: target,
                target2: field(cmd, 3, 16, 32) as u32,
            },
            GITS_CMD_SYNC => Command::Sync { target },
            op => Command::Unknown(op),
        }
    }
}
