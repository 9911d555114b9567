// SPDX-License-Identifier: GPL-2.0

//! VFIO_TYPE1X_SET_MSI_APERTURE validation: one refusal per cause.

use armsi_logic::aperture::{
    check_aperture, doorbell_pages, ApertureContext, ApertureRefusal as Why,
};
use armsi_logic::iova::Range;

fn r(start: u64, last: u64) -> Range {
    Range { start, last }
}

const DOMAINS: &[Range] = &[Range {
    start: 0,
    last: (1 << 48) - 1,
}];
const RESERVED: &[Range] = &[Range {
    start: 0x4000_0000,
    last: 0x4000_ffff,
}];

fn cx(overlaps: &dyn Fn(Range) -> bool) -> ApertureContext<'_> {
    ApertureContext {
        pgsize: 0x1000,
        doorbell_mapped: false,
        domains: DOMAINS,
        reserved: RESERVED,
        overlaps_dma: overlaps,
        doorbell_pages: 2,
    }
}

#[test]
fn accepted() {
    let none = |_: Range| false;
    assert_eq!(
        check_aperture(24, 0, 0xfee0_0000, 0x10_0000, &cx(&none)),
        Ok(r(0xfee0_0000, 0xfeef_ffff))
    );
    // Exactly as many pages as doorbells.
    assert!(check_aperture(24, 0, 0x1000, 0x2000, &cx(&none)).is_ok());
}

#[test]
fn each_cause_has_its_refusal() {
    let none = |_: Range| false;
    let c = cx(&none);
    assert_eq!(
        check_aperture(23, 0, 0x1000, 0x1000, &c),
        Err(Why::Malformed)
    );
    assert_eq!(
        check_aperture(24, 1, 0x1000, 0x1000, &c),
        Err(Why::Malformed)
    );
    assert_eq!(check_aperture(24, 0, 0x1000, 0, &c), Err(Why::Unaligned));
    assert_eq!(
        check_aperture(24, 0, 0x1800, 0x1000, &c),
        Err(Why::Unaligned)
    );
    assert_eq!(
        check_aperture(24, 0, 0x1000, 0x1800, &c),
        Err(Why::Unaligned)
    );
    assert_eq!(
        check_aperture(24, 0, u64::MAX - 0xfff, 0x2000, &c),
        Err(Why::Wraps)
    );
    assert_eq!(
        check_aperture(24, 0, 1 << 48, 0x2000, &c),
        Err(Why::OutsideDomain)
    );
    assert_eq!(
        check_aperture(24, 0, 0x3fff_f000, 0x2000, &c),
        Err(Why::Reserved)
    );
    assert_eq!(
        check_aperture(24, 0, 0x1000, 0x1000, &c),
        Err(Why::TooSmall)
    );

    let dma = |q: Range| q.overlaps(&r(0x10_0000, 0x10_ffff));
    assert_eq!(
        check_aperture(24, 0, 0x10_8000, 0x10_0000, &cx(&dma)),
        Err(Why::OverlapsDma)
    );

    let busy = ApertureContext {
        doorbell_mapped: true,
        ..cx(&none)
    };
    assert_eq!(
        check_aperture(24, 0, 0xfee0_0000, 0x10_0000, &busy),
        Err(Why::DoorbellMapped)
    );
    // Every refusal explains itself.
    for w in [
        Why::Malformed,
        Why::Unaligned,
        Why::Wraps,
        Why::DoorbellMapped,
        Why::OutsideDomain,
        Why::Reserved,
        Why::OverlapsDma,
        Why::TooSmall,
    ] {
        assert!(!w.why().is_empty());
    }
}

/// The check each group attach makes (container.rs): the aperture it has,
/// against the joining group's reserved regions and every group's doorbells.
fn check_attach(
    ap: Range,
    pgsize: u64,
    reserved: &[Range],
    doorbell_pages: u64,
) -> Result<(), Why> {
    let none = |_: Range| false;
    let cx = ApertureContext {
        pgsize,
        doorbell_mapped: false,
        domains: &[],
        reserved,
        overlaps_dma: &none,
        doorbell_pages,
    };
    check_aperture(24, 0, ap.start, ap.last - ap.start + 1, &cx).map(|_| ())
}

