// SPDX-License-Identifier: GPL-2.0

//! VFIO type1 extension: a `VFIO_TYPE1v2_IOMMU`-compatible IOMMU backend with
//! an MSI IOVA aperture into which ITS doorbells are mapped automatically.
//!
//! This is the module's skeleton: it loads and unloads, and does not yet
//! register a VFIO IOMMU driver. Until it does, containers are served by the
//! upstream `vfio_iommu_type1` alone.

use kernel::prelude::*;

module! {
    type: VfioType1x,
    name: "vfio_type1x",
    authors: ["armsi developers"],
    description: "VFIO type1v2-compatible IOMMU backend with an MSI IOVA aperture (skeleton)",
    license: "GPL",
}

struct VfioType1x;

impl kernel::Module for VfioType1x {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("skeleton loaded: no VFIO IOMMU driver registered\n");
        Ok(VfioType1x)
    }
}

impl Drop for VfioType1x {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
