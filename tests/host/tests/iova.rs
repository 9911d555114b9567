// SPDX-License-Identifier: GPL-2.0

//! Usable IOVA ranges (aperture minus reserved regions) and page sizes.

use armsi_logic::iova::{effective_pgsizes, Full, Range, Ranges, MAX_RANGES};

fn r(start: u64, last: u64) -> Range {
    Range::new(start, last).unwrap()
}

#[test]
fn range_new_rejects_backwards() {
    assert_eq!(Range::new(2, 1), None);
    assert_eq!(Range::new(1, 1), Some(Range { start: 1, last: 1 }));
}

#[test]
fn smmuv3_msi_window_splits_the_aperture() {
    // What upstream type1 reports on QEMU virt with arm-smmu-v3: the 1 MiB
    // software-MSI window at 0x8000000 is carved out of a 48-bit aperture.
    let mut rs = Ranges::new(r(0, u64::MAX));
    rs.intersect(r(0, (1 << 48) - 1));
    rs.exclude(r(0x800_0000, 0x80f_ffff)).unwrap();
    assert_eq!(
        rs.as_slice(),
        &[r(0, 0x7ff_ffff), r(0x810_0000, (1 << 48) - 1)]
    );
}

#[test]
fn holes_at_the_edges_and_outside() {
    let mut rs = Ranges::new(r(0x1000, 0xffff));
    rs.exclude(r(0, 0x1fff)).unwrap(); // clips the start
    rs.exclude(r(0xf000, u64::MAX)).unwrap(); // clips the end
    rs.exclude(r(0x10_0000, 0x20_0000)).unwrap(); // outside: no change
    assert_eq!(rs.as_slice(), &[r(0x2000, 0xefff)]);
    rs.exclude(r(0, u64::MAX)).unwrap();
    assert!(rs.as_slice().is_empty());
}

#[test]
fn overlapping_holes_and_two_apertures() {
    let mut rs = Ranges::new(r(0, u64::MAX));
    rs.intersect(r(0, 0xffff_ffff));
    rs.intersect(r(0x1000, u64::MAX)); // a second domain's aperture
    rs.exclude(r(0x8000, 0x8fff)).unwrap();
    rs.exclude(r(0x8800, 0x9fff)).unwrap();
    assert_eq!(rs.as_slice(), &[r(0x1000, 0x7fff), r(0xa000, 0xffff_ffff)]);
}

#[test]
fn full_list_is_an_error_and_unchanged() {
    let mut rs = Ranges::new(r(0, u64::MAX));
    for i in 0..(MAX_RANGES as u64 - 1) {
        rs.exclude(r(i * 0x10 + 8, i * 0x10 + 8)).unwrap();
    }
    assert_eq!(rs.as_slice().len(), MAX_RANGES);
    let before = rs.as_slice().to_vec();
    assert_eq!(rs.exclude(r(0x1_0000_0008, 0x1_0000_0008)), Err(Full));
    assert_eq!(rs.as_slice(), &before[..]);
}

#[test]
fn pgsizes_like_type1() {
    const SZ_4K: u64 = 0x1000;
    // SMMUv3 with 4 KiB granule: 4K | 2M | 1G.
    let smmu = SZ_4K | (1 << 21) | (1 << 30);
    assert_eq!(effective_pgsizes([smmu].into_iter(), SZ_4K), smmu);
    // Two domains: the common sizes.
    assert_eq!(
        effective_pgsizes([smmu, SZ_4K | (1 << 21)].into_iter(), SZ_4K),
        SZ_4K | (1 << 21)
    );
    // Sizes below the CPU page fold into it.
    assert_eq!(
        effective_pgsizes([0x200 | 0x1000 | 0x10000].into_iter(), 0x4000),
        0x4000 | 0x10000
    );
    assert_eq!(effective_pgsizes(core::iter::empty(), SZ_4K), 0);
}

/// `exclude` against a model of the same universe, one bit per IOVA: random
/// holes (inside, across, around ranges, and outside), until the list fills.
#[test]
fn exclude_matches_a_bit_model() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..200 {
        let mut rs = Ranges::new(r(0, 1023));
        let mut model = [true; 1024];
        for _ in 0..80 {
            let start = next(1100);
            let last = start + next(40);
            let before = rs.as_slice().to_vec();
            match rs.exclude(r(start, last)) {
                Ok(()) => {
                    for a in start..=last.min(1023) {
                        if let Some(b) = model.get_mut(a as usize) {
                            *b = false;
                        }
                    }
                }
                Err(Full) => assert_eq!(rs.as_slice(), &before[..]),
            }
            // The list is sorted, disjoint, not adjacent-split and equal to
            // the model's runs.
            let mut runs = Vec::new();
            let mut i = 0;
            while i < model.len() {
                if model[i] {
                    let s = i;
                    while i < model.len() && model[i] {
                        i += 1;
                    }
                    runs.push(r(s as u64, i as u64 - 1));
                } else {
                    i += 1;
                }
            }
            assert_eq!(rs.as_slice(), &runs[..]);
        }
    }
}
