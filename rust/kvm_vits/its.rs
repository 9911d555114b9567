// SPDX-License-Identifier: GPL-2.0

//! One ITS device: the pure model (`model.rs`) behind a mutex, the lock-free
//! MSI translation cache (`cache.rs`), and the model's [`Env`] over KVM.
//!
//! Locking: KVM's `kvm->lock` -> vCPU mutexes -> `config_lock` (taken by
//! `kvm_vgic_its_lock_vm()` for attributes) -> `queue` -> `model` -> the
//! core's `lpi_xa` lock and `irq_lock`. `queue` (upstream's `cmd_lock`)
//! serialises the writers of the command queue and is held while it runs;
//! `model` (upstream's `its_lock`) is taken per command and not while the
//! command is read from guest memory, nor while an INVALL or MOVALL walks
//! the VM's LPIs, so an MSI that misses the translation cache waits for at
//! most one table command, not for the queue. The MSI fast path (irqfd,
//! atomic) takes no lock of ours, only an RCU read-side section, in which
//! the LPI addresses the cache keeps stay valid memory (see `Its::cache`).
//!
//! `REGISTRY` (the debugfs list) nests outside `model`: debugfs reads an
//! ITS's model under it; nothing takes it holding `queue` or `model`. The
//! shim's `kvits_vms_lock` (a spinlock) is a leaf: taken alone, when a
//! frame is placed and when the ITS is destroyed.

use kernel::{
    alloc::kvec::InsertError,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        rcu,
        Arc,
        Mutex, //
    }, //
};

use crate::{
    cache::TranslationCache,
    env::{
        Env,
        Errno,
        NoMem,
        Vector,
        ENXIO, //
    },
    ffi::{
        Kvm,
        Lpi, //
    },
    model::{
        self,
        commands::Step,
        Collection,
        IteInfo,
        Translation, //
    },
};

/// `KVM_DEV_ARM_ITS_SAVE_TABLES`.
pub(crate) const SAVE_TABLES: u64 = 1;
/// `KVM_DEV_ARM_ITS_RESTORE_TABLES`.
pub(crate) const RESTORE_TABLES: u64 = 2;
/// `KVM_DEV_ARM_ITS_CTRL_RESET`.
pub(crate) const CTRL_RESET: u64 = 4;

type Model = model::Its<KEnv>;

/// The model's tables are guest-sized (up to 64K devices): `KVVec` falls
/// back to vmalloc, so a fragmented host never refuses a MAPD the built-in
/// ITS, which allocates per entry, would accept.
impl<T> Vector<T> for KVVec<T> {
    fn new_empty() -> Self {
        KVVec::new()
    }

    fn try_insert(&mut self, index: usize, v: T) -> Result<(), NoMem<T>> {
        if self.reserve(1, GFP_KERNEL_ACCOUNT).is_err() {
            return Err(NoMem(v));
        }
        // Room reserved; the trait's contract keeps `index <= len`.
        self.insert_within_capacity(index, v).map_err(|e| match e {
            InsertError::IndexOutOfBounds(v) | InsertError::OutOfCapacity(v) => NoMem(v),
        })
    }

    fn remove_at(&mut self, index: usize) -> T {
        // PANIC: the trait's contract keeps `index < len`.
        self.remove(index).expect("Vector::remove_at past the end")
    }
}

/// The model's environment: one VM and this ITS's translation cache.
pub(crate) struct KEnv {
    kvm: Kvm,
    cache: Arc<TranslationCache>,
}

impl KEnv {
    fn cache(&self) -> &TranslationCache {
        &self.cache
    }
}

