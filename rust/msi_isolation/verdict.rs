// SPDX-License-Identifier: GPL-2.0

//! MSI isolation verdicts from kernel evidence.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`), which unit-tests it with
//! `cargo test`.
//!
//! The question is the one `IOMMU_CAP_INTR_REMAP` answered before Linux 6.3:
//! can a device that user space owns through VFIO raise interrupts it was not
//! given? On arm64 an MSI is a DMA write to the MSI controller's doorbell.
//! A GICv3 ITS tags each write with the DeviceID that the SMMU/root complex
//! supplies and only triggers events mapped for that DeviceID, so the MSIs
//! are isolated. A GICv2m frame triggers whatever SPI number is written, so
//! a device that can reach the doorbell can raise any SPI of the frame. The
//! kernel records this as `IRQ_DOMAIN_FLAG_ISOLATED_MSI` on the irq domain.
//!
//! Without an IOMMU nothing checks the device's writes at all, so a device
//! with no IOMMU group is never isolated.

use core::fmt;

/// The IOMMU domain the device's group is attached to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// No group, or no domain attached.
    None,
    /// DMA is blocked.
    Blocked,
    /// Identity (bypass): DMA is not translated.
    Identity,
    /// The kernel's DMA API domain: translated.
    Dma,
    /// A paging domain owned by a driver or user space (VFIO): translated.
    Unmanaged,
    /// Anything else (SVA, nested, platform).
    Other,
}

/// The MSI controller that receives the device's MSIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiController {
    /// The device has no MSI irq domain.
    None,
    /// A GICv3 ITS.
    Its,
    /// A GICv2m frame.
    GicV2m,
    /// Something this module does not recognise.
    Other,
}

/// A reserved IOVA window for MSIs, from the IOMMU's reserved regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiWindow {
    /// No MSI reserved region.
    None,
    /// `IOMMU_RESV_SW_MSI`: MSI writes are translated by the IOMMU and
    /// software maps the doorbell into this IOVA window.
    Software {
        /// First IOVA of the window.
        base: u64,
        /// Size in bytes.
        size: u64,
    },
    /// `IOMMU_RESV_MSI`: a hardware window where MSI writes bypass
    /// translation.
    Hardware {
        /// First address of the window.
        base: u64,
        /// Size in bytes.
        size: u64,
    },
}

/// What the kernel reports about one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// IOMMU group number, `None` when no IOMMU translates the device.
    pub iommu_group: Option<u32>,
    /// The group's current domain.
    pub domain: Domain,
    /// Who receives the device's MSIs.
    pub msi_controller: MsiController,
    /// Physical address of the doorbell register, when known.
    pub doorbell: Option<u64>,
    /// The MSI window the IOMMU reserves.
    pub msi_window: MsiWindow,
    /// `msi_device_has_isolated_msi()`: an irq domain on the device's MSI
    /// path carries `IRQ_DOMAIN_FLAG_ISOLATED_MSI`.
    pub isolated_msi: bool,
}

/// Why a verdict is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Isolated: a GICv3 ITS checks the DeviceID of every MSI.
    ItsDeviceId,
    /// Isolated: an irq domain on the MSI path is flagged isolating, though
    /// it is not an ITS this module recognises.
    IsolatingMsiDomain,
    /// Not isolated: no IOMMU group, nothing translates or checks the
    /// device's writes.
    NoIommu,
    /// Not isolated: the device has no MSI controller at all.
    NoMsiController,
    /// Not isolated: the MSI controller does not tag MSIs with the requester
    /// (GICv2m, or the SynQuacer pre-ITS quirk).
    MsiControllerNotIsolating,
    /// Declared isolated by the `assert_isolated` module parameter.
    AssertedByParameter,
    /// Declared not isolated by the `deny_isolated` module parameter.
    DeniedByParameter,
}

impl Reason {
    /// The reason's stable token.
    pub fn token(self) -> &'static str {
        match self {
            Reason::ItsDeviceId => "its-deviceid",
            Reason::IsolatingMsiDomain => "isolating-msi-domain",
            Reason::NoIommu => "no-iommu",
            Reason::NoMsiController => "no-msi-controller",
            Reason::MsiControllerNotIsolating => "msi-controller-not-isolating",
            Reason::AssertedByParameter => "asserted-by-parameter",
            Reason::DeniedByParameter => "denied-by-parameter",
        }
    }
}

/// A platform policy override from the module parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Override {
    /// `assert_isolated` names the device or platform.
    Assert,
    /// `deny_isolated` names it (wins over `Assert`).
    Deny,
}

