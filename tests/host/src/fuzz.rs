// SPDX-License-Identifier: GPL-2.0

//! A mock KVM for the ITS model, and a deterministic command-stream fuzzer.
//!
//! [`MockEnv`] keeps guest memory as sparse pages with a list of visible
//! ranges, and LPIs with reference counts and a `mapped` flag, so tests can
//! check that every reference the model takes is given back. [`Fuzzer`]
//! drives an [`Its`] with random command streams, register writes,
//! injections and save/restore/reset, checking the model's invariants.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use crate::cache::TranslationCache;
use crate::cmd::Command;
use crate::env::{Env, Errno, NoMem, Vector, EINVAL};
use crate::extra::{baser_phys, l1_encode, Encode, ItsExt, EFAULT};
use crate::model::{self, Its};
use crate::table;

thread_local! {
    static ALLOC_FAIL: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Make the `n`th next [`HVec::try_insert`] on this thread fail (0: the
/// next one); `None` disarms.
pub fn fail_alloc_after(n: Option<u64>) {
    ALLOC_FAIL.with(|c| c.set(n));
}

/// The host [`Vector`]: a `Vec` whose allocations can be made to fail.
#[derive(Debug, Default)]
pub struct HVec<T>(pub Vec<T>);

impl<T> core::ops::Deref for HVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> core::ops::DerefMut for HVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T> Vector<T> for HVec<T> {
    fn new_empty() -> Self {
        HVec(Vec::new())
    }
    fn try_insert(&mut self, index: usize, v: T) -> Result<(), NoMem<T>> {
        let fail = ALLOC_FAIL.with(|c| match c.get() {
            Some(0) => {
                c.set(None);
                true
            }
            Some(n) => {
                c.set(Some(n - 1));
                false
            }
            None => false,
        });
        if fail {
            return Err(NoMem(v));
        }
        assert!(index <= self.0.len());
        self.0.insert(index, v);
        Ok(())
    }
    fn remove_at(&mut self, index: usize) -> T {
        self.0.remove(index)
    }
}

/// The mock's counted reference to an LPI: like the kernel's, neither `Copy`
/// nor `Clone`, so the model can only move it or borrow it, and every
/// reference it takes must come back through `lpi_map` or `lpi_release`
/// (the fuzzer checks the counts).
///
/// Review L1: the model, generic over [`Env`], cannot duplicate an LPI
/// reference, so a copy cannot outlive its `lpi_release`:
///
/// ```compile_fail,E0382
/// fn dup<E: armsi_logic::env::Env>(lpi: E::Lpi) -> (E::Lpi, E::Lpi) {
///     (lpi, lpi)
/// }
/// ```
///
/// ```compile_fail,E0599
/// fn dup<E: armsi_logic::env::Env>(lpi: E::Lpi) -> (E::Lpi, E::Lpi) {
///     (lpi.clone(), lpi)
/// }
/// ```
///
/// and neither can anything holding the mock's:
///
/// ```compile_fail,E0599
/// fn dup(lpi: armsi_logic::fuzz::MockLpi) -> armsi_logic::fuzz::MockLpi {
///     lpi.clone()
/// }
/// ```
///
/// (The same function with the reference moved once compiles:)
///
/// ```
/// fn keep<E: armsi_logic::env::Env>(lpi: E::Lpi) -> E::Lpi {
///     lpi
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct MockLpi(u32);

impl MockLpi {
    /// The INTID this reference names.
    pub fn intid(&self) -> u32 {
        self.0
    }
}

/// One core LPI of the mock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LpiState {
    /// References (the ITEs).
    pub refs: u32,
    /// Does an ITE map it?
    pub mapped: bool,
    /// Target vCPU.
    pub target: Option<u32>,
    /// Pending latch.
    pub pending: bool,
    /// Configuration reads (lpi_add, INV, INVALL).
    pub config_reads: u32,
    /// Triggers.
    pub triggers: u32,
    /// The cache token of this LPI object: its creation number (the kernel
    /// uses the address), never reused.
    pub token: usize,
}

const PAGE: u64 = 4096;

/// A mock KVM.
pub struct MockEnv {
    /// Guest memory pages (absent: zero).
    pub pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
    /// Visible guest memory, `[start, end)` ranges.
    pub visible: Vec<(u64, u64)>,
    /// vCPUs 0..nr_vcpus exist.
    pub nr_vcpus: u32,
    /// vCPUs whose redistributor has LPIs disabled.
    pub lpis_disabled: BTreeSet<u32>,
    /// `max_lpis()`.
    pub max_lpis: u32,
    /// The LPIs.
    pub lpis: BTreeMap<u32, LpiState>,
    /// The translation cache (INTIDs, no references).
    pub cache: TranslationCache,
    /// INTIDs whose `lpi_add` fails (config read failure).
    pub fail_lpi_add: BTreeSet<u32>,
    /// Guest writes fail.
    pub fail_writes: bool,
    /// INVALL calls (vCPU).
    pub invalls: Vec<u32>,
    /// MOVALL calls.
    pub movalls: Vec<(u32, u32)>,
    /// cache_invalidate calls.
    pub invalidations: u32,
    /// The last LPI token handed out.
    last_token: usize,
    /// Tokens inserted into the cache since it was last invalidated (a
    /// superset of those it holds).
    cached_tokens: BTreeSet<usize>,
}

impl MockEnv {
    /// `nr_vcpus` vCPUs with LPIs enabled, 64K LPIs, `visible` memory.
    pub fn new(nr_vcpus: u32, visible: &[(u64, u64)]) -> Self {
        MockEnv {
            pages: BTreeMap::new(),
            visible: visible.to_vec(),
            nr_vcpus,
            lpis_disabled: BTreeSet::new(),
            max_lpis: 1 << 16,
            lpis: BTreeMap::new(),
            cache: TranslationCache::new(),
            fail_lpi_add: BTreeSet::new(),
            fail_writes: false,
            invalls: Vec::new(),
            movalls: Vec::new(),
            invalidations: 0,
            last_token: 0,
            cached_tokens: BTreeSet::new(),
        }
    }

    fn page_visible(&self, gpa: u64) -> bool {
        let page = gpa & !(PAGE - 1);
        self.visible.iter().any(|&(s, e)| page >= s && page < e)
    }

    fn range_visible(&self, gpa: u64, len: usize) -> bool {
        let Some(end) = gpa.checked_add(len as u64) else {
            return false;
        };
        let mut p = gpa & !(PAGE - 1);
        while p < end {
            if !self.page_visible(p) {
                return false;
            }
            p += PAGE;
        }
        true
    }

    /// Read a byte of guest memory (ignores visibility).
    pub fn peek8(&self, gpa: u64) -> u8 {
        self.pages
            .get(&(gpa & !(PAGE - 1)))
            .map_or(0, |p| p[(gpa & (PAGE - 1)) as usize])
    }

    /// Read a little-endian u64 of guest memory (ignores visibility).
    pub fn peek64(&self, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.peek8(gpa + i as u64);
        }
        u64::from_le_bytes(b)
    }

    /// Write bytes of guest memory (ignores visibility).
    pub fn poke(&mut self, gpa: u64, data: &[u8]) {
        for (i, &x) in data.iter().enumerate() {
            let a = gpa + i as u64;
            let p = self
                .pages
                .entry(a & !(PAGE - 1))
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            p[(a & (PAGE - 1)) as usize] = x;
        }
    }

    /// Write a little-endian u64 of guest memory.
    pub fn poke64(&mut self, gpa: u64, v: u64) {
        self.poke(gpa, &v.to_le_bytes());
    }

    /// Total outstanding LPI references.
    pub fn outstanding(&self) -> u64 {
        self.lpis.values().map(|l| l.refs as u64).sum()
    }

    /// The LPI state of `intid`.
    pub fn lpi(&self, intid: u32) -> Option<&LpiState> {
        self.lpis.get(&intid)
    }

    fn put(&mut self, intid: u32) {
        let l = self.lpis.get_mut(&intid).expect("put of unknown LPI");
        assert!(l.refs > 0, "refcount underflow on LPI {intid}");
        l.refs -= 1;
        if l.refs == 0 {
            assert!(!l.mapped, "mapped LPI {intid} lost its last reference");
            self.lpis.remove(&intid);
        }
    }

    /// The fast path: a cache lookup, then the INTID's LPI if it exists,
    /// as the kernel does. The kernel dereferences the token a hit returns
    /// (`kvm_vgic_lpi_try_inject()`): it must name an LPI object that is
    /// still there, here the one of the INTID, as one thread runs.
    pub fn cache_lookup(&mut self, devid: u32, eventid: u32) -> Option<u32> {
        let (intid, token) = self.cache.hit(devid, eventid)?;
        let l = self.lpis.get(&intid);
        assert!(
            l.is_some_and(|l| l.token == token),
            "cache hit ({devid}, {eventid}) -> {intid} with token {token} of a freed LPI"
        );
        l.map(|_| intid)
    }
}

