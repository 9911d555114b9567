// SPDX-License-Identifier: GPL-2.0

//! The MSI translation cache.

use armsi_logic::cache::*;
use std::sync::atomic::Ordering;

#[test]
fn lookup_insert_replace_invalidate() {
    let c = TranslationCache::new();
    assert_eq!(c.lookup(1, 2), None);
    c.insert(1, 2, 8192, 0);
    assert_eq!(c.lookup(1, 2), Some(8192));
    assert_eq!(c.lookup(2, 1), None);
    // The same key is replaced, not duplicated.
    c.insert(1, 2, 8193, 0);
    assert_eq!(c.lookup(1, 2), Some(8193));
    assert_eq!(c.stats().len, 1);
    c.invalidate();
    assert_eq!(c.lookup(1, 2), None);
    assert_eq!(c.stats().len, 0);
    // Nothing cached since: the second invalidation has nothing to do.
    c.invalidate();
    let s = c.stats();
    assert_eq!((s.inserts, s.evictions, s.invalidations), (2, 0, 1));
}

#[test]
fn ids_past_16_bits_and_intid_0_are_not_cached() {
    let c = TranslationCache::new();
    c.insert(MAX_ID + 1, 0, 8192, 0);
    c.insert(0, MAX_ID + 1, 8192, 0);
    c.insert(3, 3, 0, 0);
    assert_eq!(c.stats().len, 0);
    assert_eq!(c.lookup(MAX_ID + 1, 0), None);
    c.insert(MAX_ID, MAX_ID, 0xffff_ffff, 0);
    assert_eq!(c.lookup(MAX_ID, MAX_ID), Some(0xffff_ffff));
}

#[test]
fn keys_never_alias() {
    // Every key of a 64 x 16 grid gets back exactly its own INTID.
    let c = TranslationCache::new();
    for d in 0..64u32 {
        for e in 0..16u32 {
            c.insert(d, e, 8192 + d * 16 + e, 0);
        }
    }
    for d in 0..64u32 {
        for e in 0..16u32 {
            if let Some(i) = c.lookup(d, e) {
                assert_eq!(i, 8192 + d * 16 + e);
            }
        }
    }
}

#[test]
fn full_cache_stays_full_and_bounded() {
    let c = TranslationCache::new();
    for i in 0..10 * CAPACITY as u32 {
        c.insert(i / 64, i % 64, 8192 + i, 0);
        assert!(c.stats().len as usize <= CAPACITY);
    }
    assert_eq!(c.stats().len as usize, CAPACITY);
    // A full set takes one newcomer per EVICT_EVERY misses.
    let e = c.stats().evictions;
    assert!(
        e >= 9 * CAPACITY as u64 / EVICT_EVERY as u64 - SETS as u64,
        "{e}"
    );
}

/// Hit rate of a guest cycling through `keys` translations, inserting on
/// each miss as the slow path does.
fn hit_rate(keys: &[(u32, u32)], rounds: u32) -> f64 {
    let c = TranslationCache::new();
    let (mut hits, mut total) = (0u64, 0u64);
    for _ in 0..rounds {
        for &(d, e) in keys {
            total += 1;
            match c.lookup(d, e) {
                Some(i) => {
                    assert_eq!(i, 8192 + d * 256 + e);
                    hits += 1;
                }
                None => c.insert(d, e, 8192 + d * 256 + e, 0),
            }
        }
    }
    hits as f64 / total as f64
}

#[test]
fn vgic_lpi_stress_shapes_hit() {
    // -d 2 -e 8, -d 16 -e 16 and -d 1 -e 17: well below capacity.
    for (nd, ne) in [(2u32, 8u32), (16, 16), (1, 17)] {
        let keys: Vec<_> = (0..nd).flat_map(|d| (0..ne).map(move |e| (d, e))).collect();
        let r = hit_rate(&keys, 50);
        assert!(r > 0.97, "{nd}x{ne}: {r}");
    }
}

#[test]
fn oversubscribed_cache_degrades_gracefully() {
    // Cycling through more translations than the cache holds: most of what
    // is resident keeps hitting (LRU or round-robin replacement would miss
    // on every access of such a cycle).
    for (factor, min) in [(3, 0.80), (2, 0.40), (4, 0.17)] {
        let n = factor * CAPACITY as u32 / 2;
        let keys: Vec<_> = (0..n).map(|i| (i / 64, i % 64)).collect();
        let r = hit_rate(&keys, 30);
        let ideal = (CAPACITY as f64 / n as f64).min(1.0);
        assert!(r > min * ideal, "{n} keys: {r} (ideal {ideal})");
    }
}

#[test]
fn concurrent_readers_see_whole_entries() {
    use std::sync::Arc;
    let c = Arc::new(TranslationCache::new());
    let writer = {
        let c = c.clone();
        std::thread::spawn(move || {
            for i in 0..200_000u32 {
                let (d, e) = (i % 37, i % 251);
                c.insert(d, e, 8192 + d * 256 + e, 0);
                if i % 1000 == 0 {
                    c.invalidate();
                }
            }
        })
    };
    for i in 0..200_000u32 {
        let (d, e) = (i % 37, i % 251);
        if let Some(intid) = c.lookup(d, e) {
            assert_eq!(intid, 8192 + d * 256 + e);
        }
    }
    writer.join().unwrap();
}