#[test]
fn attach_checks_the_aperture_for_the_joining_group() {
    let ap = r(0x800_0000, 0x800_1fff);
    // Two doorbell pages fit a two-page aperture; a third would land past
    // its end, in usable IOVA space.
    assert_eq!(check_attach(ap, 0x1000, &[], 2), Ok(()));
    assert_eq!(check_attach(ap, 0x1000, &[], 3), Err(Why::TooSmall));
    // msi_base= off the page size.
    assert_eq!(
        check_attach(r(0x800_0800, 0x800_27ff), 0x1000, &[], 1),
        Err(Why::Unaligned)
    );
    // A joining group reserves part of the aperture.
    assert_eq!(
        check_attach(ap, 0x1000, &[r(0x800_1000, 0x800_1fff)], 1),
        Err(Why::Reserved)
    );
    assert_eq!(
        check_attach(ap, 0x1000, &[r(0x800_2000, 0x800_2fff)], 1),
        Ok(())
    );
}

#[test]
fn doorbells_not_read_from_the_device_tree_count_a_page_each() {
    // Known doorbells count once per distinct page, however many devices
    // (and groups) share them.
    assert_eq!(doorbell_pages(&[], 0), 0);
    assert_eq!(doorbell_pages(&[0x808_0000, 0x808_0000, 0x909_0000], 0), 2);
    // A device whose MSI controller could not be read (ACPI) may need a page
    // of its own: counted, so the aperture check cannot under-count.
    assert_eq!(doorbell_pages(&[0x808_0000], 3), 4);
    assert_eq!(doorbell_pages(&[], u64::MAX), u64::MAX);
    // Such a count refuses an aperture too small for it.
    let no = |_: Range| false;
    let mut c = cx(&no);
    c.doorbell_pages = doorbell_pages(&[0x808_0000], 2);
    assert_eq!(
        check_aperture(24, 0, 0x1000_0000, 0x2000, &c),
        Err(Why::TooSmall)
    );
    assert_eq!(
        check_aperture(24, 0, 0x1000_0000, 0x3000, &c).map(|r| r.last),
        Ok(0x1000_2fff)
    );
}

/// A group's MSI window as upstream's vfio_iommu_has_sw_msi() decides it.
#[test]
fn hardware_msi_region_takes_precedence_over_the_software_window() {
    use armsi_logic::aperture::{msi_window, MsiWindow, RESV_MSI, RESV_SW_MSI};
    let sw = Range {
        start: 0x800_0000,
        last: 0x80f_ffff,
    };
    let hw = Range {
        start: 0xfee0_0000,
        last: 0xfeef_ffff,
    };
    let other = Range {
        start: 0x1000,
        last: 0x1fff,
    };
    assert_eq!(msi_window(&[]), MsiWindow::Absent);
    assert_eq!(msi_window(&[(other, 2)]), MsiWindow::Absent);
    assert_eq!(msi_window(&[(sw, RESV_SW_MSI)]), MsiWindow::Software(sw));
    assert_eq!(
        msi_window(&[(sw, RESV_SW_MSI), (hw, RESV_MSI)]),
        MsiWindow::Hardware
    );
    assert_eq!(
        msi_window(&[(hw, RESV_MSI), (sw, RESV_SW_MSI)]),
        MsiWindow::Hardware
    );
    // Of two software windows, the last counts.
    assert_eq!(
        msi_window(&[(other, RESV_SW_MSI), (sw, RESV_SW_MSI)]),
        MsiWindow::Software(sw)
    );
}

/// DMA avoids every reserved region but a relaxable direct one
/// (vfio_iommu_resv_exclude, vfio_iommu_resv_conflict).
#[test]
fn relaxable_direct_regions_stay_usable() {
    use armsi_logic::aperture::{dma_avoids, RESV_DIRECT_RELAXABLE, RESV_MSI, RESV_SW_MSI};
    assert!(!dma_avoids(RESV_DIRECT_RELAXABLE));
    for kind in [0, 2, RESV_MSI, RESV_SW_MSI] {
        assert!(dma_avoids(kind), "type {kind}");
    }
}
