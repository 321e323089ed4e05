//! The typed cache a memoized function owns: store + expiry + single-flight + statistics.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foldhash::quality::FixedState;

use crate::clock::Clock;
use crate::flight::{Flight, Flights, Join, Leader, Waited};
use crate::registry::{self, Report};
use crate::stats::{Counter, Stats};
use crate::store::{Evictions, Listener, Store, StoreConfig, WeighFn, Weigher, shard_count};
use crate::tier::Tier;
use crate::ttl::{Expiry, Jitter, NEVER, ttl_nanos};
use crate::{BuildError, CacheStats, Policy};
use std::sync::Arc;

/// The time left until `deadline`, for a remote TTL (`None`: no expiry).
fn remaining(now: u64, deadline: u64) -> Option<Duration> {
    (deadline != NEVER).then(|| Duration::from_nanos(deadline.saturating_sub(now).max(1)))
}

/// Numbers the caches, for default names and hash seeds.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The capacity of a cache built without [`CacheBuilder::capacity`]: 10,000 entries.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// A cached result: a value, or a negative result ("not found", an error) kept for
/// `negative_ttl`. A negative result is never confused with a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<V, N> {
    /// A successfully loaded value.
    Value(V),
    /// A cached negative result.
    Negative(N),
}

impl<V, N> Entry<V, N> {
    /// The value, or `Err` with the negative result.
    ///
    /// # Errors
    /// The cached negative result.
    pub fn into_result(self) -> Result<V, N> {
        match self {
            Entry::Value(v) => Ok(v),
            Entry::Negative(n) => Err(n),
        }
    }
}

/// What the store holds: the entry and its deadline (coarse-clock nanoseconds; `NEVER` = no TTL).
#[derive(Clone)]
pub(crate) struct Stored<V, N> {
    entry: Entry<V, N>,
    expires_at: u64,
}

/// A loader's outcome: cached as a value, cached as a negative result (if `negative_ttl` is set),
/// or an error returned to its caller only.
pub(crate) enum Loaded<V, N, E> {
    Value(V),
    Negative(N),
    Error(E),
}

impl<V, N, E> From<Entry<V, N>> for Loaded<V, N, E> {
    fn from(e: Entry<V, N>) -> Self {
        match e {
            Entry::Value(v) => Loaded::Value(v),
            Entry::Negative(n) => Loaded::Negative(n),
        }
    }
}

struct Meter {
    stats: Stats,
    clock: Clock,
}

struct Core<K, V, N> {
    store: Store<K, Stored<V, N>>,
    flights: Flights<K, Entry<V, N>>,
    expiry: Expiry,
    meter: Arc<Meter>,
    hasher: FixedState,
    name: String,
    policy: Policy,
    /// No entry expires before this (coarse-clock ns): a lower bound kept by inserts and sweeps.
    next_expiry: AtomicU64,
    /// Inserts since the last sweep, and how many make a sweep due.
    inserts_since_sweep: AtomicU64,
    sweep_interval: u64,
    /// The remote tier (L2), if any.
    tier: Option<Arc<dyn Tier<K, V, N>>>,
    /// With a remote tier: how long an entry stays in this process's L1 (ns).
    l1_ttl: Option<u64>,
    /// Fleet-wide single-flight: the lease a loading process takes in the remote tier.
    lease: Option<Duration>,
}

/// An entry to cache, with the time it was loaded and its deadline (coarse-clock ns).
type ToCache<V, N> = (Entry<V, N>, u64, u64);

/// A fleet-wide lease held while this process loads; released by `release_async` or, failing
/// that (a panic, a cancelled future, a sync caller), when dropped.
struct LeaseGuard<'a, K, V, N> {
    tier: &'a dyn Tier<K, V, N>,
    key: K,
    token: Option<String>,
}

impl<K, V, N> LeaseGuard<'_, K, V, N> {
    async fn release_async(&mut self) {
        if let Some(token) = self.token.take() {
            self.tier.release_async(&self.key, &token).await;
        }
    }
}

impl<K, V, N> Drop for LeaseGuard<'_, K, V, N> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.tier.release(&self.key, &token);
        }
    }
}

/// A bounded, thread-safe memoization cache from `K` to `V`, with optional cached negative
/// results of type `N`.
///
/// - **Bounded**: by entry count or by total weight, with a chosen eviction [`Policy`].
/// - **Expiry**: a TTL per cache (and per entry), with [`Jitter`]; expired entries are never
///   returned.
/// - **Single-flight**: concurrent misses of one key, from threads or async tasks, run one
///   load; the others wait for it and share its result.
/// - **Negative caching**: a loader's `Err` (or `None`) is cached for its own `negative_ttl`.
/// - **Statistics**: per cache ([`Cache::stats`]) and in the process-wide [`registry`](crate::registry).
///
/// Cloning a `Cache` is cheap: clones share the same entries.
///
/// ```
/// use cache_runtime::Cache;
/// use std::time::Duration;
///
/// let squares: Cache<u64, u64> = Cache::builder()
///     .capacity(1_000)
///     .ttl(Duration::from_secs(60))
///     .build()?;
///
/// assert_eq!(squares.get_or_insert_with(&12, || 12 * 12), 144); // miss: loads
/// assert_eq!(squares.get_or_insert_with(&12, || unreachable!()), 144); // hit
///
/// let stats = squares.stats();
/// assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub struct Cache<K, V, N = Infallible> {
    core: Arc<Core<K, V, N>>,
}

