//! Per-cache statistics: striped counters, cheap enough to stay on.
//!
//! Each counter is split into stripes on separate cache lines, one per thread (see [`Stats`]), so
//! threads hitting one cache do not fight over one line and a count costs no atomic RMW.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::clock::Clock;
use crate::latency::{Latency, LoadTimes};

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
    RemoteHit,
    StaleHit,
    Refresh,
    RefreshError,
}

const COUNTERS: usize = 12;

/// Threads that get a stripe of their own; later ones share the last stripe.
const OWNED_STRIPES: usize = 64;

/// One stripe of counters, on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
struct Stripe([AtomicU64; COUNTERS]);

/// Counters striped by thread.
///
/// A thread holds one of [`OWNED_STRIPES`] slot numbers for its lifetime (returned when it
/// exits), and is the only writer of that stripe in every cache, so it adds with a plain load and
/// store, no locked read-modify-write: a hit pays a few cycles for its count. Threads beyond the
/// owned slots share one extra stripe and add atomically. Reads sum the stripes, so counts are
/// exact. Memory is fixed (65 stripes of 128 bytes, about 8 KiB a cache): nothing grows with
/// traffic or threads.
pub(crate) struct Stats {
    stripes: Box<[Stripe; OWNED_STRIPES + 1]>,
    /// Counts at the last reset, subtracted from the sums (a reset never races with writers).
    baseline: Mutex<[u64; COUNTERS]>,
    /// How long loads took: written at the end of a load, never on a hit.
    latency: Latency,
}

/// This thread's slot, released for reuse when the thread exits.
struct Slot(usize);

static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

impl Slot {
    fn acquire() -> Self {
        if let Some(i) = FREE_SLOTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Slot(i);
        }
        let i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        Slot(i.min(OWNED_STRIPES))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // This thread may still count while it exits (in other thread-locals' destructors):
        // from now on it does so in the shared stripe, before another thread takes the slot.
        let _ = SLOT_NUMBER.try_with(|c| c.set(OWNED_STRIPES));
        if self.0 < OWNED_STRIPES {
            FREE_SLOTS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.0);
        }
    }
}

/// No slot yet.
const UNSET: usize = usize::MAX;

thread_local! {
    /// The slot number, read on every count: const-initialized, so reading it is one load.
    static SLOT_NUMBER: Cell<usize> = const { Cell::new(UNSET) };
    /// Owns the slot and gives it back when the thread exits.
    static SLOT: Slot = Slot::acquire();
}

#[cold]
fn assign_slot() -> usize {
    // During thread teardown the slot may be gone: count in the shared stripe.
    let n = SLOT.try_with(|s| s.0).unwrap_or(OWNED_STRIPES);
    let _ = SLOT_NUMBER.try_with(|c| c.set(n));
    n
}

/// Adds `n` to `cell` of this thread's own stripe, whose only writer it is: a plain load and
/// store, no locked read-modify-write.
#[inline(always)]
fn add_owned(cell: &AtomicU64, n: u64) {
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            stripes: Box::new(std::array::from_fn(|_| Stripe::default())),
            baseline: Mutex::new([0; COUNTERS]),
            latency: Latency::new(),
        }
    }

    /// Adds `n` to counter `c`: one thread-local load and one test on a thread with a slot of
    /// its own (every thread after its first count, up to [`OWNED_STRIPES`] of them), then a
    /// plain load and store. The rest (a first count, a thread in the shared stripe) is out of
    /// line.
    #[inline(always)]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        // Const-initialized and without a destructor: one load, which cannot fail.
        let slot = SLOT_NUMBER.try_with(Cell::get).unwrap_or(OWNED_STRIPES);
        if slot < OWNED_STRIPES
            && let Some(stripe) = self.stripes.get(slot)
        {
            add_owned(&stripe.0[c as usize], n);
        } else {
            self.add_unowned(c, n, slot);
        }
    }

    /// [`add`](Self::add) from a thread without a slot yet (`UNSET`: it takes one now) or in
    /// the shared stripe.
    #[cold]
    #[inline(never)]
    fn add_unowned(&self, c: Counter, n: u64, slot: usize) {
        let slot = if slot == UNSET { assign_slot() } else { slot };
        let Some(stripe) = self.stripes.get(slot.min(OWNED_STRIPES)) else {
            return;
        };
        let cell = &stripe.0[c as usize];
        if slot < OWNED_STRIPES {
            add_owned(cell, n);
        } else {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    pub(crate) fn incr(&self, c: Counter) {
        self.add(c, 1);
    }

    fn sums(&self) -> [u64; COUNTERS] {
        let mut out = [0u64; COUNTERS];
        for s in self.stripes.iter() {
            for (o, c) in out.iter_mut().zip(&s.0) {
                *o = o.wrapping_add(c.load(Ordering::Relaxed));
            }
        }
        out
    }

    pub(crate) fn reset(&self) {
        let sums = self.sums();
        *self.baseline.lock().unwrap_or_else(PoisonError::into_inner) = sums;
        self.latency.reset();
    }

    /// Counts a load starting, and times it until [`LoadTimer::finish`] (or its drop: a panic,
    /// a cancelled future, which also counts a load error).
    pub(crate) fn start_load<'a>(&'a self, clock: &'a Clock, cache: &'a str) -> LoadTimer<'a> {
        self.incr(Counter::Load);
        LoadTimer {
            stats: self,
            clock,
            cache,
            started: clock.precise_nanos(),
            finished: false,
        }
    }

    pub(crate) fn snapshot(&self, entries: usize) -> CacheStats {
        let base = *self.baseline.lock().unwrap_or_else(PoisonError::into_inner);
        let sums = self.sums();
        let get = |c: Counter| sums[c as usize].wrapping_sub(base[c as usize]);
        CacheStats {
            hits: get(Counter::Hit),
            misses: get(Counter::Miss),
            loads: get(Counter::Load),
            load_errors: get(Counter::LoadError),
            joined: get(Counter::Joined),
            evictions: get(Counter::Eviction),
            expirations: get(Counter::Expiration),
            negative_hits: get(Counter::NegativeHit),
            remote_hits: get(Counter::RemoteHit),
            stale_hits: get(Counter::StaleHit),
            refreshes: get(Counter::Refresh),
            refresh_errors: get(Counter::RefreshError),
            remote_write_failures: 0,
            pending_remote_writes: 0,
            l1_only: false,
            entries: entries as u64,
            load_time: self.latency.snapshot(),
        }
    }
}