impl Env for MockEnv {
    type Vec<T> = HVec<T>;
    type Lpi = MockLpi;

    fn read_guest(&mut self, gpa: u64, buf: &mut [u8]) -> Result<(), Errno> {
        if !self.range_visible(gpa, buf.len()) {
            return Err(EFAULT);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.peek8(gpa + i as u64);
        }
        Ok(())
    }

    fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> Result<(), Errno> {
        if self.fail_writes || !self.range_visible(gpa, buf.len()) {
            return Err(EFAULT);
        }
        self.poke(gpa, buf);
        Ok(())
    }

    fn is_visible(&mut self, gpa: u64) -> bool {
        self.page_visible(gpa)
    }

    fn vcpu_exists(&self, vcpu_id: u32) -> bool {
        vcpu_id < self.nr_vcpus
    }

    fn lpis_enabled(&self, vcpu_id: u32) -> bool {
        !self.lpis_disabled.contains(&vcpu_id)
    }

    fn max_lpis(&self) -> u32 {
        self.max_lpis
    }

    fn lpi_add(&mut self, intid: u32, target: Option<u32>) -> Result<MockLpi, Errno> {
        if self.fail_lpi_add.contains(&intid) {
            return Err(EFAULT);
        }
        let token = self.last_token + 1;
        let l = self.lpis.entry(intid).or_insert_with(|| LpiState {
            target,
            token,
            ..Default::default()
        });
        if l.token == token {
            self.last_token = token;
        }
        l.refs += 1;
        l.config_reads += 1;
        Ok(MockLpi(intid))
    }