impl<K, V, N> Clone for Cache<K, V, N> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    N: Send + Sync + 'static,
{
    /// The cache whose core `any` is, if it has these types.
    pub(crate) fn from_any(any: Arc<dyn std::any::Any + Send + Sync>) -> Option<Self> {
        any.downcast::<Core<K, V, N>>()
            .ok()
            .map(|core| Cache { core })
    }
}

impl<K, V, N> fmt::Debug for Cache<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.core.name)
            .field("policy", &self.core.policy)
            .finish_non_exhaustive()
    }
}

impl<K, V, N> Cache<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// A builder with the defaults: [`DEFAULT_CAPACITY`] entries, the S3-FIFO policy, no TTL.
    #[must_use]
    pub fn builder() -> CacheBuilder<K, V, N> {
        CacheBuilder::new()
    }

    #[inline(always)]
    fn expired(&self, s: &Stored<V, N>) -> bool {
        // Entries without a TTL never read the clock; most others read only the ticker.
        s.expires_at != NEVER && self.core.meter.clock.is_past(s.expires_at)
    }

    /// The fresh entry of `key`, without counting. Removes it if it has expired.
    #[inline(always)]
    fn lookup<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let s = self.core.store.get(key)?;
        if self.expired(&s) {
            self.expire(key);
            return None;
        }
        Some(s.entry)
    }

    #[cold]
    fn expire<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.core.meter.clock.now_nanos();
        if self
            .core
            .store
            .remove_if(key, |s| s.expires_at != NEVER && s.expires_at <= now)
            .is_some()
        {
            self.core.meter.stats.incr(Counter::Expiration);
        }
    }

    /// Looks `key` up and counts a hit, a negative hit or a miss.
    #[inline(always)]
    fn lookup_counted<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.lookup(key);
        self.core.meter.stats.incr(match &found {
            Some(Entry::Value(_)) => Counter::Hit,
            Some(Entry::Negative(_)) => Counter::NegativeHit,
            None => Counter::Miss,
        });
        found
    }

    /// The fresh value of `key`, if cached. A cached negative result reads as `None` here; see
    /// [`get_entry`](Self::get_entry).
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
    pub fn get_entry<Q>(&self, key: &Q) -> Option<Entry<V, N>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookup_counted(key)
    }

    /// Whether a fresh entry of `key` is cached. Not counted in the statistics.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.core.store.get(key).is_some_and(|s| !self.expired(&s))
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.core.hasher.hash_one(key)
    }

    fn put(&self, key: K, mut stored: Stored<V, N>) {
        // Mark any load of this key in flight first, so that its older result cannot overwrite
        // this one when it finishes.
        self.core.flights.invalidate(self.hash(&key), &key);
        if let Some(tier) = &self.core.tier {
            let now = self.core.meter.clock.now_nanos();
            tier.put(&key, &stored.entry, remaining(now, stored.expires_at));
            tier.broadcast(Some(&key));
            stored.expires_at = self.l1_deadline(now, stored.expires_at);
        }
        drop(self.core.insert(key, stored));
    }

    /// Stores `value` under `key` with the cache's TTL (write-through), replacing any entry.
    /// A load of `key` in flight still answers its callers, but does not overwrite this value.
    pub fn insert(&self, key: K, value: V) {
        let expires_at = self
            .core
            .expiry
            .deadline(|| self.core.meter.clock.now_nanos(), false);
        self.put(
            key,
            Stored {
                entry: Entry::Value(value),
                expires_at,
            },
        );
    }

    /// Stores `value` under `key` with its own TTL (the cache's jitter still applies).
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
        self.put(
            key,
            Stored {
                entry: Entry::Value(value),
                expires_at,
            },
        );
        Ok(())
    }

    /// Stores a negative result under `key` for `negative_ttl` (or forever without one).
    pub fn insert_negative(&self, key: K, negative: N) {
        let expires_at = self
            .core
            .expiry
            .deadline(|| self.core.meter.clock.now_nanos(), true);
        self.put(
            key,
            Stored {
                entry: Entry::Negative(negative),
                expires_at,
            },
        );
    }

    /// Removes `key`'s entry; returns whether a fresh one was there. A load of `key` in flight
    /// still answers its callers, but its result is not stored (invalidation wins).
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.core.flights.invalidate(self.hash(key), key);
        if let Some(tier) = &self.core.tier {
            let owned = key.to_owned();
            tier.delete(&owned);
            tier.broadcast(Some(&owned));
        }
        self.core
            .store
            .remove(key)
            .is_some_and(|s| !self.expired(&s))
    }

    /// Removes every entry. Loads in flight answer their callers but store nothing.
    pub fn clear(&self) {
        self.core.flights.invalidate_all();
        if let Some(tier) = &self.core.tier {
            tier.clear();
            tier.broadcast(None);
        }
        self.core.store.clear();
    }

    /// Removes every expired entry now, and returns how many.
    ///
    /// Expired entries are never returned either way. They leave when read, and inserts sweep
    /// them out (amortized: once something may have expired, every capacity/8 inserts), so they
    /// cannot hold room from live entries for long; this frees their memory at once.
    pub fn purge_expired(&self) -> u64 {
        self.core.sweep()
    }

    /// Compute-if-absent with a loader that yields a value or a negative result.
    ///
    /// On a miss, `load` runs once however many callers miss `key` at the same time; the
    /// others wait and share its outcome. `Ok` is cached with the TTL. `Err` is a negative
    /// result: with `negative_ttl` set it is cached for that long (and shared with the waiters,
    /// and counted in `negative_hits` when served); without it, it is returned to this caller
    /// only, and the waiters retry one at a time (see [`get_or_try_insert_with`]).
    ///
    /// A panic in `load` reaches this caller; the waiters are released and one of them loads.
    ///
    /// [`get_or_try_insert_with`]: Cache::get_or_try_insert_with
    ///
    /// ```
    /// use cache_runtime::Cache;
    /// use std::time::Duration;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct NotFound;
    ///
    /// let users: Cache<u64, String, NotFound> = Cache::builder()
    ///     .ttl(Duration::from_secs(300))
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .build()?;
    ///
    /// let lookup = |id: u64| if id == 1 { Ok("ada".to_string()) } else { Err(NotFound) };
    /// assert_eq!(users.get_or_load(&1, || lookup(1)), Ok("ada".to_string()));
    /// assert_eq!(users.get_or_load(&2, || lookup(2)), Err(NotFound));
    /// // The "not found" is cached: the loader does not run again.
    /// assert_eq!(users.get_or_load(&2, || unreachable!()), Err(NotFound));
    /// assert_eq!(users.stats().negative_hits, 1);
    /// # Ok::<(), cache_runtime::BuildError>(())
    /// ```
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub fn get_or_load<Q>(&self, key: &Q, load: impl FnOnce() -> Result<V, N>) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.load_sync(key, || match load() {
            Ok(v) => Loaded::<V, N, Infallible>::Value(v),
            Err(n) => Loaded::Negative(n),
        }) {
            Loaded::Value(v) => Ok(v),
            Loaded::Negative(n) => Err(n),
            Loaded::Error(e) => match e {},
        }
    }

    /// The async form of [`get_or_load`](Self::get_or_load). If this future is dropped while it
    /// loads, the waiters are released and one of them loads instead.
    ///
    /// # Errors
    /// The negative result, fresh from `load` or cached.
    pub async fn get_or_load_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Result<V, N>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, N>>,
    {
        let loaded = self
            .load_async(key, || async {
                match load().await {
                    Ok(v) => Loaded::<V, N, Infallible>::Value(v),
                    Err(n) => Loaded::Negative(n),
                }
            })
            .await;
        match loaded {
            Loaded::Value(v) => Ok(v),
            Loaded::Negative(n) => Err(n),
            Loaded::Error(e) => match e {},
        }
    }

    /// The single-flight load, sync callers.
    fn load_sync<Q, E>(&self, key: &Q, load: impl FnOnce() -> Loaded<V, N, E>) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(e) = self.lookup_counted(key) {
            return e.into();
        }
        self.load_after_miss(key, load)
    }

    /// The single-flight load of a key whose lookup was counted as a miss.
    pub(crate) fn load_after_miss<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Loaded<V, N, E>,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hash(key);
        loop {
            match self.core.flights.join(hash, key, true) {
                Join::Leader(leader) => {
                    // Another caller may have stored the value between our miss and now.
                    if let Some(e) = self.lookup(key) {
                        leader.complete(&e, || ());
                        return e.into();
                    }
                    let mut held = None;
                    if let Some(tier) = &self.core.tier {
                        let owned = key.to_owned();
                        if let Some(e) = tier.get(&owned) {
                            return self.fill_from_remote(leader, owned, e).into();
                        }
                        if let Some(lease) = self.core.lease {
                            match tier.lease(&owned, lease) {
                                Some(token) => held = token.map(|t| (owned, t)),
                                None => {
                                    // Another process loads it: wait for its value (bounded).
                                    if let Some(e) = tier.wait_for(&owned, lease) {
                                        return self.fill_from_remote(leader, owned, e).into();
                                    }
                                }
                            }
                        }
                    }
                    // Released when this scope ends, also by a panicking loader.
                    let _lease = self.lease_guard(held);
                    self.core.meter.stats.incr(Counter::Load);
                    let (entry, now, deadline) = match self.cacheable(load()) {
                        Ok(c) => c,
                        Err(uncached) => {
                            drop(leader);
                            return uncached;
                        }
                    };
                    // The remote write comes first: an invalidation during the load then finds
                    // the key in flight and undoes it below, instead of being overtaken by it.
                    let remote = self.core.tier.as_ref().map(|t| (t, key.to_owned()));
                    if let Some((tier, k)) = &remote {
                        tier.put(k, &entry, remaining(now, deadline));
                    }
                    if !self.complete_local(leader, key, &entry, now, deadline)
                        && let Some((tier, k)) = &remote
                    {
                        tier.delete(k);
                    }
                    return entry.into();
                }
                Join::Waiter(flight, stale) => match flight.wait() {
                    Waited::Value(e) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        return e.into();
                    }
                    Waited::Value(_) | Waited::Retry => {}
                    Waited::Reentrant => {
                        // The loader asked for its own key: answer uncached rather than deadlock.
                        self.core.meter.stats.incr(Counter::Load);
                        return load();
                    }
                },
            }
        }
    }

    /// The single-flight load, async callers.
    async fn load_async<Q, E, F>(&self, key: &Q, load: impl FnOnce() -> F) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        if let Some(e) = self.lookup_counted(key) {
            return e.into();
        }
        self.load_after_miss_async(key, load).await
    }

    /// The async single-flight load of a key whose lookup was counted as a miss.
    pub(crate) async fn load_after_miss_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Loaded<V, N, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Loaded<V, N, E>>,
    {
        let hash = self.hash(key);
        loop {
            match self.core.flights.join(hash, key, false) {
                Join::Leader(leader) => {
                    if let Some(e) = self.lookup(key) {
                        leader.complete(&e, || ());
                        return e.into();
                    }
                    let mut held = None;
                    if let Some(tier) = &self.core.tier {
                        let owned = key.to_owned();
                        if let Some(e) = tier.get_async(&owned).await {
                            return self.fill_from_remote(leader, owned, e).into();
                        }
                        if let Some(lease) = self.core.lease {
                            match tier.lease_async(&owned, lease).await {
                                Some(token) => held = token.map(|t| (owned, t)),
                                None => {
                                    if let Some(e) = tier.wait_for_async(&owned, lease).await {
                                        return self.fill_from_remote(leader, owned, e).into();
                                    }
                                }
                            }
                        }
                    }
                    // Released when this future ends or is dropped.
                    let mut lease = self.lease_guard(held);
                    self.core.meter.stats.incr(Counter::Load);
                    // If this future is dropped here, `leader` drops and abandons the flight.
                    let (entry, now, deadline) = match self.cacheable(load().await) {
                        Ok(c) => c,
                        Err(uncached) => {
                            drop(leader);
                            if let Some(l) = lease.as_mut() {
                                l.release_async().await;
                            }
                            return uncached;
                        }
                    };
                    let remote = self.core.tier.as_ref().map(|t| (t, key.to_owned()));
                    if let Some((tier, k)) = &remote {
                        tier.put_async(k, &entry, remaining(now, deadline)).await;
                    }
                    if !self.complete_local(leader, key, &entry, now, deadline)
                        && let Some((tier, k)) = &remote
                    {
                        tier.delete_async(k).await;
                    }
                    if let Some(l) = lease.as_mut() {
                        l.release_async().await;
                    }
                    return entry.into();
                }
                Join::Waiter(flight, stale) => match Flight::wait_async(flight).await {
                    Waited::Value(e) if !stale => {
                        self.core.meter.stats.incr(Counter::Joined);
                        return e.into();
                    }
                    Waited::Value(_) | Waited::Retry | Waited::Reentrant => {}
                },
            }
        }
    }

    /// What a leader's outcome becomes: `Ok` with the entry to cache and its deadline, or
    /// `Err` with the outcome to return uncached (the waiters then retry, one at a time).
    fn cacheable<E>(&self, out: Loaded<V, N, E>) -> Result<ToCache<V, N>, Loaded<V, N, E>> {
        let (entry, negative) = match out {
            Loaded::Value(v) => (Entry::Value(v), false),
            Loaded::Negative(n) if self.core.expiry.has_negative_ttl() => {
                self.core.meter.stats.incr(Counter::LoadError);
                (Entry::Negative(n), true)
            }
            other => {
                self.core.meter.stats.incr(Counter::LoadError);
                return Err(other);
            }
        };
        let now = self.core.meter.clock.now_nanos();
        let deadline = self.core.expiry.deadline(|| now, negative);
        Ok((entry, now, deadline))
    }

    /// Stores `entry` in this process's store and shares it with the waiters; `false` when an
    /// invalidation arrived during the load (then nothing was stored).
    fn complete_local<Q>(
        &self,
        leader: Leader<'_, K, Entry<V, N>>,
        key: &Q,
        entry: &Entry<V, N>,
        now: u64,
        deadline: u64,
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // What the store lets go of is dropped here, after the single-flight lock is released.
        let stored = leader.complete(entry, || {
            self.core.insert(
                key.to_owned(),
                Stored {
                    entry: entry.clone(),
                    expires_at: self.l1_deadline(now, deadline),
                },
            )
        });
        stored.is_some()
    }

    /// Holds a fleet-wide lease until released or dropped.
    fn lease_guard(&self, held: Option<(K, String)>) -> Option<LeaseGuard<'_, K, V, N>> {
        let (key, token) = held?;
        let tier = self.core.tier.as_deref()?;
        Some(LeaseGuard {
            tier,
            key,
            token: Some(token),
        })
    }

    /// The L1 deadline of an entry whose own deadline is `deadline`: sooner with a remote tier.
    fn l1_deadline(&self, now: u64, deadline: u64) -> u64 {
        match self.core.l1_ttl {
            Some(l1) => deadline.min(now.saturating_add(l1)),
            None => deadline,
        }
    }

    /// Fills L1 from an entry the remote tier had, and ends the flight with it.
    fn fill_from_remote(
        &self,
        leader: Leader<'_, K, Entry<V, N>>,
        key: K,
        e: Entry<V, N>,
    ) -> Entry<V, N> {
        self.core.meter.stats.incr(Counter::RemoteHit);
        let now = self.core.meter.clock.now_nanos();
        let negative = matches!(e, Entry::Negative(_));
        let deadline = self.core.expiry.deadline(|| now, negative);
        let stored = leader.complete(&e, || {
            self.core.insert(
                key,
                Stored {
                    entry: e.clone(),
                    expires_at: self.l1_deadline(now, deadline),
                },
            )
        });
        drop(stored);
        e
    }

    /// This cache's statistics now.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.core.stats()
    }

    /// Sets every counter to zero.
    pub fn reset_stats(&self) {
        self.core.meter.stats.reset();
    }

    /// The number of entries held (fresh, or expired but not yet removed).
    #[must_use]
    pub fn len(&self) -> usize {
        self.core.store.len()
    }

    /// Whether the cache holds no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The total weight held (the entry count, when unweighted).
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.core.store.weight()
    }

    /// The capacity: the total weight (entry count, when unweighted) the cache holds at most.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.core.store.capacity()
    }

    /// The cache's name, as listed in the [`registry`](crate::registry).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The eviction policy.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.core.policy
    }

    /// Drops this process's copy of `key` only (not the remote tier's), as an invalidation
    /// from another process does. For benchmarks and tests.
    #[doc(hidden)]
    pub fn evict_local(&self, key: &K) {
        crate::tier::LocalL1::evict_local(&*self.core, Some(key));
    }

    /// How many loads are in flight now (for tests and diagnostics).
    #[doc(hidden)]
    #[must_use]
    pub fn loads_in_flight(&self) -> usize {
        self.core.flights.len()
    }
}

