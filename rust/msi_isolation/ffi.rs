// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI, wrapped in safe functions: the walk over the PCI
//! devices and what is read of each (`kernel::bindings`, and
//! `msi_device_has_isolated_msi()` declared by hand); the C shim in
//! `shim.c` (module parameters, MSI controller), declared by hand from
//! `include/armsi/msi_isolation_shim.h`; the one Rust function the shim
//! calls back; and `of_machine_compatible_match()`.

use core::{
    marker::PhantomData,
    ptr::{
        self,
        NonNull, //
    },
};

use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int,
        c_uint,
        c_void, //
    },
    prelude::*,
    str::CStr, //
};

use crate::verdict::{
    Domain,
    Evidence,
    MsiController,
    MsiWindow, //
};

/// Size of a [`Name`], NUL included: longer names are truncated to
/// `NAME_LEN - 1` bytes, as `strscpy()` into a buffer of this size does.
const NAME_LEN: usize = 48;

// `enum armsi_msi_kind` (include/armsi/msi_doorbell.h), which
// `armsi_msi_controller()` returns; shim.c asserts the values.
const MSI_KIND_NONE: c_int = 0;
const MSI_KIND_ITS: c_int = 1;
const MSI_KIND_GICV2M: c_int = 2;

/// `PCI_ANY_ID`, `(~0)`: bindgen makes it an `i32`, `pci_get_device()` takes
/// it unsigned.
const PCI_ANY_ID: c_uint = bindings::PCI_ANY_ID as c_uint;

// Only pointers to the bound `struct device` cross here; the lint objects to
// an empty struct bindgen gives one of the types it reaches.
#[expect(improper_ctypes)]
extern "C" {
    fn armsi_msi_param_assert() -> *const c_char;
    fn armsi_msi_param_deny() -> *const c_char;
    fn armsi_msi_controller(
        dev: *mut bindings::device,
        name: *mut c_char,
        len: usize,
        doorbell: *mut u64,
    ) -> c_int;
    // kernel/irq/msi.c, EXPORT_SYMBOL_GPL; the kernel crate does not bind it.
    fn msi_device_has_isolated_msi(dev: *mut bindings::device) -> bool;
}

/// A NUL-padded name, at most `NAME_LEN - 1` bytes.
#[derive(Clone, Copy)]
pub(crate) struct Name([u8; NAME_LEN]);

impl Name {
    const EMPTY: Self = Name([0; NAME_LEN]);

    /// `s`, truncated to `NAME_LEN - 1` bytes as `strscpy()` would.
    fn new(s: &CStr) -> Self {
        let b = s.to_bytes();
        let len = b.len().min(NAME_LEN - 1);
        let mut n = Self::EMPTY;
        n.0[..len].copy_from_slice(&b[..len]);
        n
    }

    /// The name, or `"none"` when empty.
    pub(crate) fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        match core::str::from_utf8(&self.0[..len]) {
            Ok("") => "none",
            Ok(s) => s,
            Err(_) => "?",
        }
    }
}

/// The [`Name`] of the C string at `p`, empty when `p` is NULL.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string valid for the call.
unsafe fn c_name(p: *const c_char) -> Name {
    if p.is_null() {
        return Name::EMPTY;
    }
    // SAFETY: `p` is a NUL-terminated string valid for the call (contract),
    // and the `CStr` does not outlive it.
    Name::new(unsafe { CStr::from_char_ptr(p) })
}

/// One PCI device and its evidence.
pub(crate) struct PciEvidence {
    /// The device's PCI address.
    pub(crate) name: Name,
    /// The IOMMU instance translating it.
    pub(crate) iommu: Name,
    /// That instance's driver.
    pub(crate) iommu_driver: Name,
    /// The MSI controller's device-tree node name.
    pub(crate) msi_node: Name,
    /// PCI vendor ID.
    pub(crate) vendor: u16,
    /// PCI device ID.
    pub(crate) device: u16,
    /// What the kernel says about its isolation.
    pub(crate) evidence: Evidence,
}

/// Collects the evidence for every PCI device present now.
pub(crate) fn collect() -> Result<KVec<PciEvidence>> {
    let mut out = KVec::new();
    let mut walk = PciWalk::new();
    while let Some(pdev) = walk.next() {
        // On error the walk drops its device reference.
        out.push(pdev.evidence(), GFP_KERNEL)?;
    }
    Ok(out)
}

/// The walk of `for_each_pci_dev()`, in the PCI bus's device order.
///
/// # Invariants
///
/// `self.0` is NULL (before the first device and after the last) or a PCI
/// device the walk holds one reference on.
struct PciWalk(*mut bindings::pci_dev);

