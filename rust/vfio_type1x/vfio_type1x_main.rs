// SPDX-License-Identifier: GPL-2.0

//! VFIO type1 extension: a `VFIO_TYPE1v2_IOMMU`-compatible IOMMU backend
//! whose domains carry an MSI cookie, so that ITS doorbells are mapped
//! automatically when vfio-pci sets up MSI/MSI-X vectors.
//!
//! Implemented: registration as the VFIO IOMMU driver
//! "vfio-type1x", containers of type `VFIO_TYPE1_IOMMU` / `VFIO_TYPE1v2_IOMMU`
//! (claimed only with `serve_type1=1`), group attach and detach with the MSI
//! isolation policy (msi_isolation's verdict and reason), one paging domain
//! per IOMMU with the MSI cookie at the container's MSI aperture,
//! `VFIO_CHECK_EXTENSION`, `VFIO_IOMMU_GET_INFO`, `VFIO_IOMMU_MAP_DMA`,
//! `VFIO_IOMMU_UNMAP_DMA`, and the MSI aperture: placed by `msi_base=` or
//! per container by `VFIO_TYPE1X_SET_MSI_APERTURE`
//! (include/uapi/linux/vfio_type1x.h), reported with its doorbells in
//! `GET_INFO`. See Documentation/vfio-type1x.rst.

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    sync::atomic::Relaxed, //
};

// Shared with the host test crate, as `aperture`.
#[expect(unreachable_pub)]
mod aperture;
mod container;
// Shared with the host test crate, as `dirty`.
#[expect(unreachable_pub)]
mod dirty;
// Shared with the host test crate, as `dma_args`.
#[expect(unreachable_pub)]
mod dma_args;
mod ffi;
mod ioctl;
// Shared unchanged with the host test crate (tests/host), where its items are
// public API; in the module they are crate-internal.
#[expect(unreachable_pub)]
mod iova;
// The uAPI mirrors, an FFI with user space: `crate::uapi`.
use ffi::uapi;

module! {
    type: VfioType1x,
    name: "vfio_type1x",
    authors: ["armsi developers"],
    description: "VFIO type1v2-compatible IOMMU backend with an MSI IOVA aperture",
    license: "GPL",
    params: {
        serve_type1: bool {
            default: false,
            description: "Claim VFIO_TYPE1_IOMMU/VFIO_TYPE1v2_IOMMU containers (before vfio_iommu_type1 when loaded after it); opt-in",
        },
        msi_base: u64 {
            default: 0,
            description: "Default MSI aperture base for new containers (0: the IOMMU's software-MSI window, 0x8000000 on arm-smmu-v3)",
        },
        dma_entry_limit: u32 {
            default: 65535,
            description: "Maximum number of user DMA mappings per container (65535), as vfio_iommu_type1's",
        },
        allow_unsafe_interrupts: bool {
            default: false,
            description: "Accept groups whose MSIs are not isolated (logged with the reason)",
        },
    },
}

/// The VFIO IOMMU driver registration; dropping it unregisters.
struct Registration;

impl Registration {
    fn new() -> Result<Self> {
        ffi::register()
            .inspect_err(|e| pr_err!("cannot register the VFIO IOMMU driver: {e:?}\n"))?;
        pr_info!(
            "registered VFIO IOMMU driver vfio-type1x (serve_type1={}, msi_base={:#x}, allow_unsafe_interrupts={})\n",
            module_parameters::serve_type1.value(),
            module_parameters::msi_base.value(),
            module_parameters::allow_unsafe_interrupts.value()
        );
        Ok(Registration)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        ffi::unregister();
        // No container is left: VFIO holds the module while one exists.
        container::drop_containers();
    }
}

#[pin_data]
struct VfioType1x {
    /// The driver registration. Declared first, so dropped first: module
    /// exit unregisters before the debugfs files go; module init registers
    /// last, once everything else is in place.
    _reg: Registration,
    /// Keeps the debugfs directory; dropping it removes the files.
    _dir: Dir,
    /// `containers`: how many containers this backend serves now.
    #[pin]
    _containers: File<()>,
    /// `served`: how many it has served since it was loaded.
    #[pin]
    _served: File<()>,
    /// `apertures`: each container's MSI aperture and doorbells.
    #[pin]
    _apertures: File<()>,
}

impl kernel::InPlaceModule for VfioType1x {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // SAFETY: called once, before the driver is registered and so
            // before any container exists.
            unsafe { container::CONTAINERS.init() };
            let dir = Dir::new(c"vfio_type1x");
            Ok(try_pin_init!(Self {
                _containers <- dir.read_callback_file(c"containers", (), &|_, f| {
                    writeln!(f, "{}", container::open_count())
                }),
                _served <- dir.read_callback_file(c"served", (), &|_, f| {
                    writeln!(f, "{}", container::SERVED.load(Relaxed))
                }),
                _apertures <- dir.read_callback_file(c"apertures", (), &|_, f| {
                    container::show_apertures(f)
                }),
                _dir: dir,
                // Last: a container may be opened as soon as this returns.
                _reg: Registration::new()?,
            }))
        })
    }
}
