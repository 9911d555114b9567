// SPDX-License-Identifier: GPL-2.0

//! The MSI translation cache: (DeviceID, EventID) -> LPI INTID, for the
//! injection fast path (the irqfd path runs in atomic context and must not
//! take the ITS lock).
//!
//! Readers take no lock and store nothing: every slot is one `AtomicU64`
//! packing (DeviceID, EventID, INTID), so a lookup is a hash and at most
//! [`WAYS`] loads from one cache line, and injectors on many CPUs never
//! bounce a line between them. The cache owns nothing, so forgetting
//! everything is a few stores. Beside each slot it keeps the token the
//! translation was inserted with (the kernel's is the LPI's address, which
//! spares an injection the LPI table lookup): a hit returns the INTID and a
//! token stored with it or with a later insert in the same slot, never an
//! older one nor one never inserted there. So a token can belong to another
//! translation that raced in, and the kernel checks it against the INTID; it
//! relies on the cache being invalidated before an LPI a token names is
//! released, and on the core freeing LPIs only after an RCU grace period. A reader racing an invalidation may still inject the translation
//! being removed, the same window the built-in ITS's cache has; but once
//! [`TranslationCache::invalidate`] returns, no translation inserted before
//! it started can hit any more, even if another invalidation that started
//! earlier is still clearing (so a DISCARD or MOVI never completes with the
//! old translation cached). An invalidation with nothing inserted since the
//! last one costs two loads.
//!
//! Fixed size ([`SETS`] sets of [`WAYS`] ways, [`CAPACITY`] translations).
//! A miss on a full set evicts only one time in [`EVICT_EVERY`], round-robin:
//! a guest cycling through more events than the cache holds keeps most of
//! the resident ones hitting (plain LRU or round-robin would miss on every
//! access of such a cycle), every operation does bounded work, and a new
//! working set still moves in, a little more slowly. Writers (insert,
//! invalidate) may race each other; each slot store is atomic, so a lookup
//! always sees a whole entry.
//!
//! Pure logic, free of kernel dependencies: the module includes this file and
//! so does the host test crate (`tests/host`).

use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    Ordering::{
        Acquire,
        Relaxed,
        Release,
        SeqCst, //
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

/// One set: its ways' slots, one 64-byte line, then their tokens in the next
/// line, so that a hit reads two adjacent lines of one page (with the tokens
/// in an array of their own, 8 KiB after the slots, it read two pages).
/// Aligned to its size, so no set crosses a page.
#[repr(C, align(128))]
struct Set {
    slots: [AtomicU64; WAYS],
    /// Each slot's token, stored before the slot (release), read after it
    /// (acquire).
    tokens: [AtomicUsize; WAYS],
}

// Two lines a set, 16 bytes a translation, where pointers are 64 bits (the
// kernel's arm64).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(
    core::mem::size_of::<Set>() == 128 && core::mem::size_of::<[Set; SETS]>() == 16 * CAPACITY
);

impl Set {
    const fn new() -> Self {
        Set {
            slots: [const { AtomicU64::new(0) }; WAYS],
            tokens: [const { AtomicUsize::new(0) }; WAYS],
        }
    }
}

/// A set-associative (DeviceID, EventID) -> INTID cache. All-zero is a valid,
/// empty cache (the kernel initialises it in place that way).
pub struct TranslationCache {
    sets: [Set; SETS],
    hands: [AtomicU8; SETS],
    /// Set by every insert (after its slot store), taken by invalidations.
    dirty: AtomicBool,
    /// Invalidations between taking `dirty` and the end of their clear.
    clearing: AtomicU32,
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

/// The kernel builds the cache in place, in its ITS's allocation: it is
/// too large for the stack [`TranslationCache::new`] would build it on.
#[cfg(CONFIG_RUST)]
impl TranslationCache {
    /// An empty cache, initialised in place.
    pub fn init() -> impl pin_init::Init<Self> {
        pin_init::init!(TranslationCache {
            sets <- pin_init::init_array_from_fn(|_| Set::new()),
            hands <- pin_init::init_array_from_fn(|_| AtomicU8::new(0)),
            dirty: AtomicBool::new(false),
            clearing: AtomicU32::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        })
    }
}

impl TranslationCache {
    /// An empty cache.
    pub fn new() -> Self {
        TranslationCache {
            sets: [const { Set::new() }; SETS],
            hands: [const { AtomicU8::new(0) }; SETS],
            dirty: AtomicBool::new(false),
            clearing: AtomicU32::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The set of a key: its index, its ways and their tokens.
    #[inline]
    fn set(&self, devid: u32, eventid: u32) -> (usize, &[AtomicU64], &[AtomicUsize]) {
        // Fibonacci hashing: consecutive keys spread evenly over the sets.
        let key = u64::from(devid) << 16 | u64::from(eventid);
        let set = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SET_BITS)) as usize;
        match self.sets.get(set) {
            Some(s) => (set, &s.slots, &s.tokens),
            None => (set, &[], &[]),
        }
    }

