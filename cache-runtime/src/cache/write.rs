//! Writes and removal: write-through inserts, invalidation, clearing, and the expiry sweep.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::miss::remaining;
use super::{Cache, Core};
use crate::BuildError;
use crate::driver::{Blocking, block_on};
use crate::entry::{Entry, Stored};
use crate::stats::Counter;
use crate::store::{Evictions, Gone};
use crate::tier;
use crate::ttl::{NEVER, ttl_nanos};

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Stores `entry` until `expires_at` (write-through to the remote tier, if any).
    fn put(&self, key: K, entry: Entry<V, N>, expires_at: u64) {
        let mut stored = self.core.stored(entry, expires_at, 0, None);
        let ident = self.ident(&key);
        // Mark any load of this key in flight first, so that its older result cannot overwrite
        // this one when it finishes.
        self.core.flights.invalidate(self.hash(&key), &key);
        if self.core.tier.is_some() {
            let now = self.core.meter.clock.now_nanos();
            let ttl = remaining(now, stored.expires_at());
            self.write_remote(&key, Some((&stored.entry, ttl)));
            stored.set_expires_at(self.l1_deadline(now, stored.expires_at()));
        }
        drop(self.core.insert(key, stored));
        // What was computed from the old entry is stale now.
        self.core.scope.wrote(ident);
    }

    /// Writes `entry` (with its remote TTL) or, for `None`, a deletion of `key` through to the
    /// remote tier, and tells the other processes. One the backend does not take (a fault, an
    /// open breaker) is retried in the background, and until then this process does not read
    /// the key from the tier.
    fn write_remote(&self, key: &K, entry: Option<(&Entry<V, N>, Option<Duration>)>) {
        let Some(tier) = self.core.tier.as_deref() else {
            return;
        };
        let Some(rk) = tier.key(key) else {
            return;
        };
        // A write the backend does not take stays pending, and is broadcast once it went through.
        if block_on(tier::write::<Blocking, K, V, N>(tier, &rk, entry)) {
            tier::broadcast(tier, Some(&rk));
        }
        // The entries of the fleet computed from this one (their L2 copies check this key).
        crate::invalidate::remote::bump_key(
            tier.backend(),
            &self.core.scope.dep_key(self.ident(key)),
        );
    }

    /// Stores `value` under `key` with the cache's TTL (write-through), replacing any entry.
    /// A load of `key` in flight still answers its callers, but does not overwrite this value.
    ///
    /// With a `ttl_fn`, the value's own TTL applies; a value whose TTL is zero is not stored
    /// (and replaces nothing: the old entry is removed).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String> = Cache::builder().ttl(Duration::from_secs(60)).build()?;
    /// users.insert(1, "ada".to_string());
    /// users.insert(1, "grace".to_string()); // replaces the entry, with a new TTL
    /// assert_eq!(users.get(&1).as_deref(), Some("grace"));
    /// assert_eq!(users.len(), 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let Some(expires_at) = self.value_deadline(&value, || self.core.meter.clock.now_nanos())
        else {
            self.core.flights.invalidate(self.hash(&key), &key);
            self.write_remote(&key, None);
            self.core
                .removed(self.core.store.remove(&key), Gone::Replaced);
            // A write all the same: what was computed from the old entry is stale now.
            self.core.scope.wrote(self.ident(&key));
            return;
        };
        self.put(key, Entry::Value(value), expires_at);
    }

    /// The deadline of `value` stored now: from the `ttl_fn`, else the cache's TTL. `None` when
    /// the `ttl_fn` gives zero (not to be cached).
    pub(super) fn value_deadline(&self, value: &V, now: impl FnOnce() -> u64) -> Option<u64> {
        let Some(f) = &self.core.ttl_fn else {
            return Some(self.core.expiry.deadline(now, false));
        };
        let ttl = f(value);
        if ttl.is_zero() {
            return None;
        }
        let ttl = u64::try_from(ttl.as_nanos())
            .unwrap_or(u64::MAX)
            .min(u64::MAX / 2);
        crate::clock::start_ticker();
        Some(self.core.expiry.deadline_for(now(), ttl))
    }

    /// Stores `value` under `key` with its own TTL (the cache's jitter still applies).
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let tokens: Cache<&str, String> = Cache::builder()
    ///     .ttl(Duration::from_secs(3600))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// tokens.insert_with_ttl("api", "t0k3n".to_string(), Duration::from_secs(30))?;
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(tokens.get("api"), None); // its own 30 s, not the cache's hour
    /// assert!(tokens.insert_with_ttl("api", "t0k3n".to_string(), Duration::ZERO).is_err());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// [`BuildError::ZeroTtl`] or [`BuildError::TtlTooLarge`] for a TTL that cannot work; the
    /// cache is left unchanged.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), BuildError> {
        let ttl = ttl_nanos(ttl, "entry ttl")?;
        crate::clock::start_ticker();
        let expires_at = self
            .core
            .expiry
            .deadline_for(self.core.meter.clock.now_nanos(), ttl);
        self.put(key, Entry::Value(value), expires_at);
        Ok(())
    }

    /// Stores a negative result under `key` for `negative_ttl` (or forever without one).
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// let users: Cache<u64, String, ()> = Cache::builder()
    ///     .negative_ttl(Duration::from_secs(10))
    ///     .build()?;
    /// users.insert_negative(7, ()); // user 7 is known not to exist
    /// assert_eq!(users.get_or_load_option(&7, || unreachable!()), None);
    /// assert_eq!(users.stats().negative_hits, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn insert_negative(&self, key: K, negative: N) {
        let expires_at = self
            .core
            .expiry
            .deadline(|| self.core.meter.clock.now_nanos(), true);
        self.put(key, Entry::Negative(negative), expires_at);
    }

    /// Removes `key`'s entry; returns whether a fresh one was there. A load of `key` in flight
    /// still answers its callers, but its result is not stored (invalidation wins).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let stock: Cache<String, u64> = Cache::builder().build()?;
    /// stock.insert("tea".to_string(), 3);
    /// assert!(stock.remove("tea"));
    /// assert!(!stock.remove("tea")); // nothing left to remove
    /// assert_eq!(stock.get("tea"), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.flights.invalidate(self.hash(key), key);
        if self.core.tier.is_some() {
            self.write_remote(&key.to_owned(), None);
        }
        let removed = self.core.store.remove(key);
        self.core.scope.wrote(self.ident(key));
        let fresh = removed.as_ref().is_some_and(|(_, s)| !self.expired(s));
        self.core.removed(removed, Gone::Explicit);
        fresh
    }

    /// Removes every entry. Loads in flight answer their callers but store nothing.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let squares: Cache<u64, u64> = Cache::builder().build()?;
    /// for i in 0..10 {
    ///     squares.insert(i, i * i);
    /// }
    /// squares.clear();
    /// assert!(squares.is_empty());
    /// assert_eq!(squares.get(&3), None);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn clear(&self) {
        self.core.flights.invalidate_all();
        if let Some(tier) = self.core.tier.as_deref() {
            tier::clear(tier);
        }
        drop(self.core.store.clear());
        self.core.scope.cleared();
    }

    /// Drops every entry of this cache tagged `tag` (see [`tag`](crate::tag)), here and, with a
    /// remote tier, in the fleet: the tag's generation key moves on (so L2 copies read as
    /// misses) and other processes hear of it on the invalidation channel. Other caches' entries
    /// with the same tag stay; [`invalidate_tag`](crate::invalidate_tag) drops them all.
    /// O(1) in the number of tagged entries.
    ///
    /// ```
    /// use cache_runtime::{Cache, tag};
    ///
    /// let stock: Cache<(u64, u32), u32> = Cache::builder().build()?;
    /// let prices: Cache<u64, u32> = Cache::builder().build()?;
    /// stock.get_or_insert_with(&(7, 1), || {
    ///     tag("store:1");
    ///     12
    /// });
    /// prices.get_or_insert_with(&7, || {
    ///     tag("store:1");
    ///     350
    /// });
    /// stock.invalidate_tag("store:1");
    /// assert!(!stock.contains_key(&(7, 1)));
    /// assert!(prices.contains_key(&7)); // another cache
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn invalidate_tag(&self, tag: &str) {
        self.core.scope.invalidate_tag_here(tag);
        if let Some(tier) = self.core.tier.as_deref() {
            crate::invalidate::remote::bump_cache_tag(tier.backend(), tier.namespace(), tag);
        }
    }

    /// Removes every expired entry now, and returns how many.
    ///
    /// Expired entries are never returned either way. They leave when read, and inserts sweep
    /// them out (amortized: once something may have expired, every capacity/8 inserts), so they
    /// cannot hold room from live entries for long; this frees their memory at once.
    ///
    /// ```
    /// use cache_runtime::{Cache, Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .ttl(Duration::from_secs(60))
    ///     .clock(Clock::manual(&clock))
    ///     .build()?;
    /// cache.insert(1, 10);
    /// cache.insert(2, 20);
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.len(), 2); // expired, but still held
    /// assert_eq!(cache.purge_expired(), 2);
    /// assert!(cache.is_empty());
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    pub fn purge_expired(&self) -> u64 {
        self.core.sweep().0
    }
}

