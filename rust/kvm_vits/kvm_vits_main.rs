// SPDX-License-Identifier: GPL-2.0

//! KVM vITS backend: the GICv3 Interrupt Translation Service a KVM guest
//! programs, emulated in Rust.
//!
//! Loaded, the module registers as KVM's ITS backend (the interface the
//! kernel patches in `patches/` add): every VM that creates its first ITS
//! device afterwards gets its ITSes from here, with the built-in ITS's
//! register file, commands, tables and save/restore ABI, so VMMs and the KVM
//! selftests use it unchanged. Such a VM and each of its devices pin the
//! module; `rmmod` is refused (`EWOULDBLOCK`) until those VMs are gone.
//!
//! Layout: the ITS logic is pure Rust shared with the host tests
//! (`env.rs` the interface, `cmd.rs` command decoding, `table.rs` table
//! formats, `model.rs` the ITS state machine, `cache.rs` the MSI translation
//! cache); `its.rs` runs it over KVM; `ffi.rs` and `shim.c` are the only
//! places that touch C.

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    sync::atomic::Relaxed, //
};

// The pure files are shared with the host tests, where their items are
// public API; what only the tests use lives in tests/host/src/extra.rs.
mod attr;
#[expect(unreachable_pub)]
mod cache;
#[expect(unreachable_pub)]
mod cmd;
#[expect(unreachable_pub)]
mod env;
mod ffi;
mod its;
#[expect(unreachable_pub)]
mod model;
#[expect(unreachable_pub)]
mod table;

module! {
    type: KvmVits,
    name: "kvm_vits",
    authors: ["armsi developers"],
    description: "KVM GICv3 ITS emulation backend in Rust",
    license: "GPL",
}

/// The ITS backend registration; dropping it unregisters.
struct Registration;

impl Registration {
    fn new() -> Result<Self> {
        ffi::register().inspect_err(|e| {
            pr_err!(
                "cannot register as KVM's ITS backend (error {}): another backend holds the slot\n",
                e.to_errno()
            )
        })?;
        pr_info!("registered: ITS devices of new VMs are emulated by kvm_vits\n");
        Ok(Registration)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        ffi::unregister();
        pr_info!("unregistered: new VMs get KVM's built-in ITS\n");
    }
}

/// Init and exit order (review L2): the backend is registered as the last
/// step of init, once everything else is in place, so no VM can pin the
/// module while a later step can still fail (the loader frees a module whose
/// init failed even if a VM holds a reference). On exit it is unregistered
/// first, before the debugfs files go: fields drop in declaration order, so
/// `_reg` stays the first field while the initialiser in `init` sets it
/// last.
#[pin_data]
struct KvmVits {
    /// Unregistered first on exit (declared first, so dropped first),
    /// before the debugfs files go; registered last in init.
    _reg: Registration,
    /// Keeps the debugfs directory; dropping it removes the files.
    _dir: Dir,
    /// `its`: how many ITS devices are alive.
    #[pin]
    _its: File<()>,
    /// `created`: how many were created since the module loaded.
    #[pin]
    _created: File<()>,
    /// `state`: every ITS's registers, counters, cache and translations.
    #[pin]
    _state: File<()>,
    /// `cache`: translation cache counters of the ITSes gone since load.
    #[pin]
    _cache: File<()>,
}

impl kernel::InPlaceModule for KvmVits {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            // SAFETY: called once, before the backend is registered (the
            // last step of the initialiser below) and so before any ITS
            // exists.
            unsafe { its::REGISTRY.init() };
            let dir = Dir::new(c"kvm_vits");
            // The fields are initialised in the order written here, and
            // those done are dropped again if a later one fails.
            Ok(try_pin_init!(Self {
                _its <- dir.read_callback_file(c"its", (), &|_, f| {
                    writeln!(f, "{}", its::live_count())
                }),
                _created <- dir.read_callback_file(c"created", (), &|_, f| {
                    writeln!(f, "{}", its::CREATED.load(Relaxed))
                }),
                _state <- dir.read_callback_file(c"state", (), &|_, f| its::show_state(f)),
                _cache <- dir.read_callback_file(c"cache", (), &|_, f| {
                    let [i, e, v] = &its::CACHE_TOTALS;
                    writeln!(
                        f,
                        "inserts={} evictions={} invalidations={}",
                        i.load(Relaxed),
                        e.load(Relaxed),
                        v.load(Relaxed)
                    )
                }),
                _dir: dir,
                // Last: once registered, nothing can fail any more.
                _reg: Registration::new()?,
            }))
        })
    }
}