/// Compute-if-absent for caches without negative results.
impl<K, V> Cache<K, V, Infallible>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Returns `key`'s value, running `load` on a miss and caching its result
    /// (compute-if-absent). Concurrent misses of `key` run `load` once and share its value.
    pub fn get_or_insert_with<Q>(&self, key: &Q, load: impl FnOnce() -> V) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.get_or_load(key, || Ok(load())) {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) with a fallible loader whose `Err`
    /// is never cached.
    ///
    /// The error goes to this caller alone, and callers waiting on this load then **retry one
    /// at a time**: the next becomes the leader and loads while the rest wait on it. This needs
    /// no `E: Clone`, never hands a caller an error that its own call did not meet, and still
    /// never runs two loads of one key at once. To share errors instead (and spare a failing
    /// backend), cache them: [`get_or_load`](Self::get_or_load) with `negative_ttl`.
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub fn get_or_try_insert_with<Q, E>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.load_sync(key, || match load() {
            Ok(v) => Loaded::Value(v),
            Err(e) => Loaded::Error(e),
        }) {
            Loaded::Value(v) => Ok(v),
            Loaded::Error(e) => Err(e),
            Loaded::Negative(n) => match n {},
        }
    }

    /// The async form of [`get_or_insert_with`](Self::get_or_insert_with).
    pub async fn get_or_insert_with_async<Q, F>(&self, key: &Q, load: impl FnOnce() -> F) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = V>,
    {
        match self
            .get_or_load_async(key, || async { Ok(load().await) })
            .await
        {
            Ok(v) => v,
            Err(n) => match n {},
        }
    }

    /// The async form of [`get_or_try_insert_with`](Self::get_or_try_insert_with).
    ///
    /// # Errors
    /// `load`'s error, from this caller's own load.
    pub async fn get_or_try_insert_with_async<Q, E, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Result<V, E>>,
    {
        let loaded = self
            .load_async(key, || async {
                match load().await {
                    Ok(v) => Loaded::Value(v),
                    Err(e) => Loaded::Error(e),
                }
            })
            .await;
        match loaded {
            Loaded::Value(v) => Ok(v),
            Loaded::Error(e) => Err(e),
            Loaded::Negative(n) => match n {},
        }
    }
}

