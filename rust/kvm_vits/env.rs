// SPDX-License-Identifier: GPL-2.0

//! What the ITS model needs from its surroundings.
//!
//! The model (`model.rs`) is pure logic: it decodes commands, keeps the
//! device/ITE/collection bookkeeping and walks the tables. Everything it
//! touches outside itself goes through [`Env`]: guest memory, the vCPUs, and
//! the LPIs, which the KVM core owns (`struct vgic_irq` in `dist->lpi_xa`,
//! shared by every ITS of a VM). The kernel module implements [`Env`] over
//! KVM; the host tests implement it over plain memory, which lets them check
//! every reference the model takes is given back.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

/// An errno (`EINVAL`, ...), as a positive value. The kernel glue turns it
/// into a `kernel::error::Error` once, where it returns to C (`ffi.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(i32);

impl Errno {
    /// The errno `e` (positive).
    pub const fn new(e: i32) -> Self {
        Errno(e)
    }

    /// The positive value.
    pub const fn get(self) -> i32 {
        self.0
    }
}

/// Invalid argument.
pub const EINVAL: Errno = Errno(22);
/// Out of memory.
pub const ENOMEM: Errno = Errno(12);
/// Busy.
pub const EBUSY: Errno = Errno(16);
/// Exists.
pub const EEXIST: Errno = Errno(17);
/// No such device or address.
pub const ENXIO: Errno = Errno(6);
/// No such device.
pub const ENODEV: Errno = Errno(19);

/// Allocation failed; the element that was to be stored comes back, so a
/// value that owns something (an ITE's [`Env::Lpi`]) can still be released.
#[derive(Debug, PartialEq, Eq)]
pub struct NoMem<T>(pub T);

/// The growable array the model keeps its sorted tables in: `KVec` in the
/// kernel, `Vec` on the host.
pub trait Vector<T>: core::ops::Deref<Target = [T]> + core::ops::DerefMut {
    /// An empty vector (no allocation).
    fn new_empty() -> Self;
    /// Insert `v` at `index` (`index <= len`), shifting the tail right; on
    /// allocation failure hand `v` back.
    fn try_insert(&mut self, index: usize, v: T) -> Result<(), NoMem<T>>;
    /// Remove and return the element at `index` (`index < len`).
    fn remove_at(&mut self, index: usize) -> T;
}

/// The model's view of KVM.
///
/// vCPUs are named by their `vcpu_id` (GITS_TYPER.PTA is 0, so a
/// collection's target "address" is a vCPU number).
pub trait Env {
    /// The array type the model stores its tables in.
    type Vec<T>: Vector<T>;
    /// A counted reference to a core LPI (`struct vgic_irq *`). The model
    /// owns every `Lpi` it got from [`Env::lpi_add`] until it hands it back
    /// with [`Env::lpi_release`] (or [`Env::lpi_map`] refused it).
    ///
    /// Deliberately neither `Copy` nor `Clone`: the reference is moved, never
    /// duplicated, so no copy can outlive the `lpi_release` that drops it.
    /// Operations that only use the LPI borrow it; the two that end the
    /// holder's ownership ([`Env::lpi_map`], [`Env::lpi_release`]) take it.
    type Lpi;

    /// Read `buf.len()` bytes of guest memory at `gpa`
    /// (`kvm_read_guest_lock`).
    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Write guest memory at `gpa` (`vgic_write_guest_lock`).
    fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> Result<(), Errno>;
    /// Is the page holding `gpa` covered by a memslot the guest can see
    /// (`kvm_is_visible_gfn`)?
    fn is_visible(&mut self, gpa: u64) -> bool;
    /// Does a vCPU with this `vcpu_id` exist (`kvm_get_vcpu_by_id`)?
    fn vcpu_exists(&self, vcpu_id: u32) -> bool;
    /// Has this vCPU's redistributor got LPIs enabled (`vgic_lpis_enabled`)?
    fn lpis_enabled(&self, vcpu_id: u32) -> bool;
    /// The number of LPI INTIDs GICR_PROPBASER covers
    /// (`max_lpis_propbaser()`: `1 << min(IDbits + 1, 16)`).
    fn max_lpis(&self) -> u32;

    /// Get (or create) the core LPI `intid`, targeting `target`; reads its
    /// configuration and pending state from the guest tables
    /// (`vgic_add_lpi`). Takes one reference.
    fn lpi_add(&mut self, intid: u32, target: Option<u32>) -> Result<Self::Lpi, Errno>;
    /// Claim `lpi` for one ITE (`vgic_its_map_lpi`): if no ITE maps it yet,
    /// mark it mapped, target it at `target` and give the reference back for
    /// the ITE to own; otherwise drop the reference `lpi_add` took and return
    /// `None` (mapping one LPI from two events is UNPREDICTABLE, the first
    /// ITE keeps it).
    fn lpi_map(&mut self, lpi: Self::Lpi, target: Option<u32>) -> Option<Self::Lpi>;
    /// An ITE goes away (`its_free_ite`): unmark the LPI and drop the
    /// reference.
    fn lpi_release(&mut self, lpi: Self::Lpi);
    /// The LPI's INTID.
    fn lpi_intid(&self, lpi: &Self::Lpi) -> u32;
    /// Retarget the LPI at `to`; with `from` set, only if it targets `from`
    /// now (`update_affinity`).
    fn lpi_set_target(&mut self, lpi: &Self::Lpi, from: Option<u32>, to: u32) -> Result<(), Errno>;
    /// Make the LPI pending and queue it to its vCPU (INT, an MSI).
    fn lpi_trigger(&mut self, lpi: &Self::Lpi) -> Result<(), Errno>;
    /// Clear the LPI's pending state (CLEAR).
    fn lpi_clear(&mut self, lpi: &Self::Lpi) -> Result<(), Errno>;
    /// Re-read the LPI's configuration byte (INV, `vgic_its_inv_lpi`).
    fn lpi_inv(&mut self, lpi: &Self::Lpi) -> Result<(), Errno>;
    /// Re-read the configuration of every LPI targeting `vcpu_id` (INVALL,
    /// `vgic_its_invall`).
    fn invall(&mut self, vcpu_id: u32);
    /// Retarget every LPI of the VM that targets `from` at `to` (MOVALL).
    fn movall(&mut self, from: u32, to: u32);

    /// Forget this ITS's cached translations.
    fn cache_invalidate(&mut self);
    /// Remember a translation the model just resolved (devid, eventid) ->
    /// `lpi`, for the MSI fast path. Best effort.
    fn cache_insert(&mut self, devid: u32, eventid: u32, lpi: &Self::Lpi);
}
