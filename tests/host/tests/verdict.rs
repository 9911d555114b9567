// SPDX-License-Identifier: GPL-2.0

//! MSI isolation verdicts over synthetic evidence, and their stable text.

use armsi_logic::verdict::{
    groups_sharing_doorbell, Domain, Evidence, MsiController, MsiWindow, Override, Reason,
};

const ITS_DB: u64 = 0x0809_0040;
const V2M_DB: u64 = 0x0802_0040;
const SW_MSI: MsiWindow = MsiWindow::Software {
    base: 0x800_0000,
    size: 0x10_0000,
};

fn its(group: Option<u32>) -> Evidence {
    Evidence {
        iommu_group: group,
        domain: Domain::Dma,
        msi_controller: MsiController::Its,
        doorbell: Some(ITS_DB),
        msi_window: SW_MSI,
        isolated_msi: true,
    }
}

fn v2m(group: Option<u32>) -> Evidence {
    Evidence {
        msi_controller: MsiController::GicV2m,
        doorbell: Some(V2M_DB),
        isolated_msi: false,
        ..its(group)
    }
}

#[test]
fn its_behind_smmu_is_isolated() {
    let v = its(Some(1)).verdict(None);
    assert!(v.isolated);
    assert_eq!(v.reason, Reason::ItsDeviceId);
    assert_eq!(v.to_string(), "verdict=isolated reason=its-deviceid");
}

#[test]
fn gicv2m_is_not_isolated() {
    let v = v2m(Some(0)).verdict(None);
    assert!(!v.isolated);
    assert_eq!(
        v.to_string(),
        "verdict=not-isolated reason=msi-controller-not-isolating"
    );
}

#[test]
fn no_iommu_is_never_isolated() {
    // Without translation even an ITS does not make the device safe to hand
    // to user space: nothing checks where its writes go.
    for e in [its(None), v2m(None)] {
        let v = e.verdict(None);
        assert!(!v.isolated);
        assert_eq!(v.reason, Reason::NoIommu);
    }
}

#[test]
fn identity_domain_is_reported_but_does_not_decide() {
    // VFIO replaces the default domain with its own paging domain, so a
    // bypass default domain is evidence, not a reason to refuse.
    let e = Evidence {
        domain: Domain::Identity,
        ..its(Some(2))
    };
    assert_eq!(Domain::Identity.token(), "bypass");
    assert!(e.verdict(None).isolated);
}

#[test]
fn unknown_isolating_domain_is_isolated() {
    let e = Evidence {
        msi_controller: MsiController::Other,
        doorbell: None,
        ..its(Some(3))
    };
    assert_eq!(e.verdict(None).reason, Reason::IsolatingMsiDomain);
}

#[test]
fn no_msi_controller_is_not_isolated() {
    let e = Evidence {
        msi_controller: MsiController::None,
        doorbell: None,
        isolated_msi: false,
        ..its(Some(3))
    };
    assert_eq!(e.verdict(None).reason, Reason::NoMsiController);
}

#[test]
fn overrides_win_and_keep_the_evidence() {
    let v = v2m(Some(0)).verdict(Some(Override::Assert));
    assert!(v.isolated);
    assert_eq!(
        v.to_string(),
        "verdict=isolated reason=asserted-by-parameter evidence=not-isolated/msi-controller-not-isolating"
    );
    let v = its(Some(1)).verdict(Some(Override::Deny));
    assert!(!v.isolated);
    assert_eq!(
        v.to_string(),
        "verdict=not-isolated reason=denied-by-parameter evidence=isolated/its-deviceid"
    );
}

#[test]
fn msi_window_text() {
    assert_eq!(SW_MSI.to_string(), "sw:0x8000000+0x100000");
    assert_eq!(
        MsiWindow::Hardware {
            base: 0x1000,
            size: 0x1000
        }
        .to_string(),
        "hw:0x1000+0x1000"
    );
    assert_eq!(MsiWindow::None.to_string(), "none");
}

#[test]
fn doorbell_sharing_counts_other_groups_once() {
    let all = [
        (Some(0), Some(V2M_DB)),
        (Some(1), Some(V2M_DB)),
        (Some(1), Some(V2M_DB + 4)), // same group, same page: once
        (Some(2), Some(V2M_DB)),
        (Some(3), Some(ITS_DB)), // another page
        (None, Some(V2M_DB)),    // no group: not a group
        (Some(4), None),         // no doorbell
    ];
    let n = |me| groups_sharing_doorbell(me, all.iter().copied());
    assert_eq!(n((Some(0), Some(V2M_DB))), 2);
    assert_eq!(n((Some(1), Some(V2M_DB))), 2);
    assert_eq!(n((Some(3), Some(ITS_DB))), 0);
    assert_eq!(n((None, Some(V2M_DB))), 0);
    assert_eq!(n((Some(4), None)), 0);
}