/// "Not found" caching for loaders that return `Option`.
impl<K, V> Cache<K, V, ()>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Like [`get_or_load`](Cache::get_or_load) for a loader that returns `None` for "not
    /// found": `None` is cached for `negative_ttl` when it is set.
    pub fn get_or_load_option<Q>(&self, key: &Q, load: impl FnOnce() -> Option<V>) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.get_or_load(key, || load().ok_or(())).ok()
    }

    /// The async form of [`get_or_load_option`](Self::get_or_load_option).
    pub async fn get_or_load_option_async<Q, F>(
        &self,
        key: &Q,
        load: impl FnOnce() -> F,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = Option<V>>,
    {
        self.get_or_load_async(key, || async { load().await.ok_or(()) })
            .await
            .ok()
    }
}

impl<K, V, N> Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn stats(&self) -> CacheStats {
        self.meter.stats.snapshot(self.store.len())
    }

    /// Every store write goes through here (miss path only).
    ///
    /// Expired entries are removed when read, but an entry that is never read again could sit
    /// in a policy's protected area long after its deadline. So inserts also sweep: once an entry
    /// may have expired (`next_expiry` has passed) and an eighth of the capacity has been
    /// inserted since the last sweep, this insert removes every expired entry first. The cost is
    /// amortized to a few entry checks per insert, and an expired entry holds its room for at
    /// most capacity/8 inserts.
    fn insert(&self, key: K, stored: Stored<V, N>) -> Evictions<K, Stored<V, N>> {
        // Deadlines mostly rise, so a plain load usually shows there is nothing to lower.
        if stored.expires_at < self.next_expiry.load(Ordering::Relaxed) {
            self.next_expiry
                .fetch_min(stored.expires_at, Ordering::Relaxed);
        }
        // A heuristic count: an increment lost to a race only delays a sweep by one insert, so it
        // is a plain load and store rather than a locked read-modify-write.
        let n = self.inserts_since_sweep.load(Ordering::Relaxed);
        self.inserts_since_sweep.store(n + 1, Ordering::Relaxed);
        if n >= self.sweep_interval
            && self.next_expiry.load(Ordering::Relaxed) <= self.meter.clock.now_nanos()
        {
            self.sweep();
        }
        self.store.insert(key, stored)
    }

    /// Removes every expired entry; returns how many.
    fn sweep(&self) -> u64 {
        self.inserts_since_sweep.store(0, Ordering::Relaxed);
        let now = self.meter.clock.now_nanos();
        let next = std::cell::Cell::new(NEVER);
        let removed = self.store.retain(|_, s| {
            let keep = s.expires_at > now;
            if keep {
                next.set(next.get().min(s.expires_at));
            }
            keep
        });
        // A concurrent insert may have lowered it meanwhile; it is then found by the next sweep,
        // due at the latest at `next`.
        self.next_expiry.store(next.get(), Ordering::Relaxed);
        self.meter.stats.add(Counter::Expiration, removed);
        removed
    }
}

