//! Per-cache statistics: striped counters, cheap enough to stay on.
//!
//! Each counter is split into stripes on separate cache lines; a thread adds to the stripe of its
//! own (assigned once, round robin), so threads hitting one cache do not fight over one line.
//! Reading sums the stripes. Memory is fixed at construction: nothing grows with traffic.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum Counter {
    Hit,
    Miss,
    Load,
    LoadError,
    Joined,
    Eviction,
    Expiration,
    NegativeHit,
}

const COUNTERS: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

pub(crate) struct Stats {
    stripes: Box<[Stripe]>,
    mask: usize,
}

thread_local! {
    static THREAD_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    THREAD_STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        s.set(v);
        v
    })
}

impl Stats {
    pub(crate) fn new() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(4, std::num::NonZero::get)
            .saturating_mul(2)
            .clamp(4, 256)
            .next_power_of_two();
        Self {
            stripes: (0..n).map(|_| Stripe::default()).collect(),
            mask: n - 1,
        }
    }

    #[inline]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        if let Some(s) = self.stripes.get(thread_stripe() & self.mask) {
            s.0[c as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn incr(&self, c: Counter) {
        self.add(c, 1);
    }

    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0[c as usize].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    pub(crate) fn reset(&self) {
        for s in &*self.stripes {
            for c in &s.0 {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self, entries: usize) -> CacheStats {
        CacheStats {
            hits: self.get(Counter::Hit),
            misses: self.get(Counter::Miss),
            loads: self.get(Counter::Load),
            load_errors: self.get(Counter::LoadError),
            joined: self.get(Counter::Joined),
            evictions: self.get(Counter::Eviction),
            expirations: self.get(Counter::Expiration),
            negative_hits: self.get(Counter::NegativeHit),
            entries: entries as u64,
        }
    }
}

/// A snapshot of one cache's counters since it was built (or last [reset](crate::Cache::reset_stats)).
///
/// Every lookup is exactly one of a hit (a fresh value), a negative hit (a cached "not found" or
/// error) or a miss. A miss either loads (`loads`), joins another caller's load of the same key
/// (`joined`), or finds the value stored meanwhile by another caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that returned a fresh cached value.
    pub hits: u64,
    /// Lookups that found nothing fresh.
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that returned an error or a negative result (or panicked, or were cancelled).
    pub load_errors: u64,
    /// Calls that waited for another caller's in-flight load of the same key and took its result
    /// instead of loading again (deduplicated calls).
    pub joined: u64,
    /// Entries removed to make room (or refused for being heavier than the cache).
    pub evictions: u64,
    /// Entries removed because their TTL had passed.
    pub expirations: u64,
    /// Lookups answered by a cached negative result (`Err` or `None` kept for `negative_ttl`).
    pub negative_hits: u64,
    /// Entries in the cache now, fresh or not yet swept.
    pub entries: u64,
}

impl CacheStats {
    /// `(hits + negative_hits) / (all lookups)`, or 0 when there were none.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let found = self.hits + self.negative_hits;
        let total = found + self.misses;
        if total == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let r = found as f64 / total as f64;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_are_exact_across_threads() {
        let s = Arc::new(Stats::new());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        s.incr(Counter::Hit);
                    }
                    s.add(Counter::Miss, 3);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = s.snapshot(5);
        assert_eq!(snap.hits, 160_000);
        assert_eq!(snap.misses, 48);
        assert_eq!(snap.entries, 5);
        assert!((snap.hit_ratio() - 160_000.0 / 160_048.0).abs() < 1e-12);
        s.reset();
        assert_eq!(s.snapshot(0), CacheStats::default());
    }
}