impl Env for KEnv {
    type Vec<T> = KVVec<T>;
    type Lpi = Lpi;

    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.kvm.read_guest(gpa, buf)
    }

    fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> Result<(), Errno> {
        self.kvm.write_guest(gpa, buf)
    }

    fn is_visible(&mut self, gpa: u64) -> bool {
        self.kvm.is_visible(gpa)
    }

    fn vcpu_exists(&self, vcpu_id: u32) -> bool {
        self.kvm.vcpu_exists(vcpu_id)
    }

    fn lpis_enabled(&self, vcpu_id: u32) -> bool {
        self.kvm.lpis_enabled(vcpu_id)
    }

    fn max_lpis(&self) -> u32 {
        self.kvm.max_lpis()
    }

    fn lpi_add(&mut self, intid: u32, target: Option<u32>) -> Result<Lpi, Errno> {
        self.kvm.lpi_add(intid, target)
    }

    fn lpi_map(&mut self, lpi: Lpi, target: Option<u32>) -> Option<Lpi> {
        self.kvm.lpi_map(lpi, target)
    }

    fn lpi_release(&mut self, lpi: Lpi) {
        // The cache may hold its token: forget it before the reference goes
        // (the invariant of `Its::cache`). This is what makes every release
        // safe, `insert_ite()`'s failure paths included; where the model has
        // just invalidated (freeing ITEs) it costs two loads.
        self.cache().invalidate();
        self.kvm.lpi_release(lpi)
    }

    fn lpi_intid(&self, lpi: &Lpi) -> u32 {
        lpi.intid()
    }

    fn lpi_set_target(&mut self, lpi: &Lpi, from: Option<u32>, to: u32) -> Result<(), Errno> {
        self.kvm.lpi_set_target(lpi, from, to)
    }

    fn lpi_trigger(&mut self, lpi: &Lpi) -> Result<(), Errno> {
        self.kvm.lpi_trigger(lpi);
        Ok(())
    }

    fn lpi_clear(&mut self, lpi: &Lpi) -> Result<(), Errno> {
        lpi.clear();
        Ok(())
    }

    fn lpi_inv(&mut self, lpi: &Lpi) -> Result<(), Errno> {
        self.kvm.lpi_inv(lpi)
    }

    fn invall(&mut self, vcpu_id: u32) {
        self.kvm.invall(vcpu_id)
    }

    fn movall(&mut self, from: u32, to: u32) {
        self.kvm.movall(from, to)
    }

    fn cache_invalidate(&mut self) {
        self.cache().invalidate();
    }

    fn cache_insert(&mut self, devid: u32, eventid: u32, lpi: &Lpi) {
        self.cache()
            .insert(devid, eventid, lpi.intid(), lpi.token());
    }
}

/// ITS devices created since the module loaded, for debugfs.
pub(crate) static CREATED: Atomic<u64> = Atomic::new(0);

/// The translation cache counters of the ITSes destroyed since the module
/// loaded (inserts, evictions, invalidations), for debugfs `cache`.
pub(crate) static CACHE_TOTALS: [Atomic<u64>; 3] = [Atomic::new(0), Atomic::new(0), Atomic::new(0)];

kernel::sync::global_lock! {
    // SAFETY: `init` is called in the module initialiser, before the backend
    // is registered and so before an ITS can exist.
    pub(crate) unsafe(uninit) static REGISTRY: Mutex<Registry> = Registry {
        list: KVec::new(),
        next_id: 0,
    };
}

/// The ITSes alive now, for debugfs: each entry is (id, a reference to the
/// ITS), as Rust Binder's context list holds its contexts.
///
/// # Invariants
///
/// An ITS is listed from [`Its::register`] until [`Its::destroy`], which
/// KVM calls while the VM still exists: so a listed ITS's VM is alive. The
/// list's references are never cloned out of it (readers borrow them under
/// the lock), so an ITS is freed when `destroy` drops the device's. Ids are
/// unique and increase along the list (ITSes are appended with `next_id`,
/// which only grows).
pub(crate) struct Registry {
    list: KVec<(u64, Arc<Its>)>,
    next_id: u64,
}

impl Registry {
    /// The entry of the first live ITS with an id above `after` (`None`:
    /// the first one).
    fn next_after(&self, after: Option<u64>) -> Option<(u64, &Its)> {
        let i = match after {
            None => 0,
            Some(a) => self.list.partition_point(|(id, _)| *id <= a),
        };
        self.list.get(i).map(|(id, its)| (*id, &**its))
    }

    /// The live ITS with id `id`, if it still exists.
    fn by_id(&self, id: u64) -> Option<&Its> {
        let i = self.list.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        self.list.get(i).map(|(_, its)| &**its)
    }
}

/// How many ITSes are alive.
pub(crate) fn live_count() -> usize {
    REGISTRY.lock().list.len()
}

/// How many collections or translations debugfs `state` copies out of an
/// ITS per hold of its mutex (about 1 KiB of stack).
const SHOW_CHUNK: usize = 32;