impl PciWalk {
    fn new() -> Self {
        // INVARIANT: NULL.
        Self(ptr::null_mut())
    }

    /// The next PCI device, or `None` at the end.
    fn next(&mut self) -> Option<PciDev<'_>> {
        // INVARIANT: the walk holds the reference returned.
        // SAFETY: `self.0` is NULL or a device the walk holds a reference on
        // (type invariant); `pci_get_device()` drops that reference and
        // returns the next device with a new one, or NULL at the end. It
        // may sleep: this runs in process context (debugfs read, query).
        self.0 = unsafe { bindings::pci_get_device(PCI_ANY_ID, PCI_ANY_ID, self.0) };
        // INVARIANT: the `PciDev` borrows the walk, which keeps the reference
        // until its next `next()` or its drop.
        NonNull::new(self.0).map(|pdev| PciDev {
            pdev,
            _walk: PhantomData,
        })
    }
}

impl Drop for PciWalk {
    fn drop(&mut self) {
        // SAFETY: `self.0` is NULL, which `pci_dev_put()` ignores, or a device
        // the walk holds a reference on (type invariant), put here when the
        // walk stops early.
        unsafe { bindings::pci_dev_put(self.0) };
    }
}

/// A PCI device of a [`PciWalk`].
///
/// # Invariants
///
/// `pdev` is live: the walk it borrows holds a reference on it.
struct PciDev<'a> {
    pdev: NonNull<bindings::pci_dev>,
    _walk: PhantomData<&'a mut PciWalk>,
}

impl PciDev<'_> {
    /// What the kernel says about the device now.
    fn evidence(&self) -> PciEvidence {
        let pdev = self.pdev.as_ptr();
        // SAFETY: the device is live (type invariant); `vendor` and `device`
        // are set when it is enumerated and never change, and `dev` is
        // embedded in it.
        let (vendor, device, dev) =
            unsafe { ((*pdev).vendor, (*pdev).device, &raw mut (*pdev).dev) };
        // SAFETY: `dev` is live; `dev_name()` (`pci_name()`) returns its
        // NUL-terminated name, set once when the device was added.
        let name = unsafe { c_name(bindings::dev_name(dev)) };
        let mut probe = Probe {
            dev,
            domain: Domain::None,
            iommu: Name::EMPTY,
            iommu_driver: Name::EMPTY,
            sw_msi: (0, 0),
            hw_msi: (0, 0),
        };
        // SAFETY: `dev` is live; `iommu_group_get()` returns its group with a
        // reference, or NULL when it has none.
        let group = unsafe { bindings::iommu_group_get(dev) };
        let iommu_group = if group.is_null() {
            None
        } else {
            // SAFETY: `group` is live: the reference taken above is put last.
            // `iommu_group_for_each_dev()` calls `read_member()` with the
            // group's mutex held, for each member, and with `probe`, which
            // nothing else borrows during the call, as its data.
            let id = unsafe {
                let id = bindings::iommu_group_id(group);
                bindings::iommu_group_for_each_dev(
                    group,
                    ptr::from_mut(&mut probe).cast(),
                    Some(read_member),
                );
                bindings::iommu_group_put(group);
                id
            };
            u32::try_from(id).ok()
        };

        let mut msi_node = Name::EMPTY;
        let mut doorbell = 0u64;
        // SAFETY: `dev` is live; `msi_node` is writable for its `NAME_LEN`
        // bytes and `doorbell` for a `u64`, for the call.
        let kind = unsafe {
            armsi_msi_controller(dev, msi_node.0.as_mut_ptr().cast(), NAME_LEN, &mut doorbell)
        };
        let msi_controller = match kind {
            MSI_KIND_ITS => MsiController::Its,
            MSI_KIND_GICV2M => MsiController::GicV2m,
            // An MSI irq domain, but neither an ITS nor a GICv2m frame on
            // its path.
            MSI_KIND_NONE => MsiController::Other,
            // -ENODEV: no MSI irq domain.
            _ => MsiController::None,
        };
        // SAFETY: `dev` is live.
        let isolated_msi = unsafe { msi_device_has_isolated_msi(dev) };

        // The first SW_MSI region wins over the first MSI region.
        let msi_window = match (probe.sw_msi, probe.hw_msi) {
            ((base, size), _) if size != 0 => MsiWindow::Software { base, size },
            (_, (base, size)) if size != 0 => MsiWindow::Hardware { base, size },
            _ => MsiWindow::None,
        };
        PciEvidence {
            name,
            iommu: probe.iommu,
            iommu_driver: probe.iommu_driver,
            msi_node,
            vendor,
            device,
            evidence: Evidence {
                iommu_group,
                domain: probe.domain,
                msi_controller,
                doorbell: (doorbell != 0).then_some(doorbell),
                msi_window,
                isolated_msi,
            },
        }
    }
}

