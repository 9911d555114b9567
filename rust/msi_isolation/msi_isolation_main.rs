// SPDX-License-Identifier: GPL-2.0

//! MSI isolation verdicts, with evidence, for PCI devices behind an arm-smmu
//! or arm-smmu-v3.
//!
//! Answers the question VFIO asks before a user may own a device (the old
//! `IOMMU_CAP_INTR_REMAP`): are this device's MSIs isolated? The answer is
//! computed from the kernel's state when asked, so hotplug, driver binding
//! and VFIO ownership can never leave it stale.
//!
//! - debugfs `msi_isolation/devices` and `msi_isolation/groups`: the
//!   verdicts in a stable text format (see `report.rs` and
//!   Documentation/msi-isolation.rst).
//! - `armsi_msi_isolation_query()`: the kernel-side query, exported for the
//!   VFIO backend.
//! - `assert_isolated=` / `deny_isolated=`: platform policy (see `policy.rs`).

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*, //
};

mod ffi;
// Shared unchanged with the host test crate (tests/host), where their items
// are public API; in the module they are crate-internal.
#[expect(unreachable_pub)]
mod policy;
mod report;
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
    /// `devices`: one line per PCI device.
    #[pin]
    _devices: File<()>,
    /// `groups`: one line per IOMMU group.
    #[pin]
    _groups: File<()>,
}

/// Validates a policy parameter and logs every override it makes.
fn check_policy(param: &str, list: &str, what: &str) -> Result {
    policy::validate(list).map_err(|policy::BadEntry(tok)| {
        pr_err!(
            "{param}: bad entry '{tok}': expected a PCI address (0000:00:01.0) or platform:<compatible>\n"
        );
        EINVAL
    })?;
    for entry in policy::entries(list).flatten() {
        match entry {
            policy::Entry::Device(d) => {
                pr_warn!("{param}: MSIs of {d} are reported {what} whatever the evidence\n")
            }
            policy::Entry::Platform(c) => pr_warn!(
                "{param}: MSIs of every device are reported {what} on platform {c} (this machine {})\n",
                if ffi::machine_is_compatible(c) {
                    "matches"
                } else {
                    "does not match"
                }
            ),
        }
    }
    Ok(())
}

impl kernel::InPlaceModule for MsiIsolation {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            check_policy("assert_isolated", ffi::assert_param(), "isolated")?;
            check_policy("deny_isolated", ffi::deny_param(), "not isolated")?;
            let dir = Dir::new(c"msi_isolation");
            pr_info!("verdicts in debugfs msi_isolation/{{devices,groups}}\n");
            Ok(try_pin_init!(Self {
                _devices <- dir.read_callback_file(c"devices", (), &|_, f| report::show_devices(f)),
                _groups <- dir.read_callback_file(c"groups", (), &|_, f| report::show_groups(f)),
                _dir: dir,
            }))
        })
    }
}