    fn lpi_map(&mut self, lpi: MockLpi, target: Option<u32>) -> Option<MockLpi> {
        let l = self.lpis.get_mut(&lpi.0).expect("lpi_map of unknown LPI");
        assert!(l.refs > 0);
        if !l.mapped {
            l.mapped = true;
            l.target = target;
            Some(lpi)
        } else {
            self.put(lpi.0);
            None
        }
    }

    fn lpi_release(&mut self, lpi: MockLpi) {
        let MockLpi(intid) = lpi;
        let l = self.lpis.get_mut(&intid).expect("release of unknown LPI");
        assert!(l.mapped, "release of unmapped LPI {intid}");
        // The kernel's env invalidates here itself, to be sure; the model
        // must not need it.
        assert!(
            !self.cached_tokens.contains(&l.token),
            "LPI {intid} released with its token maybe cached"
        );
        l.mapped = false;
        self.put(intid);
    }

    fn lpi_intid(&self, lpi: &MockLpi) -> u32 {
        lpi.0
    }

    fn lpi_set_target(&mut self, lpi: &MockLpi, from: Option<u32>, to: u32) -> Result<(), Errno> {
        let l = self
            .lpis
            .get_mut(&lpi.0)
            .expect("set_target of unknown LPI");
        if from.is_some() && l.target != from {
            return Ok(());
        }
        l.target = Some(to);
        Ok(())
    }

    fn lpi_trigger(&mut self, lpi: &MockLpi) -> Result<(), Errno> {
        let l = self.lpis.get_mut(&lpi.0).ok_or(EINVAL)?;
        l.pending = true;
        l.triggers += 1;
        Ok(())
    }

    fn lpi_clear(&mut self, lpi: &MockLpi) -> Result<(), Errno> {
        let l = self.lpis.get_mut(&lpi.0).ok_or(EINVAL)?;
        l.pending = false;
        Ok(())
    }