/// What [`read_member()`] reads of one device under its group's mutex.
struct Probe {
    /// The device to find among the group's members.
    dev: *mut bindings::device,
    /// The group's domain for the device.
    domain: Domain,
    /// The IOMMU instance's hardware device, empty when unknown.
    iommu: Name,
    /// Its driver, empty when unknown.
    iommu_driver: Name,
    /// The first `IOMMU_RESV_SW_MSI` region (base, size), size 0 when none.
    sw_msi: (u64, u64),
    /// The first `IOMMU_RESV_MSI` region (base, size), size 0 when none.
    hw_msi: (u64, u64),
}

/// An `iommu_group_for_each_dev()` callback: when `dev` is the [`Probe`]'s
/// device, reads its domain, IOMMU instance and reserved MSI regions into it
/// and stops the walk (returns 1).
///
/// Under the group's mutex, with `dev` a member, what `dev->iommu` points to
/// stays: `iommu_deinit_device()` frees it under this mutex as `dev` leaves
/// the group. The instance's sysfs device and its driver stay too for
/// arm-smmu-v3 and arm-smmu, the IOMMUs this module judges: their remove
/// takes the devices out of their groups (`iommu_device_unregister()`)
/// before `iommu_device_sysfs_remove()` and before the unbind completes.
/// (virtio-iommu removes the sysfs device first; the C this replaced read
/// the same fields with no lock at all.)
///
/// # Safety
///
/// Called by `iommu_group_for_each_dev()`: `dev` is a member of the group,
/// whose mutex is held, and `data` an exclusively borrowed [`Probe`].
unsafe extern "C" fn read_member(dev: *mut bindings::device, data: *mut c_void) -> c_int {
    // SAFETY: `data` is an exclusively borrowed `Probe` (contract).
    let p = unsafe { &mut *data.cast::<Probe>() };
    if dev != p.dev {
        return 0;
    }
    // SAFETY: `dev` is in the group and its mutex is held (contract), as
    // `iommu_driver_get_domain_for_dev()` requires (lockdep asserts it); the
    // domain returned stays attached, so allocated, while the mutex is held.
    p.domain = unsafe {
        let d = bindings::iommu_driver_get_domain_for_dev(dev);
        if d.is_null() {
            Domain::None
        } else {
            domain_kind((*d).type_)
        }
    };
    // SAFETY: `dev` is a member and the mutex is held (contract): `dev->iommu`
    // is NULL or live, and so is the instance it names (see above).
    let iommu_dev = unsafe {
        let iommu = (*dev).iommu;
        if iommu.is_null() {
            ptr::null_mut()
        } else {
            (*iommu).iommu_dev
        }
    };
    if iommu_dev.is_null() {
        // No IOMMU driver probed it (a VFIO no-IOMMU group): no instance and
        // no reserved regions to ask for.
        return 1;
    }
    // SAFETY: the instance is registered (see above).
    let idev = unsafe { (*iommu_dev).dev };
    if !idev.is_null() {
        // SAFETY: `idev`, the instance's sysfs class device, is registered
        // (see above) and holds a reference on its parent, the IOMMU itself
        // ("9050000.smmuv3"), still bound to its driver (see above):
        // `dev_name()` returns a NUL-terminated name each device owns, and
        // `driver->name` is the bound driver's NUL-terminated name.
        unsafe {
            let parent = (*idev).parent;
            let hw = if parent.is_null() { idev } else { parent };
            p.iommu = c_name(bindings::dev_name(hw));
            let drv = (*hw).driver;
            if !drv.is_null() {
                p.iommu_driver = c_name((*drv).name);
            }
        }
    }
    // SAFETY: `dev` is a member of the group whose mutex is held (contract),
    // and it has an IOMMU instance.
    unsafe { read_msi_regions(dev, p) };
    1
}

/// The kind of an IOMMU domain, by its type (`include/linux/iommu.h`).
fn domain_kind(ty: c_uint) -> Domain {
    match ty {
        bindings::IOMMU_DOMAIN_BLOCKED => Domain::Blocked,
        bindings::IOMMU_DOMAIN_IDENTITY => Domain::Identity,
        bindings::IOMMU_DOMAIN_DMA | bindings::IOMMU_DOMAIN_DMA_FQ => Domain::Dma,
        bindings::IOMMU_DOMAIN_UNMANAGED => Domain::Unmanaged,
        _ => Domain::Other,
    }
}

