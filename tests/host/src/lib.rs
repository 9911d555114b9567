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

/// `rust/vfio_type1x/dirty.rs`: dirty page tracking's checks and bitmaps.
#[path = "../../../rust/vfio_type1x/dirty.rs"]
pub mod dirty;

/// `rust/vfio_type1x/aperture.rs`: the user-chosen MSI aperture checks.
#[path = "../../../rust/vfio_type1x/aperture.rs"]
pub mod aperture;

/// `rust/kvm_vits/env.rs`: what the ITS model needs from KVM.
#[path = "../../../rust/kvm_vits/env.rs"]
pub mod env;

/// `rust/kvm_vits/cmd.rs`: ITS command decoding.
#[path = "../../../rust/kvm_vits/cmd.rs"]
pub mod cmd;

/// `rust/kvm_vits/table.rs`: GITS_BASER fields and ABI rev 0 table entries.
#[path = "../../../rust/kvm_vits/table.rs"]
pub mod table;

/// `rust/kvm_vits/model.rs`: the ITS model.
#[path = "../../../rust/kvm_vits/model.rs"]
pub mod model;

/// `rust/kvm_vits/cache.rs`: the MSI translation cache.
#[path = "../../../rust/kvm_vits/cache.rs"]
pub mod cache;

/// What only the host tests use of the ITS files: encoders, constants and
/// conveniences (none ships in the module).
pub mod extra;

/// A mock [`env::Env`] and the deterministic ITS command-stream fuzzer.
pub mod fuzz;
