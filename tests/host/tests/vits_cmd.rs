// SPDX-License-Identifier: GPL-2.0

//! ITS command decoding and encoding.

use armsi_logic::cmd::*;
use armsi_logic::extra::*;

#[test]
fn decode_extracts_fields_like_its_cmd_get() {
    // MAPD: DeviceID 63:32 of word 0, Size 4:0 of word 1, ITT_addr 51:8 and
    // V 63 of word 2.
    let c = [
        0xdead_beef_0000_ff08,
        0xffff_ffff_ffff_ffe4,
        0xfff0_0000_1234_56ff,
        0,
    ];
    assert_eq!(
        Command::decode(&c),
        Command::Mapd {
            device_id: 0xdead_beef,
            num_eventid_bits: 5,
            itt_addr: 0x0000_0000_1234_5600,
            valid: true
        }
    );
    // MAPTI: EventID 31:0 and pINTID 63:32 of word 1, ICID 15:0 of word 2.
    let c = [
        0x0000_0007_0000_000a,
        0x0000_2001_0000_0003,
        0xffff_ffff_ffff_0005,
        0,
    ];
    assert_eq!(
        Command::decode(&c),
        Command::Mapti {
            device_id: 7,
            event_id: 3,
            pintid: 0x2001,
            icid: 5
        }
    );
    // MAPC: RDbase 47:16, V 63.
    let c = [0x09, 0, 0x8000_0000_0003_0002, 0];
    assert_eq!(
        Command::decode(&c),
        Command::Mapc {
            icid: 2,
            target: 3,
            valid: true
        }
    );
    // MOVALL: RDbase2 in word 3.
    let c = [0x0e, 0, 0x0000_0001_0000_0000, 0x0000_0000_0002_0000];
    assert_eq!(
        Command::decode(&c),
        Command::Movall {
            target1: 0x1_0000,
            target2: 2
        }
    );
    assert_eq!(Command::decode(&[0x2a, 0, 0, 0]), Command::Unknown(0x2a));
    assert_eq!(
        Command::decode(&[0x105, 0, 0, 0]),
        Command::Sync { target: 0 }
    );
    assert_eq!(Command::opcode(&[0xffff_ff0b, 0, 0, 0]), 0x0b);
    assert_eq!(field(&[0, 0, 0, 0xf0], 3, 4, 4), 0xf);
}

#[test]
fn encode_round_trips() {
    let cmds = [
        Command::Mapd {
            device_id: 0xffff_ffff,
            num_eventid_bits: 32,
            itt_addr: 0x000f_ffff_ffff_ff00,
            valid: true,
        },
        Command::Mapd {
            device_id: 1,
            num_eventid_bits: 1,
            itt_addr: 0x100,
            valid: false,
        },
        Command::Mapc {
            icid: 0xffff,
            target: 0xffff_ffff,
            valid: true,
        },
        Command::Mapti {
            device_id: 3,
            event_id: 0xffff_ffff,
            pintid: 0xffff_ffff,
            icid: 7,
        },
        Command::Mapi {
            device_id: 3,
            event_id: 9,
            icid: 1,
        },
        Command::Movi {
            device_id: 3,
            event_id: 9,
            icid: 2,
        },
        Command::Discard {
            device_id: 4,
            event_id: 5,
        },
        Command::Clear {
            device_id: 4,
            event_id: 5,
        },
        Command::Int {
            device_id: 4,
            event_id: 5,
        },
        Command::Inv {
            device_id: 4,
            event_id: 5,
        },
        Command::Invall { icid: 9 },
        Command::Movall {
            target1: 1,
            target2: 0xffff_ffff,
        },
        Command::Sync { target: 3 },
        Command::Unknown(0x20),
    ];
    for c in cmds {
        assert_eq!(Command::decode(&c.encode()), c, "{c:?}");
    }
}

#[test]
fn error_codes_match_arm_gic_v3_h() {
    assert_eq!(E_ITS_MOVI_UNMAPPED_INTERRUPT, 0x010107);
    assert_eq!(E_ITS_MOVI_UNMAPPED_COLLECTION, 0x010109);
    assert_eq!(E_ITS_INT_UNMAPPED_INTERRUPT, 0x010307);
    assert_eq!(E_ITS_CLEAR_UNMAPPED_INTERRUPT, 0x010507);
    assert_eq!(E_ITS_MAPD_DEVICE_OOR, 0x010801);
    assert_eq!(E_ITS_MAPD_ITTSIZE_OOR, 0x010802);
    assert_eq!(E_ITS_MAPC_PROCNUM_OOR, 0x010902);
    assert_eq!(E_ITS_MAPC_COLLECTION_OOR, 0x010903);
    assert_eq!(E_ITS_MAPTI_UNMAPPED_DEVICE, 0x010a04);
    assert_eq!(E_ITS_MAPTI_ID_OOR, 0x010a05);
    assert_eq!(E_ITS_MAPTI_PHYSICALID_OOR, 0x010a06);
    assert_eq!(E_ITS_INV_UNMAPPED_INTERRUPT, 0x010c07);
    assert_eq!(E_ITS_INVALL_UNMAPPED_COLLECTION, 0x010d09);
    assert_eq!(E_ITS_MOVALL_PROCNUM_OOR, 0x010e01);
    assert_eq!(E_ITS_DISCARD_UNMAPPED_INTERRUPT, 0x010f07);
}