/// debugfs `state`: per ITS, its registers, counters, cache and every
/// translation (DeviceID, EventID) -> (LPI, collection, vCPU).
///
/// A reader must not stall the guests (the model mutex serialises their
/// commands and MSI slow paths), however many translations there are: the
/// locks (the registry's, then one ITS's model mutex) are held only to copy
/// a bounded snapshot (the header lines, or [`SHOW_CHUNK`] collections or
/// translations), never while formatting. Each chunk resumes after the last
/// ICID or (DeviceID, EventID) shown, so the output stays sorted and
/// without duplicates, but it is consistent only per chunk: counts in the
/// header may disagree with the lines that follow if the guest changes the
/// tables meanwhile, and an ITS destroyed midway is cut short.
pub(crate) fn show_state(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut after = None;
    let mut n = 0usize;
    loop {
        let next = {
            let reg = REGISTRY.lock();
            let next = reg.next_after(after).map(|(id, its)| (id, its.header()));
            next
        };
        let Some((id, header)) = next else {
            return Ok(());
        };
        after = Some(id);
        header.show(n, f)?;
        show_collections(id, n, f)?;
        show_translations(id, n, f)?;
        n += 1;
    }
}

/// The collection lines of ITS `id`, in ICID order.
fn show_collections(id: u64, n: usize, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut from = 0u32;
    loop {
        let mut buf = [Collection {
            id: 0,
            target: 0,
            seq: 0,
        }; SHOW_CHUNK];
        let copied = {
            let reg = REGISTRY.lock();
            let Some(its) = reg.by_id(id) else {
                return Ok(());
            };
            let model = its.model.lock();
            let colls = model.collections();
            let start = colls.partition_point(|c| u32::from(c.id) < from);
            let mut k = 0;
            for (dst, src) in buf.iter_mut().zip(colls.get(start..).unwrap_or(&[])) {
                *dst = *src;
                k += 1;
            }
            k
        };
        for c in buf.iter().take(copied) {
            if c.target == crate::table::COLLECTION_NOT_MAPPED {
                writeln!(f, "its{n} collection icid={} vcpu=none", c.id)?;
            } else {
                writeln!(f, "its{n} collection icid={} vcpu={}", c.id, c.target)?;
            }
        }
        match buf.get(..copied).and_then(|b| b.last()) {
            Some(last) if copied == SHOW_CHUNK => from = u32::from(last.id) + 1,
            _ => return Ok(()),
        }
    }
}

/// The translation lines of ITS `id`, in (DeviceID, EventID) order.
fn show_translations(id: u64, n: usize, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let mut after = None;
    loop {
        let mut buf = [IteInfo::EMPTY; SHOW_CHUNK];
        let copied = {
            let reg = REGISTRY.lock();
            let Some(its) = reg.by_id(id) else {
                return Ok(());
            };
            let env = its.env();
            // A statement, so the model guard is dropped before `reg`.
            let k = its.model.lock().ites_after(&env, after, &mut buf);
            k
        };
        for e in buf.iter().take(copied) {
            write!(
                f,
                "its{n} translation devid={} eventid={} intid={}",
                e.devid, e.eventid, e.intid
            )?;
            match e.icid {
                Some(i) => write!(f, " icid={i}")?,
                None => write!(f, " icid=none")?,
            }
            match e.target {
                Some(v) => writeln!(f, " vcpu={v}")?,
                None => writeln!(f, " vcpu=none")?,
            }
        }
        match buf.get(..copied).and_then(|b| b.last()) {
            Some(last) if copied == SHOW_CHUNK => after = Some((last.devid, last.eventid)),
            _ => return Ok(()),
        }
    }
}

/// The header lines of one ITS's `state`, copied under its mutex.
struct Header {
    base: u64,
    regs: model::Regs,
    stats: model::Stats,
    cache: crate::cache::CacheStats,
    devices: usize,
    collections: usize,
}

impl Header {
    fn show(&self, n: usize, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let r = &self.regs;
        if self.base == u64::MAX {
            write!(f, "its{n} base=none")?;
        } else {
            write!(f, "its{n} base={:#x}", self.base)?;
        }
        writeln!(
            f,
            " enabled={} cbaser={:#x} creadr={:#x} cwriter={:#x} baser0={:#x} baser1={:#x} abi={}",
            u8::from(r.enabled),
            r.cbaser,
            r.creadr,
            r.cwriter,
            r.baser_device_table,
            r.baser_coll_table,
            r.abi_rev
        )?;
        let s = &self.stats;
        write!(f, "its{n} commands")?;
        for (name, i) in [
            ("movi", 0x01),
            ("int", 0x03),
            ("clear", 0x04),
            ("sync", 0x05),
            ("mapd", 0x08),
            ("mapc", 0x09),
            ("mapti", 0x0a),
            ("mapi", 0x0b),
            ("inv", 0x0c),
            ("invall", 0x0d),
            ("movall", 0x0e),
            ("discard", 0x0f),
        ] {
            write!(f, " {name}={}", s.commands.get(i).copied().unwrap_or(0))?;
        }
        writeln!(
            f,
            " unknown={} its_errors={} errno_errors={}",
            s.unknown, s.its_errors, s.errno_errors
        )?;
        let c = &self.cache;
        writeln!(
            f,
            "its{n} cache cached={} inserts={} evictions={} invalidations={}",
            c.len, c.inserts, c.evictions, c.invalidations
        )?;
        writeln!(
            f,
            "its{n} devices={} collections={}",
            self.devices, self.collections
        )
    }
}