impl<K, V, N> Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Every store write goes through here (miss path only).
    ///
    /// Expired entries are removed when read, but an entry that is never read again could sit
    /// in a policy's protected area long after its deadline. So inserts also sweep: once an entry
    /// may have expired (`next_expiry` has passed) and an eighth of the capacity has been
    /// inserted since the last sweep, this insert removes every expired entry first. The cost is
    /// amortized to a few entry checks per insert, and an expired entry holds its room for at
    /// most capacity/8 inserts.
    pub(super) fn insert(&self, key: K, stored: Stored<V, N>) -> Evictions<K, Stored<V, N>> {
        // Deadlines mostly rise, so a plain load usually shows there is nothing to lower.
        let gone_at = stored.gone_at(self.stale);
        if gone_at < self.next_expiry.load(Ordering::Relaxed) {
            self.next_expiry.fetch_min(gone_at, Ordering::Relaxed);
        }
        // A heuristic count: an increment lost to a race only delays a sweep by one insert, so it
        // is a plain load and store rather than a locked read-modify-write.
        let n = self.inserts_since_sweep.load(Ordering::Relaxed);
        self.inserts_since_sweep.store(n + 1, Ordering::Relaxed);
        if n >= self.sweep_interval
            && self.next_expiry.load(Ordering::Relaxed) <= self.meter.clock.now_nanos()
        {
            // Told to the removal listener with the insert's own evictions, once the caller
            // holds no lock.
            let (_, mut swept) = self.sweep();
            swept.append(self.store.insert(key, stored));
            return swept;
        }
        self.store.insert(key, stored)
    }

    /// Removes every expired entry; returns how many, and (with a removal listener) the
    /// entries, to drop once no lock is held.
    pub(super) fn sweep(&self) -> (u64, Evictions<K, Stored<V, N>>) {
        self.inserts_since_sweep.store(0, Ordering::Relaxed);
        let now = self.meter.clock.now_nanos();
        let next = std::cell::Cell::new(NEVER);
        let (removed, swept) = self.store.retain(
            |_, s| {
                // Past its deadline (and `stale` window), or left unread for its time-to-idle.
                let gone_at = s.gone_at(self.stale);
                let keep = gone_at > now;
                if keep {
                    next.set(next.get().min(gone_at));
                }
                keep
            },
            Gone::Expired,
        );
        // A concurrent insert may have lowered it meanwhile; it is then found by the next sweep,
        // due at the latest at `next`.
        self.next_expiry.store(next.get(), Ordering::Relaxed);
        self.meter.stats.add(Counter::Expiration, removed);
        (removed, swept)
    }
}
