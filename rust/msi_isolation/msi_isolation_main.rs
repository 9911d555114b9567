// SPDX-License-Identifier: GPL-2.0

//! MSI isolation verdicts for devices behind an arm-smmu / arm-smmu-v3.
//!
//! Answers the question VFIO asks before a user may own a device (the old
//! `IOMMU_CAP_INTR_REMAP`): are this device's MSIs isolated? The answer is
//! computed when read, so it is always current.
//!
//! debugfs: `msi_isolation/devices`, one line per PCI device:
//! `<bdf> <vendor>:<device> group=<n|none> <verdict>`.

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*, //
};

mod ffi;
// Shared unchanged with the host test crate (tests/host), where its items are
// public API; in the module they are crate-internal.
#[expect(unreachable_pub)]
mod verdict;

module! {
    type: MsiIsolation,
    name: "msi_isolation",
    authors: ["armsi developers"],
    description: "MSI isolation verdicts (interrupt remapping capability) for arm-smmu devices",
    license: "GPL",
}

#[pin_data]
struct MsiIsolation {
    /// Keeps the debugfs directory; dropping it removes the files.
    _dir: Dir,
    /// `devices`: the verdict of every PCI device.
    #[pin]
    _devices: File<()>,
}

fn show_devices(_: &(), f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let devs = match ffi::collect() {
        Ok(d) => d,
        Err(e) => return writeln!(f, "error: {e:?}"),
    };
    for d in devs.iter() {
        write!(f, "{} {:04x}:{:04x} ", d.name(), d.vendor, d.device)?;
        match d.evidence.iommu_group {
            Some(g) => write!(f, "group={g} ")?,
            None => write!(f, "group=none ")?,
        }
        writeln!(f, "{}", d.evidence.verdict())?;
    }
    Ok(())
}

impl kernel::InPlaceModule for MsiIsolation {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let dir = Dir::new(c"msi_isolation");
        pr_info!("MSI isolation verdicts in debugfs msi_isolation/devices\n");
        try_pin_init!(Self {
            _devices <- dir.read_callback_file(c"devices", (), &show_devices),
            _dir: dir,
        })
    }
}