    /// The cached INTID of (`devid`, `eventid`), if any. Lock-free. (The
    /// kernel, which needs the token too, calls [`Self::hit`].)
    #[cfg(not(CONFIG_RUST))]
    pub fn lookup(&self, devid: u32, eventid: u32) -> Option<u32> {
        self.hit(devid, eventid).map(|(intid, _)| intid)
    }

    /// The cached INTID of (`devid`, `eventid`) and a token stored in its
    /// slot with it or after it (see the module documentation), if any.
    /// Lock-free.
    #[inline]
    pub fn hit(&self, devid: u32, eventid: u32) -> Option<(u32, usize)> {
        let key = key_of(pack(devid, eventid, 1)?);
        let (_, ways, tokens) = self.set(devid, eventid);
        ways.iter().zip(tokens).find_map(|(s, t)| {
            // Acquire: pairs with the insert's release, so the token load
            // reads that insert's token or a later one.
            let v = s.load(Acquire);
            // CAST: the low half of a slot is the INTID.
            (v != 0 && key_of(v) == key).then(|| (v as u32, t.load(Relaxed)))
        })
    }

    /// Cache `intid` for (`devid`, `eventid`) with `token`, replacing that
    /// key's entry, else filling a free way, else, one time in
    /// [`EVICT_EVERY`], evicting the set's next way. Keys past [`MAX_ID`] are
    /// not cached.
    pub fn insert(&self, devid: u32, eventid: u32, intid: u32, token: usize) {
        let Some(new) = pack(devid, eventid, intid) else {
            return;
        };
        let (set, ways, tokens) = self.set(devid, eventid);
        let way = ways
            .iter()
            .position(|s| {
                let v = s.load(Relaxed);
                v != 0 && key_of(v) == key_of(new)
            })
            .or_else(|| ways.iter().position(|s| s.load(Relaxed) == 0));
        let way = match way {
            Some(w) => w,
            None => {
                let n = self.hands.get(set).map_or(0, |h| h.fetch_add(1, Relaxed));
                if n % EVICT_EVERY != 0 {
                    return;
                }
                self.evictions.fetch_add(1, Relaxed);
                usize::from(n / EVICT_EVERY) % WAYS
            }
        };
        let (Some(slot), Some(t)) = (ways.get(way), tokens.get(way)) else {
            return;
        };
        // The token first, then the slot with release (see `hit`).
        t.store(token, Relaxed);
        slot.store(new, Release);
        self.inserts.fetch_add(1, Relaxed);
        // After the slot, and a read-modify-write: every write of `dirty` is
        // one, so this release heads a sequence that every later value of the
        // flag continues, and any invalidation that takes the flag after it
        // (whichever insert's `true` it reads) synchronises with it and
        // clears this slot store (see `invalidate`).
        self.dirty.fetch_or(true, Release);
    }

    /// Forget every translation: once this returns, no translation inserted
    /// before it was called is returned by [`Self::lookup`] (unless inserted
    /// again), even while another invalidation is still clearing.
    pub fn invalidate(&self) {
        // Why the fast path is enough. Let X be an insert that happens before
        // this call; its `dirty` RMW (release) precedes our load L1 of the
        // flag, so L1 reads X's `true` or a later value.
        //
        // If L1 reads `true` or L2 reads a nonzero `clearing`, we clear every
        // slot ourselves below; our stores come after X's slot store in that
        // slot's modification order (X happens before them), so X is gone
        // unless an insert stores its key again.
        //
        // Otherwise L1 reads a `false` written after X by the `swap` W of some
        // invalidation J. Every write of `dirty` is an RMW, so W (acquire)
        // reads from X's release sequence: X's slot store happens before W and
        // so before J's clearing stores, which therefore overwrite it. All of
        // `clearing`'s accesses and L1, L2 and W are SeqCst, so they lie in one
        // total order S: J's increment < W (program order), W < L1 (L1 reads
        // W), L1 < L2 (program order). L2 reads 0, the net count of every
        // increment and decrement before it in S (all RMWs); each decrement
        // follows its own increment, so 0 means every invalidation that had
        // incremented before L2 has also decremented before it, J included.
        // L2 reads a value of J's decrement's release sequence (all RMWs), so
        // J's decrement, after its clear loop, synchronises with L2: J's
        // clearing stores happen before we return, and X cannot hit.
        if !self.dirty.load(SeqCst) && self.clearing.load(SeqCst) == 0 {
            return;
        }
        // Count ourselves in before taking the flag, so an invalidation that
        // reads our `false` also sees us clearing (the argument above).
        self.clearing.fetch_add(1, SeqCst);
        let was_dirty = self.dirty.swap(false, SeqCst);
        for s in self.sets.iter().flat_map(|set| set.slots.iter()) {
            s.store(0, Relaxed);
        }
        // Release (SeqCst includes it): publishes the clearing stores to
        // every fast path that reads this or a later count.
        self.clearing.fetch_sub(1, SeqCst);
        if was_dirty {
            self.invalidations.fetch_add(1, Relaxed);
        }
    }

    /// The counters, and how many translations are cached now.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            inserts: self.inserts.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            len: self
                .sets
                .iter()
                .flat_map(|set| set.slots.iter())
                .filter(|s| s.load(Relaxed) != 0)
                .count() as u64,
        }
    }
}
