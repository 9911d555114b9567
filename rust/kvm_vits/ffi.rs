// SPDX-License-Identifier: GPL-2.0

//! The module's only FFI, declared by hand: the KVM backend helpers
//! (`include/kvm/arm_vgic.h`, patch 0002, exported to this module alone)
//! that Rust can call as they are, with the kernel's signatures; the C shim
//! in `shim.c` (`include/armsi/kvm_vits_shim.h`) for what it cannot: the
//! backend and its ops tables, the MMIO frame, and the calls that name a
//! vCPU (`kvm_get_vcpu_by_id()` is a static inline). Both are wrapped in
//! safe types ([`Kvm`], [`Lpi`], [`VmLock`], [`Frame`]). And the
//! `kvits_rs_*` entry points the shim's device ops, MMIO frame and MSI
//! injection call.

use core::ptr::NonNull;

use kernel::{
    error::to_result,
    ffi::{
        c_int,
        c_ulong,
        c_void, //
    },
    prelude::*,
    sync::{
        rcu,
        Arc,
        ArcBorrow, //
    },
    transmute::AsBytes,
    types::ForeignOwnable, //
};

use crate::{
    env::Errno,
    its::Its, //
};

/// Opaque `struct kvm`.
#[repr(C)]
pub(crate) struct RawKvm {
    _private: [u8; 0],
}

/// Opaque `struct vgic_irq`.
#[repr(C)]
pub(crate) struct RawIrq {
    _private: [u8; 0],
}

extern "C" {
    // The shim (`include/armsi/kvm_vits_shim.h`).
    fn kvits_register() -> c_int;
    fn kvits_unregister();
    fn kvits_place_frame(dev: *mut RawDev, base: u64) -> c_int;
    fn kvits_frame_base(dev: *mut RawDev) -> u64;
    fn kvits_vcpu_exists(kvm: *mut RawKvm, vcpu_id: u32) -> bool;
    fn kvits_lpis_enabled(kvm: *mut RawKvm, vcpu_id: u32) -> bool;
    fn kvits_lpi_add(kvm: *mut RawKvm, intid: u32, target: i64, irq: *mut *mut RawIrq) -> c_int;
    fn kvits_lpi_map(kvm: *mut RawKvm, irq: *mut RawIrq, target: i64) -> bool;
    fn kvits_lpi_set_target(kvm: *mut RawKvm, irq: *mut RawIrq, from: i64, to: u32) -> c_int;
    fn kvits_invall(kvm: *mut RawKvm, vcpu_id: u32);
    fn kvits_movall(kvm: *mut RawKvm, from: u32, to: u32);

    // The kernel's backend helpers (`include/kvm/arm_vgic.h`, patch 0002),
    // exported to this module alone; `gpa_t` is `u64`.
    fn kvm_vgic_its_read_guest(
        kvm: *mut RawKvm,
        gpa: u64,
        data: *mut c_void,
        len: c_ulong,
    ) -> c_int;
    fn kvm_vgic_its_write_guest(
        kvm: *mut RawKvm,
        gpa: u64,
        data: *const c_void,
        len: c_ulong,
    ) -> c_int;
    fn kvm_vgic_its_gpa_visible(kvm: *mut RawKvm, gpa: u64) -> bool;
    fn kvm_vgic_its_lock_vm(kvm: *mut RawKvm) -> c_int;
    fn kvm_vgic_its_unlock_vm(kvm: *mut RawKvm);
    fn kvm_vgic_its_max_lpis(kvm: *mut RawKvm) -> u32;
    fn kvm_vgic_lpi_release(kvm: *mut RawKvm, irq: *mut RawIrq);
    fn kvm_vgic_lpi_intid(irq: *const RawIrq) -> u32;
    fn kvm_vgic_lpi_set_pending(kvm: *mut RawKvm, irq: *mut RawIrq);
    fn kvm_vgic_lpi_clear_pending(irq: *mut RawIrq);
    fn kvm_vgic_lpi_inv(kvm: *mut RawKvm, irq: *mut RawIrq) -> c_int;
    fn kvm_vgic_lpi_inject(kvm: *mut RawKvm, intid: u32) -> bool;
    fn kvm_vgic_lpi_try_inject(kvm: *mut RawKvm, irq: *mut RawIrq, intid: u32) -> bool;
}

