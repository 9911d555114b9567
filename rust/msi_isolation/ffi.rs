// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI: the C shim in `shim.c`, declared by hand from
//! `include/armsi/msi_isolation_shim.h` and wrapped in safe functions.

use kernel::prelude::*;

use crate::verdict::Evidence;

const NAME_LEN: usize = 32;

/// Mirror of `struct armsi_msi_evidence`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawEvidence {
    name: [u8; NAME_LEN],
    vendor: u16,
    device: u16,
    iommu_group: i32,
    isolated_msi: u8,
}

extern "C" {
    fn armsi_msi_collect(out: *mut RawEvidence, max: u32) -> u32;
}

/// One PCI device and its evidence.
pub(crate) struct PciEvidence {
    name: [u8; NAME_LEN],
    /// PCI vendor ID.
    pub(crate) vendor: u16,
    /// PCI device ID.
    pub(crate) device: u16,
    /// What the kernel says about its isolation.
    pub(crate) evidence: Evidence,
}

impl PciEvidence {
    /// The device's name (its PCI address).
    pub(crate) fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// Collects the evidence for every PCI device present now.
pub(crate) fn collect() -> Result<KVec<PciEvidence>> {
    let mut cap = 16usize;
    loop {
        let mut raw: KVec<RawEvidence> = KVec::with_capacity(cap, GFP_KERNEL)?;
        // CAST: `cap` starts at 16 and only doubles while below `u32::MAX`
        // devices, which the PCI core cannot have.
        let max = cap as u32;
        // SAFETY: `raw` has room for `cap` entries; the shim writes at most
        // `max == cap` of them and returns how many devices exist.
        let n = unsafe { armsi_msi_collect(raw.as_mut_ptr(), max) } as usize;
        if n > cap {
            // Devices appeared since the last try: retry with room for them.
            cap = n.next_power_of_two();
            continue;
        }
        // SAFETY: the shim initialised the first `n <= cap` entries.
        unsafe { raw.inc_len(n) };
        let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
        for r in raw.iter() {
            out.push(
                PciEvidence {
                    name: r.name,
                    vendor: r.vendor,
                    device: r.device,
                    evidence: Evidence {
                        iommu_group: u32::try_from(r.iommu_group).ok(),
                        isolated_msi: r.isolated_msi != 0,
                    },
                },
                GFP_KERNEL,
            )?;
        }
        return Ok(out);
    }
}
