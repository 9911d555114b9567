// SPDX-License-Identifier: GPL-2.0

//! MAP_DMA / UNMAP_DMA argument checks, with vfio_iommu_type1's errnos.

use armsi_logic::dma_args::{
    check_map, check_no_bisect, check_unmap, contiguous_runs, in_usable, MapRequest, Refusal,
    MAP_FLAG_READ as R, MAP_FLAG_VADDR as VADDR, MAP_FLAG_WRITE as W, UNMAP_FLAG_ALL,
    UNMAP_FLAG_GET_DIRTY_BITMAP as DIRTY, UNMAP_FLAG_VADDR,
};
use armsi_logic::iova::Range;

const PG: u64 = 0x1000;

fn r(start: u64, last: u64) -> Range {
    Range { start, last }
}

#[test]
fn map_ok() {
    assert_eq!(
        check_map(32, R | W, 0x7000_0000, 0x10_0000, 0x2000, PG),
        Ok(MapRequest {
            iova: r(0x10_0000, 0x10_1fff),
            vaddr: 0x7000_0000,
            read: true,
            write: true,
            set_vaddr: false,
        })
    );
    // A new user address for an invalidated mapping: VADDR alone.
    assert_eq!(
        check_map(32, VADDR, 0x7000_0000, 0x10_0000, 0x2000, PG).map(|m| m.set_vaddr),
        Ok(true)
    );
}

#[test]
fn map_refusals_in_type1_order() {
    use Refusal::*;
    let table: &[(&str, u32, u32, u64, u64, u64, Refusal)] = &[
        ("argsz too small", 31, R, 0, 0, PG, Invalid),
        ("unknown flag", 32, R | 0x8, 0, 0, PG, Invalid),
        ("VADDR with a permission", 32, R | VADDR, 0, 0, PG, Invalid),
        ("zero size", 32, R, 0, 0, 0, Invalid),
        ("iova wraps", 32, R, 0, u64::MAX - PG + 1, 2 * PG, Overflow),
        ("vaddr wraps", 32, R, u64::MAX - PG + 1, 0, 2 * PG, Overflow),
        ("no permission", 32, 0, 0, 0, PG, Invalid),
        ("unaligned iova", 32, R, 0, 0x800, PG, Invalid),
        ("unaligned vaddr", 32, R, 0x800, 0, PG, Invalid),
        ("unaligned size", 32, R, 0, 0, 0x1800, Invalid),
        // Zero size is refused before the wrap-around check.
        ("zero size at the top", 32, R, 0, u64::MAX, 0, Invalid),
    ];
    for &(what, argsz, flags, vaddr, iova, size, want) in table {
        assert_eq!(
            check_map(argsz, flags, vaddr, iova, size, PG),
            Err(want),
            "{what}"
        );
    }
}

#[test]
fn unmap_checks() {
    use Refusal::*;
    assert_eq!(
        check_unmap(24, 0, 0x1000, 0x1000, PG),
        Ok(r(0x1000, 0x1fff))
    );
    assert_eq!(
        check_unmap(24, UNMAP_FLAG_ALL, 0, 0, PG),
        Ok(r(0, u64::MAX))
    );
    let table: &[(&str, u32, u32, u64, u64, Refusal)] = &[
        ("argsz too small", 23, 0, 0, PG, Invalid),
        ("unknown flag", 24, 1 << 3, 0, PG, Invalid),
        (
            "dirty bitmap with ALL",
            24,
            DIRTY | UNMAP_FLAG_ALL,
            0,
            0,
            Invalid,
        ),
        (
            "dirty bitmap with VADDR",
            24,
            DIRTY | UNMAP_FLAG_VADDR,
            0,
            PG,
            Invalid,
        ),
        ("unaligned iova", 24, 0, 0x10, PG, Invalid),
        ("ALL with an iova", 24, UNMAP_FLAG_ALL, PG, 0, Invalid),
        ("ALL with a size", 24, UNMAP_FLAG_ALL, 0, PG, Invalid),
        ("zero size", 24, 0, 0, 0, Invalid),
        ("unaligned size", 24, 0, 0, 0x1800, Invalid),
        ("wraps", 24, 0, u64::MAX - PG + 1, 2 * PG, Overflow),
    ];
    for &(what, argsz, flags, iova, size, want) in table {
        assert_eq!(
            check_unmap(argsz, flags, iova, size, PG),
            Err(want),
            "{what}"
        );
    }
}

#[test]
fn v2_no_bisect() {
    let m = r(0x10000, 0x1ffff);
    // Exactly covering, or covering more: fine.
    assert_eq!(check_no_bisect(m, Some(m), Some(m)), Ok(()));
    assert_eq!(check_no_bisect(r(0, 0xfffff), None, None), Ok(()));
    // Starting or ending inside a mapping: refused.
    assert_eq!(
        check_no_bisect(r(0x11000, 0x1ffff), Some(m), Some(m)),
        Err(Refusal::Invalid)
    );
    assert_eq!(
        check_no_bisect(r(0x10000, 0x10fff), Some(m), Some(m)),
        Err(Refusal::Invalid)
    );
}

#[test]
fn usable_containment() {
    let usable = [r(0, 0x7ff_ffff), r(0x810_0000, (1 << 48) - 1)];
    assert!(in_usable(r(0x100_0000, 0x100_ffff), &usable));
    // Into the MSI window, or straddling it: refused.
    assert!(!in_usable(r(0x800_0000, 0x800_0fff), &usable));
    assert!(!in_usable(r(0x7ff_f000, 0x800_0fff), &usable));
    assert!(!in_usable(r(1 << 48, (1 << 48) + 0xfff), &usable));
}

#[test]
fn runs_of_contiguous_pages() {
    let pfns = [10, 11, 12, 20, 30, 31, 5];
    let runs: Vec<_> = contiguous_runs(&pfns).collect();
    assert_eq!(runs, vec![(10, 3), (20, 1), (30, 2), (5, 1)]);
    assert_eq!(contiguous_runs(&[]).count(), 0);
    // A 2 MiB huge page: one run of 512.
    let huge: Vec<u64> = (0x4_0000..0x4_0200).collect();
    assert_eq!(
        contiguous_runs(&huge).collect::<Vec<_>>(),
        vec![(0x4_0000, 512)]
    );
}