/// Register as KVM's ITS backend.
pub(crate) fn register() -> Result {
    // SAFETY: no precondition; the shim's backend is static.
    to_result(unsafe { kvits_register() })
}

/// Stop being offered to new VMs (VMs using us pin the module).
pub(crate) fn unregister() {
    // SAFETY: no precondition.
    unsafe { kvits_unregister() }
}

/// A C return value (0 or -errno) as an [`Errno`] result.
fn errno(ret: c_int) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno::new(-ret))
    } else {
        Ok(())
    }
}

impl From<Errno> for Error {
    fn from(e: Errno) -> Error {
        Error::from_errno(-e.get())
    }
}

fn target(t: Option<u32>) -> i64 {
    t.map_or(-1, i64::from)
}

/// A VM.
///
/// # Invariants
///
/// Points to a live `struct kvm` for as long as the ITS device holding it
/// exists: KVM destroys a VM's devices only when the VM dies.
#[derive(Clone, Copy)]
pub(crate) struct Kvm(NonNull<RawKvm>);

// SAFETY: `struct kvm` is used from any thread; KVM's helpers (and the
// shim's, which call them) take KVM's locks.
unsafe impl Send for Kvm {}

impl Kvm {
    /// Locks the VM as the built-in ITS's attributes do (`kvm->lock`, every
    /// vCPU, `config_lock`); `EBUSY` when a vCPU is running.
    pub(crate) fn lock(self) -> Result<VmLock> {
        // SAFETY: the VM is live (type invariant); on failure
        // `kvm_vgic_its_lock_vm()` holds nothing.
        to_result(unsafe { kvm_vgic_its_lock_vm(self.0.as_ptr()) })?;
        // INVARIANT: locked just above.
        Ok(VmLock(self))
    }
}
// SAFETY: as above.
unsafe impl Sync for Kvm {}

/// A counted reference to one of the VM's LPIs (`struct vgic_irq *`).
///
/// # Invariants
///
/// Points to a live `struct vgic_irq` while its holder owns a reference;
/// the model gives every reference back (see `env.rs`). Move-only (neither
/// `Copy` nor `Clone`): each value is one counted reference, so no copy can
/// be used after [`Kvm::lpi_release`] or a refusing [`Kvm::lpi_map`] has
/// dropped it. Dropping an `Lpi` without either leaks the reference.
#[derive(PartialEq)]
pub(crate) struct Lpi(NonNull<RawIrq>);

// SAFETY: a `vgic_irq` is refcounted and locked by its own `irq_lock`.
unsafe impl Send for Lpi {}

impl Kvm {
    pub(crate) fn read_guest(self, gpa: u64, buf: &mut [u8]) -> Result<(), Errno> {
        // SAFETY: by the invariant `self` is live; `buf` is writable for its length.
        errno(unsafe {
            kvm_vgic_its_read_guest(self.0.as_ptr(), gpa, buf.as_mut_ptr().cast(), buf.len())
        })
    }

    pub(crate) fn write_guest(self, gpa: u64, buf: &[u8]) -> Result<(), Errno> {
        // SAFETY: by the invariant `self` is live; `buf` is readable for its length.
        errno(unsafe {
            kvm_vgic_its_write_guest(self.0.as_ptr(), gpa, buf.as_ptr().cast(), buf.len())
        })
    }