/// Reads `dev`'s first `IOMMU_RESV_SW_MSI` and first `IOMMU_RESV_MSI`
/// regions (a region of size 0 does not count) into `p`.
///
/// # Safety
///
/// `dev` is a member of a group whose mutex is held (as in
/// `iommu_get_group_resv_regions()`), and `dev->iommu->iommu_dev` is set.
unsafe fn read_msi_regions(dev: *mut bindings::device, p: &mut Probe) {
    let mut list = bindings::list_head {
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
    };
    let head: *mut bindings::list_head = &raw mut list;
    // SAFETY: `head` points to `list`, which stays in place until after
    // `iommu_put_resv_regions()` below; this is `INIT_LIST_HEAD()`.
    unsafe {
        (*head).next = head;
        (*head).prev = head;
    }
    // SAFETY: `dev` has an IOMMU instance, live under the group's mutex
    // (contract), whose driver appends the regions it allocates to `head`,
    // an empty list.
    unsafe { bindings::iommu_get_resv_regions(dev, head) };
    // SAFETY: `head` is a list of `struct iommu_resv_region`s linked by their
    // `list` members, which only this function holds, until it puts them.
    let mut pos = unsafe { (*head).next };
    while pos != head {
        // SAFETY: `pos` is the `list` member of a region on the list (see
        // above), so `container_of!` stays within that region.
        let (ty, start, length, next) = unsafe {
            let r = kernel::container_of!(pos, bindings::iommu_resv_region, list);
            ((*r).type_, (*r).start, (*r).length, (*pos).next)
        };
        // Lossless: `usize` is at most 64 bits.
        let region = (start, length as u64);
        if ty == bindings::iommu_resv_type_IOMMU_RESV_SW_MSI && p.sw_msi.1 == 0 {
            p.sw_msi = region;
        } else if ty == bindings::iommu_resv_type_IOMMU_RESV_MSI && p.hw_msi.1 == 0 {
            p.hw_msi = region;
        }
        pos = next;
    }
    // SAFETY: `head` holds the regions `iommu_get_resv_regions()` gave for
    // `dev`; they are freed here and `head` is not used after.
    unsafe { bindings::iommu_put_resv_regions(dev, head) };
}

/// Is the machine's device-tree root compatible with `compat`?
pub(crate) fn machine_is_compatible(compat: &str) -> bool {
    let mut buf = [0u8; 128];
    if compat.len() >= buf.len() {
        return false;
    }
    buf[..compat.len()].copy_from_slice(compat.as_bytes());
    // `of_machine_is_compatible()`, a static inline, passes this list.
    let compats = [buf.as_ptr().cast::<c_char>(), core::ptr::null()];
    // SAFETY: `compats` is a NULL-terminated list of one NUL-terminated
    // string (`buf` was zeroed and `compat` is shorter); both outlive the
    // call, which only reads them.
    unsafe { bindings::of_machine_compatible_match(compats.as_ptr()) }
}

fn param(p: *const c_char) -> &'static str {
    // SAFETY: the shim returns a module_param_string buffer: static,
    // NUL terminated, and read-only after load (permission 0444).
    let s = unsafe { CStr::from_char_ptr(p) };
    s.to_str().unwrap_or("")
}

/// The `assert_isolated` parameter.
pub(crate) fn assert_param() -> &'static str {
    // SAFETY: no precondition; the shim returns a static buffer.
    param(unsafe { armsi_msi_param_assert() })
}

/// The `deny_isolated` parameter.
pub(crate) fn deny_param() -> &'static str {
    // SAFETY: no precondition; the shim returns a static buffer.
    param(unsafe { armsi_msi_param_deny() })
}

/// The verdict for the device named `name`, for the exported
/// `armsi_msi_isolation_query()`: writes the verdict line (truncated,
/// NUL terminated) into `why` when it is not NULL.
///
/// Returns 1 (isolated), 0 (not isolated) or a negative errno.
///
/// # Safety
///
/// `name` is a NUL-terminated string; `why` is NULL or points to `len`
/// writable bytes. Both stay valid for the call.
#[no_mangle]
pub(crate) unsafe extern "C" fn armsi_msi_rust_query(
    name: *const c_char,
    why: *mut c_char,
    len: usize,
) -> c_int {
    // SAFETY: the caller passes a NUL-terminated name.
    let name = unsafe { CStr::from_char_ptr(name) };
    let Ok(name) = name.to_str() else {
        return EINVAL.to_errno();
    };
    let out: &mut [u8] = if why.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: the caller gives `len` writable bytes at `why`.
        unsafe { core::slice::from_raw_parts_mut(why.cast::<u8>(), len) }
    };
    match crate::report::query(name, out) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(e) => e.to_errno(),
    }
}
