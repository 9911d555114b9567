// SPDX-License-Identifier: GPL-2.0

//! The MSI translation cache: (DeviceID, EventID) -> LPI INTID, for the
//! injection fast path (the irqfd path runs in atomic context and must not
//! take the ITS lock).
//!
//! Readers take no lock and store nothing: every slot is one `AtomicU64`
//! packing (DeviceID, EventID, INTID), so a lookup is a hash and at most
//! [`WAYS`] loads from one cache line, and injectors on many CPUs never
//! bounce a line between them. The cache holds INTIDs, not LPI references:
//! the kernel resolves the INTID through the core's refcounted, RCU-freed LPI
//! table, so the cache owns nothing and forgetting everything is a few
//! stores. A reader racing an invalidation may still inject the translation
//! being removed, the same window the built-in ITS's cache has.
//!
//! Fixed size ([`SETS`] sets of [`WAYS`] ways, [`CAPACITY`] translations).
//! A miss on a full set evicts only one time in [`EVICT_EVERY`], round-robin:
//! a guest cycling through more events than the cache holds keeps most of
//! the resident ones hitting (plain LRU or round-robin would miss on every
//! access of such a cycle), every operation does bounded work, and a new
//! working set still moves in, a little more slowly. Writers (insert, invalidate) may race each other;
//! each slot store is atomic, so a lookup always sees a whole entry.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use core::sync::atomic::{
    AtomicBool, AtomicU64, AtomicU8,
    Ordering::{
        AcqRel,
        Relaxed,
        Release, //
    },
};

/// log2 of the number of sets.
pub const SET_BITS: u32 = 7;
/// Number of sets.
pub const SETS: usize = 1 << SET_BITS;
/// Ways per set: 8 slots of 8 bytes, one 64-byte cache line.
pub const WAYS: usize = 8;
/// Total capacity (1024 translations).
pub const CAPACITY: usize = SETS * WAYS;
/// A full set takes one new translation per this many misses.
pub const EVICT_EVERY: u8 = 4;
/// The largest DeviceID or EventID the cache holds (the ITS's 16-bit IDs).
pub const MAX_ID: u32 = 0xffff;

/// Counters of a [`TranslationCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Translations inserted.
    pub inserts: u64,
    /// Inserts that pushed out another key's translation.
    pub evictions: u64,
    /// Invalidations that had something to forget.
    pub invalidations: u64,
    /// Translations cached now.
    pub len: u64,
}

/// A set-associative (DeviceID, EventID) -> INTID cache. All-zero is a valid,
/// empty cache (the kernel initialises it in place that way).
pub struct TranslationCache {
    slots: [AtomicU64; CAPACITY],
    hands: [AtomicU8; SETS],
    dirty: AtomicBool,
    inserts: AtomicU64,
    evictions: AtomicU64,
    invalidations: AtomicU64,
}

impl Default for TranslationCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The slot value of a translation; `None` for keys the cache cannot hold.
/// INTID 0 is no LPI, so 0 is never a valid slot.
fn pack(devid: u32, eventid: u32, intid: u32) -> Option<u64> {
    if devid > MAX_ID || eventid > MAX_ID || intid == 0 {
        return None;
    }
    Some(u64::from(devid) << 48 | u64::from(eventid) << 32 | u64::from(intid))
}

/// The key part of a slot value.
fn key_of(slot: u64) -> u64 {
    slot >> 32
}

impl TranslationCache {
    /// An empty cache.
    pub fn new() -> Self {
        TranslationCache {
            slots: [const { AtomicU64::new(0) }; CAPACITY],
            hands: [const { AtomicU8::new(0) }; SETS],
            dirty: AtomicBool::new(false),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    fn set(&self, devid: u32, eventid: u32) -> (usize, &[AtomicU64]) {
        // Fibonacci hashing: consecutive keys spread evenly over the sets.
        let key = u64::from(devid) << 16 | u64::from(eventid);
        let set = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SET_BITS)) as usize;
        let ways = self.slots.get(set * WAYS..(set + 1) * WAYS).unwrap_or(&[]);
        (set, ways)
    }

    /// The cached INTID of (`devid`, `eventid`), if any. Lock-free.
    pub fn lookup(&self, devid: u32, eventid: u32) -> Option<u32> {
        let key = key_of(pack(devid, eventid, 1)?);
        let (_, ways) = self.set(devid, eventid);
        ways.iter().find_map(|s| {
            let v = s.load(Relaxed);
            // CAST: the low half of a slot is the INTID.
            (v != 0 && key_of(v) == key).then_some(v as u32)
        })
    }

    /// Cache `intid` for (`devid`, `eventid`), replacing that key's entry,
    /// else filling a free way, else, one time in [`EVICT_EVERY`], evicting
    /// the set's next way. Keys past [`MAX_ID`] are not cached.
    pub fn insert(&self, devid: u32, eventid: u32, intid: u32) {
        let Some(new) = pack(devid, eventid, intid) else {
            return;
        };
        let (set, ways) = self.set(devid, eventid);
        let slot = ways
            .iter()
            .find(|s| {
                let v = s.load(Relaxed);
                v != 0 && key_of(v) == key_of(new)
            })
            .or_else(|| ways.iter().find(|s| s.load(Relaxed) == 0));
        let slot = match slot {
            Some(s) => s,
            None => {
                let n = self.hands.get(set).map_or(0, |h| h.fetch_add(1, Relaxed));
                if n % EVICT_EVERY != 0 {
                    return;
                }
                self.evictions.fetch_add(1, Relaxed);
                match ways.get(usize::from(n / EVICT_EVERY) % WAYS) {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        slot.store(new, Relaxed);
        self.inserts.fetch_add(1, Relaxed);
        // After the slot: an invalidation that misses this flag has not
        // started clearing yet, or clears the slot too.
        self.dirty.store(true, Release);
    }

    /// Forget every translation.
    pub fn invalidate(&self) {
        if !self.dirty.swap(false, AcqRel) {
            return;
        }
        for s in self.slots.iter() {
            s.store(0, Relaxed);
        }
        self.invalidations.fetch_add(1, Relaxed);
    }

    /// The counters, and how many translations are cached now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            inserts: self.inserts.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            len: self.slots.iter().filter(|s| s.load(Relaxed) != 0).count() as u64,
        }
    }
}