impl<K, V, N> crate::tier::LocalL1<K> for Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn evict_local(&self, key: Option<&K>) {
        match key {
            Some(k) => {
                self.flights.invalidate(self.hasher.hash_one(k), k);
                drop(self.store.remove(k));
            }
            None => {
                self.flights.invalidate_all();
                self.store.clear();
            }
        }
    }
}

impl<K, V, N> Report for Core<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> CacheStats {
        Core::stats(self)
    }
}

/// Configures a [`Cache`]. Every setting is checked by [`build`](Self::build), which returns a
/// [`BuildError`] rather than panicking.
///
/// ```
/// use cache_runtime::{Cache, Jitter, Policy};
/// use std::time::Duration;
///
/// // At most 64 MiB of page bodies, least-frequently-used evicted first.
/// let pages: Cache<String, Vec<u8>> = Cache::builder()
///     .name("pages")
///     .policy(Policy::Lfu)
///     .max_weight(64 << 20, |_url, body: &Vec<u8>| body.len() as u64)
///     .ttl(Duration::from_secs(30))
///     .jitter(Jitter::Spread(Duration::from_secs(3)))
///     .build()?;
/// # drop(pages);
///
/// assert!(Cache::<u64, u64>::builder().capacity(0).build().is_err());
/// # Ok::<(), cache_runtime::BuildError>(())
/// ```
pub struct CacheBuilder<K, V, N = Infallible> {
    name: Option<String>,
    capacity: u64,
    estimated_items: Option<usize>,
    weigher: Option<WeighFn<K, V>>,
    policy: Policy,
    ttl: Option<Duration>,
    negative_ttl: Option<Duration>,
    jitter: Option<Jitter>,
    clock: Clock,
    seed: Option<u64>,
    shards: Option<usize>,
    tier: Option<TierFactory<K, V, N>>,
    l1_ttl: Option<Duration>,
    lease: Option<Duration>,
    _types: PhantomData<fn() -> N>,
}