    fn lpi_inv(&mut self, lpi: &MockLpi) -> Result<(), Errno> {
        let l = self.lpis.get_mut(&lpi.0).ok_or(EINVAL)?;
        l.config_reads += 1;
        Ok(())
    }

    fn invall(&mut self, vcpu_id: u32) {
        self.invalls.push(vcpu_id);
        for l in self.lpis.values_mut() {
            if l.target == Some(vcpu_id) {
                l.config_reads += 1;
            }
        }
    }

    fn movall(&mut self, from: u32, to: u32) {
        self.movalls.push((from, to));
        for l in self.lpis.values_mut() {
            if l.target == Some(from) {
                l.target = Some(to);
            }
        }
    }

    fn cache_invalidate(&mut self) {
        self.invalidations += 1;
        self.cache.invalidate();
        self.cached_tokens.clear();
    }

    fn cache_insert(&mut self, devid: u32, eventid: u32, lpi: &MockLpi) {
        let token = self.lpis.get(&lpi.0).expect("caching unknown LPI").token;
        self.cache.insert(devid, eventid, lpi.0, token);
        self.cached_tokens.insert(token);
    }
}

/// Check the model's invariants against the mock: sorted unique IDs, every
/// ITE's LPI mapped exactly once, every ICID names a collection, and every
/// LPI reference accounted for (one per ITE).
pub fn check_invariants(its: &Its<MockEnv>, env: &MockEnv) -> Result<(), String> {
    let devs = its.devices();
    for w in devs.windows(2) {
        if w[0].id >= w[1].id {
            return Err(format!("devices unsorted: {} {}", w[0].id, w[1].id));
        }
    }
    let colls = its.collections();
    for w in colls.windows(2) {
        if w[0].id >= w[1].id {
            return Err(format!("collections unsorted: {} {}", w[0].id, w[1].id));
        }
    }
    let mut seen = BTreeSet::new();
    let mut nr_ites = 0u64;
    for d in devs {
        if d.num_eventid_bits == 0 || d.num_eventid_bits > 16 {
            return Err(format!("device {} has {} bits", d.id, d.num_eventid_bits));
        }
        for w in d.ites.windows(2) {
            if w[0].event_id >= w[1].event_id {
                return Err(format!("device {} ITEs unsorted", d.id));
            }
        }
        for ite in d.ites.iter() {
            nr_ites += 1;
            let intid = ite.lpi.intid();
            if !seen.insert(intid) {
                return Err(format!("LPI {intid} mapped twice"));
            }
            match env.lpis.get(&intid) {
                Some(l) if l.mapped && l.refs >= 1 => {}
                other => return Err(format!("ITE LPI {intid} state {other:?}")),
            }
            if let Some(c) = ite.icid {
                if colls.binary_search_by_key(&c, |x| x.id).is_err() {
                    return Err(format!("ITE names missing collection {c}"));
                }
            }
        }
    }
    let mapped = env.lpis.values().filter(|l| l.mapped).count() as u64;
    if mapped != nr_ites {
        return Err(format!("{mapped} mapped LPIs for {nr_ites} ITEs"));
    }
    let expect = nr_ites;
    if env.outstanding() != expect {
        return Err(format!(
            "{} references outstanding, expected {expect}",
            env.outstanding()
        ));
    }
    Ok(())
}

/// xorshift64* PRNG.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (any seed, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// The guest memory layout the fuzzer programs.
pub mod layout {
    /// Visible memory.
    pub const VISIBLE: [(u64, u64); 2] = [(0, 0x80_0000), (0x100_0000, 0x110_0000)];
    /// An invisible address.
    pub const HOLE: u64 = 0x90_0000;
    /// Device table (flat) or level-1 table.
    pub const DEV_TABLE: u64 = 0x10_0000;
    /// Level-2 device tables.
    pub const L2_TABLES: u64 = 0x20_0000;
    /// Collection table.
    pub const COLL_TABLE: u64 = 0x30_0000;
    /// Command queue.
    pub const CMDQ: u64 = 0x40_0000;
    /// ITTs (one 4 KiB slot per DeviceID).
    pub const ITTS: u64 = 0x50_0000;
    /// vCPUs.
    pub const NR_VCPUS: u32 = 4;
}

