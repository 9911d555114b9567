// SPDX-License-Identifier: GPL-2.0

//! GITS_BASER fields, ABI rev 0 entries and the table walk.

use armsi_logic::extra::*;
use armsi_logic::table::*;

#[test]
fn baser_fields() {
    let b = GITS_BASER_VALID | 1 << 56 | 7 << 48 | baser_phys(0x000a_0000_0012_0000) | 3;
    assert_eq!(baser_type(b), GITS_BASER_TYPE_DEVICE);
    assert_eq!(baser_entry_size(b), 8);
    assert_eq!(baser_nr_pages(b), 4);
    assert_eq!(baser_table_size(b), 4 * 0x10000);
    assert_eq!(baser_addr(b), 0x000a_0000_0012_0000);
    assert!(baser_valid(b));
    assert!(!baser_indirect(b));
    assert!(baser_indirect(b | GITS_BASER_INDIRECT));
    // Bits 15:12 hold address bits 51:48.
    assert_eq!(baser_phys(0x000a_0000_0012_0000) & 0xf000, 0xa000);
    assert_eq!(cmd_buffer_size(0xff), 256 * 4096);
    assert_eq!(cmd_offset(0xffff_ffff_ffff_ffff), 0xf_ffe0);
    assert_eq!(cbaser_addr(0xffff_ffff_ffff_ffff), 0x000f_ffff_ffff_f000);
}

#[test]
fn dte_layout() {
    // V | Next 62:49 | ITT_addr[51:8] at 48:5 | Size 4:0.
    let d = Dte {
        valid: true,
        next: 4,
        itt_addr: 0x50_1000,
        num_eventid_bits: 4,
    };
    assert_eq!(d.encode(), 0x8008_0000_000a_0203);
    assert_eq!(Dte::decode(0x8008_0000_000a_0203), d);
    let max = Dte {
        valid: true,
        next: (1 << 14) - 1,
        itt_addr: 0x000f_ffff_ffff_ff00,
        num_eventid_bits: 32,
    };
    assert_eq!(max.encode(), u64::MAX);
    assert_eq!(Dte::decode(u64::MAX), max);
    assert!(!Dte::decode(0x7fff_ffff_ffff_ffff).valid);
}

#[test]
fn ite_and_cte_layout() {
    let i = Itte {
        next: 3,
        pintid: 8192,
        icid: 0,
    };
    assert_eq!(i.encode(), 0x0003_0000_2000_0000);
    assert_eq!(
        Itte::decode(0x0000_0000_2008_0001),
        Itte {
            next: 0,
            pintid: 8200,
            icid: 1
        }
    );
    let c = Cte {
        valid: true,
        target: 2,
        icid: 1,
    };
    assert_eq!(c.encode(), 0x8000_0000_0002_0001);
    assert_eq!(
        Cte::decode(0x8000_ffff_ffff_0007),
        Cte {
            valid: true,
            target: COLLECTION_NOT_MAPPED,
            icid: 7
        }
    );
    assert_eq!(l1_encode(0x20_0000, true), 0x8000_0000_0020_0000);
    assert!(l1_valid(1 << 63));
    assert_eq!(l1_addr(u64::MAX), 0x000f_ffff_ffff_0000);
}

fn vis_all(_: &mut (), _: u64) -> bool {
    true
}

#[test]
fn check_id_flat() {
    let dev = GITS_BASER_VALID | 1 << 56 | 7 << 48 | 0x10_0000;
    let no_l1 = |_: &mut (), _: u64| -> Option<u64> { panic!("flat read L1") };
    assert_eq!(check_id(&mut (), dev, 5, no_l1, vis_all), Some(0x10_0028));
    // One page of 8-byte entries: 8192 IDs.
    assert_eq!(
        check_id(&mut (), dev, 8191, no_l1, vis_all),
        Some(0x10_fff8)
    );
    assert_eq!(check_id(&mut (), dev, 8192, no_l1, vis_all), None);
    assert_eq!(
        check_id(&mut (), dev | 7, 0xffff, no_l1, vis_all),
        Some(0x17_fff8)
    );
    assert_eq!(
        check_id(&mut (), dev | 0xff, 0x1_0000, no_l1, vis_all),
        None
    );
    assert_eq!(check_id(&mut (), dev, 5, no_l1, |_, _| false), None);
    let coll = GITS_BASER_VALID | 4 << 56 | 7 << 48 | 0x30_0000 | 0xff;
    assert_eq!(
        check_id(&mut (), coll, 0xffff, no_l1, vis_all),
        Some(0x37_fff8)
    );
    assert_eq!(check_id(&mut (), coll, 0x1_0000, no_l1, vis_all), None);
    // Other table types hold nothing.
    assert_eq!(
        check_id(&mut (), 2 << 56 | 7 << 48, 0, no_l1, vis_all),
        None
    );
}

#[test]
fn check_id_indirect() {
    let dev = GITS_BASER_VALID | GITS_BASER_INDIRECT | 1 << 56 | 7 << 48 | 0x10_0000;
    let mut reads = Vec::new();
    let l1 = |r: &mut Vec<u64>, gpa: u64| {
        r.push(gpa);
        match gpa {
            0x10_0000 => Some(0x8000_0000_0020_0000),
            0x10_0008 => Some(0x8000_0000_0021_ffff), // low bits ignored
            0x10_0010 => Some(0x0000_0000_0022_0000), // invalid
            _ => None,
        }
    };
    assert_eq!(
        check_id(&mut reads, dev, 3, l1, |_, _| true),
        Some(0x20_0018)
    );
    assert_eq!(
        check_id(&mut reads, dev, 8192 + 1, l1, |_, _| true),
        Some(0x21_0008)
    );
    assert_eq!(check_id(&mut reads, dev, 2 * 8192, l1, |_, _| true), None);
    assert_eq!(check_id(&mut reads, dev, 3 * 8192, l1, |_, _| true), None);
    assert_eq!(reads, [0x10_0000, 0x10_0008, 0x10_0010, 0x10_0018]);
    assert_eq!(
        check_id(&mut reads, dev, 3, l1, |_, g| g != 0x20_0018),
        None
    );
}