/// A snapshot of one cache's counters since it was built (or last [reset](crate::Cache::reset_stats)).
///
/// Every lookup is exactly one of a hit (a fresh value), a negative hit (a cached "not found" or
/// error) or a miss. A miss either loads (`loads`), joins another caller's load of the same key
/// (`joined`), or finds the value stored meanwhile by another caller.
///
/// ```
/// use cache_runtime::Cache;
///
/// let c: Cache<u64, u64> = Cache::builder().build()?;
/// c.get_or_insert_with(&1, || 10); // miss, load
/// c.get_or_insert_with(&1, || 10); // hit
/// c.get(&2);                       // miss
/// let s = c.stats();
/// assert_eq!((s.hits, s.misses, s.loads, s.entries), (1, 2, 1, 1));
/// assert!((s.hit_ratio() - 1.0 / 3.0).abs() < 1e-12);
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
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
    /// How long loader runs took: their number, total and mean time (Caffeine's
    /// `averageLoadPenalty`), and quantiles (p50, p90, p99). Refreshes count as loads.
    pub load_time: LoadTimes,
    /// Calls that waited for another caller's in-flight load of the same key and took its result
    /// instead of loading again (deduplicated calls).
    pub joined: u64,
    /// Entries removed to make room (or refused for being heavier than the cache).
    pub evictions: u64,
    /// Entries removed because their TTL had passed.
    pub expirations: u64,
    /// Lookups answered by a cached negative result (`Err` or `None` kept for `negative_ttl`).
    pub negative_hits: u64,
    /// Misses of this process's store answered by the remote tier (no load).
    pub remote_hits: u64,
    /// Hits answered by an expired value within its `stale` window (stale-while-revalidate);
    /// also counted in `hits`.
    pub stale_hits: u64,
    /// Refreshes started: in the background for a stale value, or early (XFetch) before expiry.
    pub refreshes: u64,
    /// Refreshes that failed (an error, a panic, an uncacheable result): the old value was kept.
    pub refresh_errors: u64,
    /// Writes and invalidations that the remote tier did not take at once (a fault, an open
    /// breaker): each was kept and retried in the background (see
    /// [`CacheBuilder::max_pending_writes`](crate::CacheBuilder::max_pending_writes)).
    pub remote_write_failures: u64,
    /// Keys whose write or invalidation waits for a retry now. This process does not read them
    /// from the remote tier meanwhile (it loads them).
    pub pending_remote_writes: u64,
    /// The cache is not using its remote tier now: more writes failed than it could keep, or a
    /// clear failed, and a clear of its remote entries waits for a retry.
    pub l1_only: bool,
    /// Entries in the cache now, fresh or not yet swept.
    pub entries: u64,
}

impl CacheStats {
    /// `(hits + negative_hits) / (all lookups)`, or 0 when there were none.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().build()?;
    /// assert_eq!(cache.stats().hit_ratio(), 0.0); // no lookups yet
    /// cache.get_or_insert_with(&1, || 1); // a miss
    /// for _ in 0..3 {
    ///     cache.get(&1); // hits
    /// }
    /// assert_eq!(cache.stats().hit_ratio(), 0.75);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
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

/// A load being timed (see [`Stats::start_load`]).
pub(crate) struct LoadTimer<'a> {
    stats: &'a Stats,
    clock: &'a Clock,
    /// The cache's name, for the `metrics` facade.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    cache: &'a str,
    started: u64,
    finished: bool,
}

impl LoadTimer<'_> {
    /// The loader returned (its outcome is counted by whoever judges it).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for LoadTimer<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // The loader panicked, or its future was dropped.
            self.stats.incr(Counter::LoadError);
        }
        let took = self.clock.precise_nanos().saturating_sub(self.started);
        self.stats.latency.record(took);
        #[cfg(feature = "metrics")]
        {
            #[allow(clippy::cast_precision_loss)]
            let secs = took as f64 / 1e9;
            metrics::histogram!(crate::latency::LOAD_DURATION, "cache" => self.cache.to_owned())
                .record(secs);
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
        // More threads than owned stripes: the shared stripe is exercised too.
        let barrier = Arc::new(std::sync::Barrier::new(100));
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
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
        assert_eq!(snap.hits, 1_000_000);
        assert_eq!(snap.misses, 300);
        assert_eq!(snap.entries, 5);
        assert!((snap.hit_ratio() - 1_000_000.0 / 1_000_300.0).abs() < 1e-12);
        s.reset();
        assert_eq!(s.snapshot(0), CacheStats::default());
    }
}