/// The verdict for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the device's MSIs are isolated.
    pub isolated: bool,
    /// Why.
    pub reason: Reason,
    /// What the evidence alone says, when an override changed the answer.
    pub overridden: Option<(bool, Reason)>,
}

impl Evidence {
    /// The verdict from the evidence alone.
    pub fn evidence_verdict(&self) -> (bool, Reason) {
        if self.iommu_group.is_none() {
            (false, Reason::NoIommu)
        } else if self.isolated_msi {
            match self.msi_controller {
                MsiController::Its => (true, Reason::ItsDeviceId),
                _ => (true, Reason::IsolatingMsiDomain),
            }
        } else if self.msi_controller == MsiController::None {
            (false, Reason::NoMsiController)
        } else {
            (false, Reason::MsiControllerNotIsolating)
        }
    }

    /// The verdict, after the platform policy.
    pub fn verdict(&self, policy: Option<Override>) -> Verdict {
        let (isolated, reason) = self.evidence_verdict();
        let forced = match policy {
            Some(Override::Deny) => Some((false, Reason::DeniedByParameter)),
            Some(Override::Assert) => Some((true, Reason::AssertedByParameter)),
            None => None,
        };
        match forced {
            Some((i, r)) => Verdict {
                isolated: i,
                reason: r,
                overridden: Some((isolated, reason)),
            },
            None => Verdict {
                isolated,
                reason,
                overridden: None,
            },
        }
    }
}

impl fmt::Display for Verdict {
    /// `verdict=<isolated|not-isolated> reason=<token>`, then, when a
    /// parameter decided, `evidence=<isolated|not-isolated>/<token>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verdict={} reason={}",
            yes_no(self.isolated),
            self.reason.token()
        )?;
        if let Some((i, r)) = self.overridden {
            write!(f, " evidence={}/{}", yes_no(i), r.token())?;
        }
        Ok(())
    }
}

fn yes_no(isolated: bool) -> &'static str {
    if isolated {
        "isolated"
    } else {
        "not-isolated"
    }
}

impl Domain {
    /// The `dma=` token: whether the group's current domain translates.
    pub fn token(self) -> &'static str {
        match self {
            Domain::None => "none",
            Domain::Blocked => "blocked",
            Domain::Identity => "bypass",
            Domain::Dma | Domain::Unmanaged => "translated",
            Domain::Other => "other",
        }
    }
}

impl MsiController {
    /// The `msi=` token.
    pub fn token(self) -> &'static str {
        match self {
            MsiController::None => "none",
            MsiController::Its => "its",
            MsiController::GicV2m => "gicv2m",
            MsiController::Other => "other",
        }
    }
}

impl fmt::Display for MsiWindow {
    /// `none`, `sw:<base>+<size>` or `hw:<base>+<size>`, in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsiWindow::None => f.write_str("none"),
            MsiWindow::Software { base, size } => write!(f, "sw:{base:#x}+{size:#x}"),
            MsiWindow::Hardware { base, size } => write!(f, "hw:{base:#x}+{size:#x}"),
        }
    }
}

/// The page a doorbell lives in (4 KiB granule, the smallest the SMMU maps).
pub fn doorbell_page(doorbell: u64) -> u64 {
    doorbell & !0xfff
}

/// How many *other* IOMMU groups have their doorbell in the same page as
/// `me`, given every device's (group, doorbell).
///
/// A shared page is harmless behind an ITS (the DeviceID still decides) and
/// is what makes a GICv2m frame unsafe: every group that maps it can raise
/// the others' SPIs.
pub fn groups_sharing_doorbell(
    me: (Option<u32>, Option<u64>),
    all: impl Iterator<Item = (Option<u32>, Option<u64>)> + Clone,
) -> usize {
    let (Some(my_group), Some(my_db)) = me else {
        return 0;
    };
    let page = doorbell_page(my_db);
    let mut count = 0;
    // Count each other group once: a group is counted at its first device
    // whose doorbell is in `page`.
    for (i, (g, db)) in all.clone().enumerate() {
        let (Some(g), Some(db)) = (g, db) else {
            continue;
        };
        if g == my_group || doorbell_page(db) != page {
            continue;
        }
        let seen_before = all
            .clone()
            .take(i)
            .any(|(g2, db2)| g2 == Some(g) && db2.map(doorbell_page) == Some(page));
        if !seen_before {
            count += 1;
        }
    }
    count
}