/// One emulated ITS.
#[pin_data]
pub(crate) struct Its {
    kvm: Kvm,
    /// Guest physical base of the frame, `u64::MAX` until set.
    base: Atomic<u64>,
    /// Held by whoever writes or runs the command queue, before `model`.
    #[pin]
    queue: Mutex<()>,
    #[pin]
    model: Mutex<Model>,
    /// Shared with every [`KEnv`], which inserts and invalidates.
    ///
    /// INVARIANT: every token in it is that of an LPI an ITE of this ITS
    /// held a reference to when it was inserted, and that reference is given
    /// back only once an invalidation begun after the insert has returned:
    /// [`KEnv::cache_insert`] runs under `model`, with the ITE's reference,
    /// and [`KEnv::lpi_release`], under `model` too, invalidates first.
    cache: Arc<TranslationCache>,
}

impl Its {
    /// A new ITS of `kvm`, disabled, with no base address.
    pub(crate) fn new(kvm: Kvm) -> Result<impl PinInit<Self, Error>> {
        // In place: the cache is too large for the stack.
        let cache = Arc::init(TranslationCache::init(), GFP_KERNEL_ACCOUNT)?;
        Ok(try_pin_init!(Its {
            kvm,
            base: Atomic::new(u64::MAX),
            queue <- new_mutex!((), "Its::queue"),
            model <- new_mutex!(Model::new(), "Its::model"),
            cache,
        }))
    }

    fn env(&self) -> KEnv {
        KEnv {
            kvm: self.kvm,
            cache: self.cache.clone(),
        }
    }

