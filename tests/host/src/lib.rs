// SPDX-License-Identifier: GPL-2.0

//! The modules' kernel-independent logic, built for the host.

/// `rust/msi_isolation/verdict.rs`: MSI isolation verdicts.
#[path = "../../../rust/msi_isolation/verdict.rs"]
pub mod verdict;

/// `rust/msi_isolation/policy.rs`: the assert/deny module parameters.
#[path = "../../../rust/msi_isolation/policy.rs"]
pub mod policy;

/// `rust/vfio_type1x/iova.rs`: usable IOVA ranges and page sizes.
#[path = "../../../rust/vfio_type1x/iova.rs"]
pub mod iova;

/// `rust/vfio_type1x/dma_args.rs`: MAP_DMA/UNMAP_DMA argument checks.
#[path = "../../../rust/vfio_type1x/dma_args.rs"]
pub mod dma_args;

/// `rust/vfio_type1x/aperture.rs`: the user-chosen MSI aperture checks.
#[path = "../../../rust/vfio_type1x/aperture.rs"]
pub mod aperture;