    pub(crate) fn is_visible(self, gpa: u64) -> bool {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvm_vgic_its_gpa_visible(self.0.as_ptr(), gpa) }
    }

    pub(crate) fn vcpu_exists(self, vcpu_id: u32) -> bool {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvits_vcpu_exists(self.0.as_ptr(), vcpu_id) }
    }

    pub(crate) fn lpis_enabled(self, vcpu_id: u32) -> bool {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvits_lpis_enabled(self.0.as_ptr(), vcpu_id) }
    }

    pub(crate) fn max_lpis(self) -> u32 {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvm_vgic_its_max_lpis(self.0.as_ptr()) }
    }

    pub(crate) fn lpi_add(self, intid: u32, t: Option<u32>) -> Result<Lpi, Errno> {
        let mut irq = core::ptr::null_mut();
        // SAFETY: by the invariant `self` is live; `irq` is writable.
        errno(unsafe { kvits_lpi_add(self.0.as_ptr(), intid, target(t), &mut irq) })?;
        // INVARIANT: on success the shim gave us a counted reference.
        NonNull::new(irq).map(Lpi).ok_or(crate::env::ENOMEM)
    }

    /// Claim `lpi` for one ITE: `Some(lpi)` back when it was not mapped
    /// yet, `None` when another ITE maps it (the shim dropped the reference).
    pub(crate) fn lpi_map(self, lpi: Lpi, t: Option<u32>) -> Option<Lpi> {
        // SAFETY: `self` is live and `lpi` is a counted reference we own; on
        // false the shim drops that reference, and `lpi` is not returned.
        let mapped = unsafe { kvits_lpi_map(self.0.as_ptr(), lpi.0.as_ptr(), target(t)) };
        mapped.then_some(lpi)
    }

    pub(crate) fn lpi_release(self, lpi: Lpi) {
        // SAFETY: `self` is live; `lpi` is consumed, so its reference, given
        // up here, cannot be used again.
        unsafe { kvm_vgic_lpi_release(self.0.as_ptr(), lpi.0.as_ptr()) }
    }

    pub(crate) fn lpi_set_target(self, lpi: &Lpi, from: Option<u32>, to: u32) -> Result<(), Errno> {
        // SAFETY: `self` is live and the caller holds a reference to `lpi`.
        errno(unsafe { kvits_lpi_set_target(self.0.as_ptr(), lpi.0.as_ptr(), target(from), to) })
    }

    /// Make `lpi` pending and queue it to its vCPU; atomic context is fine.
    pub(crate) fn lpi_trigger(self, lpi: &Lpi) {
        // SAFETY: `self` is live and the caller holds a reference to `lpi`.
        unsafe { kvm_vgic_lpi_set_pending(self.0.as_ptr(), lpi.0.as_ptr()) }
    }

    pub(crate) fn lpi_inv(self, lpi: &Lpi) -> Result<(), Errno> {
        // SAFETY: `self` is live and the caller holds a reference to `lpi`.
        errno(unsafe { kvm_vgic_lpi_inv(self.0.as_ptr(), lpi.0.as_ptr()) })
    }

    pub(crate) fn invall(self, vcpu_id: u32) {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvits_invall(self.0.as_ptr(), vcpu_id) }
    }

    pub(crate) fn movall(self, from: u32, to: u32) {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvits_movall(self.0.as_ptr(), from, to) }
    }

    /// Make LPI `intid` pending if the VM has it; false if not. Atomic
    /// context is fine: the core looks the INTID up in its RCU-protected,
    /// refcounted LPI table, as for the built-in ITS's translation cache.
    pub(crate) fn inject_intid(self, intid: u32) -> bool {
        // SAFETY: by the invariant `self` is live.
        unsafe { kvm_vgic_lpi_inject(self.0.as_ptr(), intid) }
    }

    /// Make the LPI whose [`Lpi::token`] is `token` pending, if it is still
    /// LPI `intid` and live; false if not (0 is no token). Atomic context is
    /// fine. Saves [`Self::inject_intid`]'s lookup in the LPI table.
    ///
    /// # Safety
    ///
    /// `token` is 0 or the token of an LPI some reference was held to when
    /// the caller read it, in the RCU read-side critical section `_rcu`
    /// still holds: the core frees an LPI a grace period after its last
    /// reference goes, so the memory is still there, whether or not the
    /// LPI is.
    pub(crate) unsafe fn try_inject(self, token: usize, intid: u32, _rcu: &rcu::Guard) -> bool {
        let irq: *mut RawIrq = core::ptr::with_exposed_provenance_mut(token);
        if irq.is_null() {
            return false;
        }
        // SAFETY: `self` is live (invariant); per the contract `irq` points
        // to a `struct vgic_irq` that is not freed before `_rcu` ends, all the
        // helper needs: it checks the INTID and takes a reference only if one
        // is still held.
        unsafe { kvm_vgic_lpi_try_inject(self.0.as_ptr(), irq, intid) }
    }
}

impl Lpi {
    /// Its address, for the translation cache ([`Kvm::try_inject`]).
    pub(crate) fn token(&self) -> usize {
        self.0.as_ptr().expose_provenance()
    }

    pub(crate) fn intid(&self) -> u32 {
        // SAFETY: by the invariant the holder's reference keeps it live.
        unsafe { kvm_vgic_lpi_intid(self.0.as_ptr()) }
    }