    /// List the ITS for debugfs.
    pub(crate) fn register(self: &Arc<Self>) -> Result {
        let mut reg = REGISTRY.lock();
        let id = reg.next_id;
        // INVARIANT: `destroy` removes the entry; `id` is above every id in
        // the list.
        reg.list.push((id, self.clone()), GFP_KERNEL)?;
        reg.next_id += 1;
        drop(reg);
        CREATED.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Free every device, event and collection (the VM is dying), and the
    /// ITS itself with the device's reference.
    pub(crate) fn destroy(self: Arc<Self>) {
        let listed = {
            let mut reg = REGISTRY.lock();
            reg.list
                .iter()
                .position(|(_, its)| Arc::ptr_eq(its, &self))
                .and_then(|i| reg.list.remove(i).ok())
        };
        // The registry's reference goes outside its lock.
        drop(listed);
        let mut env = self.env();
        self.model.lock().destroy(&mut env);
        let c = self.cache.stats();
        for (total, n) in CACHE_TOTALS
            .iter()
            .zip([c.inserts, c.evictions, c.invalidations])
        {
            total.fetch_add(n, Relaxed);
        }
    }

    /// The header of debugfs `state`: a bounded copy under the mutex.
    fn header(&self) -> Header {
        let model = self.model.lock();
        Header {
            base: self.base.load(Relaxed),
            regs: model.regs(),
            stats: model.stats(),
            cache: self.cache.stats(),
            devices: model.devices().len(),
            collections: model.collections().len(),
        }
    }

    /// The VM.
    pub(crate) fn kvm(&self) -> Kvm {
        self.kvm
    }

    /// A guest read of the frame.
    pub(crate) fn mmio_read(&self, offset: u64, len: u32) -> u64 {
        let mut env = self.env();
        self.model.lock().mmio_read(&mut env, offset, len)
    }

    /// A guest write of the frame. A write that starts the command queue
    /// (CWRITER, enabling CTLR) runs it here, one command per hold of
    /// `model`, with `queue` held throughout so that CWRITER, CREADR and
    /// CBASER stay put while a command is read unlocked.
    pub(crate) fn mmio_write(&self, offset: u64, len: u32, val: u64) {
        let mut env = self.env();
        let _queue = self.queue.lock();
        let (run, slots) = {
            let mut model = self.model.lock();
            let run = model.mmio_write_deferred(&mut env, offset, len, val);
            (run, model.queue_slots())
        };
        if !run {
            return;
        }
        // As upstream, the command is read from guest memory without the
        // model's lock: an MSI that misses the cache waits for the command
        // to run, not for the guest read too. Unlike upstream, INVALL and
        // MOVALL, which walk every LPI, run without it too: `queue` keeps
        // CREADR on the command until its work is done.
        for _ in 0..slots {
            let Some(next) = self.model.lock().next_command() else {
                break;
            };
            let cmd = next.read(&mut env);
            let step = self
                .model
                .lock()
                .begin_command(&mut env, next, cmd.as_ref());
            match step {
                Step::Moved => break,
                Step::Done => {}
                Step::Unlocked(work) => {
                    work.run(&mut env);
                    if !self.model.lock().finish_command(next) {
                        break;
                    }
                }
            }
        }
    }

    /// Is this `KVM_DEV_ARM_VGIC_GRP_ITS_REGS` offset aligned for its
    /// register?
    pub(crate) fn reg_align(offset: u64) -> Result<(), Errno> {
        model::regs::uaccess_align(offset)
    }

    /// Does `KVM_DEV_ARM_VGIC_GRP_ITS_REGS` know this offset?
    pub(crate) fn has_reg(offset: u64) -> Result<(), Errno> {
        Model::has_reg(offset)
    }

    /// A VMM reads a register.
    pub(crate) fn reg_read(&self, offset: u64) -> Result<u64, Errno> {
        let mut env = self.env();
        self.model.lock().uaccess_read(&mut env, offset)
    }

    /// A VMM writes a register.
    pub(crate) fn reg_write(&self, offset: u64, val: u64) -> Result<(), Errno> {
        let mut env = self.env();
        let _queue = self.queue.lock();
        self.model.lock().uaccess_write(&mut env, offset, val)
    }

    /// `KVM_DEV_ARM_VGIC_GRP_CTRL`.
    pub(crate) fn ctrl(&self, attr: u64) -> Result<(), Errno> {
        let mut env = self.env();
        let _queue = self.queue.lock();
        let mut model = self.model.lock();
        match attr {
            CTRL_RESET => {
                model.reset(&mut env);
                Ok(())
            }
            SAVE_TABLES => model.save_tables(&mut env),
            RESTORE_TABLES => model.restore_tables(&mut env),
            _ => Err(ENXIO),
        }
    }

    /// The translation of (`devid`, `eventid`), without side effects.
    pub(crate) fn translate(&self, devid: u32, eventid: u32) -> Option<Translation> {
        let env = self.env();
        self.model.lock().translate(&env, devid, eventid)
    }

    /// The fast path, lock-free: inject from the cache, or say it missed.
    pub(crate) fn inject_cached(&self, devid: u32, eventid: u32) -> bool {
        let rcu = rcu::read_lock();
        let Some((intid, token)) = self.cache.hit(devid, eventid) else {
            return false;
        };
        // SAFETY: `token` was read from `self.cache` under `rcu`. By the
        // cache's invariant its LPI's reference goes only after an
        // invalidation that clears it has returned; a reader whose `rcu`
        // began after that would see the clear (RCU orders it before the
        // grace period the core waits for before freeing the LPI), so `rcu`
        // began first, and the grace period waits for it. A token of another
        // translation that raced into the slot fails the INTID check; the
        // INTID's own LPI, if any, is then injected by INTID, as the cache
        // did before it kept tokens.
        let hit = unsafe { self.kvm.try_inject(token, intid, &rcu) };
        hit || self.kvm.inject_intid(intid)
    }

    /// An MSI: the cache first, then the tables. `Ok(false)` when the
    /// guest's tables do not map it.
    pub(crate) fn inject(&self, devid: u32, eventid: u32) -> Result<bool, Errno> {
        if self.inject_cached(devid, eventid) {
            return Ok(true);
        }
        let mut env = self.env();
        self.model.lock().inject(&mut env, devid, eventid)
    }

    /// Forget every cached translation.
    pub(crate) fn invalidate_cache(&self) {
        self.cache.invalidate();
    }

    /// The VMM placed the frame at `base`.
    pub(crate) fn set_base(&self, base: u64) {
        self.base.store(base, Relaxed);
    }
}