#[test]
fn geometry() {
    assert_eq!(SETS * WAYS, CAPACITY);
    assert_eq!(CAPACITY, 1024);
    // One set is one 64-byte cache line of slots.
    assert_eq!(WAYS * 8, 64);
}

/// The set `cache.rs` hashes a key to (its Fibonacci hash). Only used to
/// aim at late sets; a different hash makes the test weaker, not wrong.
fn set_of(devid: u32, eventid: u32) -> usize {
    let key = u64::from(devid) << 16 | u64::from(eventid);
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SET_BITS)) as usize
}

/// M2: every translation inserted before an `invalidate()` starts is gone
/// once it returns, even while other invalidations overlap it (a DISCARD
/// racing GICR EnableLPIs=0 or another command's invalidation). Each thread
/// inserts its own keys, invalidates, and checks its keys no longer hit;
/// the others do the same at once, so one thread's invalidation regularly
/// finds the `dirty` flag already taken by another that is still clearing.
#[test]
fn invalidate_returns_only_once_earlier_inserts_are_gone() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    const THREADS: u32 = 4;
    const KEYS: usize = 4;
    const ROUNDS: u32 = 50_000;
    let c = Arc::new(TranslationCache::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS as usize));
    let deadline = Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, stop, start) = (c.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || -> Option<String> {
                // Keys of this thread only (device `t`), in the last sets,
                // which an invalidation clears last: the widest window.
                let keys: Vec<u32> = (0..=MAX_ID)
                    .filter(|&e| set_of(t, e) >= SETS - 4)
                    .take(KEYS)
                    .collect();
                assert_eq!(keys.len(), KEYS);
                start.wait();
                for round in 0..ROUNDS {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return None;
                    }
                    for &e in &keys {
                        c.insert(t, e, 8192 + e, 0);
                    }
                    // The insert was some time ago (an earlier MSI), so
                    // another invalidation may start in between.
                    for _ in 0..round % 256 {
                        std::hint::spin_loop();
                    }
                    c.invalidate();
                    for &e in &keys {
                        if let Some(i) = c.lookup(t, e) {
                            stop.store(true, Ordering::Relaxed);
                            return Some(format!(
                                "thread {t} round {round}: ({t}, {e}) -> {i} hit after invalidate()"
                            ));
                        }
                    }
                }
                None
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

/// A hit returns the token its translation was inserted with, the latest
/// one when the key is inserted again; an invalidation forgets both.
#[test]
fn tokens_travel_with_translations() {
    let c = TranslationCache::new();
    c.insert(1, 2, 8192, 0xa0);
    assert_eq!(c.hit(1, 2), Some((8192, 0xa0)));
    c.insert(1, 2, 8192, 0xb0);
    assert_eq!(c.hit(1, 2), Some((8192, 0xb0)));
    c.insert(1, 3, 8193, 0xc0);
    assert_eq!(c.hit(1, 3), Some((8193, 0xc0)));
    assert_eq!(c.hit(1, 2), Some((8192, 0xb0)));
    assert_eq!(c.lookup(1, 2), Some(8192));
    c.invalidate();
    assert_eq!(c.hit(1, 2), None);
    assert_eq!(c.hit(1, 3), None);
}

/// One thread inserts 16 keys of one set, so that they keep evicting each
/// other, and invalidates now and then; two others look them up. A hit's
/// token is never missing, and always one some insert stored (the kernel
/// checks it against the INTID: it may come from a later insert in the slot).
#[test]
fn a_hit_never_sees_a_missing_token() {
    // The cache's hash (`TranslationCache::set`): EventIDs of set 0.
    let set =
        |e: u32| (u64::from(e).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SET_BITS)) as usize;
    let keys: Vec<u32> = (0..=MAX_ID).filter(|&e| set(e) == 0).take(16).collect();
    assert_eq!(keys.len(), 16);
    let token = |e: u32| (8192 + e) as usize * 16;
    let c = TranslationCache::new();
    let done = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut round = 0u32;
            while done.load(Ordering::Relaxed) < 2 {
                for &e in &keys {
                    c.insert(0, e, 8192 + e, token(e));
                }
                round += 1;
                if round % 7 == 0 {
                    c.invalidate();
                }
            }
            assert!(
                c.stats().evictions > 0,
                "no eviction: the keys are not of one set"
            );
        });
        for _ in 0..2 {
            s.spawn(|| {
                let mut hits = 0u64;
                for _ in 0..20_000 {
                    for &e in &keys {
                        if let Some((intid, t)) = c.hit(0, e) {
                            assert_eq!(intid, 8192 + e);
                            assert!(keys.iter().any(|&k| t == token(k)), "token {t:#x}");
                            hits += 1;
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                assert!(hits > 0, "no hit at all");
            });
        }
    });
}
