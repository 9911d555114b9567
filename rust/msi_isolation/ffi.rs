// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI: the C shim in `shim.c`, declared by hand from
//! `include/armsi/msi_isolation_shim.h` and wrapped in safe functions, the
//! one Rust function the shim calls back, and `of_machine_compatible_match()`
//! from `kernel::bindings`.

use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int, //
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

const NAME_LEN: usize = 48;

/// Mirror of `struct armsi_msi_evidence`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawEvidence {
    name: [u8; NAME_LEN],
    iommu: [u8; NAME_LEN],
    iommu_driver: [u8; NAME_LEN],
    msi_ctrl_name: [u8; NAME_LEN],
    vendor: u16,
    device: u16,
    iommu_group: i32,
    domain: u8,
    msi_ctrl: u8,
    isolated_msi: u8,
    pad: u8,
    doorbell: u64,
    sw_msi_base: u64,
    sw_msi_size: u64,
    hw_msi_base: u64,
    hw_msi_size: u64,
}

// The C layout, which shim.c asserts too: four bytes of padding before
// `doorbell`.
kernel::static_assert!(core::mem::size_of::<RawEvidence>() == 248);
kernel::static_assert!(core::mem::offset_of!(RawEvidence, doorbell) == 208);

extern "C" {
    fn armsi_msi_collect(out: *mut RawEvidence, max: u32) -> u32;
    fn armsi_msi_param_assert() -> *const c_char;
    fn armsi_msi_param_deny() -> *const c_char;
}

/// A NUL-padded name from the shim.
#[derive(Clone, Copy)]
pub(crate) struct Name([u8; NAME_LEN]);

impl Name {
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

impl From<&RawEvidence> for PciEvidence {
    fn from(r: &RawEvidence) -> Self {
        let domain = match r.domain {
            1 => Domain::Blocked,
            2 => Domain::Identity,
            3 => Domain::Dma,
            4 => Domain::Unmanaged,
            5 => Domain::Other,
            _ => Domain::None,
        };
        let msi_controller = match r.msi_ctrl {
            1 => MsiController::Its,
            2 => MsiController::GicV2m,
            3 => MsiController::Other,
            _ => MsiController::None,
        };
        let msi_window = if r.sw_msi_size != 0 {
            MsiWindow::Software {
                base: r.sw_msi_base,
                size: r.sw_msi_size,
            }
        } else if r.hw_msi_size != 0 {
            MsiWindow::Hardware {
                base: r.hw_msi_base,
                size: r.hw_msi_size,
            }
        } else {
            MsiWindow::None
        };
        PciEvidence {
            name: Name(r.name),
            iommu: Name(r.iommu),
            iommu_driver: Name(r.iommu_driver),
            msi_node: Name(r.msi_ctrl_name),
            vendor: r.vendor,
            device: r.device,
            evidence: Evidence {
                iommu_group: u32::try_from(r.iommu_group).ok(),
                domain,
                msi_controller,
                doorbell: (r.doorbell != 0).then_some(r.doorbell),
                msi_window,
                isolated_msi: r.isolated_msi != 0,
            },
        }
    }
}

/// Collects the evidence for every PCI device present now.
pub(crate) fn collect() -> Result<KVec<PciEvidence>> {
    let mut cap = 16usize;
    loop {
        let mut raw: KVec<RawEvidence> = KVec::with_capacity(cap, GFP_KERNEL)?;
        let max = u32::try_from(cap).map_err(|_| ENOMEM)?;
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
            out.push(PciEvidence::from(r), GFP_KERNEL)?;
        }
        return Ok(out);
    }
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