    pub(crate) fn clear(&self) {
        // SAFETY: by the invariant the holder's reference keeps it live.
        unsafe { kvm_vgic_lpi_clear_pending(self.0.as_ptr()) }
    }
}

/// `kvm_device_ops.create`: a new ITS of `kvm`.
///
/// # Safety
///
/// `kvm` is a live VM that outlives the returned object, which the caller
/// gives back to [`kvits_rs_destroy`] once.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_create(kvm: *mut RawKvm) -> *mut c_void {
    let Some(kvm) = NonNull::new(kvm) else {
        return core::ptr::null_mut();
    };
    // INVARIANT: per the contract the VM outlives the ITS.
    let Ok(its) = Its::new(Kvm(kvm)).and_then(|i| Arc::pin_init(i, GFP_KERNEL_ACCOUNT)) else {
        return core::ptr::null_mut();
    };
    if its.register().is_err() {
        its.destroy();
        return core::ptr::null_mut();
    }
    its.into_foreign()
}

/// `kvm_device_ops.destroy`.
///
/// # Safety
///
/// `its` came from [`kvits_rs_create`] and is not used again.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_destroy(its: *mut c_void) {
    // SAFETY: per the contract `its` is ours and released once.
    let its = unsafe { Arc::<Its>::from_foreign(its) };
    its.destroy();
}

/// Borrow the ITS behind a shim pointer.
///
/// # Safety
///
/// `its` came from [`kvits_rs_create`] and is not destroyed yet.
unsafe fn its<'a>(its: *mut c_void) -> ArcBorrow<'a, Its> {
    // SAFETY: per the contract `its` came from `into_foreign` and is live.
    unsafe { Arc::<Its>::borrow(its) }
}

/// A guest read of `len` bytes of the ITS frame at `offset`, stored at
/// `val` in little-endian order (the frame's); an access of another size
/// than 1, 2, 4 or 8 bytes reads as zeroes.
///
/// # Safety
///
/// `p` is a live ITS (see [`its`]); `val` is writable for `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_mmio_read(
    p: *mut c_void,
    offset: u64,
    len: c_int,
    val: *mut u8,
) {
    let Ok(n) = usize::try_from(len) else {
        return;
    };
    // SAFETY: per the contract `val` is writable for `len` bytes.
    let out = unsafe { core::slice::from_raw_parts_mut(val, n) };
    // SAFETY: per the contract.
    let data = unsafe { its(p) }.mmio_read(offset, n as u32);
    match n {
        1 | 2 | 4 | 8 => out.copy_from_slice(&data.to_le_bytes()[..n]),
        _ => out.fill(0),
    }
}

/// A guest write of `len` bytes of the ITS frame at `offset`, read from
/// `val` in little-endian order; an access of another size than 1, 2, 4
/// or 8 bytes is ignored.
///
/// # Safety
///
/// `p` is a live ITS; `val` is readable for `len` bytes.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_mmio_write(
    p: *mut c_void,
    offset: u64,
    len: c_int,
    val: *const u8,
) {
    let n = match usize::try_from(len) {
        Ok(n @ (1 | 2 | 4 | 8)) => n,
        _ => return,
    };
    let mut le = [0u8; 8];
    // SAFETY: per the contract `val` is readable for `len` bytes.
    le[..n].copy_from_slice(unsafe { core::slice::from_raw_parts(val, n) });
    // SAFETY: per the contract.
    unsafe { its(p) }.mmio_write(offset, n as u32, u64::from_le_bytes(le))
}

/// `struct kvm_vits_translation` (include/uapi/linux/kvm_vits.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct TranslationAbi {
    pub(crate) intid: u32,
    pub(crate) icid: u32,
    pub(crate) vcpu: u32,
    pub(crate) flags: u32,
}

/// `KVM_VITS_NO_VCPU`.
pub(crate) const KVM_VITS_NO_VCPU: u32 = u32::MAX;

// The C's size, which shim.c asserts too.
kernel::static_assert!(size_of::<TranslationAbi>() == 16);

// SAFETY: integers only, no padding (size asserted above).
unsafe impl AsBytes for TranslationAbi {}

/// Opaque `struct kvits_dev`: the shim's half of one ITS device.
#[repr(C)]
pub(crate) struct RawDev {
    _private: [u8; 0],
}

