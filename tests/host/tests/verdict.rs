// SPDX-License-Identifier: GPL-2.0

//! Verdicts over synthetic evidence, and their stable text form.

use armsi_logic::verdict::{Evidence, Reason, Verdict};

fn ev(group: Option<u32>, isolated_msi: bool) -> Evidence {
    Evidence {
        iommu_group: group,
        isolated_msi,
    }
}

#[test]
fn its_behind_iommu_is_isolated() {
    assert_eq!(ev(Some(3), true).verdict(), Verdict::Isolated);
    assert_eq!(ev(Some(3), true).verdict().to_string(), "isolated");
}

#[test]
fn gicv2m_behind_iommu_is_not_isolated() {
    let v = ev(Some(0), false).verdict();
    assert_eq!(v, Verdict::NotIsolated(Reason::MsiControllerNotIsolating));
    assert_eq!(
        v.to_string(),
        "not-isolated reason=msi-controller-not-isolating"
    );
}

#[test]
fn no_iommu_wins_over_msi_controller() {
    // Without translation an isolating ITS does not help: the device can
    // write anywhere, including another device's doorbell.
    for isolated in [false, true] {
        let v = ev(None, isolated).verdict();
        assert_eq!(v, Verdict::NotIsolated(Reason::NoIommu));
        assert_eq!(v.to_string(), "not-isolated reason=no-iommu");
    }
}