/// Makes a cache's remote tier from its name.
type TierFactory<K, V, N> = Box<dyn FnOnce(&str) -> Arc<dyn Tier<K, V, N>> + Send>;

impl<K, V, N> fmt::Debug for CacheBuilder<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("weighted", &self.weigher.is_some())
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl<K, V, N> Default for CacheBuilder<K, V, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, N> CacheBuilder<K, V, N> {
    /// The defaults: [`DEFAULT_CAPACITY`] entries, [`Policy::S3Fifo`], no TTL.
    #[must_use]
    pub fn new() -> Self {
        Self {
            name: None,
            capacity: DEFAULT_CAPACITY,
            estimated_items: None,
            weigher: None,
            policy: Policy::default(),
            ttl: None,
            negative_ttl: None,
            jitter: None,
            clock: Clock::coarse(),
            seed: None,
            shards: None,
            tier: None,
            l1_ttl: None,
            lease: None,
            _types: PhantomData,
        }
    }

    /// The name in the [`registry`](crate::registry) and in statistics (default `cache-<n>`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Holds at most `entries` entries.
    #[must_use]
    pub fn capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self.weigher = None;
        self
    }

    /// Never evicts for room: the cache grows with its distinct keys (entries still expire).
    /// Only for key sets known to be small.
    #[must_use]
    pub fn unbounded(mut self) -> Self {
        self.capacity = u64::MAX >> 2;
        self.weigher = None;
        self.estimated_items.get_or_insert(1024);
        self
    }

    /// Bounds the total weight instead of the count: each entry weighs `weigh(key, value)`
    /// (at least 1; a cached negative result weighs 1), and the total stays within `max_weight`.
    /// An entry heavier than a shard's share of `max_weight` is not kept.
    #[must_use]
    pub fn max_weight(
        mut self,
        max_weight: u64,
        weigh: impl Fn(&K, &V) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.capacity = max_weight;
        self.weigher = Some(Arc::new(weigh));
        self
    }

    /// The expected number of entries of a weighted cache (sizes its tables and frequency
    /// sketch; default: `max_weight / 64`, at most 1,000,000).
    #[must_use]
    pub fn estimated_items(mut self, items: usize) -> Self {
        self.estimated_items = Some(items);
        self
    }

    /// The eviction policy (default [`Policy::S3Fifo`]).
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a value stays fresh after it is stored.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Caches negative results (`Err`, `None`) for this long; without it they are not cached.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Spreads each entry's TTL randomly, drawn once per insert.
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// The clock that expiry reads (default [`Clock::coarse`]; tests pass a
    /// [`ManualClock`](crate::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Fixes the hash seed and the jitter's random sequence, for reproducible runs (default:
    /// random per cache, against hash flooding).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Like [`redis`](CacheBuilder::redis), for a cache that also holds negative results
    /// (`N` is encoded with serde too).
    ///
    /// Adds a Redis tier (L2) behind this process's store (L1): a miss here reads Redis before
    /// loading, and every load, write-through and invalidation also goes to Redis, so several
    /// processes share results. Values travel through the [`Bincode`](crate::codec::Bincode)
    /// codec, under `<prefix>:<cache name>:<key hash>`. Redis faults never fail a call (see
    /// [`RedisBackend`](crate::RedisBackend)).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis_with_negatives(mut self, backend: Arc<crate::RedisBackend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        N: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str| {
            Arc::new(crate::remote::RedisTier::<
                crate::codec::Bincode,
                crate::remote::WithNegatives,
            >::new(
                backend, &prefix, name, std::any::type_name::<(K, V, N)>()
            )) as Arc<dyn Tier<K, V, N>>
        }));
        self
    }

    /// With a remote tier: fleet-wide single-flight. A process that misses takes a lease on the
    /// key in Redis (`SET NX PX`, a random token) before loading; the others wait (bounded by
    /// `lease`) for its value to appear there, then load themselves if it has not. The lease
    /// is released only by its holder (compare-and-delete), or expires.
    #[must_use]
    pub fn distributed_lock(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// With a remote tier: how long an entry stays in this process (L1) before it is read from
    /// the remote tier again (default 5 s, at most the TTL). Other processes' writes and
    /// invalidations reach this process within this time.
    #[must_use]
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// The number of independently locked shards (rounded up to a power of two; default: up to
    /// 4 per core, with about 32 entries or more each). Capacity is split evenly between them.
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }
}