/// The shim's half of an ITS device, for placing its MMIO frame.
///
/// # Invariants
///
/// Points to a live `struct kvits_dev`: the shim hands it over for the
/// duration of one attribute call on its device.
#[derive(Clone, Copy)]
pub(crate) struct Frame(NonNull<RawDev>);

impl Frame {
    /// Places the frame at `base` (`kvm_vgic_its_register_frame()`, which
    /// takes KVM's locks), and lists the device for the MSI paths.
    pub(crate) fn place(self, base: u64) -> Result {
        // SAFETY: the device is live (type invariant).
        to_result(unsafe { kvits_place_frame(self.0.as_ptr(), base) })
    }

    /// Where the frame is, if placed.
    pub(crate) fn base(self) -> Option<u64> {
        // SAFETY: the device is live (type invariant).
        let base = unsafe { kvits_frame_base(self.0.as_ptr()) };
        (base != u64::MAX).then_some(base)
    }
}

/// The VM locked as the built-in ITS's attributes lock it
/// (`kvm_vgic_its_lock_vm()`), until dropped.
pub(crate) struct VmLock(Kvm);

impl Drop for VmLock {
    fn drop(&mut self) {
        // SAFETY: `lock` took the lock this value stands for.
        unsafe { kvm_vgic_its_unlock_vm(self.0 .0.as_ptr()) }
    }
}

/// An attribute call on the ITS `p` and its C half `dev`, its result as
/// C takes it back (0 or the negative errno).
///
/// # Safety
///
/// `p` is a live ITS and `dev` its live `struct kvits_dev`.
unsafe fn attr_call(
    p: *mut c_void,
    dev: *mut RawDev,
    op: impl FnOnce(&Its, Frame) -> Result,
) -> c_int {
    let Some(dev) = NonNull::new(dev) else {
        return EINVAL.to_errno();
    };
    // SAFETY: per the contract.
    let its = unsafe { its(p) };
    // INVARIANT: `dev` is live for this call.
    match op(&its, Frame(dev)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `KVM_SET_DEVICE_ATTR`.
///
/// # Safety
///
/// `p` is a live ITS and `dev` its live `struct kvits_dev`.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_set_attr(
    p: *mut c_void,
    dev: *mut RawDev,
    group: u32,
    attr: u64,
    addr: u64,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { attr_call(p, dev, |its, f| crate::attr::set(its, f, group, attr, addr)) }
}

/// `KVM_GET_DEVICE_ATTR`.
///
/// # Safety
///
/// `p` is a live ITS and `dev` its live `struct kvits_dev`.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_get_attr(
    p: *mut c_void,
    dev: *mut RawDev,
    group: u32,
    attr: u64,
    addr: u64,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { attr_call(p, dev, |its, f| crate::attr::get(its, f, group, attr, addr)) }
}

/// `KVM_HAS_DEVICE_ATTR`.
#[no_mangle]
pub(crate) extern "C" fn kvits_rs_has_attr(group: u32, attr: u64) -> c_int {
    match crate::attr::has(group, attr) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// An MSI from `KVM_SIGNAL_MSI` or an irqfd (may sleep): 1 delivered, 0
/// blocked by the guest's tables, or -errno.
///
/// # Safety
///
/// `p` is a live ITS.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_inject(p: *mut c_void, devid: u32, eventid: u32) -> c_int {
    // SAFETY: per the contract.
    match unsafe { its(p) }.inject(devid, eventid) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(e) => Error::from(e).to_errno(),
    }
}

/// The irqfd fast path, atomic context: 0, or -EWOULDBLOCK on a cache miss.
///
/// # Safety
///
/// `p` is a live ITS.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_inject_cached(
    p: *mut c_void,
    devid: u32,
    eventid: u32,
) -> c_int {
    // SAFETY: per the contract.
    if unsafe { its(p) }.inject_cached(devid, eventid) {
        0
    } else {
        EAGAIN.to_errno()
    }
}

/// A redistributor disabled its LPIs.
///
/// # Safety
///
/// `p` is a live ITS.
#[no_mangle]
pub(crate) unsafe extern "C" fn kvits_rs_invalidate_cache(p: *mut c_void) {
    // SAFETY: per the contract.
    unsafe { its(p) }.invalidate_cache()
}
