//! Lookup and the hit path: one hash, one shard lookup, one coarse-clock comparison, one clone.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use super::Cache;
use super::miss::XFETCH_SPAN;
use crate::entry::{Entry, Stamp, Stored};
use crate::invalidate::frame;
use crate::stats::Counter;
use crate::store::Gone;
use crate::ttl::NEVER;

/// The hasher of [`Cache::ident`]: fixed, so that processes agree.
pub(super) const IDENT: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x1DE7_u64);

/// What a lookup found (uncounted): fresh, fresh but drawn for an early refresh, expired but
/// within the `stale` window, or nothing usable.
pub(crate) enum Found<V, N> {
    Fresh(Entry<V, N>),
    Early(Entry<V, N>),
    Stale(Entry<V, N>),
    Miss,
}

/// The entry of a lookup that found it fresh (an early-drawn one is still fresh).
#[inline(always)]
fn fresh<V, N>(found: Found<V, N>) -> Option<Entry<V, N>> {
    match found {
        Found::Fresh(e) | Found::Early(e) => Some(e),
        Found::Stale(_) | Found::Miss => None,
    }
}

/// The counter of a hit on `e`.
#[inline(always)]
pub(crate) fn hit_counter<V, N>(e: &Entry<V, N>) -> Counter {
    match e {
        Entry::Value(_) => Counter::Hit,
        Entry::Negative(_) => Counter::NegativeHit,
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    #[inline(always)]
    pub(super) fn expired(&self, s: &Stored<V, N>) -> bool {
        // Entries without a TTL never read the clock; most others read only the ticker.
        s.expires_at() != NEVER && self.core.meter.clock.is_past(s.expires_at())
    }

    /// What `key` holds, without counting. Removes an entry past its last usable moment.
    #[inline(always)]
    pub(super) fn find<Q>(&self, key: &Q) -> Found<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.judge(key, self.core.store.get(key))
    }

    /// The bound of a hit that the store's read lock serves ([`Stored::plainly_fresh`]), or
    /// one that no entry with a deadline passes when a load is running on this thread (its
    /// reads are recorded: judged in full).
    #[inline(always)]
    fn hit_bound(&self) -> u64 {
        if frame::active() {
            return u64::MAX;
        }
        self.core.meter.clock.hit_bound()
    }

    /// What the store's copy `s` of `key`'s entry (if any) is worth: see [`find`](Self::find).
    #[inline(always)]
    fn judge<Q>(&self, key: &Q, s: Option<Stored<V, N>>) -> Found<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(s) = s else {
            return Found::Miss;
        };
        // An entry whose tags or dependencies were invalidated (checked when the store copied
        // it: a fresh one's copy has no stamps), or a read inside a load (which records it):
        // out of line.
        if (s.stamps.is_some() || frame::active()) && !self.stamped_fresh(key, &s) {
            return Found::Miss;
        }
        // One clock check on a hit: the deadline, moved earlier by the early-refresh window
        // (0 unless `early_refresh` is set).
        let start = s.draw_start();
        if start != NEVER && self.core.meter.clock.is_past(start) {
            return self.find_cold(key, s);
        }
        Found::Fresh(s.entry)
    }

    /// Whether `s`, the entry of `key`, is still fresh by its stamps (else it is removed);
    /// inside a load, the read is recorded; inside a forced refresh of this cache, `false`
    /// (see [`crate::reload`]). (Every explicit write bumps the written entry's
    /// dependency slot, so a write this read did not see is not lost to the load.)
    #[cold]
    #[inline(never)]
    fn stamped_fresh<Q>(&self, key: &Q, s: &Stored<V, N>) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if s.stamps.as_ref().is_some_and(Stamp::is_stale) {
            let gone = self
                .core
                .store
                .remove_if(key, |s| s.stamps.as_ref().is_some_and(Stamp::is_stale));
            // Left unread for its time-to-idle: an expiry; else an invalidation.
            let why = if gone.as_ref().is_some_and(|(_, s)| s.idle_expired()) {
                self.core.meter.stats.incr(Counter::Expiration);
                Gone::Expired
            } else {
                Gone::Explicit
            };
            self.core.removed(gone, why);
            return false;
        }
        if frame::active() {
            // The target of a forced refresh: a miss, whose load reloads the entry.
            if frame::take_force(&self.core.scope) {
                return false;
            }
            let (slots, remote) = s
                .stamps
                .as_ref()
                .map_or((&[][..], &[][..]), |st| (st.slots(), st.remote()));
            frame::read(&self.core.scope, self.ident(key), (slots, remote));
        }
        true
    }

    /// The stable hash of `key` that names its entry for dependencies (the same in every
    /// process, unlike the store's seeded hash).
    #[inline]
    pub(super) fn ident<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        IDENT.hash_one(key)
    }

    /// An entry near or past its deadline: early, stale, or gone.
    #[cold]
    fn find_cold<Q>(&self, key: &Q, s: Stored<V, N>) -> Found<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.core.meter.clock.now_nanos();
        if now < s.expires_at() {
            return if self.draw_early(now, &s) {
                Found::Early(s.entry)
            } else {
                Found::Fresh(s.entry)
            };
        }
        if now < s.expires_at().saturating_add(self.core.stale) {
            return Found::Stale(s.entry);
        }
        self.expire(key, now);
        Found::Miss
    }

    /// XFetch (Vattani, Chierichetti, Lowenstein; VLDB 2015): refresh early when
    /// `now - delta * beta * ln(r) >= expiry`, `r` uniform in (0, 1]. `early` is
    /// `delta * beta * XFETCH_SPAN`, so the gap is `early * -ln(r) / XFETCH_SPAN`.
    fn draw_early(&self, now: u64, s: &Stored<V, N>) -> bool {
        if s.early() == 0 {
            return false;
        }
        #[allow(clippy::cast_precision_loss)]
        let r = ((self.core.expiry.next_random() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        #[allow(clippy::cast_precision_loss)]
        let gap = s.early() as f64 * -r.ln() / XFETCH_SPAN;
        #[allow(clippy::cast_precision_loss)]
        let left = (s.expires_at() - now) as f64;
        gap >= left
    }

    /// The fresh entry of `key`, without counting (an early-drawn one is still fresh).
    #[inline(always)]
    pub(super) fn lookup<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core.store.get_then(
            key,
            #[inline(always)]
            |s| {
                s.plainly_fresh(self.hit_bound())
                    .then(|| Some(s.entry.clone()))
            },
            #[inline(always)]
            |s| fresh(self.judge(key, s)),
        )
    }

    #[cold]
    fn expire<Q>(&self, key: &Q, now: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let stale = self.core.stale;
        let gone = self.core.store.remove_if(key, |s| {
            s.expires_at() != NEVER && s.expires_at().saturating_add(stale) <= now
        });
        if gone.is_some() {
            self.core.meter.stats.incr(Counter::Expiration);
        }
        self.core.removed(gone, Gone::Expired);
    }

    /// Looks `key` up and counts a hit, a negative hit or a miss.
    #[inline(always)]
    pub(super) fn lookup_counted<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Judged and counted where the store found the entry (see `Store::get_then`): a
        // plainly fresh one under the read lock, with its value alone cloned.
        self.core.store.get_then(
            key,
            #[inline(always)]
            |s| {
                if !s.plainly_fresh(self.hit_bound()) {
                    return None;
                }
                let e = s.entry.clone();
                self.core.meter.stats.incr(hit_counter(&e));
                Some(Some(e))
            },
            #[inline(always)]
            |s| {
                let found = fresh(self.judge(key, s));
                self.core.meter.stats.incr(match &found {
                    Some(e) => hit_counter(e),
                    None => Counter::Miss,
                });
                found
            },
        )
    }

    /// The fresh value of `key`, if cached. A cached negative result reads as `None` here; see
    /// [`get_entry`](Self::get_entry).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<String, u64> = Cache::builder().build()?;
    /// stock.insert("tea".to_string(), 3);
    /// assert_eq!(stock.get("tea"), Some(3)); // looked up by `&str`: no allocation
    /// assert_eq!(stock.get("coffee"), None);
    /// assert_eq!((stock.stats().hits, stock.stats().misses), (1, 1));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    #[inline(always)]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.lookup_counted(key)? {
            Entry::Value(v) => Some(v),
            Entry::Negative(_) => None,
        }
    }

    /// The fresh entry of `key` (a value or a negative result), if cached.
    ///
    /// ```
    /// use cache_runtime::{Cache, Entry};
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    /// assert_eq!(users.get_or_load(&404, || Err(NotFound)), Err(NotFound));
    /// assert_eq!(users.get(&404), None); // `get` sees values only
    /// assert_eq!(users.get_entry(&404), Some(Entry::Negative(NotFound)));
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn get_entry<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookup_counted(key)
    }

    /// Whether a fresh entry of `key` is cached. Not counted in the statistics.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// cache.insert(1, "one".to_string());
    /// assert!(cache.contains_key(&1));
    /// assert!(!cache.contains_key(&2));
    /// assert_eq!(cache.stats().hits + cache.stats().misses, 0); // not counted
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core
            .store
            .get(key)
            .is_some_and(|s| !self.expired(&s) && !s.stamps.as_ref().is_some_and(Stamp::is_stale))
    }

    pub(super) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.core.hasher.hash_one(key)
    }
}