#[cfg(feature = "redis")]
impl<K, V> CacheBuilder<K, V, Infallible> {
    /// Adds a Redis tier (L2) behind this process's store (L1): a miss here reads Redis before
    /// loading, and every load, write-through and invalidation also goes to Redis, so several
    /// processes share results. Values travel through the [`Bincode`](crate::codec::Bincode)
    /// codec, under `<prefix>:<cache name>:<key hash>`. Redis faults never fail a call (see
    /// [`RedisBackend`](crate::RedisBackend)).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(mut self, backend: Arc<crate::RedisBackend>, prefix: &str) -> Self
    where
        K: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let prefix = prefix.to_owned();
        self.tier = Some(Box::new(move |name: &str| {
            Arc::new(crate::remote::RedisTier::<
                crate::codec::Bincode,
                crate::remote::NoNegatives,
            >::new(
                backend, &prefix, name, std::any::type_name::<(K, V)>()
            )) as Arc<dyn Tier<K, V, Infallible>>
        }));
        self
    }
}

impl<K, V, N> CacheBuilder<K, V, N>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    N: Clone + Send + Sync + 'static,
{
    /// Builds the cache and lists it in the [`registry`](crate::registry).
    ///
    /// # Errors
    /// A zero capacity, a zero or overlong TTL, a jitter over 100% (or without a TTL), a shard
    /// count of zero or over 65,536.
    pub fn build(self) -> Result<Cache<K, V, N>, BuildError> {
        self.validate()?;
        Ok(self.build_validated())
    }

