// SPDX-License-Identifier: GPL-2.0

//! MSI isolation verdicts from kernel evidence.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`), which unit-tests it with
//! `cargo test`.
//!
//! The question is the one `IOMMU_CAP_INTR_REMAP` used to answer before Linux
//! 6.3: can a device that user space owns through VFIO forge interrupts of
//! other devices? On arm64 the answer needs two things: the device's DMA
//! (and so its MSI writes) goes through an IOMMU, and the MSI controller on
//! the device's MSI path tags each MSI with the requester (a GICv3 ITS does, with
//! the DeviceID; a GICv2m frame does not).

use core::fmt;

/// What the kernel reports about one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// IOMMU group number, `None` when no IOMMU translates the device.
    pub iommu_group: Option<u32>,
    /// `msi_device_has_isolated_msi()`: an irq domain on the device's MSI
    /// path carries `IRQ_DOMAIN_FLAG_ISOLATED_MSI`.
    pub isolated_msi: bool,
}

/// Why a device's MSIs are not isolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No IOMMU group: nothing translates or checks the device's writes.
    NoIommu,
    /// The MSI controller does not tag MSIs with the requester.
    MsiControllerNotIsolating,
}

/// The verdict for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The device's MSIs are isolated.
    Isolated,
    /// They are not, for the first reason found.
    NotIsolated(Reason),
}

impl Evidence {
    /// Computes the verdict; a missing IOMMU is reported before the MSI
    /// controller, since without translation nothing else matters.
    pub fn verdict(&self) -> Verdict {
        if self.iommu_group.is_none() {
            Verdict::NotIsolated(Reason::NoIommu)
        } else if !self.isolated_msi {
            Verdict::NotIsolated(Reason::MsiControllerNotIsolating)
        } else {
            Verdict::Isolated
        }
    }
}

impl fmt::Display for Verdict {
    /// The stable text form: `isolated` or `not-isolated reason=<token>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Isolated => f.write_str("isolated"),
            Verdict::NotIsolated(Reason::NoIommu) => f.write_str("not-isolated reason=no-iommu"),
            Verdict::NotIsolated(Reason::MsiControllerNotIsolating) => {
                f.write_str("not-isolated reason=msi-controller-not-isolating")
            }
        }
    }
}