/// Counters of a fuzz run.
#[derive(Clone, Copy, Debug, Default)]
pub struct FuzzStats {
    /// Operations run.
    pub ops: u64,
    /// Commands run (queued or direct).
    pub commands: u64,
    /// Injections delivered.
    pub delivered: u64,
    /// Saves that succeeded.
    pub saves: u64,
    /// Restores that succeeded.
    pub restores: u64,
    /// Restores that failed.
    pub restore_errors: u64,
}

/// Drives an ITS with random operations.
pub struct Fuzzer {
    /// The PRNG.
    pub rng: Rng,
    /// The model.
    pub its: Its<MockEnv>,
    /// The mock.
    pub env: MockEnv,
    /// Counters.
    pub stats: FuzzStats,
}

impl Fuzzer {
    /// A fresh ITS seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Fuzzer {
            rng: Rng::new(seed),
            its: Its::new(),
            env: MockEnv::new(layout::NR_VCPUS, &layout::VISIBLE),
            stats: FuzzStats::default(),
        }
    }

    fn devid(&mut self) -> u32 {
        match self.rng.below(16) {
            0 => self.rng.next_u64() as u32,
            1 => 0x1_0000 + self.rng.below(4) as u32,
            2 => 8192 + self.rng.below(16) as u32,
            _ => self.rng.below(8) as u32,
        }
    }

    fn eventid(&mut self) -> u32 {
        match self.rng.below(16) {
            0 => self.rng.next_u64() as u32,
            1 => 0xffff,
            _ => self.rng.below(10) as u32,
        }
    }

    fn icid(&mut self) -> u16 {
        match self.rng.below(16) {
            0 => self.rng.next_u64() as u16,
            _ => self.rng.below(6) as u16,
        }
    }

    fn target(&mut self) -> u32 {
        match self.rng.below(16) {
            0 => self.rng.next_u64() as u32,
            1 => layout::NR_VCPUS,
            _ => self.rng.below(layout::NR_VCPUS as u64) as u32,
        }
    }

    fn pintid(&mut self) -> u32 {
        match self.rng.below(16) {
            0 => self.rng.next_u64() as u32,
            1 => self.rng.below(8192) as u32,
            2 => 0xffff + self.rng.below(2) as u32,
            _ => 8192 + self.rng.below(48) as u32,
        }
    }

    /// A random command, mostly well-formed.
    pub fn command(&mut self) -> [u64; 4] {
        if self.rng.chance(1, 20) {
            return [
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64(),
            ];
        }
        let c = match self.rng.below(20) {
            0 => {
                let mut device_id = self.devid();
                // Mostly map new devices: remapping frees the ITEs.
                for _ in 0..3 {
                    if self
                        .its
                        .devices()
                        .binary_search_by_key(&device_id, |d| d.id)
                        .is_err()
                    {
                        break;
                    }
                    device_id = self.devid();
                }
                let itt_addr = match self.rng.below(10) {
                    0 => layout::HOLE,
                    1 => self.rng.next_u64() & 0x000f_ffff_ffff_ff00,
                    _ => layout::ITTS + (device_id as u64 & 0xff) * 0x1000,
                };
                Command::Mapd {
                    device_id,
                    num_eventid_bits: if self.rng.chance(1, 10) {
                        1 + self.rng.below(32) as u8
                    } else {
                        4 + self.rng.below(3) as u8
                    },
                    itt_addr,
                    valid: !self.rng.chance(1, 6),
                }
            }
            1 | 2 => Command::Mapc {
                icid: self.icid(),
                target: self.target(),
                valid: !self.rng.chance(1, 8),
            },
            3..=7 => Command::Mapti {
                device_id: self.devid(),
                event_id: self.eventid(),
                pintid: self.pintid(),
                icid: self.icid(),
            },
            8 | 9 => {
                let event_id = if self.rng.chance(1, 2) {
                    self.pintid()
                } else {
                    self.eventid()
                };
                Command::Mapi {
                    device_id: self.devid(),
                    event_id,
                    icid: self.icid(),
                }
            }
            10 => Command::Movi {
                device_id: self.devid(),
                event_id: self.eventid(),
                icid: self.icid(),
            },
            11 => Command::Discard {
                device_id: self.devid(),
                event_id: self.eventid(),
            },
            12 => Command::Clear {
                device_id: self.devid(),
                event_id: self.eventid(),
            },
            13 | 14 => Command::Int {
                device_id: self.devid(),
                event_id: self.eventid(),
            },
            15 => Command::Inv {
                device_id: self.devid(),
                event_id: self.eventid(),
            },
            16 => Command::Invall { icid: self.icid() },
            17 => Command::Movall {
                target1: self.target(),
                target2: self.target(),
            },
            18 => Command::Sync {
                target: self.target(),
            },
            _ => Command::Unknown(self.rng.next_u64() as u8),
        };
        c.encode()
    }

    /// Program BASERs, CBASER and enable the ITS (flat or 2-level device
    /// table, chosen at random).
    pub fn setup(&mut self) {
        let env = &mut self.env;
        let its = &mut self.its;
        its.mmio_write(env, model::GITS_CTLR, 4, 0);
        let indirect = self.rng.chance(1, 2);
        let mut dev = table::GITS_BASER_VALID | baser_phys(layout::DEV_TABLE);
        if indirect {
            dev |= table::GITS_BASER_INDIRECT;
            for i in 0..4u64 {
                let valid = i != 2;
                env.poke64(
                    layout::DEV_TABLE + i * 8,
                    l1_encode(layout::L2_TABLES + i * 0x1_0000, valid),
                );
            }
        }
        its.mmio_write(env, model::GITS_BASER, 8, dev);
        let coll = table::GITS_BASER_VALID | baser_phys(layout::COLL_TABLE);
        its.mmio_write(env, model::GITS_BASER + 8, 8, coll);
        its.mmio_write(
            env,
            model::GITS_CBASER,
            8,
            table::GITS_CBASER_VALID | layout::CMDQ,
        );
        its.mmio_write(env, model::GITS_CTLR, 4, 1);
    }

    /// Queue `cmds` at CWRITER and publish them.
    pub fn queue(&mut self, cmds: &[[u64; 4]]) {
        let regs = self.its.regs();
        let size = table::cmd_buffer_size(regs.cbaser);
        let base = table::cbaser_addr(regs.cbaser);
        let mut w = regs.cwriter;
        for c in cmds {
            for (i, word) in c.iter().enumerate() {
                self.env.poke64(base + w + i as u64 * 8, *word);
            }
            w = (w + 32) % size;
        }
        self.its
            .mmio_write(&mut self.env, model::GITS_CWRITER, 8, w);
    }

    fn register_write(&mut self) {
        let env = &mut self.env;
        let its = &mut self.its;
        if self.rng.chance(1, 2) {
            // What a driver does on resume: rewrite the same values.
            let r = its.regs();
            its.mmio_write(env, model::GITS_BASER, 8, r.baser_device_table);
            its.mmio_write(env, model::GITS_BASER + 12, 4, r.baser_coll_table >> 32);
            its.mmio_write(env, model::GITS_CTLR, 4, r.enabled as u64);
            return;
        }
        let (off, len) = match self.rng.below(8) {
            0 => (model::GITS_BASER, 8),
            1 => (model::GITS_BASER + 8, 8),
            2 => (model::GITS_BASER + 4 * self.rng.below(16), 4),
            3 => (model::GITS_CBASER + 4 * self.rng.below(2), 4),
            4 => (model::GITS_CTLR, 4),
            5 => (model::GITS_CWRITER, 8),
            6 => (self.rng.below(0x2_0000), 1 << self.rng.below(4)),
            _ => (model::GITS_CBASER, 8),
        };
        let val = if self.rng.chance(1, 2) {
            self.rng.next_u64()
        } else {
            match off {
                model::GITS_CTLR => self.rng.below(2),
                model::GITS_CWRITER => self.rng.below(0x2000) & !31,
                _ => self.rng.next_u64() & 0xc000_0000_00ff_0000 | self.rng.below(2),
            }
        };
        if self.rng.chance(1, 8) {
            let _ = its.uaccess_write(env, off, val);
        } else {
            its.mmio_write(env, off, len as u32, val);
        }
        let _ = its.mmio_read(env, off, len as u32);
        let _ = its.uaccess_read(env, off);
    }

    /// Run one random operation.
    pub fn step(&mut self) {
        self.stats.ops += 1;
        match self.rng.below(200) {
            0..=109 => {
                let n = 1 + self.rng.below(6) as usize;
                let cmds: Vec<_> = (0..n).map(|_| self.command()).collect();
                self.stats.commands += n as u64;
                self.queue(&cmds);
            }
            110..=139 => {
                let c = self.command();
                self.stats.commands += 1;
                self.its.run_command(&mut self.env, &c);
            }
            140..=169 => {
                let (d, e) = (self.devid(), self.eventid());
                // The fast path first, as vgic_its_inject_msi() does.
                if self.env.cache_lookup(d, e).is_some() {
                    self.stats.delivered += 1;
                } else if let Ok(true) = self.its.inject(&mut self.env, d, e) {
                    self.stats.delivered += 1;
                }
                if let Some(t) = self.its.translate(&self.env, d, e) {
                    assert!(t.intid >= table::VGIC_MIN_LPI);
                }
            }
            170..=176 => self.register_write(),
            177..=180 => {
                if self.its.save_tables(&mut self.env).is_ok() {
                    self.stats.saves += 1;
                }
            }
            181..=183 => {
                if self.rng.chance(1, 2) {
                    // A migration: save, reset, restore the BASERs, restore.
                    let regs = self.its.regs();
                    let _ = self.its.save_tables(&mut self.env);
                    self.its.reset(&mut self.env);
                    let _ = self.its.uaccess_write(
                        &mut self.env,
                        model::GITS_BASER,
                        regs.baser_device_table,
                    );
                    let _ = self.its.uaccess_write(
                        &mut self.env,
                        model::GITS_BASER + 8,
                        regs.baser_coll_table,
                    );
                }
                match self.its.restore_tables(&mut self.env) {
                    Ok(()) => self.stats.restores += 1,
                    Err(_) => self.stats.restore_errors += 1,
                }
                if self.rng.chance(1, 2) {
                    self.setup();
                }
            }
            184 => {
                self.its.reset(&mut self.env);
                self.setup();
            }
            185..=189 => {
                // Scribble over a table.
                let base = match self.rng.below(4) {
                    0 => layout::DEV_TABLE,
                    1 => layout::COLL_TABLE,
                    2 => layout::ITTS,
                    _ => layout::L2_TABLES,
                };
                let off = self.rng.below(0x200) * 8;
                let v = if self.rng.chance(1, 2) {
                    self.rng.next_u64()
                } else {
                    1 << 63 | self.rng.below(1 << 20) << 16 | self.rng.below(8)
                };
                self.env.poke64(base + off, v);
            }
            190..=191 => fail_alloc_after(Some(self.rng.below(4))),
            192..=193 => {
                let v = self.rng.below(layout::NR_VCPUS as u64) as u32;
                if !self.env.lpis_disabled.remove(&v) {
                    self.env.lpis_disabled.insert(v);
                }
            }
            194..=195 => {
                let i = self.rng.below(64) as u32 + 8192;
                if !self.env.fail_lpi_add.remove(&i) {
                    self.env.fail_lpi_add.insert(i);
                }
            }
            196 => self.env.fail_writes = !self.env.fail_writes,
            _ => {
                let mut n = 0;
                self.its.for_each_ite(&self.env, |_| n += 1);
            }
        }
    }

    /// Run a stream of `len` operations from a fresh setup, then destroy
    /// the ITS and check every LPI reference came back.
    pub fn stream(&mut self, len: usize) -> Result<(), String> {
        self.its = Its::new();
        self.env = MockEnv::new(layout::NR_VCPUS, &layout::VISIBLE);
        fail_alloc_after(None);
        self.setup();
        for i in 0..len {
            self.step();
            check_invariants(&self.its, &self.env).map_err(|e| format!("op {i}: {e}"))?;
        }
        fail_alloc_after(None);
        self.its.destroy(&mut self.env);
        if self.env.outstanding() != 0 || !self.env.lpis.is_empty() {
            return Err(format!(
                "{} LPI references outstanding after destroy",
                self.env.outstanding()
            ));
        }
        if !self.its.devices().is_empty() || !self.its.collections().is_empty() {
            return Err("destroy left state behind".into());
        }
        Ok(())
    }
}