    /// Builds with these settings, or, if they are invalid, with the defaults (keeping the name
    /// and policy), returning the error too. Never fails.
    pub(crate) fn build_or_default(self) -> (Cache<K, V, N>, Option<BuildError>) {
        let Err(error) = self.validate() else {
            return (self.build_validated(), None);
        };
        // Give up as little as possible: first the jitter, then the TTLs, then the sizing.
        let mut b = self;
        b.jitter = None;
        if b.validate().is_err() {
            b.ttl = b.ttl.filter(|t| ttl_nanos(*t, "ttl").is_ok());
            b.negative_ttl = b
                .negative_ttl
                .filter(|t| ttl_nanos(*t, "negative_ttl").is_ok());
        }
        if b.validate().is_err() {
            b.capacity = DEFAULT_CAPACITY;
            b.shards = None;
        }
        (b.build_validated(), Some(error))
    }

    /// The checks of [`build`](Self::build), without building.
    fn validate(&self) -> Result<(), BuildError> {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if let Some(s) = self.shards
            && (s == 0 || s > 65_536)
        {
            return Err(BuildError::InvalidShards(s));
        }
        Expiry::new(self.ttl, self.negative_ttl, self.jitter, 0).map(|_| ())
    }

    /// Builds settings that [`validate`](Self::validate) accepted; never fails.
    fn build_validated(mut self) -> Cache<K, V, N> {
        self.capacity = self.capacity.clamp(1, u64::MAX >> 2);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let seed = self
            .seed
            .unwrap_or_else(|| std::hash::RandomState::new().hash_one(id));
        let expiry = Expiry::new(self.ttl, self.negative_ttl, self.jitter, seed)
            .unwrap_or_else(|_| Expiry::none(seed));
        self.assemble(id, seed, expiry)
    }

    /// The construction proper, from validated settings.
    fn assemble(self, id: u64, seed: u64, expiry: Expiry) -> Cache<K, V, N> {
        if self.ttl.is_some() || self.negative_ttl.is_some() {
            crate::clock::start_ticker();
        }
        let meter = Arc::new(Meter {
            stats: Stats::new(),
            clock: self.clock,
        });
        let estimated_items = self.estimated_items.unwrap_or_else(|| {
            let items = if self.weigher.is_some() {
                self.capacity / 64
            } else {
                self.capacity
            };
            usize::try_from(items.min(1_000_000))
                .unwrap_or(1_000_000)
                .max(1)
        });
        let weigher = Weigher(self.weigher.map(|f| {
            Arc::new(move |k: &K, s: &Stored<V, N>| match &s.entry {
                Entry::Value(v) => f(k, v),
                Entry::Negative(_) => 1,
            }) as WeighFn<K, Stored<V, N>>
        }));
        let listener_meter = Arc::clone(&meter);
        let listener = Listener(Arc::new(move |s: &Stored<V, N>| {
            let expired = s.expires_at != NEVER && listener_meter.clock.is_past(s.expires_at);
            listener_meter.stats.incr(if expired {
                Counter::Expiration
            } else {
                Counter::Eviction
            });
        }));
        let hasher = FixedState::with_seed(seed);
        let store = Store::new(StoreConfig {
            policy: self.policy,
            capacity: self.capacity,
            estimated_items,
            shards: self.shards,
            hasher: hasher.clone(),
            weigher,
            listener,
        });
        let name = self.name.unwrap_or_else(|| format!("cache-{id}"));
        let tier = self.tier.map(|make| make(&name));
        let l1_ttl = tier.as_ref().map(|_| {
            let d = self.l1_ttl.unwrap_or(Duration::from_secs(5));
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
        });
        let core = Arc::new(Core {
            store,
            flights: Flights::new(shard_count(None, 4096)),
            expiry,
            meter,
            hasher,
            name,
            policy: self.policy,
            next_expiry: AtomicU64::new(NEVER),
            inserts_since_sweep: AtomicU64::new(0),
            sweep_interval: (estimated_items as u64 / 8).max(16),
            lease: tier.as_ref().and(self.lease),
            tier,
            l1_ttl,
        });
        if let Some(tier) = &core.tier {
            let l1: Arc<dyn crate::tier::LocalL1<K>> = core.clone();
            tier.attach(Arc::downgrade(&l1));
        }
        let report: Arc<dyn Report> = core.clone();
        let any: Arc<dyn std::any::Any + Send + Sync> = core.clone();
        registry::register(Arc::downgrade(&report), Arc::downgrade(&any));
        Cache { core }
    }
}
